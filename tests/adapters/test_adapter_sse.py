"""The byte-level SSE and NDJSON decoders (WHATWG line rules, bounded memory)."""

from __future__ import annotations

import pytest
from adapter_support import split_after_cr, split_every, split_random

from viagent_jupyter.adapters import _sse
from viagent_jupyter.adapters._sse import MAX_LINE_BYTES, NDJSONDecoder, SSEDecoder
from viagent_jupyter.errors import ProviderResponseError


def sse_events(chunks: list[bytes], **kw: bool) -> list[tuple[bytes, bytes]]:
    dec = SSEDecoder("p", **kw)
    out: list[tuple[bytes, bytes]] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out + dec.close()


def all_chunkings(body: bytes) -> list[list[bytes]]:
    return [[body], split_every(body, 1), split_every(body, 2), split_every(body, 7),
            split_random(body, 1), split_random(body, 2, 5), split_after_cr(body)]


def assert_events(body: bytes, want: list[tuple[bytes, bytes]]) -> None:
    for chunks in all_chunkings(body):
        assert sse_events(chunks) == want, chunks


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_line_endings(eol: bytes) -> None:
    body = eol.join([b"data: one", b"", b"event: x", b"data: two", b"", b""])
    assert_events(body, [(b"", b"one"), (b"x", b"two")])


def test_crlf_split_between_cr_and_lf() -> None:
    dec = SSEDecoder("p")
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\n\r") == [(b"", b"a")]  # the CR ended the blank line already
    assert dec.feed(b"\ndata: b\r\n\r\n") == [(b"", b"b")]  # this LF pairs with that CR
    assert dec.close() == []


def test_lone_cr_then_lf_is_two_line_ends_only_when_apart() -> None:
    # "\r" + "\n" in separate chunks is one line end; "\n" after other bytes is its own.
    assert sse_events([b"data: a\r", b"\n", b"\n"]) == [(b"", b"a")]
    assert sse_events([b"data: a\r", b"x\n\n"]) == [(b"", b"a")]  # "x" is an unknown field


def test_comments_are_ignored_and_do_not_dispatch() -> None:
    body = b": OPENROUTER PROCESSING\n\n: keep-alive\n\ndata: {}\n\n:\n\n"
    assert_events(body, [(b"", b"{}")])


def test_data_without_space_and_multiline() -> None:
    assert_events(b"data:line1\ndata: line2\ndata:  two spaces\n\n",
                  [(b"", b"line1\nline2\n two spaces")])


def test_cr_only_stream_with_comment_multiline() -> None:  # the fact sheet's example
    assert_events(b": hi\rdata:line1\rdata: line2\r\r", [(b"", b"line1\nline2")])


def test_field_without_colon_and_empty_data() -> None:
    # "data" alone is an empty data line; an event whose data is empty is not dispatched
    assert_events(b"data\n\ndata:\n\nevent: e\n\ndata\ndata\n\n", [(b"", b"\n")])


def test_event_name_resets_after_dispatch_and_other_fields_ignored() -> None:
    body = b"event: a\nid: 7\nretry: 100\nfoo: bar\ndata: 1\n\ndata: 2\n\n"
    assert_events(body, [(b"a", b"1"), (b"", b"2")])


def test_utf8_split_across_chunks() -> None:
    payload = '{"t": "pelican 🦅 ’ ok"}'.encode()
    body = b"data: " + payload + b"\n\n"
    assert_events(body, [(b"", payload)])
    assert len("🦅".encode()) == 4


def test_unicode_line_separators_are_not_line_ends() -> None:
    payload = '{"t": "a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg"}'.encode()
    assert_events(b"data: " + payload + b"\n\n", [(b"", payload)])


def test_bom_at_start_is_dropped() -> None:
    assert_events(b"\xef\xbb\xbfdata: x\n\n", [(b"", b"x")])
    # only at the very start
    assert sse_events([b"data: x\n\n\xef\xbb\xbfdata: y\n\n"]) == [(b"", b"x")]


def test_close_dispatches_last_event_without_blank_line() -> None:
    assert sse_events([b"data: a\n\ndata: [DONE]\n"]) == [(b"", b"a"), (b"", b"[DONE]")]
    assert sse_events([b"data: [DONE]"]) == [(b"", b"[DONE]")]
    assert sse_events([b""]) == []


def test_stray_lines_kept_only_when_asked() -> None:
    body = b'{\n  "error": {\n    "code": 500\n  }\n}\n'
    assert sse_events([body]) == []
    dec = SSEDecoder("p", keep_stray=True)
    assert dec.feed(body) == []
    assert b"\n".join(dec.stray) == body.rstrip(b"\n")


def test_line_over_limit_raises_in_pieces() -> None:
    dec = SSEDecoder("prov-x")
    piece = b"a" * (1 << 20)
    dec.feed(b"data: ")
    with pytest.raises(ProviderResponseError, match=r"prov-x.*16 MiB"):
        for _ in range(17):
            dec.feed(piece)


def test_line_over_limit_raises_in_one_chunk() -> None:
    body = b"data: ok\n\ndata: " + b"b" * (MAX_LINE_BYTES + 1) + b"\n\n"
    with pytest.raises(ProviderResponseError, match="16 MiB"):
        SSEDecoder("p").feed(body)


def test_line_at_limit_is_fine() -> None:
    line = b"data:" + b"c" * (MAX_LINE_BYTES - 5)
    events = SSEDecoder("p").feed(line + b"\n\n")
    assert len(events) == 1 and len(events[0][1]) == MAX_LINE_BYTES - 5


def test_event_of_many_lines_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sse, "MAX_LINE_BYTES", 100)
    dec = SSEDecoder("p")
    with pytest.raises(ProviderResponseError, match="an event"):
        dec.feed(b"data: " + b"x" * 60 + b"\n" + b"data: " + b"y" * 60 + b"\n")


def test_stray_text_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sse, "MAX_LINE_BYTES", 100)
    dec = SSEDecoder("p", keep_stray=True)
    with pytest.raises(ProviderResponseError, match="non-SSE"):
        dec.feed(b"x" * 60 + b"\n" + b"y" * 60 + b"\n")


# --------------------------------------------------------------------------- NDJSON


def nd_lines(chunks: list[bytes]) -> list[bytes]:
    dec = NDJSONDecoder("p")
    out: list[bytes] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out + dec.close()


def test_ndjson_splits_on_lf_only() -> None:
    body = '{"a": "x\u0085y\u2028z\rw"}\n\n  \n{"b": 2}\r\n{"c": 3}'.encode()
    want = ['{"a": "x\u0085y\u2028z\rw"}'.encode(), b'{"b": 2}\r', b'{"c": 3}']
    for chunks in all_chunkings(body):
        assert nd_lines(chunks) == want


def test_ndjson_line_over_limit() -> None:
    dec = NDJSONDecoder("prov-y")
    with pytest.raises(ProviderResponseError, match="prov-y"):
        dec.feed(b"{" + b" " * (MAX_LINE_BYTES + 1))
