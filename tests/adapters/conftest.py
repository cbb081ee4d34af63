"""Locating the recorded provider traffic (never copied into the repository).

Recordings dir = ``$VIAGENT_WIRE_FIXTURES`` if set, else ``<repo>/../shared/fixtures/wire``
if it exists. Tests that need recordings take one of the parametrised fixtures below
(``stream_recording``, ``error_recording``, ``models_recording``) or ``wire_dir``; without
recordings they are skipped with the reason below (failed in CI: see tests/conftest.py), and
the synthetic tests still run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

SKIP_REASON = (
    "wire recordings not found: set VIAGENT_WIRE_FIXTURES or place ../shared/fixtures/wire"
)
REPO = Path(__file__).resolve().parents[2]


def find_wire_dir() -> Path | None:
    env = os.environ.get("VIAGENT_WIRE_FIXTURES")
    if env:
        path = Path(env)
        return path if (path / "EXPECTED.json").is_file() else None
    path = REPO.parent / "shared" / "fixtures" / "wire"
    return path if path.is_dir() else None


@dataclass(frozen=True)
class Recording:
    path: Path
    rel: str  # "openai/chat_stream_text__mirascope.sse"
    provider: str  # directory: openai, anthropic, gemini, ollama, openrouter
    meta: dict[str, Any]

    @property
    def status(self) -> int:
        return int(self.meta["status"])

    @property
    def content_type(self) -> str:
        return str(self.meta.get("content_type") or "")

    @property
    def body(self) -> bytes:
        return self.path.read_bytes()

    @property
    def headers(self) -> dict[str, str]:
        raw = self.meta.get("response_headers_selected") or self.meta.get("response_headers")
        out: dict[str, str] = {}
        for name, value in (raw or {}).items():
            out[name] = value[0] if isinstance(value, list) else str(value)
        return out

    @property
    def provider_type(self) -> str:
        """The provider type whose adapter parses this body."""
        if self.provider == "ollama" and self.path.name.startswith("v1_"):
            return "openai_compatible"  # Ollama's OpenAI-compatible /v1 endpoint
        return self.provider


@cache
def all_recordings() -> tuple[Recording, ...]:
    root = find_wire_dir()
    if root is None:
        return ()
    out = []
    for meta_path in sorted(root.glob("*/*.meta.json")):
        body = meta_path.with_name(meta_path.name[: -len(".meta.json")])
        if body.is_file():
            meta = json.loads(meta_path.read_text())
            rel = body.relative_to(root).as_posix()
            out.append(Recording(body, rel, rel.split("/")[0], meta))
    return tuple(out)


def is_stream(rec: Recording) -> bool:
    """Every 200 SSE/NDJSON body (Gemini array-mode JSON excluded: we always send alt=sse)."""
    return rec.status == 200 and rec.path.suffix in (".sse", ".ndjson")


def is_error(rec: Recording) -> bool:
    return rec.status >= 400


def is_models(rec: Recording) -> bool:
    return rec.status == 200 and ("models_list" in rec.path.name or "api_tags" in rec.path.name)


_KINDS = {"stream_recording": is_stream, "error_recording": is_error,
          "models_recording": is_models}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, pick in _KINDS.items():
        if name in metafunc.fixturenames:
            recs = [r for r in all_recordings() if pick(r)]
            params = [pytest.param(r, id=r.rel, marks=pytest.mark.wire) for r in recs]
            if not params:
                params = [pytest.param(None, id="no-recordings",
                                       marks=(pytest.mark.wire, pytest.mark.skip(SKIP_REASON)))]
            metafunc.parametrize(name, params)


@pytest.fixture
def wire_dir() -> Path:
    root = find_wire_dir()
    if root is None:
        pytest.skip(SKIP_REASON)
    return root


@pytest.fixture
def expected(wire_dir: Path) -> dict[str, Any]:
    """EXPECTED.json: values derived by the fixture author's reference parser."""
    data: dict[str, Any] = json.loads((wire_dir / "EXPECTED.json").read_text())
    return data


@pytest.fixture
def recording(wire_dir: Path) -> Any:
    """``recording("openai/chat_stream_text__mirascope.sse")`` -> Recording."""

    def get(rel: str) -> Recording:
        for rec in all_recordings():
            if rec.rel == rel:
                return rec
        pytest.skip(f"recording {rel} not present in {wire_dir}")

    return get
