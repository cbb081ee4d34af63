"""Every test runs against a fresh home: the user's real files are never touched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENROUTER_API_KEY",
    "OLLAMA_HOST",
    "VIAGENT_VAULT_KEY",
    "VIAGENT_JOURNAL_MODE",
)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "viagent-home"
    monkeypatch.setenv("VIAGENT_HOME", str(home))
    monkeypatch.setenv("VIAGENT_KEYRING", "0")  # never touch the developer's OS keyring
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    yield home


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    return _isolated_home


@pytest.fixture
def ws(home: Path) -> Iterator[object]:
    from viagent_jupyter import Workspace

    w = Workspace(home=home)
    yield w
    w.close()
