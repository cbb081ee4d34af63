"""``%%llm --dry-run``: the exact request body a chat would send — images as placeholders,
no headers (the key lives there) — and a token estimate. Nothing is sent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._workspace import Workspace

__all__ = ["DryRun", "dry_run", "estimate_tokens"]

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text and JSON


@dataclass
class DryRun:
    provider: str
    model: str
    url: str
    body: dict[str, Any]
    tokens: int

    def __str__(self) -> str:
        return (f"POST {self.url}  ({self.provider}:{self.model}, ≈{self.tokens:,} prompt "
                f"tokens, estimated; nothing was sent)\n"
                + json.dumps(self.body, indent=2, ensure_ascii=False))

    def _repr_markdown_(self) -> str:
        head = (f"**Dry run** — `{self.provider}:{self.model}`, ≈{self.tokens:,} prompt tokens "
                "(estimated). Nothing was sent.")
        return head + "\n\n```json\n" + json.dumps(self.body, indent=2, ensure_ascii=False) \
            + "\n```"


def estimate_tokens(text_chars: int, images: Any = ()) -> int:
    """~4 characters a token; an image ≈ width×height/750 tokens (at most 1,600), the rule
    Anthropic documents for its models — other providers count differently."""
    n = -(-text_chars // CHARS_PER_TOKEN)
    for img in images:
        if img.width and img.height:
            n += min(img.width * img.height // 750, 1600)
        else:
            n += 1600
    return n


def _placeholders(node: Any, swap: dict[str, str], chars: list[int]) -> Any:
    if isinstance(node, dict):
        return {k: _placeholders(v, swap, chars) for k, v in node.items()}
    if isinstance(node, list):
        return [_placeholders(v, swap, chars) for v in node]
    if isinstance(node, str):
        if node in swap:
            return swap[node]
        chars[0] += len(node)
    return node


def dry_run(ws: Workspace, prompt: Any, **kw: Any) -> DryRun:
    """Plan the chat as :meth:`Workspace.chat` would and show its request; send nothing."""
    from .chat import plan_chat

    kw = {"provider": None, "model": None, "system": None, "temperature": None,
          "max_tokens": None, **kw}
    kw["provider"] = kw["provider"] or ws.require_selected()
    plan = plan_chat(ws._chat_services(), prompt, **kw)
    http = plan.adapter.chat_request(plan.request)
    images = plan.request.images
    swap: dict[str, str] = {}
    for img in images:
        swap[img.b64] = img.describe()
        swap[img.data_url] = img.describe()
    chars = [0]
    body = _placeholders(http.json, swap, chars)
    url = http.url.split("?", 1)[0]  # Gemini may carry ?key=... : never shown
    return DryRun(plan.provider.id, plan.model, url, body, estimate_tokens(chars[0], images))
