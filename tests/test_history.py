"""The history (``ws.history``, ``%llm log``): every chat recorded in the workspace's real
SQLite file, FTS5 search, export, ``--chat`` threads that outlive a kernel, and privacy
(``--no-log``, ``VIAGENT_LOG=0``, retention, clear; no key ever stored)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _util import PLANTED_KEY, PLANTED_ODD_KEY, files_containing
from IPython.core.interactiveshell import InteractiveShell
from test_magics import magics_on, shell  # noqa: F401  (shell: a fixture)

from viagent_jupyter import Workspace
from viagent_jupyter.errors import ConfigValidationError, ProviderAPIError
from viagent_jupyter.history import (
    INLINE_CAP,
    _clean,
    fts_query,
    not_recorded,
    read_jsonl,
)
from viagent_jupyter.magics import LLMMagics
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


def ask(ws: Workspace, prompt: str, **kw: object) -> str:
    return ws.chat(prompt, **kw).wait().text  # type: ignore[arg-type]


def history_text(ws: Workspace) -> str:
    """Every value of every history table, as one string."""
    out = []
    with ws.db.read() as conn:
        for table in ("history", "history_threads"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                out.append(json.dumps([str(v) for v in row]))
    return "\n".join(out)


# -- what is recorded ------------------------------------------------------------------------


def test_every_chat_is_recorded_with_what_was_sent_and_answered(fake: Workspace) -> None:
    s = fake.chat([{"role": "user", "content": "earlier question"},
                   {"role": "assistant", "content": "earlier answer"},
                   {"role": "user", "content": "What about aardvarks?"}],
                  system="Be brief.", temperature=0.3)
    text = s.wait().text
    [r] = list(fake.history)
    assert (r.provider, r.model, r.response_model, r.source) == (
        "fake", "demo-small", "demo-small", "api")
    assert r.system == "Be brief."
    assert [m["content"] for m in r.messages] == ["earlier question", "earlier answer",
                                                  "What about aardvarks?"]
    assert r.prompt == "What about aardvarks?" and r.answer == text
    assert r.finish_reason == "stop" and r.error is None
    assert r.usage["completion_tokens"] == s.usage.completion_tokens
    assert r.settings["temperature"] == 0.3
    assert r.ttft is not None and r.total_time is not None and 0 <= r.ttft <= r.total_time
    assert r.notebook is None and r.cell is None  # not in a kernel
    assert r.reasoning is None and r.steps is None
    assert fake.history.get(r.id) == r == fake.history[r.id]
    assert len(fake.history) == 1


def test_a_failed_chat_is_recorded_with_its_error(fake: Workspace,
                                                  srv: FakeProviderServer) -> None:
    srv.script("chat", Scripted(status=400, message="model exploded"))
    with pytest.raises(ProviderAPIError):
        ask(fake, "break please")
    [r] = list(fake.history)
    assert r.finish_reason == "error" and r.error_code == "PROVIDER_API_ERROR"
    assert "model exploded" in (r.error or "")
    assert r.prompt == "break please" and r.answer == ""


def test_async_chats_are_recorded_too(fake: Workspace) -> None:
    async def main() -> None:
        async for _ in fake.achat("asynchronous hello"):
            pass
        await fake.aclose()

    asyncio.run(main())
    assert [r.prompt for r in fake.history] == ["asynchronous hello"]


def test_a_cancelled_chat_keeps_its_partial_answer(fake: Workspace,
                                                   srv: FakeProviderServer) -> None:
    srv.script("chat", Scripted(delay=0.05))
    s = fake.chat("stop early")
    it = iter(s)
    first = next(it)
    s.close()
    [r] = list(fake.history)
    assert r.finish_reason == "cancelled" and r.answer == first


# -- search ----------------------------------------------------------------------------------


def test_full_text_search_over_prompt_and_answer(fake: Workspace) -> None:
    for prompt in ("Tell me about zebras", "How do penguins swim?", "zebra crossings",
                   "c++ templates (what's new?)"):
        ask(fake, prompt)
    fake.providers.create(id="other", provider_type="openai_compatible", name="Other",
                          base_url=fake.providers.get("fake").base_url,
                          default_model="demo-large", max_retries=0)
    ask(fake, "zebras again", provider="other")

    h = fake.history
    assert [r.prompt for r in h.search("zebras")] == ["zebras again", "Tell me about zebras"]
    assert {r.prompt for r in h.search("zebra*")} == {
        "zebras again", "Tell me about zebras", "zebra crossings"}
    assert len(h.search("demo provider")) == 5  # words of the answers match too
    assert [r.prompt for r in h.search("penguins swim")] == ["How do penguins swim?"]
    assert h.search("penguins zebras") == []  # every word must match
    assert [r.prompt for r in h.search("c++ (what's")] == ["c++ templates (what's new?)"]
    assert [r.provider for r in h.search("zebras", provider="other")] == ["other"]
    assert [r.model for r in h.search(model="demo-large")] == ["demo-large"]
    assert len(h.search(n=2)) == 2
    assert len(h.search(since="1h")) == 5
    assert h.search(since="2999-01-01") == []
    with pytest.raises(ConfigValidationError, match="Cannot read the date"):
        h.search(since="last tuesday")


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('say "hi" OR NEAR(x') == '"say" """hi""" "OR" "NEAR(x"'
    assert fts_query("zeb* *") == '"zeb"* "*"'


def test_without_fts5_search_falls_back_to_like_with_one_note(
        fake: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    """A SQLite built without FTS5 (simulated: the index table is missing) still searches."""
    ask(fake, "Tell me about zebras")
    ask(fake, "100% sure_thing")
    with fake.db.write() as conn:
        conn.execute("DROP TRIGGER history_ai")
        conn.execute("DROP TRIGGER history_ad")
        conn.execute("DROP TABLE history_fts")
    fresh = Workspace(home=fake.home)
    try:
        with caplog.at_level(logging.WARNING, logger="viagent_jupyter.history"):
            assert [r.prompt for r in fresh.history.search("zebras")] == ["Tell me about zebras"]
            assert [r.prompt for r in fresh.history.search("100% sure_")] == ["100% sure_thing"]
            assert fresh.history.search("10_%") == []  # LIKE wildcards are escaped
        notes = [r for r in caplog.records if "no FTS5" in r.getMessage()]
        assert len(notes) == 1
    finally:
        fresh.close()


# -- export ----------------------------------------------------------------------------------


def test_export_round_trip(fake: Workspace, tmp_path: Path,
                           srv: FakeProviderServer) -> None:
    ask(fake, "first 'quoted' — ünïcode", system="sys")
    srv.script("chat", Scripted(status=500))
    with pytest.raises(ProviderAPIError):
        ask(fake, "second fails")
    records = list(fake.history)

    jsonl = tmp_path / "log.jsonl"
    assert fake.history.export(jsonl) == 2
    assert read_jsonl(jsonl) == records
    assert stat.S_IMODE(jsonl.stat().st_mode) == 0o600
    assert all(json.loads(line)["provider"] == "fake" for line in jsonl.read_text().splitlines())

    md = tmp_path / "log.md"
    assert fake.history.export(md) == 2
    text = md.read_text(encoding="utf-8")
    assert "first 'quoted' — ünïcode" in text and "**system**" in text
    assert "PROVIDER_API_ERROR" in text
    with pytest.raises(ConfigValidationError, match=r"\.jsonl or \.md"):
        fake.history.export(tmp_path / "log.csv")


def test_to_dataframe_or_a_clear_error(fake: Workspace) -> None:
    ask(fake, "frame me")
    try:
        import pandas  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ModuleNotFoundError, match="pip install pandas"):
            fake.history.to_dataframe()
    else:
        df = fake.history.to_dataframe()
        assert list(df["prompt"]) == ["frame me"]


# -- privacy ---------------------------------------------------------------------------------


def test_nothing_is_recorded_when_turned_off(fake: Workspace,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with not_recorded():
        ask(fake, "not this one")
    monkeypatch.setenv("VIAGENT_LOG", "0")
    ask(fake, "nor this")
    monkeypatch.delenv("VIAGENT_LOG")
    fake.history.enabled = False
    ask(fake, "nor that")
    fake.history.enabled = True
    assert len(fake.history) == 0
    ask(fake, "but this")
    assert [r.prompt for r in fake.history] == ["but this"]


def test_retention_drops_old_records(fake: Workspace) -> None:
    ask(fake, "ancient")
    ask(fake, "recent")
    with fake.db.write() as conn:
        conn.execute("UPDATE history SET created_at = ? WHERE prompt = 'ancient'",
                     (time.time() - 40 * 86400,))
    assert fake.history.retention_days is None
    fake.history.retention_days = 30
    assert [r.prompt for r in fake.history] == ["recent"]
    assert fake.history.search("ancient") == []
    assert Workspace(home=fake.home).history.retention_days == 30.0
    with pytest.raises(ConfigValidationError):
        fake.history.retention_days = -1


def test_clear_forgets_records_threads_and_their_bytes(fake: Workspace) -> None:
    with fake.db.read() as conn:  # as SQLite builds without SECURE_DELETE: freed pages keep text
        conn.execute("PRAGMA secure_delete = OFF")
    ask(fake, "the word xylophonist")
    fake.history.save_thread("t", [{"role": "user", "content": "xylophonist thread"}])
    assert files_containing(fake.home, "xylophonist")
    assert fake.history.clear() == 1
    assert len(fake.history) == 0 and fake.history.threads() == []
    assert fake.history.search("xylophonist") == []
    assert files_containing(fake.home, "xylophonist") == []  # not in free pages or the WAL


def test_a_planted_key_never_reaches_the_history(fake: Workspace, srv: FakeProviderServer,
                                                 tmp_path: Path) -> None:
    """Keys travel as headers; a key pasted into a prompt, echoed by a provider's error or
    given as a system prompt is stored as [REDACTED]."""
    fake.providers.create(id="keyed", provider_type="openai_compatible", name="Keyed",
                          base_url=srv.url_for("openai_compatible"), api_key=PLANTED_KEY,
                          default_model="demo-small", max_retries=0)
    fake.providers.create(id="odd", provider_type="openai_compatible", name="Odd",
                          base_url=srv.url_for("openai_compatible"), api_key=PLANTED_ODD_KEY,
                          default_model="demo-small", max_retries=0)
    ask(fake, f"my keys are {PLANTED_KEY} and {PLANTED_ODD_KEY}", provider="keyed",
              system=f"key={PLANTED_ODD_KEY}")
    ask(fake, "hello", provider="odd")
    srv.script("chat", Scripted(status=400, message=f"invalid key {PLANTED_KEY}"))
    with pytest.raises(ProviderAPIError):
        ask(fake, "fail", provider="keyed")
    assert srv.requests[-1].headers["authorization"] == f"Bearer {PLANTED_KEY}"  # it was used
    assert len(fake.history) == 3 and "[REDACTED]" in history_text(fake)
    for key in (PLANTED_KEY, PLANTED_ODD_KEY):
        assert fake.history.search(key) == []
        assert fake.history.search(key.split("-")[2]) == []
        assert key not in history_text(fake)
        fake.history.export(tmp_path / "all.jsonl")
        fake.history.export(tmp_path / "all.md")
        assert files_containing(tmp_path, key) == []
        with fake.db.read() as conn:
            conn.execute("PRAGMA wal_checkpoint(FULL)")
        assert files_containing(fake.home, key) == []  # the whole db file (and WAL) too


def test_tool_steps_are_stored_as_json(fake: Workspace) -> None:
    """``s.steps`` (tool calls, a later feature) is kept when a stream has it."""
    from dataclasses import dataclass

    @dataclass
    class Step:
        tool: str
        arguments: dict[str, Any]
        result: str

    s = fake.chat("use a tool")
    s.steps = [Step("lookup", {"q": "zebra", "token": PLANTED_KEY}, "found")]  # type: ignore[attr-defined]
    s.wait()
    [r] = list(fake.history)
    assert r.steps == [{"tool": "lookup", "arguments": {"q": "zebra", "token": "[REDACTED]"},
                        "result": "found"}]


def test_inline_data_is_described_not_kept() -> None:
    image = "data:image/png;base64," + "A" * (INLINE_CAP + 10)
    msg = {"role": "user", "content": [
        {"type": "text", "text": f"look {PLANTED_KEY}"},
        {"type": "image_url", "image_url": {"url": image}},
        {"type": "image", "source": {"type": "base64", "data": "B" * (INLINE_CAP * 2)}},
        {"type": "blob", "bytes": b"\x00" * 5000},
    ]}
    cleaned = json.dumps(_clean(msg))
    assert "AAAA" not in cleaned and "BBBB" not in cleaned and PLANTED_KEY not in cleaned
    assert "image/png" in cleaned and "5,000 bytes" in cleaned and "look [REDACTED]" in cleaned


def test_a_failed_write_never_fails_the_chat(fake: Workspace,
                                             caplog: pytest.LogCaptureFixture) -> None:
    with fake.db.write() as conn:
        conn.execute("DROP TABLE history")
    with caplog.at_level(logging.WARNING, logger="viagent_jupyter.history"):
        assert fake.chat("still answered").wait().text.startswith("You said: still answered")
        assert fake.chat("and again").wait().text
    assert fake.history.last_error and "history" in fake.history.last_error
    reports = [r for r in caplog.records if "could not write" in r.getMessage()]
    assert len(reports) == 1  # reported once
    assert fake.stats.get("fake", "demo-small").requests == 2


# -- %llm log and --no-log in a shell ----------------------------------------------------------


@pytest.fixture
def magics(shell: InteractiveShell, fake: Workspace,  # noqa: F811
           monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMMagics]:
    with magics_on(shell, fake, monkeypatch, ("_llm",)) as (m, pub):
        m.pub = pub  # type: ignore[attr-defined]
        yield m


def shown(m: LLMMagics) -> str:
    return str(m.pub.calls[-1].data["text/plain"])  # type: ignore[attr-defined]


def test_log_commands(magics: LLMMagics, fake: Workspace, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    sh = magics.shell
    assert sh is not None
    sh.run_cell("%%llm\nWhere do <b>ocelots</b> live?")
    sh.run_cell("%%llm -m demo-large\nAnd capybaras?")
    [r] = fake.history.search("ocelots")
    assert r.source == "magic" and isinstance(r.cell, int)

    sh.run_cell("%llm log")
    table = shown(magics)
    assert "ocelots" in table and "capybaras" in table and "2 of 2 shown" in table
    sh.run_cell("%llm log capybaras --model demo-large -n 5 --since 1d")
    assert "capybaras" in shown(magics) and "ocelots" not in shown(magics)
    sh.run_cell("%llm log --provider nobody")
    assert "No recorded calls match" in shown(magics)
    sh.run_cell(f"%llm log show {r.id}")
    assert "Where do <b>ocelots</b> live?" in shown(magics)
    assert "text/html" not in magics.pub.calls[-1].data  # type: ignore[attr-defined]

    out = tmp_path / "x.jsonl"
    sh.run_cell(f"%llm log export {out} ocelots")
    assert [x.prompt for x in read_jsonl(out)] == ["Where do <b>ocelots</b> live?"]
    assert "Exported 1 record" in capsys.readouterr().out
    res = sh.run_cell("%llm log show 999")
    assert res.success and "No history record #999" in shown(magics)
    with fake.db.write() as conn:
        conn.execute("UPDATE history SET created_at = created_at - 10 * 86400 WHERE id = ?",
                     (r.id,))
    sh.run_cell("%llm log keep 7")
    assert "7 days (1 older dropped)" in capsys.readouterr().out
    assert fake.history.retention_days == 7 and len(fake.history) == 1
    sh.run_cell("%llm log keep all")
    assert fake.history.retention_days is None
    res = sh.run_cell("%llm log keep soon")
    assert not res.success and "number of days" in str(res.error_in_exec)
    sh.run_cell("%llm log clear")
    assert "History cleared (1 record" in capsys.readouterr().out
    assert len(fake.history) == 0


def test_no_log_records_nothing(magics: LLMMagics, fake: Workspace,
                                srv: FakeProviderServer) -> None:
    sh = magics.shell
    assert sh is not None
    sh.run_cell("%%llm --no-log --chat private\nsecret-marker-one")
    sh.run_cell("%%llm --chat private\nsecret-marker-five")  # the thread stays unrecorded
    assert "secret-marker-one" in json.dumps(srv.requests[-1].json)  # (the model still sees it)
    sh.run_cell("%llm --no-log secret-marker-two")
    sh.run_cell("%%llm --no-log -m a -m b\nsecret-marker-three")
    magics.log = False
    sh.run_cell("%%llm --chat private\nsecret-marker-four")
    assert len(fake.history) == 0 and fake.history.threads() == []
    assert "secret-marker" not in history_text(fake)
    with fake.db.read() as conn:
        conn.execute("PRAGMA wal_checkpoint(FULL)")
    assert files_containing(fake.home, "secret-marker") == []
    magics.log = True
    sh.run_cell("%%llm\nrecorded")
    sh.run_cell("%llm reset private")  # a fresh start of the thread is recorded again
    sh.run_cell("%%llm --chat private\nrecorded too")
    assert [r.prompt for r in fake.history] == ["recorded", "recorded too"]
    assert fake.history.thread("private")[0]["content"] == "recorded too"


def test_chat_threads_are_stored_and_reset(magics: LLMMagics, fake: Workspace,
                                           srv: FakeProviderServer,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    sh = magics.shell
    assert sh is not None
    sh.run_cell("%%llm --chat t\nfirst")
    assert fake.history.thread("t")[0]["content"] == "first"
    magics.threads.clear()  # as after a kernel restart: the stored copy is used
    capsys.readouterr()
    sh.run_cell("%llm history")
    assert "== t (2 messages)" in capsys.readouterr().out
    sh.run_cell("%%llm --chat t\nsecond")
    assert [m["content"] for m in srv.requests[-1].json["messages"]][::2] == ["first", "second"]
    assert [r.thread for r in fake.history] == ["t", "t"]
    sh.run_cell("%llm reset t")
    assert fake.history.thread("t") == []
    magics.threads.clear()
    sh.run_cell("%%llm --chat t\nthird")
    assert len(srv.requests[-1].json["messages"]) == 1


# -- a real kernel: a thread survives a restart; notebook and cell are recorded ----------------


@pytest.mark.slow
def test_thread_survives_a_kernel_restart(fake: Workspace, srv: FakeProviderServer,
                                          tmp_path: Path) -> None:
    from jupyter_client.manager import start_new_kernel
    from kernel import Kernel

    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"),
           "JPY_SESSION_NAME": str(tmp_path / "course.ipynb")}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        k = Kernel(kc)
        k.check("%load_ext viagent_jupyter")
        k.check("%%llm --chat course\nWhat is a monad?")
        k.check("%%llm --no-log\nnot-for-the-record")
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        k.check("%load_ext viagent_jupyter")
        k.check("%%llm --chat course\nAnd a functor?")
        sent = [m["content"] for m in srv.requests[-1].json["messages"]]
        assert sent[0] == "What is a monad?" and sent[-1] == "And a functor?"
        assert len(sent) == 3
        k.check("%llm reset course")
        k.check("%%llm --chat course\nFresh start")
        assert len(srv.requests[-1].json["messages"]) == 1
        listed = k.run("%llm log monad")
        assert "What is a monad?" in json.dumps(listed.outputs)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    records = list(fake.history)
    assert [r.prompt for r in records] == ["What is a monad?", "And a functor?", "Fresh start"]
    assert all(r.notebook == str(tmp_path / "course.ipynb") for r in records)
    assert all(r.source == "magic" and isinstance(r.cell, int) for r in records)
    # the same In[n] before and after the restart; two cells later for the third
    assert records[0].cell == records[1].cell and records[2].cell == records[1].cell + 2
    assert "not-for-the-record" not in history_text(fake)
