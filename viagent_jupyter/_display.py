"""What ``%%llm`` shows: safe MIME bundles for model output, and a coalesced live display.

Model output is untrusted (it may repeat anything the model read), so every bundle built here
is safe to publish:

* ``text/plain`` is always present;
* ``text/html`` is either our own template around :func:`html.escape`-d text, or Markdown
  rendered by markdown-it-py with raw HTML *disabled* and then cleaned by nh3 with a short
  allow-list (no images, no attributes but a checked ``href``, table alignment and a code
  ``language-*`` class; links other than http/https/mailto are dropped);
* ``text/markdown`` is never published (a front end would render it with its own rules).

:class:`StreamDisplay` is the live view: one display output (one ``display_id``) updated as
deltas arrive, at most once per ``interval`` and, for long answers, at most
``bytes_per_second`` of bundle per second, plus always a final update. Rendering happens
only when an update fires, never per delta.

Nothing heavy is imported at module level: markdown-it and nh3 load on the first render.
"""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .errors import ViagentError

__all__ = [
    "FORMATS",
    "CodeOutput",
    "ErrorOutput",
    "Footer",
    "JSONOutput",
    "LLMResult",
    "MarkdownOutput",
    "StreamDisplay",
    "Table",
    "TextOutput",
    "bundle_size",
    "clip",
    "clip_for_display",
    "extract_code",
    "output_class",
    "parse_json_answer",
    "render_markdown",
    "utf8_size",
]

FORMATS = ("markdown", "text", "code", "json")

Bundle = dict[str, Any]

# -- safe Markdown ---------------------------------------------------------------------------

_TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code",
    "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
})
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"},
               "code": {"class"}}
_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_ALIGN = re.compile(r"text-align:(left|right|center)")
_LANG_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")

_markdown: Any = None
_clean: Callable[[str], str] | None = None


def _safe_attribute(tag: str, name: str, value: str) -> str | None:
    """nh3 callback: keep an allowed attribute only when its value is harmless."""
    if name == "href":
        try:
            scheme = urlsplit(value.strip()).scheme.lower()
        except ValueError:
            return None
        return value if scheme in _URL_SCHEMES else None  # relative links go too
    if name == "style":
        return value if _ALIGN.fullmatch(value.replace(" ", "")) else None
    if name == "class":
        return value if _LANG_CLASS.fullmatch(value) else None
    if name == "start":
        return value if value.isdigit() and len(value) < 10 else None
    if name in ("title", "rel"):  # rel: the noopener/noreferrer/nofollow nh3 adds
        return value
    return None


def _renderer() -> tuple[Any, Callable[[str], str]]:
    global _markdown, _clean
    if _markdown is None or _clean is None:
        import nh3
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
        md.enable(["table", "strikethrough"])
        md.disable("image")  # no remote images (tracking); ![alt](url) renders as a link
        options: dict[str, Any] = {
            "tags": set(_TAGS),
            "clean_content_tags": {"script", "style"},
            "attributes": {k: set(v) for k, v in _ATTRIBUTES.items()},
            "attribute_filter": _safe_attribute,
            "url_schemes": set(_URL_SCHEMES),
            "link_rel": "noopener noreferrer nofollow",
            "strip_comments": True,
        }
        cleaner_cls = getattr(nh3, "Cleaner", None)
        if cleaner_cls is not None:
            cleaner = cleaner_cls(**options)
            _clean = cleaner.clean
        else:  # older nh3: same options, one call each time
            def _clean_old(text: str) -> str:
                return str(nh3.clean(text, **options))

            _clean = _clean_old
        _markdown = md
    return _markdown, _clean


def render_markdown(text: str) -> str:
    """Markdown → HTML that is safe to publish (raw HTML in ``text`` stays visible text)."""
    md, clean = _renderer()
    return clean(md.render(text))


# -- pieces of a bundle ----------------------------------------------------------------------

_CSS_BOX = "margin:0;padding:0"
_CSS_FOOTER = ("margin-top:4px;color:#888;font-size:0.85em;"
               "font-family:var(--jp-ui-font-family,sans-serif)")
_CSS_ERROR = ("border-left:4px solid #d33;padding:4px 8px;margin:4px 0;color:#a11;"
              "background:rgba(221,51,51,0.06);white-space:pre-wrap")
_CSS_WARN = "border-left:4px solid #d90;padding:2px 8px;margin:4px 0;color:#850"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _money(cost: float) -> str:
    if cost == 0:
        return "$0"
    if cost < 0.01:
        return f"${cost:.6f}".rstrip("0")
    return f"${cost:.4f}"


@dataclass(frozen=True)
class Footer:
    """The small line under an answer: who answered, tokens, cost, time, and a marker."""

    label: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    elapsed: float | None = None
    status: str | None = None  # streaming | cancelled | error | truncated | filtered

    def parts(self) -> list[str]:
        out = [self.label, self.model]
        if self.prompt_tokens is not None or self.completion_tokens is not None:
            p = "—" if self.prompt_tokens is None else str(self.prompt_tokens)
            c = "—" if self.completion_tokens is None else str(self.completion_tokens)
            out.append(f"{p}/{c} tokens")
        elif self.status != "streaming":
            out.append("— tokens")  # not reported: unknown, never 0
        if self.cost is not None:
            out.append(_money(self.cost))
        if self.elapsed is not None:
            out.append(f"{self.elapsed:.1f} s")
        return out

    @property
    def marker(self) -> str | None:
        return {"streaming": "streaming…", "cancelled": "cancelled", "error": "⚠ error",
                "truncated": "✂ truncated (max tokens)",
                "filtered": "⚠ stopped by the provider's content filter"}.get(self.status or "")

    def text(self) -> str:
        parts = self.parts()
        if self.marker:
            parts.append(self.marker)
        return "— " + " · ".join(parts)

    def html(self) -> str:
        body = " · ".join(_esc(p) for p in self.parts())
        marker = self.marker
        if marker:
            color = "#888" if self.status == "streaming" else "#c33"
            body += f' · <span style="color:{color};font-weight:600">{_esc(marker)}</span>'
        return f'<div class="viagent-llm-footer" style="{_CSS_FOOTER}">{body}</div>'


def _error_html(message: str) -> str:
    return f'<div class="viagent-llm-error" style="{_CSS_ERROR}">{_esc(message)}</div>'


def _join_plain(*parts: str | None) -> str:
    return "\n".join(p for p in parts if p)


THINKING = "Thinking…"


def thinking_plain(reasoning: str) -> str | None:
    """The model's reasoning as text, marked off above the answer (``None`` when empty)."""
    if not reasoning:
        return None
    return _join_plain(f"[{THINKING}]", reasoning.rstrip("\n"), f"[/{THINKING}]")


def thinking_html(reasoning: str) -> str:
    """The reasoning in a collapsed ``<details>`` above the answer, sanitised like the
    answer (Markdown with raw HTML disabled, then nh3)."""
    if not reasoning:
        return ""
    return (f'<details class="viagent-llm-thinking" style="{_CSS_THINKING}">'
            f"<summary>{_esc(THINKING)}</summary>{render_markdown(reasoning)}</details>")


_CSS_THINKING = "margin:0 0 .4em 0;color:#666;font-size:90%"


class _Output:
    """An answer in one format. ``final`` False while streaming (code/JSON not extracted)."""

    def __init__(self, text: str, footer: Footer | None = None, error: str | None = None,
                 final: bool = True, reasoning: str = "") -> None:
        self.text = text
        self.footer = footer
        self.error = error  # one line, already free of secrets
        self.final = final
        self.reasoning = reasoning  # shown above the answer, collapsed

    def _tail_plain(self) -> str:
        return _join_plain(f"LLM error: {self.error}" if self.error else None,
                           self.footer.text() if self.footer else None)

    def _tail_html(self) -> str:
        return ((_error_html(f"LLM error: {self.error}") if self.error else "")
                + (self.footer.html() if self.footer else ""))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        raise NotImplementedError


class MarkdownOutput(_Output):
    """Markdown rendered safely (text/html) plus the raw text (text/plain)."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        body = render_markdown(self.text) if self.text else ""
        return {
            "text/plain": _join_plain(thinking_plain(self.reasoning), self.text,
                                      self._tail_plain()),
            "text/html": thinking_html(self.reasoning)
                         + f'<div class="viagent-llm" style="{_CSS_BOX}">{body}</div>'
                         + self._tail_html(),
        }


class TextOutput(_Output):
    """Plain text only."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        return {"text/plain": _join_plain(thinking_plain(self.reasoning), self.text,
                                          self._tail_plain())}


_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)",
                    re.MULTILINE | re.DOTALL)


def extract_code(text: str) -> str:
    """The fenced code blocks of an answer (joined), else the whole answer."""
    blocks = [m.group(2).rstrip("\n") for m in _FENCE.finditer(text)]
    return "\n\n".join(blocks) if blocks else text.strip("\n")


class CodeOutput(_Output):
    """A code block: ``<pre><code>`` with the code escaped (no highlighting)."""

    @property
    def code(self) -> str:
        return extract_code(self.text) if self.final else self.text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        code = self.code
        return {
            "text/plain": _join_plain(thinking_plain(self.reasoning), code, self._tail_plain()),
            "text/html": thinking_html(self.reasoning)
                         + f'<pre class="viagent-llm-code"><code>{_esc(code)}</code></pre>'
                         + self._tail_html(),
        }


def parse_json_answer(text: str) -> tuple[Any, str | None]:
    """``(data, None)`` for valid JSON (``` fences stripped), else ``(None, warning)``."""
    m = _FENCE.search(text)
    candidate = m.group(2) if m else text
    try:
        return json.loads(candidate), None
    except RecursionError:  # model output is untrusted: "[[[[…" must not crash the cell
        return None, "The answer is not valid JSON: nested too deeply; shown as text."
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not JSON"
        where = (f" (line {exc.lineno}, column {exc.colno})"
                 if isinstance(exc, json.JSONDecodeError) else "")
        return None, f"The answer is not valid JSON: {reason}{where}; shown as text."


class JSONOutput(_Output):
    """Validated JSON: application/json + text/plain; invalid JSON is text plus a warning."""

    def __init__(self, text: str, footer: Footer | None = None, error: str | None = None,
                 final: bool = True, reasoning: str = "") -> None:
        super().__init__(text, footer, error, final, reasoning)
        self.data: Any = None
        self.warning: str | None = None
        self.valid = False
        if final and not error:
            self.data, self.warning = parse_json_answer(text)
            self.valid = self.warning is None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        thinking = thinking_plain(self.reasoning)
        if not self.valid:
            return {"text/plain": _join_plain(thinking, self.text, f"Warning: {self.warning}"
                                              if self.warning else None, self._tail_plain())}
        pretty = json.dumps(self.data, indent=2, ensure_ascii=False)
        bundle: Bundle = {"text/plain": _join_plain(thinking, pretty, self._tail_plain())}
        if isinstance(self.data, (dict, list)):
            bundle["application/json"] = self.data
        return bundle


_OUTPUTS: dict[str, type[_Output]] = {
    "markdown": MarkdownOutput, "text": TextOutput, "code": CodeOutput, "json": JSONOutput,
}


def output_class(fmt: str) -> type[_Output]:
    return _OUTPUTS[fmt]


class ErrorOutput:
    """One readable error line, styled as an error; never a traceback."""

    def __init__(self, message: str) -> None:
        self.message = message

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        return {"text/plain": f"LLM error: {self.message}",
                "text/html": _error_html(f"LLM error: {self.message}")}


class Table:
    """A small table: aligned text/plain and an escaped text/html ``<table>``, with an
    optional ``note`` line under it and a ``warning`` line (styled) above that."""

    def __init__(self, headers: list[str], rows: list[list[str]], note: str | None = None,
                 empty: str = "(none)", warning: str | None = None) -> None:
        self.headers = headers
        self.rows = rows
        self.note = note
        self.empty = empty
        self.warning = warning

    def plain(self) -> str:
        warning = f"Warning: {self.warning}" if self.warning else None
        if not self.rows:
            return _join_plain(self.empty, warning, self.note)
        widths = [max(len(str(r[i])) for r in [self.headers, *self.rows])
                  for i in range(len(self.headers))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in [self.headers, ["-" * w for w in widths], *self.rows]]
        return _join_plain("\n".join(lines), warning, self.note)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        if not self.rows:
            body = f"<p>{_esc(self.empty)}</p>"
        else:
            head = "".join(f'<th style="text-align:left">{_esc(h)}</th>' for h in self.headers)
            rows = "".join("<tr>" + "".join(f'<td style="text-align:left">{_esc(str(c))}</td>'
                                            for c in row) + "</tr>" for row in self.rows)
            body = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        if self.warning:
            body += f'<div style="{_CSS_WARN}">{_esc(self.warning)}</div>'
        if self.note:
            body += f'<div style="{_CSS_FOOTER}">{_esc(self.note)}</div>'
        return {"text/plain": self.plain(), "text/html": body}


# -- size caps -------------------------------------------------------------------------------

def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (cheap for ASCII)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def clip(text: str, max_bytes: int | None) -> tuple[str, bool]:
    """``text`` cut to at most ``max_bytes`` of UTF-8 (on a character boundary), and whether
    it was cut."""
    if max_bytes is None or max_bytes <= 0 or len(text) <= max_bytes // 4:
        return text, False
    if utf8_size(text) <= max_bytes:
        return text, False
    if text.isascii():
        return text[:max_bytes], True
    return text.encode("utf-8", "surrogatepass")[:max_bytes].decode("utf-8", "ignore"), True


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.3g} MB" if n >= 100_000 else f"{n:,} bytes"


def clip_for_display(text: str, max_bytes: int | None) -> str:
    """The text a display shows: at most ``max_bytes``, with a clear mark when cut."""
    shown, cut = clip(text, max_bytes)
    if not cut:
        return shown
    assert max_bytes is not None
    return (f"{shown}\n\n[… display truncated: showing the first {_mb(max_bytes)} of "
            f"{_mb(utf8_size(text))}; the full text is in _llm (or your -o variable) …]")


# -- the result object -----------------------------------------------------------------------

class LLMResult:
    """The outcome of one ``%%llm`` run; ``_llm`` holds the last one.

    ``str(result)`` is the answer text. ``.data`` is the parsed value for ``-f json``
    (``None`` when the answer is not valid JSON). ``.error`` is the :class:`ViagentError` that
    ended the run, if any; ``finish_reason`` is ``stop``, ``length``, ``cancelled``, ``error``...
    Displaying it shows the answer the way the cell did.
    """

    def __init__(self, *, text: str, provider: str | None, model: str | None,
                 label: str | None = None, format: str = "markdown", usage: Any = None,
                 cost: float | None = None, finish_reason: str | None = None,
                 elapsed: float | None = None, error: ViagentError | None = None,
                 prompt: str | None = None, display_max_bytes: int | None = None,
                 truncated_at: int | None = None, reasoning: str = "") -> None:
        self.text = text
        self.reasoning = reasoning
        #: what the display shows at most (``c.LLMMagics.display_max_bytes``)
        self.display_max_bytes = display_max_bytes
        #: set when the answer outgrew ``c.LLMMagics.result_max_bytes`` and was stopped there
        self.truncated_at = truncated_at
        self.provider = provider
        self.model = model
        self.label = label or provider or ""
        self.format = format
        self.usage = usage
        self.cost = cost
        self.finish_reason = finish_reason
        self.elapsed = elapsed
        self.error = error
        self.prompt = prompt
        self._output = self._make_output()
        self.data: Any = self._output.data if isinstance(self._output, JSONOutput) else None

    @property
    def code(self) -> str:
        """The code of the answer (fenced blocks, else all of it)."""
        return extract_code(self.text)

    @property
    def status(self) -> str | None:
        if self.error is not None:
            return "error"
        return {"cancelled": "cancelled", "length": "truncated",
                "content_filter": "filtered", "error": "error"}.get(self.finish_reason or "")

    @property
    def footer(self) -> Footer:
        u = self.usage
        return Footer(self.label, self.model or "?",
                      getattr(u, "prompt_tokens", None), getattr(u, "completion_tokens", None),
                      self.cost, self.elapsed, self.status)

    def _make_output(self) -> _Output:
        error = str(self.error) if self.error is not None else None
        text = clip_for_display(self.text, self.display_max_bytes)
        if self.truncated_at is not None:
            text += (f"\n\n[… the answer was stopped at {_mb(self.truncated_at)} "
                     "(c.LLMMagics.result_max_bytes) …]")
        return output_class(self.format)(
            text, self.footer, error, final=True,
            reasoning=clip_for_display(self.reasoning, self.display_max_bytes))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (f"LLMResult(provider={self.provider!r}, model={self.model!r}, "
                f"finish_reason={self.finish_reason!r}, chars={len(self.text)})")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        if not self.text and self.error is not None:
            return ErrorOutput(str(self.error))._repr_mimebundle_()
        return self._output._repr_mimebundle_()


# -- the live display ------------------------------------------------------------------------

class Publisher(Protocol):
    def __call__(self, data: Bundle, display_id: str, update: bool) -> None: ...


def bundle_size(bundle: Mapping[str, Any]) -> int:
    """Rough size of a bundle on the wire (characters of its string values)."""
    return sum(len(v) if isinstance(v, str) else 64 for v in bundle.values())


class StreamDisplay:
    """One display output updated as text arrives, coalesced.

    ``add(delta)`` only appends; an update is rendered and published when ``interval``
    seconds have passed since the last one *and* the previous bundle's size allows it under
    ``bytes_per_second`` (so a long answer is resent less often: the IOPub traffic stays
    bounded instead of growing with the square of the answer). ``finish(bundle)`` always
    publishes the final state. ``updates`` counts what was published (the first display
    included); ``bytes`` sums their sizes.

    Coalescing happens on the arrival of a delta: text that arrives just after an update and
    is followed by a silence stays unseen until the next delta or the end (at most one
    interval's worth of text), which keeps the kernel free of timers and threads.
    """

    def __init__(self, publish: Publisher, render: Callable[[str], Bundle], *,
                 interval: float = 0.05, bytes_per_second: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.display_id = uuid.uuid4().hex
        self._publish = publish
        self._render = render
        self.interval = max(0.0, interval)
        self.bytes_per_second = bytes_per_second
        self._clock = clock
        self._text = ""
        self._pending: list[str] = []
        self._reasoning = ""
        self._reasoning_pending: list[str] = []
        self._next_at = 0.0
        self._shown = False
        self.updates = 0
        self.bytes = 0

    @property
    def text(self) -> str:
        if self._pending:
            self._text += "".join(self._pending)
            self._pending = []
        return self._text

    @property
    def reasoning(self) -> str:
        """The reasoning shown so far (the render function reads it)."""
        if self._reasoning_pending:
            self._reasoning += "".join(self._reasoning_pending)
            self._reasoning_pending = []
        return self._reasoning

    def _send(self, bundle: Bundle) -> None:
        size = bundle_size(bundle)
        self._publish(bundle, self.display_id, self._shown)
        self._shown = True
        self.updates += 1
        self.bytes += size
        wait = self.interval
        if self.bytes_per_second > 0:
            wait = max(wait, size / self.bytes_per_second)
        self._next_at = self._clock() + wait

    def start(self) -> None:
        """Show the (empty) answer at once, so the user sees that it is on its way."""
        self._send(self._render(self.text))

    def add(self, delta: str) -> None:
        self._pending.append(delta)
        if self._clock() >= self._next_at:
            self._send(self._render(self.text))

    def add_reasoning(self, delta: str) -> None:
        """Reasoning arrives like text, coalesced the same way (one update for both)."""
        self._reasoning_pending.append(delta)
        if self._clock() >= self._next_at:
            self._send(self._render(self.text))

    def finish(self, bundle: Bundle) -> None:
        """Publish the final state (always)."""
        self._pending = []
        self._reasoning_pending = []
        self._send(bundle)
