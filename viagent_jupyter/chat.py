"""Chat: resolve provider, model, settings and key, stream deltas, record usage.

``ChatStream`` (sync) and ``AsyncChatStream`` share every decision in ``_ChatBase``; only
the I/O loop is written twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from ._attachments import explain_refusal
from .errors import (
    ConfigValidationError,
    ProviderAPIError,
    ProviderError,
    ProviderResponseError,
    ViagentError,
)
from .schema import Message, ModelInfo, ModelSettings, ProviderConfig, Usage, validation_error

if TYPE_CHECKING:
    import httpx

    from ._services import ProviderLookup
    from .adapters.base import Adapter, ChatRequest, StreamState
    from .db import Database
    from .pricing import Price

__all__ = ["AsyncChatStream", "ChatServices", "ChatStream", "start_achat", "start_chat"]

log = logging.getLogger("viagent_jupyter.chat")

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "cancelled", "error", "other")

# The overall deadline of one chat (connect, retries and the whole stream), in seconds;
# ``timeout`` separately bounds each silence. Long reasoning answers take minutes.
CHAT_DEADLINE_S = 900.0


def chat_deadline(settings: object | None = None) -> float:
    """A workspace's ``$VIAGENT_CHAT_DEADLINE`` (its ``Settings``, checked when it was built),
    else :data:`CHAT_DEADLINE_S`."""
    deadline = getattr(settings, "chat_deadline", None)
    return float(deadline) if deadline is not None else CHAT_DEADLINE_S


class BudgetGate(Protocol):
    """The spending-limit check around one call (``Budgets`` fits): ``admit`` before any
    request (raises BudgetExceededError, or returns a hold), ``release`` a hold unused."""

    def admit(self, request: ChatRequest, price: Price | None) -> int | None: ...

    def release(self, hold: int) -> None: ...


@dataclass(frozen=True)
class ChatServices:
    """What a chat uses from its workspace, and nothing more.

    ``http`` returns the pooled sync client; ``new_aclient`` makes an async client that the
    async stream owns and closes when it ends (an ``httpx.AsyncClient`` belongs to one event
    loop, and a pool kept across loops leaks its sockets); ``record_usage(provider, model,
    usage, cost, error, hold)`` counts one request and settles its budget hold;
    ``price(provider_type, model, provider_id, base_url)`` is the model's price or None;
    ``budgets()`` is the spending-limit gate (made when a stream is made); ``model_info``
    reads the cached model list (never a request); ``db`` keeps the wire parameters a
    provider refused (refusals.py)."""

    providers: ProviderLookup
    http: Callable[[], httpx.Client]
    new_aclient: Callable[[], httpx.AsyncClient]
    record_usage: Callable[[str, str, Usage, Decimal | None, bool, int | None], object]
    price: Callable[[str, str, str, str], Price | None]
    budgets: Callable[[], BudgetGate]
    deadline: float = CHAT_DEADLINE_S  # the overall deadline of one chat, seconds
    db: Database | None = None
    model_info: Callable[[str, str], ModelInfo | None] = lambda _pid, _model: None
    # the provider's settings over the administrator's defaults; raises PolicyError for a
    # model the policy refuses (admin.py). Default: the provider's own settings.
    base_settings: Callable[[ProviderConfig, str], dict[str, Any]] = \
        lambda cfg, _model: cfg.settings.model_dump(exclude_none=True)


@dataclass
class _Plan:
    provider: ProviderConfig
    model: str
    request: ChatRequest
    adapter: Adapter
    #: The settings the user set (stored on the provider or passed per call): never dropped
    #: on a 400 (see ``refusals.py``); ``per_call`` are those given to this call.
    explicit: frozenset[str] = frozenset()
    per_call: frozenset[str] = frozenset()
    #: The call's arguments (for the one structured-output repair round) and whether to do it.
    call: dict[str, Any] = field(default_factory=dict)
    repair: bool = False


def _messages(prompt: str | Sequence[Message | dict[str, str]],
              system: str | None) -> tuple[list[dict[str, str]], str | None]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}], system
    out: list[dict[str, str]] = []
    systems = [system] if system else []
    for item in prompt:
        try:
            msg = item if isinstance(item, Message) else Message.model_validate(item)
        except ValidationError as exc:
            raise validation_error(exc, "message") from None
        if msg.role == "system":
            systems.append(msg.content)
        else:
            out.append({"role": msg.role, "content": msg.content})
    if not out:
        raise ConfigValidationError(
            "Invalid messages: give at least one user message.",
            [{"field": "messages", "message": "needs a user message"}],
        )
    return out, "\n\n".join(systems) if systems else None


def plan_chat(services: ChatServices, prompt: str | Sequence[Message | dict[str, str]], *,
              provider: str, model: str | None, system: str | None,
              temperature: float | None, max_tokens: int | None,
              context: Sequence[Any] | None = None, images: Sequence[Any] | None = None,
              schema: Any = None, repair: bool = False,
              **settings: Any) -> _Plan:
    """Settings resolve as call arguments > provider settings > defaults. ``context`` (objects
    described before the prompt), ``images`` and ``schema`` (structured output): see
    ``_attachments.py``."""
    from .adapters import get_adapter
    from .adapters.base import ChatRequest

    pid = provider
    cfg = services.providers.get(pid)
    model = model or cfg.default_model
    if not model:
        raise ConfigValidationError(
            f"No model for provider '{pid}': pass model=..., or set one with "
            f"ws.providers.update('{pid}', default_model=...) (see ws.models('{pid}')).",
            [{"field": "model", "message": "is required"}],
        )
    # the administrator's policy, before any request: a refused model raises PolicyError;
    # their default settings sit under the provider's own (admin.py)
    base = services.base_settings(cfg, model)
    overrides = {k: v for k, v in settings.items() if v is not None}
    if temperature is not None:
        overrides["temperature"] = temperature
    if max_tokens is not None:
        overrides["max_tokens"] = max_tokens
    try:
        resolved = ModelSettings.model_validate({**base, **overrides})
    except ValidationError as exc:
        raise validation_error(exc, "chat settings") from None
    messages, system_text = _messages(prompt, system)
    from ._attachments import prepare

    messages, image_parts, output = prepare(services.providers, services.model_info, pid, model,
                                            messages, context=context, images=images,
                                            schema=schema)
    key, _source = services.providers.resolve_key(pid)
    learnt = _learnt(services, pid, model)
    # only Anthropic's request depends on the model list (max_tokens, adaptive thinking)
    info = _model_info(services, pid, model) if cfg.provider_type == "anthropic" else None
    request = ChatRequest(
        provider_id=pid,
        provider_type=cfg.provider_type,
        base_url=cfg.endpoint,
        model=model,
        messages=messages,
        api_key=key,
        system=system_text,
        settings=resolved.model_dump(exclude_none=True),
        headers=dict(cfg.headers),
        omit=frozenset(k for k, v in learnt.items() if v == "omit"),
        rename={k: v.removeprefix("rename:") for k, v in learnt.items()
                if v.startswith("rename:")},
        max_output_tokens=info.max_output_tokens if info is not None else None,
        capabilities=info.capabilities if info is not None else (),
        images=image_parts,
        output=output,
    )
    adapter = get_adapter(cfg.provider_type)
    adapter.check_request(request)
    return _Plan(cfg, model, request, adapter, frozenset(request.settings),
                 frozenset(overrides), repair=repair)


def _learnt(services: ChatServices, pid: str, model: str) -> dict[str, str]:
    from . import refusals

    if services.db is None:
        return {}
    try:
        return refusals.load(services.db, pid, model)
    except ViagentError:
        return {}


def _model_info(services: ChatServices, pid: str, model: str) -> ModelInfo | None:
    try:
        return services.model_info(pid, model)  # the cached list only: never a request
    except ViagentError:
        return None


def _replan(services: ChatServices, plan: _Plan, exc: ProviderAPIError) -> bool:
    """After a 400 before any byte of answer: ``True`` when the request was changed and is
    worth one more try (see ``refusals.py``); raises the one-line error for a refused
    explicit setting; ``False`` when the 400 is about something else."""
    from dataclasses import replace

    from . import refusals

    wire = refusals.refused_parameter(exc)
    req = plan.request
    if wire is None or wire in req.omit or wire in req.rename:
        return False
    decision = refusals.decide(wire, plan.explicit, req.provider_type, exc.provider_message)
    if decision.action == "refuse":
        raise refusals.refusal_error(exc, decision, req.provider_id, req.model,
                                     plan.per_call) from None
    if decision.action == "omit":
        settings = {k: v for k, v in req.settings.items() if k != decision.setting}
        plan.request = replace(req, omit=req.omit | {wire}, settings=settings)
    else:
        plan.request = replace(req, rename={**req.rename, wire: decision.target or wire})
    log.info("provider %s refused %s for %s: retrying with it %s", req.provider_id, wire,
             req.model, "left out" if decision.action == "omit" else "renamed")
    try:
        if services.db is not None:
            refusals.remember(services.db, req.provider_id, req.model, decision)
    except ViagentError:
        log.warning("could not remember that %s refused %s", req.provider_id, wire)
    return True


class _ChatBase:
    """State and bookkeeping shared by the sync and async streams."""

    def __init__(self, services: ChatServices, plan: _Plan) -> None:
        self._services = services
        self._plan = plan
        self.provider: str = plan.provider.id
        self.requested_model: str = plan.model
        self.model: str = plan.model
        self.finish_reason: str | None = None
        self.raw_finish_reason: str | None = None
        self.usage: Usage = Usage()
        self.cost: float | None = None
        self.error: ViagentError | None = None
        self.started_at: float | None = None
        self.first_token_at: float | None = None  # time to first token (history, comparisons)
        self.ended_at: float | None = None
        self._parts: list[str] = []
        self._reasoning: list[str] = []
        self._state: StreamState | None = None
        self._started = False  # the provider answered 2xx: usage will be recorded
        self._hold: int | None = None  # this call's budget hold, released when it ends
        self.cost_exact: Decimal | None = None  # s.cost before rounding to a float
        self._budgets = services.budgets()  # made now (imports), not when iteration starts
        self._planned_price = self._price()
        self._iterating = False
        self._done = False
        # Called once with this stream when it ends (the Workspace wires the history here).
        self.on_end: Callable[[Any], None] | None = None

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} provider={self.provider!r} model={self.model!r} "
                f"finish_reason={self.finish_reason!r} chars={sum(map(len, self._parts))}>")

    @property
    def text(self) -> str:
        """The text received so far; never waits for the network. Once the stream has ended
        (iterated to the end, or ``wait()`` / ``await s.wait()``) it is the whole answer."""
        return "".join(self._parts)

    @property
    def reasoning(self) -> str:
        """The model's reasoning received so far (never waits, like ``.text``; never part of
        the answer); ``""`` when the model showed none."""
        return "".join(self._reasoning)
    @property
    def elapsed(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.monotonic()) - self.started_at

    @property
    def done(self) -> bool:
        return self._done

    def _begin(self) -> tuple[Adapter, Any]:
        if self._iterating or self._done:
            raise RuntimeError("a chat stream can be iterated only once; use .text afterwards")
        self._iterating = True
        self.started_at = time.monotonic()
        try:  # spending limits: refused here, before any request
            self._hold = self._budgets.admit(self._plan.request, self._planned_price)
        except ViagentError as exc:
            self._end("error", exc)
            raise
        except BaseException:  # interrupted while checking: nothing was sent
            self._end("cancelled")
            raise
        adapter = self._plan.adapter
        return adapter, adapter.parser(self._plan.request)

    def _http_options(self) -> dict[str, Any]:
        cfg = self._plan.provider
        return {
            "provider": cfg.id,
            "model": self._plan.model,
            "timeout": cfg.timeout,
            "deadline": self._services.deadline,
            "max_retries": cfg.max_retries,
            "allow_insecure_http": cfg.allow_insecure_http,
            "error_from_response": self._plan.adapter.error_from_response,
        }

    def _take_reasoning(self) -> list[str]:
        """Move the reasoning the parser collected (during the last feed) over here."""
        state = self._state
        if state is None or not state.reasoning:
            return []
        out = [d for d in state.reasoning if d]
        state.reasoning.clear()
        self._reasoning.extend(out)
        return out

    def _take(self, deltas: list[str]) -> list[str]:
        self._take_reasoning()
        out = [d for d in deltas if d]
        if out:
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self._parts.extend(out)
        return out

    def _absorb(self, state: StreamState) -> None:
        self._state = state
        if state.model:
            self.model = state.model
        u = state.usage
        if u:
            self.usage = Usage(**{k: u[k] for k in Usage.model_fields if k in u})
        self.raw_finish_reason = state.raw_finish_reason

    def _end(self, finish_reason: str, error: ViagentError | None = None) -> None:
        if self._done:
            return
        self._done = True
        self.ended_at = time.monotonic()
        if self._state is not None:
            self._absorb(self._state)
        self.finish_reason = finish_reason
        self.error = error
        state_cost = self._state.cost if self._state is not None else None
        self.cost = state_cost if state_cost is not None else self._computed_cost()
        if state_cost is not None:  # provider-reported (OpenRouter) wins
            self.cost_exact = Decimal(repr(state_cost))
        try:
            if self._started:
                self._services.record_usage(self.provider, self.requested_model, self.usage,
                                            self.cost_exact, error is not None, self._hold)
            elif self._hold is not None:
                self._budgets.release(self._hold)
        except ViagentError:
            log.warning("could not record usage for %s:%s", self.provider,
                        self.requested_model)
        if self.on_end is not None:
            try:
                self.on_end(self)
            except Exception:  # a hook never fails the chat
                log.warning("the end-of-chat hook failed for %s:%s", self.provider,
                            self.requested_model)

    def _price(self) -> Price | None:
        """The price of the requested model, else of the one the provider reported."""
        cfg = self._plan.provider
        try:
            for model in dict.fromkeys((self.requested_model, self.model)):
                price = self._services.price(cfg.provider_type, model, cfg.id, cfg.endpoint)
                if price is not None:
                    return price
        except ViagentError:
            log.warning("could not read prices for %s:%s", self.provider, self.requested_model)
        return None

    def _computed_cost(self) -> float | None:
        """usage × price, exact (``cost_exact``); ``None`` when either is unknown."""
        if not self.usage.reported:
            return None
        price = self._price()
        self.cost_exact = price.cost(self.usage) if price is not None else None
        return None if self.cost_exact is None else float(self.cost_exact)

    def _finish_ok(self, state: StreamState) -> None:
        self._absorb(state)
        reason = state.finish_reason or "stop"
        self._end(reason if reason in FINISH_REASONS else "other")

    def _fail(self, exc: ProviderError) -> None:
        if self._state is not None:
            self._absorb(self._state)
        self._end("error", exc)


_UNSET: Any = object()


class ChatStream(_ChatBase):
    """A streamed answer: iterate for ``str`` deltas as they arrive.

    ``.text`` is the text received so far and never waits; ``wait()`` reads to the end and
    returns the stream, so ``ws.chat(...).wait().text`` is the whole answer. ``.usage``,
    ``.cost``, ``.model``, ``.finish_reason`` are set when the stream ends. ``close()`` stops
    it at once; a ``KeyboardInterrupt`` while iterating does the same and leaves
    ``finish_reason == "cancelled"``."""

    def __init__(self, services: ChatServices, plan: _Plan) -> None:
        super().__init__(services, plan)
        self._gen: Generator[Any, None, None] | None = None
        self._value: Any = _UNSET
        self.repaired: ChatStream | None = None  # the repair round's stream, if one ran

    def __iter__(self) -> Iterator[str]:
        if self._gen is None:
            self._gen = self._texts()
        return self._gen

    def events(self) -> Iterator[tuple[str, str]]:
        """Iterate ``("reasoning", delta)`` and ``("text", delta)`` as they arrive (instead
        of iterating the stream itself, which yields the text only)."""
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    def _texts(self) -> Generator[str, None, None]:
        events = self._run()
        try:
            for kind, delta in events:
                if kind == "text":
                    yield delta
        finally:
            events.close()

    def _run(self) -> Generator[tuple[str, str], None, None]:
        from .adapters import _http

        adapter, parser = self._begin()
        self._state = parser.state
        try:
            for attempt in (0, 1):
                try:
                    with _http.stream(self._services.http(),
                                      adapter.chat_request(self._plan.request),
                                      **self._http_options()) as chunks:
                        self._started = True
                        for chunk in chunks:
                            texts = parser.feed(chunk)
                            for delta in self._take_reasoning():
                                yield "reasoning", delta
                            for delta in self._take(texts):
                                yield "text", delta
                        texts = parser.close()
                        for delta in self._take_reasoning():
                            yield "reasoning", delta
                        for delta in self._take(texts):
                            yield "text", delta
                    break
                except ProviderAPIError as exc:
                    if self._started or attempt or not _replan(self._services, self._plan, exc):
                        raise
                    parser = adapter.parser(self._plan.request)
                    self._state = parser.state
        except ProviderError as exc:
            err = explain_refusal(exc, self._plan.request)
            self._fail(err)
            if err is exc:
                raise
            raise err from None
        except (GeneratorExit, KeyboardInterrupt):
            self._end("cancelled")
            raise
        self._finish_ok(parser.state)

    @property
    def text(self) -> str:
        """The text received so far; never waits once the stream has been started.

        Compatibility: on a stream nobody has started, reading ``.text`` still reads the whole
        answer (as 0.1 did), with a ``FutureWarning``; use ``.wait().text``."""
        if not self._iterating and not self._done:
            import warnings

            warnings.warn("ChatStream.text will stop waiting for the answer; "
                          "use ws.chat(...).wait().text", FutureWarning, stacklevel=2)
            self.wait()
        return super().text

    @property
    def value(self) -> Any:
        """The structured answer (``schema=``) as a validated object; waits for the end (as
        ``.wait()``). ``ProviderResponseError`` lists the failing fields; with
        ``repair=True`` one more request asks the model to fix them first. ``None`` without a
        schema."""
        if self._value is _UNSET:
            self._value = self._parse(self.wait().text)
        return self._value

    def _parse(self, text: str) -> Any:
        output = self._plan.request.output
        if output is None:
            return None
        try:
            return output.parse(text, provider=self.provider, model=self.model)
        except ProviderResponseError as exc:
            exc = _named(exc, self.provider, self.model)
            if not self._plan.repair:
                raise exc from None
            from ._attachments import repair_messages

            call = {**self._plan.call, "context": None, "system": None, "repair": False}
            self.repaired = start_chat(self._services,
                                       repair_messages(self._plan.request, text, exc), **call)
            return self.repaired.value

    def wait(self) -> ChatStream:
        """Read the rest of the stream (blocking); return self."""
        for _ in self:
            pass
        return self

    def close(self) -> None:
        """Stop now: the connection is closed and ``finish_reason`` is ``cancelled``."""
        if self._gen is not None:
            self._gen.close()  # GeneratorExit inside _run closes the response
        if not self._done:
            self._iterating = True
            self._end("cancelled")

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncChatStream(_ChatBase):
    """The async twin: ``async for delta in ws.achat(...)``; ``.text`` is the text so far,
    ``await s.wait()`` reads to the end and returns the stream."""

    def __init__(self, services: ChatServices, plan: _Plan) -> None:
        super().__init__(services, plan)
        self._agen: AsyncGenerator[str, None] | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        if self._agen is None:
            self._agen = self._run()
        return self._agen

    async def _run(self) -> AsyncGenerator[str, None]:
        import asyncio

        from .adapters import _http

        adapter, parser = self._begin()
        self._state = parser.state
        try:
            for attempt in (0, 1):
                try:
                    async with self._services.new_aclient() as client, \
                            _http.astream(client, adapter.chat_request(self._plan.request),
                                          **self._http_options()) as chunks:
                        self._started = True
                        async for chunk in chunks:
                            for delta in self._take(parser.feed(chunk)):
                                yield delta
                        for delta in self._take(parser.close()):
                            yield delta
                    break
                except ProviderAPIError as exc:
                    if self._started or attempt or not _replan(self._services, self._plan, exc):
                        raise
                    parser = adapter.parser(self._plan.request)
                    self._state = parser.state
        except ProviderError as exc:
            err = explain_refusal(exc, self._plan.request)
            self._fail(err)
            if err is exc:
                raise
            raise err from None
        except (GeneratorExit, KeyboardInterrupt, asyncio.CancelledError):
            self._end("cancelled")
            raise
        self._finish_ok(parser.state)

    async def wait(self) -> AsyncChatStream:
        """Read the rest of the stream; return self."""
        async for _ in self:
            pass
        return self

    @property
    def value(self) -> Any:
        """The validated structured answer (after ``await s.wait()``); no repair round."""
        output = self._plan.request.output
        if output is None:
            return None
        if not self._done:
            raise RuntimeError("the stream has not ended: await s.wait() before s.value")
        try:
            return output.parse(self.text, provider=self.provider, model=self.model)
        except ProviderResponseError as exc:
            raise _named(exc, self.provider, self.model) from None

    async def aclose(self) -> None:
        if self._agen is not None:
            await self._agen.aclose()
        if not self._done:
            self._iterating = True
            self._end("cancelled")


def _named(exc: ProviderResponseError, provider: str, model: str) -> ProviderResponseError:
    """The validation error with the provider and model it came from."""
    exc.provider = exc.provider or provider
    exc.model = exc.model or model
    return exc


def start_chat(services: ChatServices, prompt: str | Sequence[Message | dict[str, str]],
               **kw: Any) -> ChatStream:
    """A plain chat (tools: ``_toolchat.start_chat``, which wraps this one's plan)."""
    plan = plan_chat(services, prompt, **kw)
    plan.call = kw
    return ChatStream(services, plan)


def start_achat(services: ChatServices, prompt: str | Sequence[Message | dict[str, str]],
                **kw: Any) -> AsyncChatStream:
    plan = plan_chat(services, prompt, **kw)
    plan.call = kw
    return AsyncChatStream(services, plan)
