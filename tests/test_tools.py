"""Tools: schema from a typed function, validation, approval, the protocol-agnostic loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated, Any

import pytest
from pydantic import Field

import viagent_jupyter as vj
from viagent_jupyter.errors import ConfigValidationError
from viagent_jupyter.tools import Step, ToolCall, ToolLoop, tool


@tool
def add(a: int, b: Annotated[int, Field(description="second addend")] = 2) -> int:
    """Add two numbers."""
    return a + b


@tool(safe=True)
def peek(name: str) -> str:
    """Read-only."""
    return name.upper()


def test_schema_name_description_and_field_descriptions() -> None:
    assert add.name == "add" and add.description == "Add two numbers."
    assert add.parameters == {
        "type": "object",
        "properties": {"a": {"type": "integer"},
                       "b": {"type": "integer", "description": "second addend", "default": 2}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert add(1, 3) == 4  # still the function
    assert peek.safe and not add.safe
    assert vj.tool is tool


def test_validation_coerces_and_rejects() -> None:
    assert add.validate({"a": "5"}) == {"a": 5, "b": 2}
    with pytest.raises(ConfigValidationError, match="Invalid arguments for tool 'add': a:"):
        add.validate({"a": "five"})
    with pytest.raises(ConfigValidationError, match="c: Extra inputs"):
        add.validate({"a": 1, "c": 3})


def test_variadic_and_duplicate_names_are_refused() -> None:
    def f(*args: int) -> None: ...
    with pytest.raises(ConfigValidationError, match=r"takes \*args"):
        tool(f)
    with pytest.raises(ConfigValidationError, match="Two tools are named 'add'"):
        ToolLoop([add, add], approve="all")


def _step(loop: ToolLoop, *calls: ToolCall) -> Step:
    step = loop.new_step()
    step.calls = list(calls)
    return step


def test_loop_runs_validated_calls_and_reports_every_outcome() -> None:
    def boom(x: int) -> None:
        """Raises."""
        raise ValueError(f"bad x {x}")

    ran: list[Any] = []

    def record(a: int) -> int:
        ran.append(a)
        return a

    loop = ToolLoop([add, boom, record], approve="all")
    step = _step(loop, ToolCall("1", "add", '{"a": 1, "b": 2}'),
                 ToolCall("2", "boom", {"x": 7}),
                 ToolCall("3", "record", '{"a": "x"}'),  # invalid: never runs
                 ToolCall("4", "record", "{not json"),
                 ToolCall("5", "nope", {}))
    assert loop.after_turn(step)
    loop.run_sync(step)
    got = [(r.status, r.output) for r in step.results]
    assert got[0] == ("ok", "3")
    assert got[1] == ("error", "Error: the tool raised ValueError: bad x 7")
    assert got[2][0] == "invalid" and "record" in got[2][1] and "a:" in got[2][1]
    assert got[3][0] == "invalid" and "not a JSON object" in got[3][1]
    assert got[4][0] == "invalid" and "no tool named 'nope'" in got[4][1]
    assert ran == []
    msgs = ToolLoop.turn_messages(step)
    assert msgs[0]["role"] == "assistant" and [c["id"] for c in msgs[0]["tool_calls"]] == [
        "1", "2", "3", "4", "5"]
    assert msgs[1] == {"role": "tool", "tool_call_id": "1", "name": "add", "content": "3",
                       "is_error": False}
    assert all(m["is_error"] for m in msgs[2:])


def test_approval_policy_safe_ask_deny() -> None:
    asked: list[str] = []

    def approver(call: ToolCall) -> bool:
        asked.append(call.name)
        return call.arguments["a"] == 1

    loop = ToolLoop([add, peek], approve=approver)
    step = _step(loop, ToolCall("1", "add", {"a": 1}), ToolCall("2", "add", {"a": 9}),
                 ToolCall("3", "peek", {"name": "x"}))
    loop.run_sync(step)
    assert asked == ["add", "add"]  # the safe tool was not asked about
    assert [r.status for r in step.results] == ["ok", "denied", "ok"]
    assert "denied" in step.results[1].output and step.results[1].is_error

    loop = ToolLoop([add], approve="none")
    step = _step(loop, ToolCall("1", "add", {"a": 1}))
    loop.run_sync(step)
    assert step.results[0].status == "denied"
    with pytest.raises(ConfigValidationError, match="approve="):
        ToolLoop([add], approve="maybe")


def test_ask_input_prompt_and_no_stdin_denies() -> None:
    call = ToolCall("1", "add", '{"a": 1}')
    prompts: list[str] = []

    def yes(text: str) -> str:
        prompts.append(text)
        return "y"

    assert vj.tools.ask_input(call, yes) and prompts == ['Run tool add({"a": 1})? [y/N] ']
    assert not vj.tools.ask_input(call, lambda t: "")

    def no_stdin(text: str) -> str:
        raise RuntimeError("stdin not implemented")  # ipykernel's StdinNotImplementedError

    assert not vj.tools.ask_input(call, no_stdin)


def test_max_steps_skips_the_last_calls() -> None:
    loop = ToolLoop([add], approve="all", max_steps=2)
    assert loop.after_turn(_step(loop, ToolCall("1", "add", {"a": 1})))
    last = _step(loop, ToolCall("2", "add", {"a": 1}))
    assert not loop.after_turn(last) and loop.stopped_by_limit
    assert [r.status for r in last.results] == ["skipped"]
    assert not loop.after_turn(loop.new_step())  # a plain answer ends it too
    with pytest.raises(ConfigValidationError, match="max_steps=0"):
        ToolLoop([add], max_steps=0)


def test_async_calls_of_one_step_run_concurrently() -> None:
    both = threading.Barrier(2, timeout=10)  # passes only when both run at once

    @tool
    async def slow(n: int) -> int:
        """Waits for the other call."""
        await asyncio.to_thread(both.wait)
        return n * 10

    loop = ToolLoop([slow], approve="all")
    step = _step(loop, ToolCall("a", "slow", {"n": 1}), ToolCall("b", "slow", {"n": 2}))
    loop.run_sync(step)
    assert [r.output for r in step.results] == ["10", "20"]

    both.reset()
    step = _step(loop, ToolCall("c", "slow", {"n": 3}), ToolCall("d", "slow", {"n": 4}))
    asyncio.run(loop.run_async(step))
    assert [r.value for r in step.results] == [30, 40]


def test_ctrl_c_in_a_sync_tool_cancels_the_rest() -> None:
    @tool
    def interrupted() -> None:
        """The user presses Ctrl-C here."""
        raise KeyboardInterrupt

    loop = ToolLoop([add, interrupted], approve="all")
    step = _step(loop, ToolCall("1", "add", {"a": 1}), ToolCall("2", "interrupted", {}),
                 ToolCall("3", "add", {"a": 2}))
    with pytest.raises(KeyboardInterrupt):
        loop.run_sync(step)
    assert [r.status for r in step.results] == ["ok", "cancelled", "cancelled"]


def test_ctrl_c_while_async_tools_run_cancels_them() -> None:
    cancelled = threading.Event()
    started = threading.Event()

    @tool
    async def forever() -> None:
        """Never ends by itself."""
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loop = ToolLoop([forever], approve="all")
    step = _step(loop, ToolCall("1", "forever", {}))
    import _thread

    def interrupt() -> None:
        started.wait(10)
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        loop.run_sync(step)
    assert cancelled.wait(10), "the async tool was not cancelled"
    assert step.results[0].status == "cancelled"
    assert time.monotonic() - t0 < 60  # did not wait for the tool's 60 s


def test_describe_variable_is_the_with_describer_with_its_cap() -> None:
    """Issue 17: the builtin "describe one variable" tool gives the summaries of ``--with``
    (context.describe), capped the same way: one describer, not two."""
    from viagent_jupyter import context
    from viagent_jupyter._builtin_tools import builtin_tools

    ns: dict[str, Any] = {"big": "x" * (context.DEFAULT_CAP * 3),
                          "cfg": {"a": [1, 2], "b": "two"}}

    class Shell:
        def __init__(self) -> None:
            self.user_ns_hidden: dict[str, Any] = {}
            self.user_ns = ns

    describe = {t.name: t for t in builtin_tools(Shell())}["describe_variable"]
    big = describe("big")
    assert big["truncated"] is True and big["kind"] == "text"
    assert big["summary"] == context.describe(ns["big"], "big").text
    assert len(big["summary"]) <= context.DEFAULT_CAP
    cfg = describe("cfg")
    assert (cfg["kind"], cfg["summary"]) == ("JSON", context.describe(ns["cfg"]).text)
    assert "truncated" not in cfg


def test_builtin_tools_read_the_namespace() -> None:
    from viagent_jupyter._builtin_tools import builtin_tools

    class Shell:
        def __init__(self) -> None:
            self.user_ns_hidden: dict[str, Any] = {}
            self.user_ns: dict[str, Any] = {"xs": [1, 2, 3], "_hidden": 1,
                                            "In": ["", "xs = [1]", "1 + 1", "%%llm"],
                                            "Out": {2: 2}}

    tools = {t.name: t for t in builtin_tools(Shell())}
    assert all(t.safe for t in tools.values())
    assert tools["list_variables"]() == [{"name": "xs", "type": "list", "shape": "len 3"}]
    xs = tools["describe_variable"]("xs")
    assert xs == {"name": "xs", "type": "list", "shape": "len 3", "kind": "JSON",
                  "summary": "list of 3 items\n[1, 2, 3]"}
    with pytest.raises(KeyError):
        tools["describe_variable"]("_hidden")
    assert tools["read_cell"](2) == {"n": 2, "input": "1 + 1", "output": "2"}
    assert tools["read_cell"](0)["n"] == 2  # the cell before the current one
    import sys

    saved = getattr(sys, "last_value", None), getattr(sys, "last_type", None)
    try:
        sys.last_type, sys.last_value, sys.last_traceback = ZeroDivisionError, \
            ZeroDivisionError("division by zero"), None
        assert tools["last_error"]().strip() == "ZeroDivisionError: division by zero"
    finally:
        sys.last_value, sys.last_type = saved
