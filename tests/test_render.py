"""Safe rendering of model output, the output formats, and the coalescing live display."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from viagent_jupyter._display import (
    CodeOutput,
    ErrorOutput,
    Footer,
    JSONOutput,
    LLMResult,
    MarkdownOutput,
    StreamDisplay,
    Table,
    TextOutput,
    extract_code,
    parse_json_answer,
    render_markdown,
)

ATTACKS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "[y](JaVaScRiPt:alert(1))",
    "[z](vbscript:msgbox(1))",
    "[d](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<javascript:alert(1)>",
    "![pic](javascript:alert(1))",
    "![pic](http://tracker.example/p.png)",
    '<a href="javascript:alert(1)">a</a>',
    "<iframe src=//evil></iframe><style>*{}</style><svg onload=alert(1)>",
    "[rel](../../api/contents)",
    "<div onmouseover=alert(1)>hover</div>",
    "`<script>` in code and\n\n```\n<script>alert(1)</script>\n```",
]

_DANGEROUS_TAGS = {"script", "img", "iframe", "object", "embed", "style", "svg", "math", "form",
                   "input", "link", "meta", "base", "frame", "frameset", "video", "audio"}
_SAFE_SCHEMES = ("http://", "https://", "mailto:")


class _Inspector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DANGEROUS_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{tag}[{name}]")
            if name in ("href", "src", "action", "formaction", "xlink:href"):
                v = (value or "").strip().lower()
                if not v.startswith(_SAFE_SCHEMES):
                    self.problems.append(f"{tag}[{name}={value!r}]")


def html_problems(html: str) -> list[str]:
    """Active content in ``html``: dangerous tags, on* handlers, non-http(s)/mailto links."""
    p = _Inspector()
    p.feed(html)
    p.close()
    return p.problems


def assert_safe_bundle(bundle: dict[str, Any]) -> None:
    assert isinstance(bundle.get("text/plain"), str), bundle.keys()
    assert "text/markdown" not in bundle
    assert set(bundle) <= {"text/plain", "text/html", "application/json"}, bundle.keys()
    if "text/html" in bundle:
        assert html_problems(bundle["text/html"]) == [], bundle["text/html"]


def test_the_inspector_catches_what_it_should() -> None:
    assert sorted(html_problems('<img src=x onerror="alert(1)">')) == [
        "<img>", "img[onerror]", "img[src='x']"]
    assert html_problems('<a href="javascript:alert(1)">x</a>')
    assert html_problems('<a href="https://ok">x</a><p>fine</p>') == []


@pytest.mark.parametrize("attack", ATTACKS)
def test_markdown_rendering_leaves_no_active_html(attack: str) -> None:
    html = render_markdown(f"Intro\n\n{attack}\n\nand **bold** [ok](https://example.com)")
    assert html_problems(html) == [], html
    assert '<a href="https://example.com"' in html
    assert "<strong>bold</strong>" in html


def test_raw_html_shows_as_text() -> None:
    html = render_markdown("<script>alert(1)</script> and <b>bold?</b>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html


def test_allowed_markdown_survives() -> None:
    html = render_markdown(
        "# Title\n\n| a | b |\n|:-|-:|\n| 1 | 2 |\n\n~~gone~~ `x<y`\n\n"
        "```python\nif a < b:\n    pass\n```\n\n1. one\n2. two\n\n> quote\n\n"
        "[mail](mailto:a@b.c)"
    )
    assert "<h1>Title</h1>" in html
    assert '<th style="text-align:left">a</th>' in html
    assert '<td style="text-align:right">2</td>' in html
    assert "<s>gone</s>" in html
    assert "<code>x&lt;y</code>" in html
    assert '<code class="language-python">if a &lt; b:' in html
    assert "<ol>" in html and "<blockquote>" in html
    assert 'href="mailto:a@b.c"' in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_a_hostile_code_fence_language_loses_its_class() -> None:
    html = render_markdown('```x" onclick="alert(1)\ncode\n```')
    assert html == "<pre><code>code\n</code></pre>\n"


@pytest.mark.parametrize("cls", [MarkdownOutput, TextOutput, CodeOutput, JSONOutput])
@pytest.mark.parametrize("final", [True, False])
def test_every_output_bundle_is_safe(cls: type[Any], final: bool) -> None:
    text = "\n\n".join(ATTACKS)
    footer = Footer("<b>label</b>", "<img src=x onerror=alert(1)>", 1, 2, 0.5, 1.0,
                    "cancelled")
    for error in (None, "<script>alert(1)</script>"):
        bundle = cls(text, footer, error, final=final)._repr_mimebundle_()
        assert_safe_bundle(bundle)
        assert "cancelled" in bundle["text/plain"]


def test_text_format_is_plain_only() -> None:
    bundle = TextOutput("<b>x</b>", Footer("L", "m"))._repr_mimebundle_()
    assert set(bundle) == {"text/plain"}
    assert bundle["text/plain"].startswith("<b>x</b>\n— L · m")


def test_code_format_extracts_fenced_blocks_and_escapes() -> None:
    answer = "Here:\n```python\nprint('<hi>')\n```\nand\n~~~\nx = 1\n~~~\nDone."
    assert extract_code(answer) == "print('<hi>')\n\nx = 1"
    assert extract_code("just code()") == "just code()"
    assert extract_code("```py\nunterminated = True\n") == "unterminated = True"
    bundle = CodeOutput(answer, None)._repr_mimebundle_()
    assert bundle["text/html"] == ("<pre class=\"viagent-llm-code\"><code>print(&#x27;&lt;hi&gt;"
                                   "&#x27;)\n\nx = 1</code></pre>")
    assert bundle["text/plain"] == "print('<hi>')\n\nx = 1"
    # while streaming the raw text is shown
    assert CodeOutput(answer, None, final=False).code == answer


def test_json_format() -> None:
    data, warning = parse_json_answer('```json\n{"a": [1, 2]}\n```')
    assert data == {"a": [1, 2]} and warning is None
    out = JSONOutput('{"a": 1}', Footer("L", "m"))
    bundle = out._repr_mimebundle_()
    assert bundle["application/json"] == {"a": 1}
    assert bundle["text/plain"].startswith('{\n  "a": 1\n}')
    assert "text/html" not in bundle

    bad = JSONOutput("{'a': 1}", Footer("L", "m"))
    bundle = bad._repr_mimebundle_()
    assert set(bundle) == {"text/plain"}
    warning_lines = [ln for ln in bundle["text/plain"].splitlines() if ln.startswith("Warning")]
    assert len(warning_lines) == 1 and "not valid JSON" in warning_lines[0]
    assert bad.data is None

    scalar = JSONOutput("42", None)._repr_mimebundle_()
    assert scalar == {"text/plain": "42"}


def test_footer_text_and_markers() -> None:
    f = Footer("OPENAI - Work", "gpt-x", 12, 345, 0.000123, 2.04, None)
    assert f.text() == "— OPENAI - Work · gpt-x · 12/345 tokens · $0.000123 · 2.0 s"
    assert "cancelled" in Footer("L", "m", status="cancelled").text()
    assert "error" in Footer("L", "m", status="error").html()
    assert "truncated" in Footer("L", "m", status="truncated").text()
    assert Footer("L", "m", cost=1.5).text().endswith("$1.5000")


def test_error_output_is_one_styled_line() -> None:
    bundle = ErrorOutput("Provider 'x' refused <the> connection")._repr_mimebundle_()
    assert bundle["text/plain"] == "LLM error: Provider 'x' refused <the> connection"
    assert "border-left" in bundle["text/html"]
    assert "&lt;the&gt;" in bundle["text/html"]
    assert "\n" not in bundle["text/plain"]


def test_table_escapes_cells() -> None:
    t = Table(["id", "name"], [["a", "<script>x</script>"]], note="<b>n</b>", warning="<i>w")
    bundle = t._repr_mimebundle_()
    assert_safe_bundle(bundle)
    assert "&lt;script&gt;" in bundle["text/html"] and "&lt;i&gt;w" in bundle["text/html"]
    assert bundle["text/plain"].splitlines() == [
        "id  name", "--  ------------------", "a   <script>x</script>", "Warning: <i>w",
        "<b>n</b>"]
    assert Table(["a"], [], empty="nothing")._repr_mimebundle_()["text/plain"] == "nothing"


def test_llm_result() -> None:
    r = LLMResult(text='```json\n{"k": true}\n```', provider="p", model="m", label="P - p",
                  format="json", usage=None, cost=None, finish_reason="stop", elapsed=0.5)
    assert str(r) == r.text
    assert r.data == {"k": True}
    assert "LLMResult(provider='p'" in repr(r)
    assert r._repr_mimebundle_()["application/json"] == {"k": True}
    from viagent_jupyter.errors import ProviderConnectionError

    failed = LLMResult(text="", provider="p", model=None,
                       error=ProviderConnectionError("Cannot reach 'p'.", "p"))
    assert failed._repr_mimebundle_()["text/plain"] == "LLM error: Cannot reach 'p'."
    assert failed.status == "error"


# -- the live display ------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _display(clock: FakeClock, **kw: Any) -> tuple[StreamDisplay, list[tuple[str, bool]],
                                                   list[str]]:
    published: list[tuple[str, bool]] = []
    renders: list[str] = []

    def publish(data: dict[str, Any], display_id: str, update: bool) -> None:
        published.append((data["text/plain"], update))

    def render(text: str) -> dict[str, Any]:
        renders.append(text)
        return {"text/plain": text}

    return StreamDisplay(publish, render, clock=clock, **kw), published, renders


def test_stream_display_coalesces_fast_deltas() -> None:
    clock = FakeClock()
    view, published, renders = _display(clock, interval=0.05, bytes_per_second=0)
    view.start()
    for i in range(1000):  # 1,000 deltas in 1 s
        clock.now += 0.001
        view.add(f"{i % 10}")
    view.finish({"text/plain": "final"})
    assert published[0] == ("", False)
    assert all(update for _, update in published[1:])
    assert published[-1] == ("final", True)
    assert 19 <= len(published) <= 22  # ~20/s plus the first and the final
    assert len(renders) == len(published) - 1  # rendered only when an update fires
    assert view.updates == len(published)
    assert renders[-1] == "".join(f"{i % 10}" for i in range(len(renders[-1])))


def test_stream_display_shows_slow_deltas_at_once() -> None:
    clock = FakeClock()
    view, published, _ = _display(clock, interval=0.05)
    view.start()
    for word in ["a ", "b ", "c "]:
        clock.now += 0.2
        view.add(word)
    assert [t for t, _ in published] == ["", "a ", "a b ", "a b c "]


def test_stream_display_sends_big_answers_less_often() -> None:
    clock = FakeClock()
    view, published, _ = _display(clock, interval=0.05, bytes_per_second=10_000)
    view.start()
    for _ in range(2000):  # 2,000 × 50 chars in 2 s: the answer grows to 100 kB
        clock.now += 0.001
        view.add("x" * 50)
    sizes = [len(text) for text, _ in published]
    # each bundle of s bytes is followed by s / rate seconds of quiet: what was sent before
    # the last one fits in rate × elapsed
    assert sum(sizes[:-1]) <= 10_000 * 2.0, sizes
    assert len(published) < 12
