"""Tools: your Python functions, called by the model, in your kernel, with your approval.

``@vj.tool`` turns a typed function (sync or async) into a :class:`Tool`: its name, its
docstring as the description, its parameters as a JSON Schema (pydantic; ``Annotated`` /
``Field`` descriptions are kept). The decorated function stays callable as before.

The loop is protocol-agnostic (:class:`ToolLoop`); the adapters only translate::

    model turn ──► tool calls? ── no ──► final answer
                       │ yes (and fewer than max_steps model requests so far)
                       ▼
        validate arguments (invalid → error result, the function never runs)
                       ▼
        approval: safe tool / approve="all" run; "ask" asks per call; denied → result
                       ▼
        run (async functions of one step run concurrently; an exception → error result)
                       ▼
        results appended to the transcript ──► next model request

The transcript is neutral: an assistant message may carry ``tool_calls`` (``id``, ``name``,
``arguments`` as a dict, optional ``extra`` the protocol must echo) and a ``tool`` message
carries ``tool_call_id``, ``name``, ``content`` and ``is_error``. Each adapter writes them in
its own shape.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints, overload

from .errors import ConfigValidationError, one_line, scrub

__all__ = [
    "MAX_STEPS",
    "Step",
    "Tool",
    "ToolCall",
    "ToolLoop",
    "ToolResult",
    "as_tool",
    "ask_input",
    "tool",
]

#: Model requests one chat may make when tools are offered (``--max-steps``).
MAX_STEPS = 8
#: Characters of a tool's result sent back to the model (the rest is cut, and says so).
RESULT_LIMIT = 20_000

Status = Literal["ok", "error", "invalid", "denied", "skipped", "cancelled"]
Approver = Callable[["ToolCall"], bool]


# --------------------------------------------------------------------------- tools


@dataclass(eq=False)
class Tool:
    """A function the model may call. Call it like the function itself."""

    fn: Callable[..., Any]
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of an object
    safe: bool = False
    _model: Any = field(default=None, repr=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def definition(self) -> dict[str, Any]:
        """The neutral definition the adapters translate: name, description, parameters."""
        return {"name": self.name, "description": self.description,
                "parameters": self.parameters}

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``arguments`` against the schema; the validated keyword arguments.
        Raises ``ConfigValidationError`` naming the bad fields."""
        from pydantic import ValidationError

        try:
            obj = self._model.model_validate(dict(arguments))
        except ValidationError as exc:
            errors = [{"field": ".".join(map(str, e["loc"])) or "arguments",
                       "message": e["msg"]} for e in exc.errors()]
            text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            raise ConfigValidationError(f"Invalid arguments for tool '{self.name}': {text}",
                                        errors) from None
        return {name: getattr(obj, name) for name in type(obj).model_fields}


def _schema(fn: Callable[..., Any], name: str) -> tuple[dict[str, Any], Any]:
    from pydantic import ConfigDict, create_model

    sig = inspect.signature(fn)
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        hints = {}
    fields: dict[str, Any] = {}
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigValidationError(
                f"Tool '{name}' takes *{pname}: give it named, typed parameters instead.",
                [{"field": pname, "message": "variadic parameters are not supported"}])
        annotation = hints.get(pname, param.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, default)
    model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"),
                         **fields)
    schema = _tidy(model.model_json_schema())
    schema.setdefault("properties", {})
    return schema, model


def _tidy(schema: Any) -> Any:
    """Drop pydantic's ``title`` keys (noise for a model; Gemini's schema subset) and keep
    everything else as pydantic wrote it."""
    if isinstance(schema, dict):
        return {k: _tidy(v) for k, v in schema.items()
                if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_tidy(v) for v in schema]
    return schema


def _make(fn: Callable[..., Any], *, safe: bool, name: str | None,
          description: str | None) -> Tool:
    if isinstance(fn, Tool):
        return fn
    if not callable(fn):
        raise ConfigValidationError(f"A tool must be a function, not {type(fn).__name__}.",
                                    [{"field": "tools", "message": "not callable"}])
    tname = name or getattr(fn, "__name__", None) or type(fn).__name__
    if not tname.isidentifier():
        raise ConfigValidationError(
            f"Tool name {tname!r} is not an identifier: pass @vj.tool(name='...').",
            [{"field": "name", "message": "must be an identifier"}])
    doc = description if description is not None else inspect.getdoc(fn) or ""
    schema, model = _schema(fn, tname)
    t = Tool(fn=fn, name=tname, description=doc.strip(), parameters=schema, safe=safe,
             _model=model)
    try:
        import functools

        functools.update_wrapper(t, fn, updated=())
    except AttributeError:
        pass
    return t


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(*, safe: bool = False, name: str | None = None,
         description: str | None = None) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, safe: bool = False,
         name: str | None = None, description: str | None = None
         ) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """``@vj.tool`` or ``@vj.tool(safe=True)``: make ``fn`` a tool. ``safe=True`` marks it
    read-only: it runs without asking for approval."""
    if fn is not None:
        return _make(fn, safe=safe, name=name, description=description)
    return lambda f: _make(f, safe=safe, name=name, description=description)


def as_tool(obj: Any) -> Tool:
    """A :class:`Tool` from a tool or a plain typed function."""
    return _make(obj, safe=False, name=None, description=None)


def tool_list(tools: Iterable[Any]) -> list[Tool]:
    """Tools from ``tools=[...]``, names unique."""
    out: list[Tool] = []
    seen: set[str] = set()
    for obj in tools:
        t = as_tool(obj)
        if t.name in seen:
            raise ConfigValidationError(f"Two tools are named '{t.name}': rename one.",
                                        [{"field": "tools", "message": "duplicate name"}])
        seen.add(t.name)
        out.append(t)
    return out


# --------------------------------------------------------------------------- calls


@dataclass
class ToolCall:
    """One call the model asked for (``arguments``: as received, JSON text or an object)."""

    id: str
    name: str
    arguments: Any
    extra: dict[str, Any] = field(default_factory=dict)  # protocol data to echo back

    def parsed(self) -> dict[str, Any]:
        """The arguments as a dict; ``ValueError`` when they are not a JSON object."""
        args = self.arguments
        if args is None or args == "":
            return {}
        if isinstance(args, str):
            args = json.loads(args)
        if not isinstance(args, dict):
            raise ValueError(f"arguments must be a JSON object, not {type(args).__name__}")
        return args


@dataclass
class ToolResult:
    """What happened to one call; ``output`` is what the model is told."""

    call: ToolCall
    status: Status
    output: str
    # the function's return value (status "ok") or exception, as is: kept out of the repr
    value: Any = field(default=None, repr=False)
    arguments: dict[str, Any] = field(default_factory=dict)  # validated
    elapsed: float = 0.0

    @property
    def is_error(self) -> bool:
        return self.status != "ok"

    @property
    def name(self) -> str:
        return self.call.name


@dataclass
class Step:
    """One model request of a tool chat: its text, the calls it asked for and their
    results, its usage and timing."""

    index: int
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    cost: float | None = None
    finish_reason: str | None = None
    elapsed: float = 0.0  # the model request
    tools_elapsed: float = 0.0  # running the calls (approval included)


def _render(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > RESULT_LIMIT:
        text = text[:RESULT_LIMIT] + f"... [cut: {len(text) - RESULT_LIMIT} more characters]"
    return scrub(text)  # a result goes to the provider: never with a key in it


def _error_text(exc: BaseException) -> str:
    return scrub(one_line(f"{type(exc).__name__}: {exc}", 1000))


# --------------------------------------------------------------------------- approval


def ask_input(call: ToolCall, prompt: Callable[[str], str] = input) -> bool:
    """Ask on stdin (a terminal, or a kernel's stdin request). No stdin (nbval, a
    non-interactive run) counts as a denial."""
    try:
        args = json.dumps(call.parsed(), ensure_ascii=False)
    except ValueError:
        args = str(call.arguments)
    try:
        answer = prompt(f"Run tool {call.name}({one_line(args, 300)})? [y/N] ")
    except (EOFError, OSError, RuntimeError):  # StdinNotImplementedError is a RuntimeError
        return False
    return answer.strip().lower() in ("y", "yes")


def approver_for(approve: str | Callable[[ToolCall], bool] | None) -> Approver | None:
    """``"all"``: no asking (``None``); ``"ask"``/``None``: :func:`ask_input`; ``"none"``:
    deny every unsafe call; a callable decides per call."""
    if approve in ("all", True):
        return None
    if approve in ("ask", None):
        return ask_input
    if approve in ("none", False):
        return lambda call: False
    if callable(approve):
        return approve
    raise ConfigValidationError(
        f"approve={approve!r} is not valid: use 'ask', 'all', 'none' or a function(call).",
        [{"field": "approve", "message": "must be 'ask', 'all', 'none' or callable"}])


# --------------------------------------------------------------------------- the loop


class ToolLoop:
    """The protocol-agnostic state of a tool chat. The chat streams a model turn, hands
    it to :meth:`after_turn`; when that returns pending calls, it runs them
    (:meth:`run_sync` / :meth:`run_async`) and calls :meth:`results_messages` for the
    transcript of the next request."""

    def __init__(self, tools: Sequence[Any], *, approve: Any = "ask",
                 max_steps: int = MAX_STEPS,
                 on_step: Callable[[Step, ToolResult | None], None] | None = None) -> None:
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise ConfigValidationError(
                f"max_steps={max_steps!r} is not valid: give a whole number >= 1.",
                [{"field": "max_steps", "message": "must be >= 1"}])
        self.tools = {t.name: t for t in tool_list(tools)}
        self.approver = approver_for(approve)
        self.max_steps = max_steps
        self.steps: list[Step] = []
        self.stopped_by_limit = False
        self.on_step = on_step  # called when a call starts (result None) and ends

    def definitions(self) -> list[dict[str, Any]]:
        return [t.definition() for t in self.tools.values()]

    def new_step(self) -> Step:
        step = Step(index=len(self.steps))
        self.steps.append(step)
        return step

    def after_turn(self, step: Step) -> bool:
        """True when the calls of ``step`` should run and the model be asked again."""
        if not step.calls:
            return False
        if len(self.steps) >= self.max_steps:
            self.stopped_by_limit = True
            step.results = [ToolResult(c, "skipped", "not run: the step limit was reached")
                            for c in step.calls]
            for result in step.results:
                self._notify(step, result)
            return False
        return True

    # -- preparation: validation and approval, in call order, in the calling thread

    def _prepare(self, call: ToolCall) -> tuple[Tool, dict[str, Any]] | ToolResult:
        t = self.tools.get(call.name)
        if t is None:
            known = ", ".join(self.tools) or "none"
            return ToolResult(call, "invalid", f"Error: there is no tool named "
                              f"{call.name!r} (tools: {known}).")
        try:
            raw = call.parsed()
        except ValueError as exc:
            return ToolResult(call, "invalid", f"Error: the arguments are not a JSON "
                              f"object ({one_line(str(exc), 200)}); call {call.name} again "
                              "with valid JSON arguments.")
        try:
            kwargs = t.validate(raw)
        except ConfigValidationError as exc:
            return ToolResult(call, "invalid", f"Error: {exc}. Fix the arguments and call "
                              "again.", arguments=raw)
        if not t.safe and self.approver is not None and not self.approver(call):
            return ToolResult(call, "denied", "The user denied this call; it did not run. "
                              "Do not retry it; answer without it or ask the user.",
                              arguments=kwargs)
        return t, kwargs

    def _ok(self, call: ToolCall, kwargs: dict[str, Any], value: Any,
            started: float) -> ToolResult:
        return ToolResult(call, "ok", _render(value), value=value, arguments=kwargs,
                          elapsed=time.monotonic() - started)

    def _failed(self, call: ToolCall, kwargs: dict[str, Any], exc: BaseException,
                started: float) -> ToolResult:
        return ToolResult(call, "error", f"Error: the tool raised {_error_text(exc)}",
                          value=exc, arguments=kwargs, elapsed=time.monotonic() - started)

    def _notify(self, step: Step, result: ToolResult | None) -> None:
        if self.on_step is not None:
            self.on_step(step, result)

    def run_sync(self, step: Step) -> None:
        """Run the calls of ``step`` from synchronous code. Sync functions run here, one
        after the other; the async ones of the step run together on a private event loop
        in a worker thread (a kernel's own loop is already running). ``KeyboardInterrupt``
        marks the unfinished calls ``cancelled`` and propagates."""
        started = time.monotonic()
        results: dict[int, ToolResult] = {}
        pending_async: list[tuple[int, ToolCall, Tool, dict[str, Any]]] = []
        try:
            for i, call in enumerate(step.calls):
                prepared = self._prepare(call)
                if isinstance(prepared, ToolResult):
                    results[i] = prepared
                    self._notify(step, prepared)
                    continue
                t, kwargs = prepared
                if t.is_async:
                    pending_async.append((i, call, t, kwargs))
                    continue
                self._notify(step, None)
                results[i] = self._one_sync(call, t, kwargs)
                self._notify(step, results[i])
            if pending_async:
                done = _run_async_in_thread(self, pending_async)
                results.update(done)
                for result in done.values():
                    self._notify(step, result)
        except KeyboardInterrupt:
            self._settle(step, results)
            step.tools_elapsed = time.monotonic() - started
            raise
        self._settle(step, results)
        step.tools_elapsed = time.monotonic() - started

    async def run_async(self, step: Step) -> None:
        """Run the calls of ``step`` on the running loop; async functions concurrently."""
        started = time.monotonic()
        results: dict[int, ToolResult] = {}
        coros: list[tuple[int, ToolCall, Tool, dict[str, Any]]] = []
        try:
            for i, call in enumerate(step.calls):
                prepared = self._prepare(call)
                if isinstance(prepared, ToolResult):
                    results[i] = prepared
                    self._notify(step, prepared)
                elif prepared[0].is_async:
                    coros.append((i, call, *prepared))
                else:
                    results[i] = self._one_sync(call, *prepared)
                    self._notify(step, results[i])
            if coros:
                done = await asyncio.gather(*(self._one_async(c, t, k) for _, c, t, k in coros))
                for (i, *_), r in zip(coros, done, strict=True):
                    results[i] = r
                    self._notify(step, r)
        except (KeyboardInterrupt, asyncio.CancelledError):
            self._settle(step, results)
            raise
        self._settle(step, results)
        step.tools_elapsed = time.monotonic() - started

    @staticmethod
    def _settle(step: Step, results: dict[int, ToolResult]) -> None:
        """``step.results`` in call order; a call that never finished is ``cancelled``."""
        step.results = [results.get(i) or ToolResult(call, "cancelled", "cancelled by the user")
                        for i, call in enumerate(step.calls)]

    def _one_sync(self, call: ToolCall, t: Tool, kwargs: dict[str, Any]) -> ToolResult:
        t0 = time.monotonic()
        try:
            return self._ok(call, kwargs, t.fn(**kwargs), t0)
        except Exception as exc:
            return self._failed(call, kwargs, exc, t0)

    async def _one_async(self, call: ToolCall, t: Tool, kwargs: dict[str, Any]) -> ToolResult:
        t0 = time.monotonic()
        try:
            return self._ok(call, kwargs, await t.fn(**kwargs), t0)
        except Exception as exc:
            return self._failed(call, kwargs, exc, t0)

    @staticmethod
    def turn_messages(step: Step) -> list[dict[str, Any]]:
        """The neutral transcript of a step: the assistant's calls, then one ``tool``
        message per call, in call order."""
        calls = []
        for r in step.results:
            try:
                args = r.call.parsed()
            except ValueError:
                args = {}
            calls.append({"id": r.call.id, "name": r.call.name, "arguments": args,
                          "extra": dict(r.call.extra)})
        out: list[dict[str, Any]] = [{"role": "assistant", "content": step.text,
                                      "tool_calls": calls}]
        for r in step.results:
            out.append({"role": "tool", "tool_call_id": r.call.id, "name": r.call.name,
                        "content": r.output, "is_error": r.is_error})
        return out


def _run_async_in_thread(loop_state: ToolLoop,
                         pending: list[tuple[int, ToolCall, Tool, dict[str, Any]]]
                         ) -> dict[int, ToolResult]:
    """Run the async calls together on a fresh event loop in a worker thread (the
    kernel's own loop is busy running this cell). The caller polls, so Ctrl-C is seen at
    once: it cancels the calls on their loop and propagates."""
    import threading

    loop = asyncio.new_event_loop()
    tasks: list[asyncio.Task[ToolResult]] = []
    box: dict[str, Any] = {}
    finished = threading.Event()

    async def main() -> list[ToolResult]:
        tasks.extend(asyncio.ensure_future(loop_state._one_async(c, t, k))
                     for _, c, t, k in pending)
        return await asyncio.gather(*tasks)

    def worker() -> None:
        try:
            box["done"] = loop.run_until_complete(main())
        except BaseException as exc:  # cancelled: reported by the caller
            box["error"] = exc
        finally:
            loop.close()
            finished.set()

    try:
        threading.Thread(target=worker, name="vj-tools", daemon=True).start()
        while not finished.wait(0.05):
            pass
    except KeyboardInterrupt:
        for task in list(tasks):
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop already ended
                break
        finished.wait(5.0)
        raise
    if "error" in box:
        raise box["error"]
    return {i: r for (i, *_), r in zip(pending, box["done"], strict=True)}
