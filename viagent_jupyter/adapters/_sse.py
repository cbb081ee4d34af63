"""Incremental, byte-level decoders for the two streaming framings we meet: SSE and NDJSON.

Both work on raw ``bytes`` in any chunking (1 byte at a time or a whole body) and never
use ``str.splitlines`` (which would also split on U+2028, U+0085, \\x0b, ... inside JSON
strings). UTF-8 is never decoded here: complete lines/event payloads are handed over as
``bytes`` and ``json.loads`` decodes each one whole, so a multi-byte character split
across network chunks is safe.

SSE follows the WHATWG rules (https://html.spec.whatwg.org/multipage/server-sent-events.html):

* lines end with CRLF, LF or CR; a CR that ends one chunk pairs with an LF that starts
  the next;
* a line starting with ``:`` is a comment (keep-alive) and is ignored;
* ``field:value`` with at most one space stripped after the colon; a line without a colon
  is a field with an empty value; ``id``/``retry`` and unknown fields are ignored;
* ``data`` lines of one event are joined with ``\\n``; ``event`` names the event;
* a blank line dispatches the event (nothing is dispatched when no data was given);
* a UTF-8 BOM at the very start of the stream is dropped.

At end of body (``close``) we are more lenient than the spec, which drops an event that is
not followed by a blank line: the last complete lines are still dispatched, so a server that
ends with ``data: [DONE]\\n`` (no blank line) is not reported as truncated. Whether the
stream really finished is the protocol parser's business (its terminal marker), not ours.

Memory is bounded: a line (or one event's data) longer than :data:`MAX_LINE_BYTES` raises
:class:`~viagent_jupyter.errors.ProviderResponseError` instead of growing without limit.
"""

from __future__ import annotations

from ..errors import ProviderResponseError

__all__ = ["MAX_LINE_BYTES", "NDJSONDecoder", "SSEDecoder", "SSEEvent"]

#: The longest line (and the largest SSE event payload) we accept, in bytes.
MAX_LINE_BYTES = 16 * 1024 * 1024

#: ``(event name, data)``: the name is ``b""`` when the event had no ``event:`` field.
SSEEvent = tuple[bytes, bytes]

_BOM = b"\xef\xbb\xbf"


def _too_long(provider: str, what: str) -> ProviderResponseError:
    return ProviderResponseError(
        f"The stream from provider '{provider}' sent {what} longer than "
        f"{MAX_LINE_BYTES // (1024 * 1024)} MiB; it was dropped to protect memory. "
        "Check that the base_url points at the right kind of endpoint.",
        provider,
    )


class _LineBuffer:
    """Splits a byte stream into complete lines; keeps the unterminated tail."""

    __slots__ = ("_bom", "_cr", "_pending", "_skip_lf", "provider")

    def __init__(self, provider: str, *, cr: bool) -> None:
        self.provider = provider
        self._cr = cr  # treat a lone CR as a line end (SSE); NDJSON splits on LF only
        self._pending = bytearray()  # the unterminated last line so far (amortised growth)
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF pairs with it
        self._bom = True  # still at the very start of the stream

    def _split(self, data: bytes) -> list[bytes]:
        """The lines completed by ``data`` (without their terminators)."""
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        if self._cr and 13 in data:  # int needle: a plain memchr, no buffer protocol
            self._skip_lf = data[-1] == 13
            data = data.replace(b"\r\n", b"\n")
            if 13 in data:
                data = data.replace(b"\r", b"\n")
        lines = data.split(b"\n")
        pending = self._pending
        if len(lines) == 1:  # no line end in this chunk
            if data:
                pending += data
                if len(pending) > MAX_LINE_BYTES:
                    raise _too_long(self.provider, "a line")
            return []
        if pending:
            pending += lines[0]
            lines[0] = bytes(pending)
            pending.clear()
        if self._bom:
            self._bom = False
            if lines[0][:3] == _BOM:
                lines[0] = lines[0][3:]
        tail = lines.pop()
        if tail:
            pending += tail
        # Only a chunk (plus what was pending) this large can hold a line over the limit.
        if len(data) + len(lines[0]) > MAX_LINE_BYTES and (
            len(pending) > MAX_LINE_BYTES or any(len(line) > MAX_LINE_BYTES for line in lines)
        ):
            raise _too_long(self.provider, "a line")
        return lines

    def _tail(self) -> bytes:
        """End of stream: the last, unterminated line (``b""`` if none)."""
        tail = bytes(self._pending)
        self._pending.clear()
        self._skip_lf = False
        if self._bom:
            self._bom = False
            if tail[:3] == _BOM:
                tail = tail[3:]
        return tail


class SSEDecoder(_LineBuffer):
    """``feed(bytes) -> [(event, data), ...]`` for Server-Sent Events.

    With ``keep_stray=True``, lines that are not SSE fields at all (no known field name,
    e.g. a pretty-printed JSON error written without ``data:`` as Gemini does) are kept in
    :attr:`stray` for the protocol parser to inspect; otherwise they are ignored as the
    spec says.
    """

    __slots__ = ("_data", "_data_len", "_event", "_keep_stray", "_stray_len", "stray")

    def __init__(self, provider: str, *, keep_stray: bool = False) -> None:
        super().__init__(provider, cr=True)
        self._data: list[bytes] = []
        self._data_len = 0
        self._event = b""
        self._keep_stray = keep_stray
        self.stray: list[bytes] = []
        self._stray_len = 0

    def feed(self, data: bytes) -> list[SSEEvent]:
        lines = self._split(data)
        return self._lines(lines) if lines else []

    def close(self) -> list[SSEEvent]:
        """End of body: dispatch what complete lines left behind (see module doc)."""
        tail = self._tail()
        events = self._lines([tail, b""] if tail else [b""])
        return events

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        buf = self._data
        size = self._data_len
        event = self._event
        for line in lines:
            if not line:  # blank line: dispatch
                if buf:
                    payload = buf[0] if len(buf) == 1 else b"\n".join(buf)
                    if payload:  # an empty data buffer dispatches nothing
                        events.append((event, payload))
                    buf = []
                    size = 0
                event = b""
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                if value[:1] == b" ":
                    value = value[1:]
            elif line[0] == 58:  # b":" comment / keep-alive
                continue
            elif line.startswith(b"event:"):
                event = line[7:] if line[6:7] == b" " else line[6:]
                continue
            else:
                colon = line.find(b":")
                if colon < 0:
                    name, value = line, b""
                else:
                    name, value = line[:colon], line[colon + 1 :]
                    if value[:1] == b" ":
                        value = value[1:]
                if name == b"event":
                    event = value
                    continue
                if name != b"data":
                    if self._keep_stray and name not in (b"id", b"retry"):
                        self._keep(line)
                    continue
            if buf:  # a second data line: bound the event, not just the line
                size += len(value) + 1
                if size > MAX_LINE_BYTES:
                    raise _too_long(self.provider, "an event")
            else:
                size = len(value)
            buf.append(value)
        self._data = buf
        self._data_len = size
        self._event = event
        return events

    def _keep(self, line: bytes) -> None:
        stray = self.stray
        if not stray:  # (the consumer empties the list when it has used the lines)
            self._stray_len = 0
        stray.append(line)
        self._stray_len += len(line) + 1
        if self._stray_len > MAX_LINE_BYTES:
            raise _too_long(self.provider, "non-SSE text")


class NDJSONDecoder(_LineBuffer):
    """``feed(bytes) -> [line, ...]`` for newline-delimited JSON.

    Splits on ``b"\\n"`` only (so a raw U+0085/U+2028 inside a JSON string is safe),
    drops blank lines and leaves a trailing ``\\r`` in place (``json.loads`` treats it as
    whitespace)."""

    __slots__ = ()

    def __init__(self, provider: str) -> None:
        super().__init__(provider, cr=False)

    def feed(self, data: bytes) -> list[bytes]:
        lines = self._split(data)
        if not lines:
            return lines
        return [line for line in lines if line and not line.isspace()]

    def close(self) -> list[bytes]:
        """End of body: the last line if it had no terminating ``\\n``."""
        tail = self._tail()
        return [tail] if tail and not tail.isspace() else []
