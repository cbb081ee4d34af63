"""The plan inputs of issue 16, for ``chat.plan_chat``: context (described objects put before
the prompt), images (checked against what the model list says) and a structured-output
schema; and after the stream, the validated value (with one optional repair round)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigValidationError, ProviderAPIError, ProviderError, ProviderResponseError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._services import ProviderLookup
    from ._structured import OutputSchema
    from .adapters.base import ChatRequest
    from .schema import ModelInfo

__all__ = ["explain_refusal", "known_keys", "prepare", "repair_messages"]

log = logging.getLogger("viagent_jupyter.chat")


def known_keys(providers: ProviderLookup) -> list[str]:
    """Every provider key this workspace can resolve (stored, session or environment)."""
    from .errors import ViagentError

    keys = []
    for cfg in providers.list():
        try:
            key, _source = providers.resolve_key(cfg.id)
        except ViagentError:
            continue
        if key:
            keys.append(key)
    return keys


def prepare(providers: ProviderLookup, model_info: Callable[[str, str], ModelInfo | None],
            pid: str, model: str, messages: list[dict[str, str]], *,
            context: Sequence[Any] | None, images: Sequence[Any] | None, schema: Any,
            ) -> tuple[list[dict[str, str]], tuple[Any, ...], OutputSchema | None]:
    """(messages with the context before the last user prompt, image parts, output schema)."""
    if context:
        from .context import ContextItem, check_secrets, describe, render_context

        items = [c if isinstance(c, ContextItem) else describe(c) for c in context]
        check_secrets(items, known_keys(providers))
        block = render_context(items)
        for msg in reversed(messages):
            if msg["role"] == "user":
                msg["content"] = f"{block}\n\n{msg['content']}"
                break
    parts: tuple[Any, ...] = ()
    if images:
        from ._images import image_from

        parts = tuple(image_from(x) for x in images)
        _check_vision(model_info, pid, model)
    output = None
    if schema is not None:
        from ._structured import output_schema

        output = output_schema(schema)
    return messages, parts, output


def _check_vision(model_info: Callable[[str, str], ModelInfo | None], pid: str,
                  model: str) -> None:
    """A model whose listing states its capabilities without ``vision`` is refused before
    anything is sent; a model the list says nothing about is tried."""
    from .errors import ViagentError

    try:
        info = model_info(pid, model)  # the cached list only: never a request
    except ViagentError:
        return
    if info is not None and info.capabilities and "vision" not in info.capabilities:
        raise ConfigValidationError(
            f"Model '{model}' on '{pid}' does not accept images (its model list says so): "
            "pick a vision model (-m), or leave the images out.",
            [{"field": "images", "message": f"{model} has no image input"}])


_IMAGE_WORDS = re.compile(r"image|vision|multimodal|modalit|image_url|inline_?data", re.I)


def explain_refusal(exc: ProviderError, req: ChatRequest) -> ProviderError:
    """A 4xx about images, on a request that carried some, as one line that says so."""
    if not req.images or not isinstance(exc, ProviderAPIError):
        return exc
    said = exc.provider_message or str(exc)
    if exc.status_code not in (400, 404, 415, 422) or not _IMAGE_WORDS.search(said):
        return exc
    return ProviderAPIError(
        f"Model '{req.model}' on '{req.provider_id}' refused the image(s): it probably does "
        f"not accept images; pick a vision model or leave them out (provider said: "
        f"{said.rstrip('.')}).", exc.provider, exc.model, status_code=exc.status_code,
        error_type=exc.error_type, provider_message=exc.provider_message)


def repair_messages(req: ChatRequest, answer: str, error: ProviderResponseError
                    ) -> list[dict[str, str]]:
    """The conversation for the one repair round: the request, the answer, what failed."""
    fields = getattr(error, "fields", None) or [str(error)]
    msgs = ([{"role": "system", "content": req.system}] if req.system else []) + [
        dict(m) for m in req.messages]
    msgs.append({"role": "assistant", "content": answer})
    msgs.append({"role": "user", "content": (
        "That answer does not fit the required JSON schema: " + "; ".join(fields)
        + ". Reply again with only the corrected JSON.")})
    return msgs
