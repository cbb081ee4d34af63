"""The magic's side of issue 16: ``--with``, ``--image``, ``--schema``, ``--to-dataframe``,
``--repair``, ``--dry-run`` and ``%llm fix``, turned into ``ws.chat`` arguments and results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._display import LLMResult
    from ._magic_args import PromptArgs
    from .chat import ChatStream

__all__ = ["FIX_PROMPT", "chat_extras", "show_dry_run", "take_value"]

FIX_PROMPT = ("My last notebook cell failed with the error above. Why did it fail, and how do I "
              "fix it? Show the corrected code.")


def chat_extras(args: PromptArgs, ns: Mapping[str, Any], shell: Any = None, *,
                cap: int | None = None) -> dict[str, Any]:
    """``ws.chat`` keyword arguments for the context, images and schema options."""
    extras: dict[str, Any] = {}
    if args.with_:
        from .context import DEFAULT_CAP, resolve_many

        extras["context"] = resolve_many(args.with_, ns, cap=cap or DEFAULT_CAP)
    if args.images:
        from ._images import resolve_image

        recorder = getattr(getattr(shell, "display_pub", None), "_viagent_recorder", None)
        extras["images"] = [resolve_image(expr, ns, recorder) for expr in args.images]
    if args.schema:
        from ._structured import schema_from_name

        extras["schema"] = schema_from_name(args.schema, ns)
        extras["repair"] = args.repair
    return extras


def show_dry_run(magics: Any, messages: Any, pid: str, args: PromptArgs,
                 extras: dict[str, Any]) -> None:
    from ._dryrun import dry_run

    view = dry_run(magics.ws, messages, provider=pid, model=args.model, system=args.system,
                   temperature=args.temperature, max_tokens=args.max_tokens,
                   reasoning=args.reasoning, **extras)
    magics.shell.user_ns["_llm_dry_run"] = view
    print(view)


def take_value(magics: Any, stream: ChatStream, result: LLMResult,
               args: PromptArgs) -> None:
    """``result.value``: the validated object (or DataFrame); a failure is the result's error,
    shown as one line under the answer."""
    from .errors import ViagentError

    if result.error is not None or result.finish_reason not in ("stop", None):
        return
    try:
        value = stream.value
        if args.to_dataframe:
            from ._structured import to_dataframe

            value = to_dataframe(value)
    except ViagentError as exc:
        result.error = exc
        magics._show_error(exc)
        return
    result.value = value
