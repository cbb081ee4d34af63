"""The real-server tier: a real third-party implementation of the wire protocols (LiteLLM's
proxy, ``litellm[proxy]``) on loopback, with ``mock_response`` models, so nothing leaves the
machine.

LiteLLM and the official ``openai``/``anthropic`` SDKs live in their own venv so their
dependencies never mix with ours: ``$VIAGENT_LITELLM_VENV`` (``.ci/run`` makes
``.venv-litellm`` in the repository and exports it). Without it the tier is skipped with a
reason — except in CI (``CI=true``), where a missing venv fails.

Offline by construction (https://docs.litellm.ai/docs/proxy/configs): the cost map is read
from the package (``LITELLM_LOCAL_MODEL_COST_MAP=True``), telemetry records nothing without
a destination, no database is configured, ``LITELLM_MODE=PRODUCTION`` keeps it from loading
a stray ``.env``, proxies are unset, and every model answers with ``mock_response``. The
models of other providers are not configured: LiteLLM's Gemini route answers for an
OpenAI-backed mock model (a Gemini-backed one would try Google).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-litellm-master-1234"
ANSWER = "Hello from LiteLLM, a real third-party server."
START_TIMEOUT_S = 60.0

CONFIG = f"""\
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: sk-mock-openai
      mock_response: "{ANSWER}"
  - model_name: claude-mock
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_key: sk-ant-mock
      mock_response: "{ANSWER}"
  - model_name: o3-mock
    litellm_params:
      model: openai/o3-mini
      api_key: sk-mock-openai
      mock_response: "{ANSWER}"
general_settings:
  master_key: {MASTER_KEY}
"""


def litellm_venv() -> Path | None:
    env = os.environ.get("VIAGENT_LITELLM_VENV")
    candidates = [Path(env)] if env else [REPO / ".venv-litellm"]
    for path in candidates:
        if (path / "bin" / "litellm").exists():
            return path
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.realserver)


@dataclass
class LiteLLM:
    base_url: str
    venv: Path
    started_in: float

    def sdk(self, *args: str) -> str:
        """Run ``sdk_read.py`` with the venv's python (the official SDKs live there)."""
        script = Path(__file__).with_name("sdk_read.py")
        out = subprocess.run([str(self.venv / "bin" / "python"), str(script), self.base_url,
                              MASTER_KEY, *args], capture_output=True, text=True, timeout=120,
                             env=_env(), check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
           and not k.startswith(("OPENAI_", "ANTHROPIC_", "GEMINI_", "DATABASE_"))}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_MODE="PRODUCTION",
               NO_PROXY="*", no_proxy="*", PYTHONUNBUFFERED="1")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /health/liveliness HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.1 200") or False
    except OSError:
        return False


@pytest.fixture(scope="session")
def litellm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLM]:
    venv = litellm_venv()
    if venv is None:
        reason = ("LiteLLM venv not found: set VIAGENT_LITELLM_VENV (or run .ci/run, which "
                  "makes .venv-litellm with litellm[proxy], openai and anthropic)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("litellm")
    (work / "config.yaml").write_text(CONFIG)
    port = _free_port()
    log = (work / "litellm.log").open("wb")
    t0 = time.monotonic()
    proc = subprocess.Popen([str(venv / "bin" / "litellm"), "--config", "config.yaml",
                             "--host", "127.0.0.1", "--port", str(port)], cwd=work,
                            env=_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        while not _up(port):
            if proc.poll() is not None or time.monotonic() - t0 > START_TIMEOUT_S:
                log.flush()
                tail = (work / "litellm.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"LiteLLM did not start within {START_TIMEOUT_S:.0f} s:\n{tail}")
            time.sleep(0.25)
        started = time.monotonic() - t0
        print(f"\nLiteLLM proxy up on 127.0.0.1:{port} after {started:.1f} s", file=sys.stderr)
        yield LiteLLM(f"http://127.0.0.1:{port}", venv, started)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # our own process group, started above
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()
