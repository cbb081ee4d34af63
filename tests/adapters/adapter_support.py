"""Plain helpers for the adapter tests (fixtures live in conftest.py)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from viagent_jupyter.adapters import get_adapter
from viagent_jupyter.adapters.base import ChatRequest, StreamState

PROVIDER_ID = "testprov"


def chat_request(provider_type: str = "openai", **kw: Any) -> ChatRequest:
    base = {
        "openai": "https://api.openai.com/v1",
        "openrouter": "https://openrouter.ai/api/v1",
        "openai_compatible": "http://localhost:8000/v1",
        "anthropic": "https://api.anthropic.com",
        "gemini": "https://generativelanguage.googleapis.com",
        "ollama": "http://localhost:11434",
    }[provider_type]
    values: dict[str, Any] = {
        "provider_id": PROVIDER_ID,
        "provider_type": provider_type,
        "base_url": base,
        "model": "test-model",
        "messages": [{"role": "user", "content": "Hi"}],
    }
    values.update(kw)
    return ChatRequest(**values)


@dataclass
class Outcome:
    """Everything a replay produced, comparable across chunkings."""

    text: str
    deltas: int
    finish_reason: str | None
    raw_finish_reason: str | None
    model: str | None
    usage: dict[str, int]
    cost: float | None
    done: bool
    error: tuple[str, str] | None = None  # (class name, message)
    reasoning: str = ""
    error_obj: BaseException | None = field(default=None, compare=False, repr=False)
    where: str | None = field(default=None, compare=False)  # "feed" | "close"

    def key(self) -> tuple[Any, ...]:
        return (self.text, self.finish_reason, self.raw_finish_reason, self.model, self.usage,
                self.cost, self.done, self.error, self.reasoning)


def replay(provider_type: str, chunks: Iterable[bytes], **req_kw: Any) -> Outcome:
    """Feed ``chunks`` to a fresh parser and close it, catching the (first) error."""
    req = chat_request(provider_type, **req_kw)
    parser = get_adapter(provider_type).parser(req)
    texts: list[str] = []
    reasoning: list[str] = []
    error: BaseException | None = None
    where = None
    try:
        where = "feed"
        for chunk in chunks:
            texts.extend(parser.feed(chunk))
            reasoning.extend(parser.state.reasoning)
            parser.state.reasoning.clear()
        where = "close"
        texts.extend(parser.close())
        where = None
    except Exception as exc:  # the test decides which errors are expected
        error = exc
    reasoning.extend(parser.state.reasoning)
    state: StreamState = parser.state
    for t in texts:
        assert isinstance(t, str) and t, f"empty or non-str delta {t!r}"
    return Outcome(
        text="".join(texts),
        deltas=len(texts),
        finish_reason=state.finish_reason,
        raw_finish_reason=state.raw_finish_reason,
        model=state.model,
        usage=dict(state.usage),
        cost=state.cost,
        done=state.done,
        error=(type(error).__name__, str(error)) if error else None,
        reasoning="".join(reasoning),
        error_obj=error,
        where=where if error else None,
    )


def split_every(body: bytes, size: int) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)] or [b""]


def split_random(body: bytes, seed: int, max_size: int = 40) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(body):
        n = rng.randint(1, max_size)
        out.append(body[i:i + n])
        i += n
    return out


def split_after_cr(body: bytes) -> list[bytes]:
    """A chunk boundary right after every CR (so a CRLF is split between two chunks)."""
    out, start = [], 0
    for i, byte in enumerate(body):
        if byte == 13:
            out.append(body[start:i + 1])
            start = i + 1
    out.append(body[start:])
    return out


def split_at(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(body)})
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


CHUNKINGS: dict[str, Callable[[bytes], list[bytes]]] = {
    "whole": lambda b: [b],
    "1-byte": lambda b: split_every(b, 1),
    "7-byte": lambda b: split_every(b, 7),
    "random-seeded": lambda b: split_random(b, 20260824),
    "after-each-CR": split_after_cr,
}


def replay_all(provider_type: str, body: bytes, **req_kw: Any) -> Outcome:
    """Replay under every chunking; assert they agree; return the whole-body outcome."""
    outcomes = {name: replay(provider_type, split(body), **req_kw)
                for name, split in CHUNKINGS.items()}
    first = outcomes["whole"]
    for name, outcome in outcomes.items():
        assert outcome.key() == first.key(), f"chunking {name!r} differs: {outcome} vs {first}"
    return first


def sse(*events: str | tuple[str, str], eol: str = "\n") -> bytes:
    """Build an SSE body: each item is a data string, or ``(event, data)``."""
    parts = []
    for ev in events:
        if isinstance(ev, tuple):
            parts.append(f"event: {ev[0]}{eol}data: {ev[1]}{eol}{eol}")
        else:
            parts.append(f"data: {ev}{eol}{eol}")
    return "".join(parts).encode()
