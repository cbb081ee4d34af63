"""One prompt, several models side by side (``%%llm -m A -m B``, ``-p P1:M -p P2:M``):
concurrent streams over real loopback HTTP, per-column footers, partial failure, cancel,
one history group. The magic runs in a real IPython shell and in a real kernel."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from test_magics import magics_on, shell, sse_script  # noqa: F401  (shell: fixture)
from test_render import assert_safe_bundle

from viagent_jupyter import Workspace
from viagent_jupyter._compare import Comparison
from viagent_jupyter.magics import LLMMagics, parse_prompt_args
from viagent_jupyter.testing import FakeProviderServer, Scripted


@pytest.fixture
def srv() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as server:
        yield server


@pytest.fixture
def fake(ws: Workspace, srv: FakeProviderServer) -> Workspace:
    ws.providers.create(id="fake", provider_type="openai_compatible", name="Fake",
                        base_url=srv.url_for("openai_compatible"), default_model="demo-small",
                        max_retries=0)
    ws.providers.select("fake")
    return ws


def columns(html: str) -> list[str]:
    return re.findall(r'<div class="viagent-llm-column".*?</div></div>', html, flags=re.S)


# -- options ---------------------------------------------------------------------------------


def test_targets_from_the_options() -> None:
    assert parse_prompt_args(["-m", "a", "-m", "b"]).targets == ((None, "a"), (None, "b"))
    assert parse_prompt_args(["-p", "x", "-m", "a", "-m", "b"]).targets == (
        ("x", "a"), ("x", "b"))
    assert parse_prompt_args(["-p", "x:a", "-p", "y:llama3:8b", "-p", "z"]).targets == (
        ("x", "a"), ("y", "llama3:8b"), ("z", None))
    one = parse_prompt_args(["-p", "x:a"])
    assert (one.provider, one.model, one.targets) == ("x", "a", ())
    one = parse_prompt_args(["-p", "x", "-m", "a"])
    assert (one.provider, one.model, one.targets) == ("x", "a", ())
    for bad, why in ([["-p", "x", "-p", "y", "-m", "a"], "-p PROVIDER:MODEL"],
                     [["-p", "x:a", "-m", "b"], "give the model once"],
                     [["-m", "a", "-m", "b", "--chat"], "without --chat"],
                     [["-m", "a", "-m", "b", "-f", "code", "--insert"], "--insert"],
                     [["-p", ":a"], "PROVIDER or PROVIDER:MODEL"]):
        with pytest.raises(UsageError, match=re.escape(why)):
            parse_prompt_args(bad)


# -- concurrency -----------------------------------------------------------------------------


def test_answers_stream_concurrently(fake: Workspace, srv: FakeProviderServer) -> None:
    """Each answer waits 1.5 s before its headers: one after the other would take ≥ 4.5 s.
    Proof without a clock: the server holds all three requests before any has finished."""
    delay, n = 1.5, 3
    srv.script("chat", *[Scripted(headers_delay=delay) for _ in range(n)])
    comparison = Comparison(fake, "Same question", [("fake", f"m{i}") for i in range(n)])
    overlapped = []

    def tick() -> None:
        reqs = srv.requests
        if len(reqs) == n and not any(r.finished.is_set() for r in reqs):
            overlapped.append(True)

    comparison.run(tick=tick, interval=0.02)
    results = comparison.results()
    assert overlapped, "the requests did not overlap"
    assert [r.finish_reason for r in results] == ["stop"] * n
    assert [r.model for r in results] == ["m0", "m1", "m2"]
    assert all(r.text.startswith("You said: Same question") for r in results)
    assert results.wall is not None and results.wall < n * delay - 1.5  # generous margin
    group = {r.group for r in fake.history}
    assert group == {results.group} and len(fake.history) == n


def test_cancel_stops_every_stream(fake: Workspace, srv: FakeProviderServer) -> None:
    srv.script("chat", Scripted(delay=0.2), Scripted(delay=0.2))  # ~20 words over ~4 s each
    comparison = Comparison(fake, "Long answers", [("fake", "a"), ("fake", "b")])

    def tick() -> None:
        if all(c.text for c in comparison.columns):
            raise KeyboardInterrupt  # as Ctrl-C in the kernel's main thread

    comparison.run(tick=tick, interval=0.02)
    results = comparison.results()
    assert [r.finish_reason for r in results] == ["cancelled", "cancelled"]
    assert all(r.text and "no real model was called" not in r.text for r in results)
    for rec in srv.requests:
        assert rec.finished.wait(5) and rec.disconnected  # connections closed
    assert [r.finish_reason for r in fake.history] == ["cancelled", "cancelled"]
    assert fake.stats.get("fake", "a").requests == 1


# -- the magic in a shell --------------------------------------------------------------------


@pytest.fixture
def magics(shell: InteractiveShell, fake: Workspace,  # noqa: F811
           monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMMagics]:
    with magics_on(shell, fake, monkeypatch, ("_llm", "res")) as (m, pub):
        m.pub = pub  # type: ignore[attr-defined]
        yield m


def test_partial_failure_and_per_column_footers(magics: LLMMagics, fake: Workspace,
                                                srv: FakeProviderServer) -> None:
    fake.providers.create(id="down", provider_type="openai_compatible", name="Down",
                          base_url="http://127.0.0.1:9/v1", default_model="x", max_retries=0)
    srv.script("chat", Scripted(delay=0.01), Scripted(delay=0.01))
    sh = magics.shell
    assert sh is not None
    res = sh.run_cell("%%llm -p fake:alpha -p down -p fake:beta -o res\nCompare me")
    assert res.success
    results = sh.user_ns["res"]
    assert sh.user_ns["_llm"] is results and len(results) == 3
    assert [r.finish_reason for r in results] == ["stop", "error", "stop"]
    assert results[1].error is not None and results[1].error.code == "PROVIDER_UNREACHABLE"

    calls = magics.pub.calls  # type: ignore[attr-defined]
    assert not calls[0].update and all(c.update for c in calls[1:])
    assert len({c.display_id for c in calls}) == 1  # one live output, updated in place
    final = calls[-1].data
    cols = columns(final["text/html"])
    assert len(cols) == 3
    for i in (0, 2):
        assert "You said: Compare me" in cols[i]
        assert "first token" in cols[i] and "tokens" in cols[i] and " s" in cols[i]
        assert "streaming" not in cols[i]
    assert "LLM error:" in cols[1] and "⚠ error" in cols[1]
    assert final["text/plain"].count("== ") == 3
    assert "Fake (OpenAI-compatible) · alpha" in final["text/plain"]  # readable labels (#13)
    assert "OPENAI_COMPATIBLE" not in final["text/plain"]
    assert "display:flex" in final["text/html"] and "flex-wrap:wrap" in final["text/html"]
    assert {r.group for r in fake.history} == {results.group}
    assert sorted((r.model, r.error_code) for r in fake.history) == [
        ("alpha", None), ("beta", None), ("x", "PROVIDER_UNREACHABLE")]


def test_model_output_is_sanitised_in_columns(magics: LLMMagics, fake: Workspace,
                                              srv: FakeProviderServer) -> None:
    attack = ["<img src=x onerror=alert(1)>", " <script>alert(1)</script>",
              " [x](javascript:alert(1))"]
    srv.script("chat", sse_script(attack), sse_script(attack))
    sh = magics.shell
    assert sh is not None
    sh.run_cell("%%llm -m a -m b\nhi")
    final = magics.pub.calls[-1].data  # type: ignore[attr-defined]
    assert_safe_bundle(final)
    assert final["text/html"].count("&lt;script&gt;") == 2


def test_a_silent_wait_is_not_redrawn_over_and_over(magics: LLMMagics,
                                                    srv: FakeProviderServer) -> None:
    """Waiting 1.2 s for the headers: the output is redrawn when something changes (and
    once a second for the clocks), not at every 0.05 s tick (that would be ~24 updates)."""
    srv.script("chat", Scripted(headers_delay=1.2), Scripted(headers_delay=1.2))
    sh = magics.shell
    assert sh is not None
    sh.run_cell("%%llm -m a -m b\nwait")
    calls = magics.pub.calls  # type: ignore[attr-defined]
    assert calls[-1].data["text/plain"].count("You said: wait") == 2
    assert len(calls) <= 8, len(calls)


# -- a real kernel ---------------------------------------------------------------------------


@pytest.mark.slow
def test_compare_and_interrupt_in_a_real_kernel(fake: Workspace, srv: FakeProviderServer,
                                                tmp_path: Path) -> None:
    from jupyter_client.manager import start_new_kernel
    from kernel import Kernel

    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        k = Kernel(kc)
        k.check("%load_ext viagent_jupyter")
        res = k.run("%%llm -m a -m b -o res\nSide by side")
        assert res.error is None
        shown = [o for o in res.outputs if o["type"] in ("display_data", "update_display_data")]
        assert shown[0]["type"] == "display_data" and len(shown) >= 2
        assert len({o["transient"]["display_id"] for o in shown}) == 1
        for o in shown:
            assert_safe_bundle(o["data"])
        assert len(columns(shown[-1]["data"]["text/html"])) == 2
        assert k.check("print([r.finish_reason for r in res])").strip() == "['stop', 'stop']"

        # Ctrl-C stops both streams; the cell ends without a traceback
        srv.script("chat", Scripted(delay=0.25), Scripted(delay=0.25))
        msg_id = kc.execute("%%llm -m a -m b\nTwo long answers")
        seen: list[dict[str, Any]] = []
        interrupted = False
        deadline = time.monotonic() + 30
        while True:
            msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            seen.append({"type": kind, **content})
            if (not interrupted and kind == "update_display_data"
                    and content["data"]["text/plain"].count("You said") == 2):
                km.interrupt_kernel()
                interrupted = True
            if kind == "status" and content["execution_state"] == "idle":
                break
        assert interrupted
        reply = kc.get_shell_msg(timeout=10)
        assert reply["content"]["status"] == "ok"
        assert not [m for m in seen if m["type"] == "error"]
        last = [m for m in seen if m["type"] == "update_display_data"][-1]["data"]
        assert last["text/plain"].count("cancelled") == 2
        assert "no real model was called" not in last["text/plain"]
        out = k.check("print([r.finish_reason for r in _llm])")
        assert out.strip() == "['cancelled', 'cancelled']"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    for rec in srv.requests[-2:]:
        assert rec.finished.wait(5) and rec.disconnected
    assert [r.finish_reason for r in fake.history][-2:] == ["cancelled", "cancelled"]
    assert [r.source for r in fake.history] == ["magic"] * 4
