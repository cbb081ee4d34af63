"""Every test runs against a fresh home: the user's real files are never touched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# -- the recorded wire fixtures: required in CI -----------------------------------------------

def wire_required() -> bool:
    """CI (``CI=true``) and ``VIAGENT_REQUIRE_WIRE=1`` turn a missing recording into a failure:
    the replay tests must not silently vanish where the recordings should be."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or \
        os.environ.get("VIAGENT_REQUIRE_WIRE") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or not wire_required():
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if item.get_closest_marker("wire") or "recording" in reason:
        report.outcome = "failed"
        report.longrepr = (
            f"{reason}. The recorded wire fixtures are required here (CI=true or "
            "VIAGENT_REQUIRE_WIRE=1): set VIAGENT_WIRE_FIXTURES to shared/fixtures/wire."
        )
