"""A chat with tools: one ordinary chat stream per model request, the tool loop between.

Each model request is a plain :class:`~viagent_jupyter.chat.ChatStream` of its own (its
budget check, retries, one usage record per HTTP call); this outer stream adds up their
usage and cost, streams their text and keeps ``steps`` (see :mod:`viagent_jupyter.tools`).
History sees one chat: the outer stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Generator
from dataclasses import replace
from decimal import Decimal
from typing import Any

from .adapters.base import StreamState
from .chat import AsyncChatStream, ChatServices, ChatStream, _ChatBase, _Plan, plan_chat
from .errors import ProviderError
from .tools import Step, ToolCall, ToolLoop

__all__ = ["AsyncToolChatStream", "ToolChatStream", "start_achat", "start_chat"]


def _call(raw: dict[str, Any], fallback_id: str) -> ToolCall:
    """A parser's call as a ToolCall; a call without an id (older Gemini, Ollama) gets one,
    marked ``synthetic_id`` so the adapter does not send it back."""
    extra = dict(raw.get("extra") or {})
    cid = str(raw.get("id") or "")
    if not cid:
        cid, extra["synthetic_id"] = fallback_id, True
    return ToolCall(cid, str(raw.get("name") or ""), raw.get("arguments"), extra)


class _ToolMixin:
    """The bookkeeping both tool streams share (mixed into a ``_ChatBase``)."""

    _loop: ToolLoop
    _messages: list[dict[str, Any]]
    _sum_usage: dict[str, int]
    _sum_cost: Decimal | None
    _cost_known: bool

    def _setup(self, loop: ToolLoop, plan: _Plan) -> None:
        self._loop = loop
        self._messages = list(plan.request.messages)
        self._sum_usage = {}
        self._sum_cost = Decimal(0)
        self._cost_known = True

    @property
    def steps(self) -> list[Step]:
        """One entry per model request: text, calls, results, usage, timings."""
        return self._loop.steps

    @property
    def stopped_by_limit(self) -> bool:
        """The model still asked for tools when ``max_steps`` requests were made."""
        return self._loop.stopped_by_limit

    def _step_plan(self: Any) -> _Plan:
        plan: _Plan = self._plan
        return replace(plan, request=replace(plan.request, messages=list(self._messages),
                                             tools=self._loop.definitions()))

    def _collect(self: Any, inner: _ChatBase, step: Step) -> None:
        """After one request: its text, calls, usage and cost go into the step and sums."""
        state = inner._state
        step.text = inner.text
        step.finish_reason = inner.finish_reason
        step.elapsed = inner.elapsed or 0.0
        step.usage = inner.usage.model_dump(exclude_none=True)
        step.cost = inner.cost
        if state is not None:
            step.calls = [_call(c, f"call_{step.index}_{i}")
                          for i, c in enumerate(state.tool_calls)]
        for key, value in step.usage.items():
            if isinstance(value, int):
                self._sum_usage[key] = self._sum_usage.get(key, 0) + value
        if inner.cost_exact is None:
            self._cost_known = self._cost_known and not inner.usage.reported
        elif self._sum_cost is not None:
            self._sum_cost += inner.cost_exact
        self.model = inner.model

    def _summary_state(self: Any, finish_reason: str | None) -> StreamState:
        known = self._cost_known and any(s.cost is not None for s in self._loop.steps)
        return StreamState(finish_reason=finish_reason, model=self.model,
                           usage=dict(self._sum_usage),
                           cost=float(self._sum_cost) if known and self._sum_cost is not None
                           else None)

    def _separator(self: Any) -> str | None:
        """A blank line between the text of two requests."""
        text = self.text
        if text and not text.endswith("\n\n"):
            return "\n\n" if not text.endswith("\n") else "\n"
        return None

    def _close_ok(self: Any, last: _ChatBase) -> None:
        self._state = self._summary_state(last.finish_reason)
        self.raw_finish_reason = last.raw_finish_reason
        self._end(last.finish_reason or "stop")


class ToolChatStream(_ToolMixin, ChatStream):
    """``ws.chat(..., tools=[...])``: iterate for text; ``.steps`` has the tool calls."""

    def __init__(self, services: ChatServices, plan: _Plan, loop: ToolLoop) -> None:
        super().__init__(services, plan)
        self._setup(loop, plan)

    def _run(self) -> Generator[tuple[str, str], None, None]:
        if self._iterating or self._done:
            raise RuntimeError("a chat stream can be iterated only once; use .text afterwards")
        self._iterating = True
        self.started_at = time.monotonic()
        inner: ChatStream | None = None
        try:
            while True:
                step = self._loop.new_step()
                if step.index and (sep := self._separator()):
                    self._parts.append(sep)
                    yield "text", sep
                inner = ChatStream(self._services, self._step_plan())
                try:
                    for kind, delta in inner.events():
                        if kind == "text":
                            self._take([delta])
                        else:
                            self._reasoning.append(delta)
                        yield kind, delta
                finally:
                    if not inner.done:  # closed or interrupted mid-answer: drop the response
                        inner.close()
                    self._collect(inner, step)
                if not self._loop.after_turn(step):
                    break
                self._loop.run_sync(step)
                self._messages.extend(ToolLoop.turn_messages(step))
        except ProviderError as exc:
            self._state = self._summary_state(None)
            self._end("error", exc)
            raise
        except (GeneratorExit, KeyboardInterrupt):
            self._state = self._summary_state(None)
            self._end("cancelled")
            raise
        self._close_ok(inner)


class AsyncToolChatStream(_ToolMixin, AsyncChatStream):
    """The async twin: async tools of one step run concurrently on the running loop."""

    def __init__(self, services: ChatServices, plan: _Plan, loop: ToolLoop) -> None:
        super().__init__(services, plan)
        self._setup(loop, plan)

    async def _run(self) -> AsyncGenerator[str, None]:
        import asyncio

        if self._iterating or self._done:
            raise RuntimeError("a chat stream can be iterated only once; use .text afterwards")
        self._iterating = True
        self.started_at = time.monotonic()
        inner: AsyncChatStream | None = None
        try:
            while True:
                step = self._loop.new_step()
                if step.index and (sep := self._separator()):
                    self._parts.append(sep)
                    yield sep
                inner = AsyncChatStream(self._services, self._step_plan())
                try:
                    async for delta in inner:
                        self._take([delta])
                        yield delta
                finally:
                    if not inner.done:
                        await inner.aclose()
                    self._collect(inner, step)
                if not self._loop.after_turn(step):
                    break
                await self._loop.run_async(step)
                self._messages.extend(ToolLoop.turn_messages(step))
        except ProviderError as exc:
            self._state = self._summary_state(None)
            self._end("error", exc)
            raise
        except (GeneratorExit, KeyboardInterrupt, asyncio.CancelledError):
            self._state = self._summary_state(None)
            self._end("cancelled")
            raise
        self._close_ok(inner)


def tool_loop(kw: dict[str, Any]) -> ToolLoop | None:
    """Take the tool options out of a chat's keyword arguments: a loop, or ``None``."""
    from .tools import MAX_STEPS

    tools = kw.pop("tools", None)
    approve = kw.pop("approve", "ask")
    max_steps = kw.pop("max_steps", None)
    on_step = kw.pop("on_step", None)
    if not tools:
        return None
    return ToolLoop(list(tools), approve=approve,
                    max_steps=MAX_STEPS if max_steps is None else max_steps, on_step=on_step)


def start_chat(services: ChatServices, prompt: Any, **kw: Any) -> ChatStream:
    """``ws.chat``: a plain chat stream, or a tool chat when ``tools=`` is given."""
    loop = tool_loop(kw)  # takes tools=, approve=, max_steps=, on_step= out of kw
    plan = plan_chat(services, prompt, **kw)
    plan.call = kw
    return ChatStream(services, plan) if loop is None else ToolChatStream(services, plan, loop)


def start_achat(services: ChatServices, prompt: Any, **kw: Any) -> AsyncChatStream:
    """``ws.achat``: the async twin of :func:`start_chat`."""
    loop = tool_loop(kw)
    plan = plan_chat(services, prompt, **kw)
    plan.call = kw
    if loop is None:
        return AsyncChatStream(services, plan)
    return AsyncToolChatStream(services, plan, loop)
