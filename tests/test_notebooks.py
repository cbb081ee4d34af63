"""Every notebook runs top to bottom as a person's "Restart & Run All" does, twice in a row
against the same workspace, offline, with no input: every cell, including the ones the
nbval documentation run skips (a real provider, key entry), and no cell may wait for input.

(scripts/test also runs nbval twice against one home, comparing the stored outputs.)"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KEY_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
           "OPENROUTER_API_KEY", "OLLAMA_HOST", "VIAGENT_VAULT_KEY")


def _run_all(path: Path) -> list[str]:
    """Execute every cell (no stdin: a prompt for input fails instead of waiting); return
    the text of the outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False,
                            record_timing=False, resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    texts = []
    for cell in nb.cells:
        if "%llm fix" in cell.source or "--with error" in cell.source:
            continue  # these cells send the last traceback to the model on purpose (context.ipynb)
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or str(out.get("data", {}).get("text/plain", "")))
    return texts


@pytest.mark.slow
def test_every_notebook_runs_twice_in_a_row_without_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(NOTEBOOKS) >= 5
    monkeypatch.setenv("VIAGENT_HOME", str(tmp_path / "home"))  # one home for both runs
    for name in KEY_ENV:
        monkeypatch.delenv(name, raising=False)
    for round_ in (1, 2):
        for path in NOTEBOOKS:
            outputs = "\n".join(_run_all(path))
            assert "cannot ask for input" not in outputs, (round_, path.name)
            assert "Traceback" not in outputs, (round_, path.name)
    assert os.listdir(tmp_path / "home")
