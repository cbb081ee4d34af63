"""``%%llm`` and ``%llm``: chat with a configured provider from a notebook cell.

``%load_ext viagent_jupyter`` (or ``c.InteractiveShellApp.extensions = ["viagent_jupyter"]``)
registers them; ``%unload_ext viagent_jupyter`` removes them. Loading imports nothing heavy:
the workspace, HTTP client, Markdown renderer and sanitizer load on the first call.

The options and line commands are declared once, in :mod:`viagent_jupyter._magic_args` (an
argparse parser and ``COMMANDS``); ``%llm?``, ``%llm help`` and usage errors show the help
generated from them.

Behaviour worth knowing:

* ``{name}``, ``{name.attr}``, ``{name[0]}``, ``{In[3]}``, ``{Out[3]}`` in the prompt are
  replaced from the user namespace (:func:`interpolate`: no ``eval``, no format specs, no
  ``_private`` attributes); anything else in braces (code, JSON) stays as written;
  ``{{``/``}}`` give single braces. IPython's own ``$name``/``{expr}`` expansion of the
  magic line is turned off (it would evaluate code).
* A line prompt must be unambiguous: a single word that is not a command (``%llm bogus``) is
  an error with a "did you mean", and so is a line whose first word is a near-miss of a
  command (``%llm modles --refresh``); ``%llm -- PROMPT`` or ``%llm "PROMPT"`` is always a
  prompt, and so is anything after options (``%llm -t 0 hi``).
* The answer streams into one display output, updated at most every ``update_interval``
  seconds (and less often for very long answers, see ``update_bytes_per_second``); a plain
  terminal IPython, which cannot update an output, prints it once at the end.
* ``--chat`` threads live in the kernel (``LLMMagics.threads``) and, while the history is on,
  in the workspace database too, so a thread survives a kernel restart. They keep completed
  exchanges only: a failed or cancelled answer is not sent back to the model.
* Several ``-m`` (or ``-p ID:MODEL``) compare models side by side (``_compare.py``);
  ``%llm log ...`` searches the recorded history (``history.py``).
* **Interrupting the kernel** stops the stream within a second: the connection is closed,
  the partial answer stays on screen marked *cancelled*, its usage is recorded, ``_llm``
  holds it, and the cell ends without a traceback (the ``KeyboardInterrupt`` is swallowed).
  Note that a swallowed interrupt lets "Run All" continue with the next cell; set
  ``c.LLMMagics.stop_on_error = True`` to end such a cell with a one-line error instead,
  which stops the run.
* Errors are one readable line (no traceback, never a key); ``%llm error`` shows details.

Configuration (``ipython_config.py`` or ``%config``): see the traits of :class:`LLMMagics`.
"""

from __future__ import annotations

import dataclasses
import uuid
import warnings
from typing import TYPE_CHECKING, Any

from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Enum, Float, Int, Unicode

from ._display import (
    FORMATS,
    Bundle,
    ErrorOutput,
    Footer,
    LLMResult,
    StreamDisplay,
    Table,
    clip,
    clip_for_display,
    output_class,
    utf8_size,
)
from ._interpolate import InterpolationRefused, interpolate
from ._magic_args import (
    _SUBCOMMANDS,
    PromptArgs,
    _split,
    _usage_error,
    check_line_prompt,
    help_text,
    parse_prompt_args,
    split_line_prompt,
)

if TYPE_CHECKING:
    from ._workspace import Workspace
    from .chat import ChatStream
    from .errors import ViagentError

__all__ = ["InterpolationRefused", "LLMCellStopped", "LLMMagics", "LLMResult", "PromptArgs",
           "interpolate", "load", "unload"]

# -- the magics ------------------------------------------------------------------------------

class LLMCellStopped(Exception):
    """Ends a cell after an LLM error or cancellation when ``stop_on_error`` is set.

    IPython shows it as one line (``_render_traceback_``), never a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        return [self.message]


_WIDGET_MODULES = frozenset({"viagent_jupyter.widgets", "anywidget", "ipywidgets", "sidecar"})


@magics_class
class LLMMagics(Magics):
    """``%%llm`` / ``%llm`` (see the module docstring for the commands).

    Configure with ``c.LLMMagics.<trait> = ...`` in ``ipython_config.py`` or ``%config``.
    Tests and embedders may pass ``workspace=`` (otherwise ``viagent_jupyter.workspace()``).
    """

    default_provider = Unicode(
        None, allow_none=True, config=True,
        help="Provider id used when -p is not given (None: the workspace's selected provider).",
    )
    default_format = Enum(
        FORMATS, default_value="markdown", config=True,
        help="Output format when -f is not given: markdown, text, code or json.",
    )
    max_history = Int(
        50, config=True,
        help="Messages (user + assistant) kept per --chat thread; the oldest go first.",
    )
    update_interval = Float(
        0.05, config=True,
        help="Least time in seconds between two updates of a streaming answer (0.05 = 20/s).",
    )
    update_bytes_per_second = Int(
        200_000, config=True,
        help="Cap on display bytes resent per second while streaming: a long answer is "
             "redrawn less often so the notebook's message channel stays light (0: no cap).",
    )
    log = Bool(
        True, config=True,
        help="Record every call in the workspace history (%llm log); --no-log skips one call "
             "and VIAGENT_LOG=0 turns it off for the whole process.",
    )
    context_cap = Int(
        4000, config=True,
        help="Characters at most per --with item (a DataFrame's description, a dict's JSON...); "
             "a longer one is cut and marked [truncated].",
    )
    display_max_bytes = Int(
        4_000_000, config=True,
        help="Most bytes of an answer shown in the cell's output (the rest is cut with a "
             "'display truncated' mark; the full text stays in _llm / -o). 0: no cap.",
    )
    result_max_bytes = Int(
        64_000_000, config=True,
        help="Most bytes of an answer kept in _llm / -o: a longer answer is stopped there "
             "(its connection closed) and marked. 0: no cap.",
    )
    stop_on_error = Bool(
        False, config=True,
        help="After showing an error or a cancelled answer, also end the cell with a one-line "
             "error so that 'Run All' stops there (default: the cell ends normally).",
    )

    def __init__(self, shell: Any = None, workspace: Workspace | None = None,
                 **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)  # type: ignore[no-untyped-call, unused-ignore]
        self._workspace = workspace
        self.threads: dict[str, list[dict[str, str]]] = {}
        self._unlogged: set[str] = set()  # threads with a --no-log exchange (never recorded)
        self.last_error: ViagentError | None = None
        self._last_view: StreamDisplay | None = None  # the last live display (tests, bench)

    @property
    def ws(self) -> Workspace:
        """The injected workspace, else the kernel default (``viagent_jupyter.workspace()``)."""
        if self._workspace is not None:
            return self._workspace
        from ._workspace import workspace

        return workspace()

    @property
    def _ip(self) -> Any:
        """The shell (always set once registered)."""
        assert self.shell is not None
        return self.shell

    # -- output helpers --------------------------------------------------------------------------
    def _publish(self, data: Bundle, display_id: str, update: bool) -> None:
        self._ip.display_pub.publish(data=data, metadata={},
                                     transient={"display_id": display_id}, update=update)

    def _show(self, obj: Any) -> None:
        self._publish(obj._repr_mimebundle_(), uuid.uuid4().hex, False)

    def _can_update(self) -> bool:
        """A plain terminal prints every update: there, show the answer once at the end."""
        return type(self._ip.display_pub) is not DisplayPublisher

    def _show_error(self, exc: ViagentError) -> None:
        self.last_error = exc
        self._show(ErrorOutput(str(exc)))

    # -- entry point -----------------------------------------------------------------------------
    @line_cell_magic  # type: ignore[untyped-decorator, unused-ignore]
    @no_var_expand  # type: ignore[untyped-decorator, unused-ignore]  # no IPython {expr}/$name eval
    def llm(self, line: str, cell: str | None = None) -> Any:
        """Chat with an LLM provider; ``%llm help`` lists everything."""
        from .errors import ViagentError

        try:
            if cell is not None:
                args = parse_prompt_args(_split(line))
                if args.help:
                    print(help_text())
                    return None
                return self._prompt(args, cell)
            return self._line(line)
        except ViagentError as exc:
            self._show_error(exc)
            if self.stop_on_error:
                raise LLMCellStopped(f"LLM error: {exc}") from None
            return None

    def _line(self, line: str) -> Any:
        stripped = line.strip()
        if not stripped:
            print(help_text())
            return None
        command, *rest = stripped.split(None, 1)
        if command in _SUBCOMMANDS:  # a prompt starting with one of these: %llm -- models...
            handler = getattr(self, f"_cmd_{command}")
            return handler(_split(rest[0] if rest else ""))
        if stripped[0] in "'\"":
            quoted = _split(stripped)
            if len(quoted) == 1:  # %llm "one explicit prompt"
                return self._prompt(PromptArgs(), quoted[0])
        elif not stripped.startswith("-"):
            check_line_prompt(stripped)
        tokens, prompt = split_line_prompt(line)
        args = parse_prompt_args(tokens)
        if args.help:
            print(help_text())
            return None
        return self._prompt(args, prompt)

    # -- prompts ---------------------------------------------------------------------------------
    def _prompt(self, args: PromptArgs, body: str) -> None:
        from .errors import ViagentError

        if not body.strip():
            raise UsageError("%%llm needs a prompt: write it in the cell body below the "
                             "%%llm line (or %llm PROMPT on one line).")
        body = body.strip("\r\n").rstrip()  # surrounding blank lines are not the prompt
        try:
            prompt = interpolate(body, self._ip.user_ns) if args.interpolate else body
        except InterpolationRefused as exc:
            raise UsageError(f"Not sent: {exc} (--no-interpolate sends braces as written)") \
                from None
        fmt = args.format or ("json" if args.schema else self.default_format)
        if args.targets:
            return self._compare(args, prompt, fmt)
        from .history import recording

        thread = args.thread
        if thread is not None and args.new:
            self._forget(thread)
        if thread is not None and not args.log:
            self._unlogged.add(thread)  # it holds an unrecorded exchange: keep it all out
        keep = self.log and args.log and thread not in self._unlogged
        history = self._thread(thread, self.log) if thread is not None else []
        ws = self.ws
        pid = args.provider or self.default_provider or None
        try:
            pid = pid or ws.require_selected()
            label = ws.providers.get(pid).display_label
            messages: Any = prompt if thread is None else [
                *history, {"role": "user", "content": prompt}]
            from ._magic_context import chat_extras, show_dry_run
            from ._tool_magic import tool_options

            extras = chat_extras(args, self._ip.user_ns, self._ip, cap=self.context_cap)
            if args.dry_run:
                return show_dry_run(self, messages, pid, args, extras)
            tools = tool_options(args.tools, args.approve, args.max_steps, self._ip.user_ns,
                                 self._ip, lambda b: self._publish(b, uuid.uuid4().hex, False))
            with recording(source="magic", log=keep, thread=thread):
                stream = ws.chat(messages, provider=pid, model=args.model, system=args.system,
                                 temperature=args.temperature, max_tokens=args.max_tokens,
                                 reasoning=args.reasoning, **extras, **tools)
        except ViagentError as exc:
            self._store(LLMResult(text="", provider=pid, model=args.model, format=fmt,
                                  finish_reason="error", error=exc, prompt=prompt), args)
            self._show_error(exc)
            self._maybe_stop(f"LLM error: {exc}")
            return
        result = self._consume(stream, label, fmt, live=args.stream and self._can_update())
        result.prompt = prompt
        if args.schema:
            from ._magic_context import take_value

            take_value(self, stream, result, args)
        self._store(result, args)
        if result.error is not None:
            self.last_error = result.error
            self._maybe_stop(f"LLM error: {result.error}")
        elif result.finish_reason == "cancelled":
            self._maybe_stop("LLM answer cancelled (the partial answer is kept above).")
        else:
            if thread is not None:
                self._remember(thread, prompt, result.text, keep)
            if args.insert and result.text:
                self._ip.set_next_input(result.code, replace=False)

    def _consume(self, stream: ChatStream, label: str, fmt: str, live: bool) -> LLMResult:
        """Iterate the stream into a coalesced display; an interrupt ends it cleanly."""
        from .errors import ViagentError

        make = output_class(fmt)
        display_cap = self.display_max_bytes if self.display_max_bytes > 0 else None
        result_cap = self.result_max_bytes if self.result_max_bytes > 0 else None

        def render(text: str) -> Bundle:
            footer = Footer(label, stream.model, elapsed=stream.elapsed, status="streaming")
            reasoning = view.reasoning if view is not None else ""
            return make(clip_for_display(text, display_cap), footer, final=False,
                        reasoning=clip_for_display(reasoning, display_cap))._repr_mimebundle_()

        view = StreamDisplay(self._publish, render, interval=self.update_interval,
                             bytes_per_second=self.update_bytes_per_second) if live else None
        error: ViagentError | None = None
        size = 0
        truncated_at: int | None = None
        try:
            # a tool chat shows its answer from the first delta on, below the tool lines
            if view is not None and not hasattr(stream, "steps"):
                view.start()
            for kind, delta in stream.events():
                size += utf8_size(delta)  # reasoning counts too: it is held in memory
                if result_cap is not None and size > result_cap:
                    truncated_at = result_cap
                    stream.close()  # stop the answer (and its memory) at the cap
                    break
                if view is None:
                    continue
                if kind == "text":
                    view.add(delta)
                else:
                    view.add_reasoning(delta)
        except KeyboardInterrupt:
            # The interrupt may land inside the stream (which then ended itself) or in our
            # display code (the stream is suspended): close() covers both, records usage.
            stream.close()
        except ViagentError as exc:
            error = exc
        text = stream.text
        if truncated_at is not None:
            text = clip(text, truncated_at)[0]
        result = LLMResult(
            text=text, provider=stream.provider, model=stream.model, label=label,
            format=fmt, usage=stream.usage, cost=stream.cost, finish_reason=stream.finish_reason,
            elapsed=stream.elapsed, error=error, display_max_bytes=display_cap,
            truncated_at=truncated_at, reasoning=stream.reasoning,
        )
        result.steps = list(getattr(stream, "steps", ()))
        bundle = result._repr_mimebundle_()
        if view is not None:
            view.finish(bundle)
        else:
            self._publish(bundle, uuid.uuid4().hex, False)
        self._last_view = view  # for tests and benchmarks: .updates, .bytes
        return result

    def _compare(self, args: PromptArgs, prompt: str, fmt: str) -> None:
        """Several models, one prompt: concurrent streams shown side by side."""
        from ._compare import Comparison

        ws = self.ws
        default = args.provider or self.default_provider or None
        targets = [(p or default, m) for p, m in args.targets]
        comparison = Comparison(ws, prompt, targets, system=args.system,
                                temperature=args.temperature, max_tokens=args.max_tokens,
                                source="magic", log=self.log and args.log)
        for column in comparison.columns:  # each column's display is capped like one answer
            column.display_max_bytes = self.display_max_bytes if self.display_max_bytes > 0 \
                else None
        live = args.stream and self._can_update()
        view = StreamDisplay(self._publish, lambda _text: comparison.bundle(fmt),
                             interval=self.update_interval,
                             bytes_per_second=self.update_bytes_per_second) if live else None
        if view is not None:
            view.start()

        def tick() -> None:
            if view is not None and comparison.changed():
                view.add("")  # coalesced like a single answer's deltas

        comparison.run(tick=tick, interval=max(self.update_interval, 0.02))
        results = comparison.results(fmt)
        if view is not None:
            view.finish(results._repr_mimebundle_())
        else:
            self._show(results)
        self._last_view = view
        self._store(results, args)
        errors = [r.error for r in results if r.error is not None]
        if errors:
            self.last_error = errors[0]
            self._maybe_stop(f"LLM error: {errors[0]}")
        elif any(r.finish_reason == "cancelled" for r in results):
            self._maybe_stop("LLM comparison cancelled (the partial answers are kept above).")

    def _store(self, result: Any, args: PromptArgs) -> None:
        self._ip.user_ns["_llm"] = result
        if args.output:
            self._ip.user_ns[args.output] = result

    def _maybe_stop(self, message: str) -> None:
        if self.stop_on_error:
            raise LLMCellStopped(message)

    def _thread(self, name: str, keep: bool) -> list[dict[str, str]]:
        """A thread's messages: this kernel's copy, else the one stored in the history."""
        if name not in self.threads and keep:
            from .history import safe

            stored = safe(lambda: self.ws.history.thread(name), [])
            if stored:
                self.threads[name] = stored
        return list(self.threads.get(name, ()))

    def _forget(self, name: str | None = None) -> int:
        """End one thread (or all): here and in the history. Returns messages dropped."""
        from .history import safe

        if name is None:
            names = set(self.threads) | set(safe(lambda: self.ws.history.threads(), []))
            self.threads.clear()
            self._unlogged.clear()
            safe(lambda: self.ws.history.drop_thread())
            return len(names)
        here = len(self.threads.pop(name, ()))
        self._unlogged.discard(name)
        stored = len(safe(lambda: self.ws.history.thread(name), []))
        safe(lambda: self.ws.history.drop_thread(name))
        return max(here, stored)

    def _remember(self, thread: str, prompt: str, answer: str, keep: bool = False) -> None:
        history = [*self.threads.get(thread, ()), {"role": "user", "content": prompt},
                   {"role": "assistant", "content": answer}]
        cap = max(0, self.max_history)
        history = history[len(history) - cap:] if cap else []
        while history and history[0]["role"] != "user":
            history.pop(0)  # a conversation sent to a provider starts with the user
        self.threads[thread] = history
        if keep:
            from .history import safe

            safe(lambda: self.ws.history.save_thread(thread, history))

    # -- line commands ---------------------------------------------------------------------------
    def _cmd_help(self, argv: list[str]) -> None:
        print(help_text())

    def _cmd_providers(self, argv: list[str]) -> None:
        from .schema import TYPE_NAMES

        ws = self.ws
        ws.providers.refresh()
        selected = ws.providers.selected
        rows = []
        for cfg in ws.providers.list():
            key = (f"{cfg.api_key_hint or 'set'} ({cfg.key_source})" if cfg.has_api_key
                   else "none")
            rows.append(["*" if cfg.id == selected else "", cfg.id, cfg.name,
                         TYPE_NAMES.get(cfg.provider_type, cfg.provider_type),
                         cfg.default_model or "-", key])
        self._show(Table(["", "id", "name", "type", "model", "key"], rows,
                         empty="No providers yet: create one with %llm panel or "
                               "ws.providers.create(...)."))

    def _cmd_use(self, argv: list[str]) -> None:
        if len(argv) != 1:
            raise _usage_error("%llm use takes one provider id")
        ws = self.ws
        ws.providers.select(argv[0])
        cfg = ws.providers.get(argv[0])
        model = f", model {cfg.default_model}" if cfg.default_model else ""
        print(f"Using '{cfg.id}' ({cfg.display_label}{model}).")

    def _cmd_models(self, argv: list[str]) -> None:
        refresh = "--refresh" in argv
        rest = [a for a in argv if a != "--refresh"]
        if len(rest) > 1 or any(a.startswith("-") for a in rest):
            raise _usage_error("%llm models takes [ID] [--refresh]")
        from .registry import StaleModelListWarning

        ws = self.ws
        pid = rest[0] if rest else (self.default_provider or ws.require_selected())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StaleModelListWarning)
            models = ws.models(pid, refresh=refresh)
        rows = []
        for m in models:
            price = "-"
            if m.pricing:
                price = (f"${float(m.pricing['prompt']) * 1e6:.4g} / "
                         f"${float(m.pricing['completion']) * 1e6:.4g}")
            rows.append([m.id, f"{m.context_length:,}" if m.context_length else "-", price])
        stale = getattr(models, "stale", False)
        note = None
        if refresh and not stale:
            note = (f"added: {', '.join(getattr(models, 'added', [])) or 'none'}; "
                    f"removed: {', '.join(getattr(models, 'removed', [])) or 'none'}")
        self._show(Table(["model", "context", "price per 1M tokens (in / out)"], rows,
                         note=note, empty=f"'{pid}' lists no models.",
                         warning="Could not refresh the list; this is the cached one."
                         if stale else None))

    def _cmd_prices(self, argv: list[str]) -> None:
        from ._cost_magics import cmd_prices

        cmd_prices(self, argv)

    def _cmd_budget(self, argv: list[str]) -> None:
        from ._cost_magics import cmd_budget

        cmd_budget(self, argv)

    def _cmd_stats(self, argv: list[str]) -> None:
        if argv and argv[0] in ("--today", "--month") and len(argv) == 1:
            from ._cost_magics import period_total

            return period_total(self, argv[0][2:])
        if argv:
            raise _usage_error("%llm stats takes [--today | --month]")
        stats = self.ws.stats
        rows = []
        for r in stats.all():
            known = r.tokens_known  # every request unreported: unknown, not 0
            rows.append([r.provider, r.model, str(r.requests),
                         str(r.prompt_tokens) if known else "—",
                         str(r.completion_tokens) if known else "—",
                         "—" if r.cost is None else f"${r.cost:.6f}",
                         str(r.errors),
                         r.last_used.strftime("%Y-%m-%d %H:%M") if r.last_used else "-"])
        t = stats.totals
        note = None
        if rows:
            cost = t.get("cost")
            note = (f"total: {t.get('requests', 0)} requests, {t.get('prompt_tokens', 0)} prompt "
                    f"+ {t.get('completion_tokens', 0)} completion tokens"
                    + (f", ${cost:.6f}" if cost is not None else ""))
        self._show(Table(["provider", "model", "requests", "prompt", "completion", "cost",
                          "errors", "last used"], rows, note=note, empty="No usage yet."))

    def _cmd_key(self, argv: list[str]) -> None:
        session = "--session" in argv
        rest = [a for a in argv if a != "--session"]
        if len(rest) > 1:  # never echo what was typed: it may be the key itself
            raise UsageError("%llm key takes only a provider id; the key is asked for with a "
                             "hidden prompt. Never type a key into a cell (if you did, rotate it).")
        if len(rest) != 1:
            raise _usage_error("%llm key needs a provider id: %llm key ID [--session]")
        ws = self.ws
        cfg = ws.providers.get(rest[0])
        import getpass

        try:
            secret = getpass.getpass(f"API key for {cfg.display_label} (input hidden): ")
        except StdinNotImplementedError:
            print("This front end cannot ask for input; set the key with "
                  f"ws.providers.set_key('{cfg.id}', getpass.getpass()) instead.")
            return
        except (EOFError, KeyboardInterrupt):
            print("No key entered; nothing changed.")
            return
        secret = secret.strip()
        if not secret:
            print("No key entered; nothing changed.")
            return
        cfg = ws.providers.set_key(cfg.id, secret, persist=not session)
        del secret
        if session:
            print(f"Key for '{cfg.id}' held for this session only ({cfg.api_key_hint}).")
        else:
            print(f"Key for '{cfg.id}' stored encrypted ({cfg.api_key_hint}); the master key "
                  f"is in {ws.vault.location()}.")

    def _cmd_reset(self, argv: list[str]) -> None:
        if len(argv) > 1:
            raise _usage_error("%llm reset takes [THREAD]")
        if argv:
            dropped = self._forget(argv[0])
            print(f"Conversation '{argv[0]}' reset ({dropped} messages forgotten).")
        else:
            count = self._forget()
            print(f"All conversations reset ({count} thread{'' if count == 1 else 's'}).")

    def _cmd_history(self, argv: list[str]) -> None:
        if len(argv) > 1:
            raise _usage_error("%llm history takes [THREAD]")
        from .history import safe

        stored = safe(lambda: self.ws.history.threads(), []) if self.log else []
        names = argv or sorted(set(self.threads) | set(stored))
        if not names:
            print("No conversations yet (use %%llm --chat).")
        for name in names:
            messages = self._thread(name, self.log)
            print(f"== {name} ({len(messages)} messages)")
            for msg in messages:
                print(f"[{msg['role']}] {msg['content']}")

    def _cmd_log(self, argv: list[str]) -> None:
        from ._magic_log import log_command

        log_command(self.ws, argv, self._show)

    def _cmd_fix(self, argv: list[str]) -> None:
        """``%llm fix [options]``: why did the last cell fail, and how to fix it."""
        from ._magic_context import FIX_PROMPT

        args = parse_prompt_args(argv)
        self._prompt(dataclasses.replace(args, with_=("error", *args.with_)), FIX_PROMPT)

    def _cmd_error(self, argv: list[str]) -> None:
        exc = self.last_error
        if exc is None:
            print("No LLM error in this session.")
            return
        details = {
            "type": type(exc).__name__,
            "code": getattr(exc, "code", None),
            "message": str(exc),
            "provider": getattr(exc, "provider", None),
            "model": getattr(exc, "model", None),
            "status": getattr(exc, "status_code", None),
            "error type": getattr(exc, "error_type", None),
            "provider message": getattr(exc, "provider_message", None),
            "retry after": getattr(exc, "retry_after", None),
        }
        for name, value in details.items():
            if value is not None:
                print(f"{name + ':':<18}{value}")

    def _widget(self, name: str) -> Any:
        """``viagent_jupyter.widgets.<name>(ws)``, or a one-line note when they cannot load."""
        try:
            from . import widgets

            return getattr(widgets, name)(self.ws)
        except ModuleNotFoundError as exc:
            if exc.name not in _WIDGET_MODULES:
                raise
            print(f"widgets not available ({exc.name} is not installed); use the Python API "
                  "(ws.providers...) or install viagent_jupyter[lab].")
            return None

    def _cmd_panel(self, argv: list[str]) -> Any:
        return self._widget("panel")  # the cell's result: displayed below it

    def _cmd_sidebar(self, argv: list[str]) -> None:
        self._widget("sidebar")  # shows itself: the lab sidebar, a sidecar or the panel inline


# -- extension hooks -------------------------------------------------------------------------

def load(ipython: Any, workspace: Workspace | None = None) -> LLMMagics:
    """Register ``%%llm``/``%llm`` on ``ipython`` (what ``%load_ext`` calls)."""
    from ._images import DisplayRecorder

    magics = LLMMagics(ipython, workspace=workspace)
    ipython.register_magics(magics)
    DisplayRecorder().install(ipython)  # --image Out[n] / last: the images cells showed
    return magics


LLMMagics.llm.__doc__ = help_text()  # what %llm? and %%llm? show


def unload(ipython: Any) -> None:
    """Remove what :func:`load` registered (what ``%unload_ext`` calls)."""
    manager = ipython.magics_manager
    magics = manager.registry.pop(LLMMagics.__name__, None)
    for kind in ("line", "cell"):
        fn = manager.magics[kind].get("llm")
        if fn is not None and getattr(fn, "__self__", None) is magics:
            del manager.magics[kind]["llm"]
    configurables = getattr(ipython, "configurables", None)
    if magics is not None and configurables is not None and magics in configurables:
        configurables.remove(magics)
