"""What the demo provider reads from a request beyond its text: the images attached (it
acknowledges them: "I see 1 image (PNG, 640×480).") and a structured-output schema (it answers
with the minimal valid instance, :func:`viagent_jupyter._structured.example_instance`).

Each protocol's own request form (see the adapters' module docs):

* OpenAI: ``image_url`` parts with ``data:`` URLs; ``response_format.json_schema.schema``;
* Anthropic: ``image`` blocks with a base64 ``source``; a forced tool (``tool_choice``
  ``{type: tool, name}``) whose ``input_schema`` is the schema — answered as ``tool_use``;
* Gemini: ``inlineData`` parts; ``generationConfig.responseJsonSchema`` (or
  ``responseSchema``) with ``responseMimeType: application/json``;
* Ollama: ``images`` (base64 list) on a message; ``format`` (a schema object).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

__all__ = ["acknowledge", "request_images", "request_schema"]


def _b64_images(protocol: str, body: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    if protocol == "gemini":
        for c in body.get("contents") or []:
            for p in (c.get("parts") or []) if isinstance(c, dict) else []:
                inline = p.get("inlineData") if isinstance(p, dict) else None
                if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                    found.append(inline["data"])
        return found
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        if protocol == "ollama":
            found += [i for i in m.get("images") or [] if isinstance(i, str)]
            continue
        content = m.get("content")
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            if protocol == "openai" and part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if isinstance(url, str) and url.startswith("data:") and "," in url:
                    found.append(url.split(",", 1)[1])
            elif protocol == "anthropic" and part.get("type") == "image":
                source = part.get("source") or {}
                if source.get("type") == "base64" and isinstance(source.get("data"), str):
                    found.append(source["data"])
    return found


def request_images(protocol: str, body: Mapping[str, Any]) -> list[str]:
    """One label per attached image: ``PNG, 640×480`` (or ``unreadable``)."""
    from .._images import sniff

    labels = []
    for data in _b64_images(protocol, body):
        try:
            part = sniff(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            part = None
        if part is None:
            labels.append("unreadable")
        else:
            kind = part.mime.split("/")[1].upper()
            labels.append(f"{kind}, {part.width}×{part.height}" if part.width else kind)
    return labels


def acknowledge(labels: list[str]) -> str:
    if not labels:
        return ""
    n = len(labels)
    return f"I see {n} image{'s' if n > 1 else ''} ({'; '.join(labels)}). "


def request_schema(protocol: str, body: Mapping[str, Any]
                   ) -> tuple[dict[str, Any] | None, str | None]:
    """(the schema asked for, the forced tool's name on Anthropic) — (None, None) when the
    request asks for plain text."""
    if protocol == "openai":
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            return (schema if isinstance(schema, dict) else {}), None
    elif protocol == "anthropic":
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "tool":
            for tool in body.get("tools") or []:
                if isinstance(tool, dict) and tool.get("name") == choice.get("name"):
                    schema = tool.get("input_schema")
                    return (schema if isinstance(schema, dict) else {}), str(tool["name"])
    elif protocol == "gemini":
        config = body.get("generationConfig")
        if isinstance(config, dict) and config.get("responseMimeType") == "application/json":
            schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
            return (schema if isinstance(schema, dict) else {}), None
    elif protocol == "ollama":
        fmt = body.get("format")
        if isinstance(fmt, dict):
            return fmt, None
    return None, None
