"""In CI the replay tests cannot vanish: without the recorded wire fixtures they fail with a
message saying what is missing (like the browser tests with E2E_REQUIRE_BROWSER)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/adapters/test_adapter_recordings.py",
         "tests/test_fake_server.py::test_replay_a_recording_byte_by_byte"]


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("CI", "VIAGENT_REQUIRE_WIRE", "VIAGENT_WIRE_FIXTURES")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *TESTS],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**base, "VIAGENT_WIRE_FIXTURES": str(tmp_path / "nowhere"), **env},
    )


def test_missing_recordings_skip_on_a_developer_machine(tmp_path: Path) -> None:
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "skipped" in proc.stdout and "failed" not in proc.stdout


def test_missing_recordings_fail_in_ci(tmp_path: Path) -> None:
    for env in ({"CI": "true"}, {"VIAGENT_REQUIRE_WIRE": "1"}):
        proc = _run(tmp_path, **env)
        assert proc.returncode == 1, proc.stdout[-2000:]
        assert "recorded wire fixtures are required here" in proc.stdout, proc.stdout[-2000:]
        assert "VIAGENT_WIRE_FIXTURES" in proc.stdout
