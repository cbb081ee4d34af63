"""The adapter seam: plain data in, plain data out, shared by sync and async I/O.

An adapter knows one wire protocol. It builds the HTTP request for a chat and for a model
list, and parses the response body *incrementally* (``StreamParser.feed(bytes)``) without
per-chunk model objects. The I/O loop (``adapters/_http.py``) is protocol-agnostic: it
sends a :class:`HTTPRequest`, feeds body bytes to the parser, and maps transport errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..schema import ModelInfo

__all__ = [
    "Adapter",
    "ChatRequest",
    "HTTPRequest",
    "ModelPage",
    "StreamParser",
    "StreamState",
]


@dataclass
class ChatRequest:
    """Everything an adapter needs for one chat call (the key is only used for the header)."""

    provider_id: str
    provider_type: str
    base_url: str  # effective, no trailing slash
    model: str
    # [{"role": "user"|"assistant", "content": str}]; with tools also an assistant message
    # with "tool_calls" and "tool" messages (the neutral shapes of tools.py)
    messages: list[dict[str, Any]]
    api_key: str | None = field(default=None, repr=False)
    system: str | None = None
    # Only the settings that are set: temperature, max_tokens, top_p,
    # frequency_penalty, presence_penalty, reasoning, reasoning_budget.
    settings: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # provider's extra headers
    #: Wire parameters the adapter adds on its own that this provider:model refused before
    #: (e.g. ``stream_options``): left out. See ``chat._settings``.
    omit: frozenset[str] = frozenset()
    #: Wire renames learnt from a 400 (``{"max_tokens": "max_completion_tokens"}``).
    rename: dict[str, str] = field(default_factory=dict)
    #: What the model list says about the model (output limit, adaptive thinking...).
    max_output_tokens: int | None = None
    capabilities: tuple[str, ...] = ()
    #: Images (``_images.ImagePart``: ``mime``, ``data``, ``b64``, ``data_url``) that go with
    #: the last user message, each in the protocol's own form.
    images: tuple[Any, ...] = ()
    #: Structured output asked for (``_structured.OutputSchema``: ``name``, ``schema``), else
    #: None: each protocol's own mechanism constrains the answer to the schema.
    output: Any = None
    #: Tools the model may call: neutral definitions {name, description, parameters}.
    tools: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HTTPRequest:
    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    json: Any = None
    params: dict[str, str] | None = None


@dataclass
class StreamState:
    """What a parser learned so far. ``usage`` keys: prompt_tokens, completion_tokens,
    total_tokens, reasoning_tokens (absent = not reported); cached_input_tokens /
    cache_write_tokens (part of the prompt; only when > 0). ``reasoning`` collects the
    reasoning deltas of the current ``feed`` (the caller drains it: it is never text)."""

    finish_reason: str | None = None  # normalised: stop|length|tool_calls|content_filter|other
    raw_finish_reason: str | None = None
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    cost: float | None = None  # provider-reported (OpenRouter usage.cost)
    done: bool = False  # the protocol's terminal marker was seen
    reasoning: list[str] = field(default_factory=list)
    #: The tool calls asked for: {id, name, arguments (JSON text or object), extra?}.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class StreamParser(Protocol):
    state: StreamState

    def feed(self, data: bytes) -> list[str]:
        """Consume raw body bytes (any chunking); return the text deltas completed by them.

        Raises ``ProviderAPIError`` for an error the provider states inside the stream and
        ``ProviderResponseError`` for a malformed event."""
        ...

    def close(self) -> list[str]:
        """End of body: flush what is buffered; raise ``ProviderResponseError`` when the
        terminal marker never came (the text so far stays with the caller)."""
        ...


@dataclass
class ModelPage:
    models: list[ModelInfo]
    next_request: HTTPRequest | None = None  # the next page, when paginated


class Adapter(Protocol):
    """One wire protocol. Stateless; one module-level instance per protocol."""

    name: str

    def chat_request(self, req: ChatRequest) -> HTTPRequest: ...

    def check_request(self, req: ChatRequest) -> None: ...

    def parser(self, req: ChatRequest) -> StreamParser: ...

    def models_request(self, base_url: str, api_key: str | None,
                       headers: Mapping[str, str]) -> HTTPRequest: ...

    def parse_models(self, body: bytes, request: HTTPRequest) -> ModelPage: ...

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes,
                            provider: str, model: str | None) -> Exception:
        """Map a non-2xx answer (any content type, even ``text/event-stream``) onto the
        error tree; the provider's own message is kept (scrubbed)."""
        ...
