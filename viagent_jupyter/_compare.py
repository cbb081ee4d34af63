"""One prompt, several models, side by side: ``%%llm -m A -m B`` / ``-p P1:M -p P2:M``.

All answers stream **concurrently**: the streams are :class:`AsyncChatStream` s, run as
tasks of one asyncio event loop in one worker thread, while the kernel's main thread only
waits, redraws (coalesced, like the single answer's :class:`StreamDisplay`) and publishes.

Why an event loop in a thread rather than one thread per stream with the sync API: in a
kernel, Ctrl-C (interrupt) raises ``KeyboardInterrupt`` in the *main* thread only. A sync
stream being iterated by another thread cannot be closed from outside (its generator is
running there); a task can: the main thread asks the loop to ``cancel()`` every task, which
lands at the stream's next ``await`` (a socket read), so each stream ends at once as
``cancelled`` — usage and history recorded, connection closed — and the worker ends. Display
publishing stays in the main thread, where ipykernel ties output to the running cell.

Each column has its own live footer (time to first token, total time, tokens, cost); one
failing model shows its one-line error in its column and the others finish. The columns
are a CSS flex row that wraps into rows on a narrow output; answers are rendered by
:mod:`_display` (sanitised Markdown), never as raw HTML. Every answer is recorded in the
history with one ``group`` id.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._display import (
    _CSS_FOOTER,
    Bundle,
    LLMResult,
    _error_html,
    _esc,
    _money,
    clip_for_display,
    output_class,
)
from .errors import ViagentError

if TYPE_CHECKING:
    from ._workspace import Workspace
    from .chat import AsyncChatStream

__all__ = ["Column", "CompareResult", "Comparison", "targets_from_options"]

_CSS_ROW = "display:flex;flex-wrap:wrap;gap:12px;align-items:stretch"
_CSS_COL = ("flex:1 1 280px;min-width:240px;max-width:100%;box-sizing:border-box;"
            "border:1px solid rgba(128,128,128,0.35);border-radius:4px;padding:6px 10px;"
            "overflow-wrap:anywhere")
_CSS_HEAD = ("font-weight:600;font-size:0.9em;margin-bottom:4px;"
             "font-family:var(--jp-ui-font-family,sans-serif)")


Target = tuple[str | None, str | None]


def _split_target(value: str) -> tuple[str, str | None]:
    provider, sep, model = value.partition(":")  # ids have no ':'; model names may
    if not provider or (sep and not model):
        raise ValueError(f"-p {value!r}: write PROVIDER or PROVIDER:MODEL")
    return provider, model or None


def targets_from_options(providers: Sequence[str], models: Sequence[str]
                         ) -> tuple[str | None, str | None, tuple[Target, ...]]:
    """The magic's ``-p``/``-m`` values → ``(provider, model, ())`` for one answer, or
    ``(provider, None, pairs)`` for a comparison. Bad combinations raise ``ValueError``."""
    pairs = [_split_target(p) for p in providers]
    if len(pairs) > 1:
        if models:
            raise ValueError("with several -p, name each model as -p PROVIDER:MODEL")
        return None, None, tuple(pairs)
    provider, model = pairs[0] if pairs else (None, None)
    if model is not None and models:
        raise ValueError("give the model once: -p PROVIDER:MODEL or -m MODEL")
    if len(models) > 1:
        return provider, None, tuple((provider, m) for m in models)
    return provider, (models[0] if models else model), ()


class Column:
    """One model's answer in a comparison."""

    def __init__(self, provider: str | None, model: str | None) -> None:
        self.provider = provider
        self.model = model
        self.label = provider or "?"
        self.stream: AsyncChatStream | None = None
        self.error: ViagentError | None = None
        self.display_max_bytes: int | None = None  # c.LLMMagics.display_max_bytes

    @property
    def text(self) -> str:
        return self.stream.text if self.stream is not None else ""

    @property
    def done(self) -> bool:
        return self.stream is None or self.stream.done

    def status(self) -> str | None:
        s = self.stream
        if self.error is not None or s is None:
            return "error"
        if not s.done:
            return "streaming"
        return {"cancelled": "cancelled", "length": "truncated", "content_filter": "filtered",
                "error": "error"}.get(s.finish_reason or "")

    def footer_parts(self) -> list[str]:
        s = self.stream
        if s is None:
            return []
        parts = []
        if s.first_token_at is not None and s.started_at is not None:
            parts.append(f"first token {s.first_token_at - s.started_at:.2f} s")
        if s.elapsed is not None:
            parts.append(f"{s.elapsed:.1f} s")
        u = s.usage
        if u.prompt_tokens is not None or u.completion_tokens is not None:
            parts.append(f"{u.prompt_tokens if u.prompt_tokens is not None else '?'}/"
                         f"{u.completion_tokens if u.completion_tokens is not None else '?'}"
                         " tokens")
        if s.cost is not None:
            parts.append(_money(s.cost))
        marker = {"streaming": "streaming…", "cancelled": "⏹ cancelled", "error": "⚠ error",
                  "truncated": "✂ truncated", "filtered": "⚠ filtered"}.get(self.status() or "")
        if marker:
            parts.append(marker)
        return parts

    def result(self, fmt: str) -> LLMResult:
        s = self.stream
        return LLMResult(
            text=self.text, provider=self.provider, model=s.model if s else self.model,
            label=self.label, format=fmt, usage=s.usage if s else None,
            cost=s.cost if s else None, finish_reason=s.finish_reason if s else "error",
            elapsed=s.elapsed if s else None, error=self.error,
            display_max_bytes=self.display_max_bytes)


def _body_html(text: str, fmt: str, final: bool) -> str:
    bundle = output_class(fmt)(text, None, None, final=final)._repr_mimebundle_()
    if "text/html" in bundle:
        return str(bundle["text/html"])
    return f'<pre style="white-space:pre-wrap;margin:0">{_esc(str(bundle["text/plain"]))}</pre>'


def render(columns: Sequence[Column], fmt: str, final: bool) -> Bundle:
    """The side-by-side bundle: escaped/sanitised HTML columns and a text/plain twin."""
    html_cols, plain = [], []
    for c in columns:
        text = clip_for_display(c.text, c.display_max_bytes)
        model = c.stream.model if c.stream is not None else (c.model or "?")
        head = f"{c.label} · {model}"
        foot = " · ".join(c.footer_parts())
        err = f"LLM error: {c.error}" if c.error is not None else None
        html_cols.append(
            f'<div class="viagent-llm-column" style="{_CSS_COL}">'
            f'<div style="{_CSS_HEAD}">{_esc(head)}</div>'
            + (_body_html(text, fmt, final) if text else "")
            + (_error_html(err) if err else "")
            + f'<div class="viagent-llm-footer" style="{_CSS_FOOTER}">{_esc(foot)}</div>'
            + "</div>")
        plain.append("\n".join(p for p in (f"== {head} ==", text, err,
                                           f"— {foot}" if foot else None) if p))
    return {"text/plain": "\n\n".join(plain),
            "text/html": f'<div class="viagent-llm-compare" style="{_CSS_ROW}">'
                         + "".join(html_cols) + "</div>"}


class CompareResult(list[LLMResult]):
    """The answers of one comparison (a list of :class:`LLMResult`, in column order);
    ``group`` is their id in the history. Displaying it shows the columns again."""

    def __init__(self, results: Sequence[LLMResult], columns: Sequence[Column], fmt: str,
                 group: str, wall: float | None) -> None:
        super().__init__(results)
        self._columns = list(columns)
        self._fmt = fmt
        self.group = group
        self.wall = wall  # seconds from the first request to the last answer's end

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        return render(self._columns, self._fmt, final=True)


class Comparison:
    """Plan every stream now (in the caller's thread: errors such as an unknown provider
    become that column's error), then :meth:`run` them concurrently."""

    def __init__(self, ws: Workspace, prompt: Any, targets: Sequence[tuple[str | None,
                 str | None]], *, system: str | None = None, temperature: float | None = None,
                 max_tokens: int | None = None, source: str = "api", log: bool = True) -> None:
        from .history import recording

        self._ws = ws
        self.group = uuid.uuid4().hex[:12]
        self.columns = [Column(p, m) for p, m in targets]
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._done = threading.Event()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._cancelled = False
        self._thread: threading.Thread | None = None
        self._seen: tuple[Any, ...] = ()
        self._seen_at = 0.0
        with recording(source=source, log=log, group=self.group):
            for col in self.columns:
                try:
                    pid = col.provider or ws.require_selected()
                    col.provider = pid
                    col.label = ws.providers.get(pid).display_label
                    col.stream = ws.achat(prompt, provider=pid, model=col.model, system=system,
                                          temperature=temperature, max_tokens=max_tokens)
                except ViagentError as exc:
                    col.error = exc

    # -- running ------------------------------------------------------------------------------
    @property
    def wall(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.monotonic()) - self.started_at

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._work, name="viagent-compare", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            asyncio.run(self._main())
        finally:
            self.ended_at = time.monotonic()
            self._ready.set()
            self._done.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._one(c)) for c in self.columns
                       if c.stream is not None]
        self._ready.set()
        if self._cancelled:
            self._cancel_tasks()
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for c in self.columns:  # a task cancelled before it began: end its stream too
                if c.stream is not None and not c.stream.done:
                    await c.stream.aclose()
        finally:
            await self._ws.aclose()

    async def _one(self, col: Column) -> None:
        assert col.stream is not None
        try:
            async for _ in col.stream:
                pass
        except ViagentError as exc:
            col.error = exc
        except asyncio.CancelledError:
            pass  # the stream ended itself as "cancelled"

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    def cancel(self) -> None:
        """Stop every stream now (from any thread)."""
        self._cancelled = True
        self._ready.wait(5.0)
        loop = self._loop
        if loop is not None and not self._done.is_set():
            with contextlib.suppress(RuntimeError):  # the loop just closed: nothing to cancel
                loop.call_soon_threadsafe(self._cancel_tasks)

    def run(self, tick: Callable[[], None] | None = None, interval: float = 0.05) -> None:
        """Start (if not yet) and wait until every stream ended, calling ``tick`` every
        ``interval`` seconds meanwhile. ``KeyboardInterrupt`` cancels every stream and
        returns normally once they have ended."""
        if self._thread is None:
            self.start()
        try:
            while not self._done.wait(interval):
                if tick is not None:
                    tick()
        except KeyboardInterrupt:
            self.cancel()
        while True:  # a second interrupt while stopping: cancel again and keep waiting
            try:
                self._done.wait()
                break
            except KeyboardInterrupt:
                self.cancel()
        assert self._thread is not None
        self._thread.join()

    def changed(self, every: float = 1.0) -> bool:
        """True when a column got text or ended since the last call, or ``every`` seconds
        passed (the footers' clocks move): the display redraws only then."""
        seen = tuple((len(c.text), c.done, c.error is not None) for c in self.columns)
        now = time.monotonic()
        if seen == self._seen and now - self._seen_at < every:
            return False
        self._seen, self._seen_at = seen, now
        return True

    # -- showing ------------------------------------------------------------------------------
    def bundle(self, fmt: str, final: bool = False) -> Bundle:
        return render(self.columns, fmt, final)

    def results(self, fmt: str = "markdown") -> CompareResult:
        return CompareResult([c.result(fmt) for c in self.columns], self.columns, fmt,
                             self.group, self.wall)
