"""A fake LLM provider on 127.0.0.1 for tests, notebooks, browser tests and the offline demo.

:class:`FakeProviderServer` speaks the OpenAI-style (also OpenRouter-flavoured), Anthropic,
Gemini and Ollama wire protocols with correct framing, answers every chat with a
deterministic demo text when nothing is scripted, replays :class:`Scripted` answers (errors,
chunking, stalls, truncation, redirects, resets, Retry-After) and records every request.
Standard library only. ``python -m viagent_jupyter.testing --port N`` runs it in the
foreground.
"""

from __future__ import annotations

from ._server import FakeProviderServer, RecordedRequest, Scripted, rechunk
from ._wire import DEMO_MODELS, DemoModel, demo_text, error_body

__all__ = [
    "DEMO_MODELS",
    "DemoModel",
    "FakeProviderServer",
    "RecordedRequest",
    "Scripted",
    "demo_text",
    "error_body",
    "rechunk",
]
