"""The ``%%llm`` / ``%llm`` command line, described once.

The options are the argparse parser of :func:`_prompt_parser`; the line commands are
:data:`COMMANDS`. Everything that describes them to a person is generated from those two:
``%llm?`` and ``%llm help`` (:func:`help_text`), usage errors (:func:`usage`) and the README's
table (:func:`options_table`, checked by a test).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import keyword
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from IPython.core.error import UsageError

from ._display import FORMATS

__all__ = ["COMMANDS", "NOTES", "PromptArgs", "check_line_prompt", "help_text", "options_table",
           "parse_prompt_args", "split_line_prompt", "usage"]

# The one description of the magic: the argparse options below and COMMANDS. The help that
# `%llm help`, `%llm?` and a usage error show is generated from them; a test checks README.

COMMANDS: tuple[tuple[str, str, str], ...] = (
    # (name, arguments, what it does)
    ("providers", "", "list the providers (* = selected)"),
    ("use", "ID", "select the provider used when -p is not given"),
    ("models", "[ID] [--refresh]", "the provider's models (cached; --refresh asks it now)"),
    ("stats", "[--today|--month]", "requests, tokens and cost per provider and model (or the "
                                    "spend of today / this month)"),
    ("prices", "[MODEL] [-p ID] [--refresh]", "the price list: where each price comes from"),
    ("budget", "[set USD [--period day|month|total] [-p ID] [--soft F] [--strict] | remove "
               "PERIOD]", "spending limits, checked before every call"),
    ("key", "ID [--session]", "ask for ID's API key with a hidden prompt and store it "
                              "encrypted (--session: keep it in memory only)"),
    ("reset", "[THREAD]", "forget a --chat conversation (default: all)"),
    ("history", "[THREAD]", "show the --chat conversations"),
    ("log", "[QUERY] [-n N] [--provider P] [--model M] [--since DATE]",
     "search the recorded history of calls; also: log show ID, log export FILE.jsonl|FILE.md, "
     "log clear, log keep DAYS|all"),
    ("error", "", "details of the last LLM error"),
    ("fix", "", "ask the model why the last error happened and how to fix it (sends the "
                "traceback)"),
    ("panel", "", "the provider panel (widget)"),
    ("sidebar", "", "the stats bar and panel in JupyterLab's right-hand area"),
    ("help", "", "these options and commands"),
)
_SUBCOMMANDS = frozenset(name for name, _, _ in COMMANDS)

NOTES = """\
The prompt: %%llm takes it from the cell body; %llm from the rest of the line after the
options, when unambiguous: a single word that is not a command is refused (a typo must not
become a paid request), so write %llm -- PROMPT or %llm "PROMPT" for those. With --chat on
the line, write --chat=THREAD.
{name}, {obj.attr}, {seq[0]}, {In[3]}, {Out[3]} in the prompt are filled from the
notebook's variables; other braces stay as written; {{ and }} give single braces.
Interrupt the kernel to stop an answer: the partial text stays, marked cancelled.
%llm key asks for the key with a hidden prompt: never type a key into a cell."""


@dataclass(frozen=True)
class PromptArgs:
    """The options of one ``%%llm``/``%llm`` prompt, parsed and checked."""

    provider: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    reasoning: str | None = None
    system: str | None = None
    format: str | None = None  # None: c.LLMMagics.default_format
    insert: bool = False
    output: str | None = None
    chat: str | None = None  # the thread to continue, or None
    new: bool = False
    interpolate: bool = True
    stream: bool = True
    help: bool = False
    log: bool = True
    # several (provider, model) pairs: a side-by-side comparison (empty: one answer)
    targets: tuple[tuple[str | None, str | None], ...] = ()
    # the notebook as context, typed answers (see _magic_context.py)
    with_: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    schema: str | None = None
    to_dataframe: bool = False
    repair: bool = False
    dry_run: bool = False
    # tools (see _tool_magic.py)
    tools: str | None = None  # --tools f,g (names in the namespace; "builtins")
    approve: str | None = None  # --approve ask|all
    max_steps: int | None = None

    @property
    def thread(self) -> str | None:
        if self.chat is not None:
            return self.chat
        return "default" if self.new else None


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _ArgumentError(message or "invalid arguments")


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {n}")
    return n


# Names the kernel itself relies on: -o must not overwrite them.
_RESERVED_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "_", "__", "___",
                             "_ih", "_oh", "_dh", "_i", "_ii", "_iii"})


def _variable(value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value) or keyword.issoftkeyword(value):
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a valid variable name")
    if (value.startswith("__") and value.endswith("__")) or value in _RESERVED_NAMES or \
            re.fullmatch(r"_(i|ii|iii|)\d+", value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is reserved by IPython or Python; choose another variable name")
    return value


def _thread_name(value: str) -> str:
    if not value or value.startswith("-") or len(value) > 100:
        raise argparse.ArgumentTypeError(f"{value!r} is not a thread name")
    return value


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The same help whatever the terminal's width."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=24, width=_HELP_WIDTH)


_HELP_WIDTH = 92


# schema.REASONING_LEVELS, written out: loading the extension must not import pydantic
_REASONING_LEVELS = ("none", "minimal", "low", "medium", "high")


def _prompt_parser() -> _Parser:
    p = _Parser(prog="%%llm", add_help=False, allow_abbrev=False,
                description="Chat with an LLM provider. The cell body is the prompt.",
                formatter_class=_HelpFormatter)
    p.add_argument("-p", "--provider", action="append", metavar="ID",
                   help="provider to use (default: the selected one, %%llm use ID); "
                        "ID:MODEL names the model too")
    p.add_argument("-m", "--model", action="append", metavar="MODEL",
                   help="model (default: the provider's default_model); several -m (or "
                        "-p ID:MODEL) compare the answers side by side")
    p.add_argument("-t", "--temperature", type=float, metavar="T",
                   help="sampling temperature, 0-2")
    p.add_argument("--max-tokens", type=_positive_int, metavar="N",
                   help="cap on the answer's length in tokens")
    p.add_argument("-r", "--reasoning", choices=_REASONING_LEVELS, metavar="LEVEL",
                   help=f"how hard the model thinks: {', '.join(_REASONING_LEVELS)}; its "
                        "reasoning shows in a collapsed 'Thinking…' section")
    p.add_argument("-s", "--system", metavar="TEXT",
                   help='system prompt (quote it: -s "You are terse.")')
    p.add_argument("-f", "--format", choices=FORMATS, metavar="F",
                   help=f"how to show the answer: {', '.join(FORMATS)} (default: markdown)")
    p.add_argument("--insert", action="store_true",
                   help="with -f code: also put the code into a new cell")
    p.add_argument("-o", "--output", type=_variable, metavar="VAR",
                   help="also store the result (text, usage, cost, model) in VAR; "
                        "_llm always holds the last one")
    p.add_argument("--chat", nargs="?", const="default", type=_thread_name, metavar="THREAD",
                   help='continue a conversation (default thread: "default"); it survives a '
                        "kernel restart while the history is on")
    p.add_argument("--new", action="store_true",
                   help="start the conversation afresh (with --chat THREAD: that one)")
    p.add_argument("--no-interpolate", action="store_true", help="send {braces} as written")
    p.add_argument("--no-stream", action="store_true",
                   help="wait for the whole answer, then show it")
    p.add_argument("--no-log", action="store_true",
                   help="do not record this call in the history (%%llm log)")
    p.add_argument("--with", dest="with_", action="append", default=[], metavar="NAME[,NAME]",
                   help="attach variables as short capped descriptions (DataFrames, arrays, "
                        "dicts...); also In[3], Out[3], error (the last exception)")
    p.add_argument("--image", action="append", default=[], metavar="EXPR",
                   help="attach an image: a figure, PIL image, bytes, a file path, Out[5], or "
                        "last (the last image shown); repeat for several")
    p.add_argument("--schema", metavar="NAME",
                   help="structured output: a pydantic model, dataclass, TypedDict or JSON "
                        "Schema dict (or list[Model]); the object is in _llm.value")
    p.add_argument("--to-dataframe", action="store_true",
                   help="with --schema list[...]: _llm.value is a pandas DataFrame")
    p.add_argument("--repair", action="store_true",
                   help="with --schema: one retry when the answer does not fit")
    p.add_argument("--dry-run", action="store_true",
                   help="show the exact request and a token estimate; send nothing")
    p.add_argument("--tools", metavar="F,G",
                   help="let the model call these functions of the notebook (@vj.tool); "
                        "builtins: read-only tools over the notebook's variables and cells")
    p.add_argument("--approve", choices=("ask", "all"), metavar="all",
                   help="run every tool call without asking (default: ask on each call that "
                        "is not @vj.tool(safe=True); no stdin means deny)")
    p.add_argument("--max-steps", type=_positive_int, metavar="N",
                   help="at most N model requests in one answer with tools (default 8)")
    p.add_argument("-h", "--help", action="store_true", help="show this help")
    return p


def _value_options() -> frozenset[str]:
    """Options that take a separate value (``-p ID``), for finding where a line prompt starts."""
    return frozenset(opt for action in _prompt_parser()._actions if action.nargs is None
                     for opt in action.option_strings)


def _commands_help() -> str:
    import textwrap

    rows = [("%%llm -m A -m B ...", "compare models side by side (or -p P1:MODEL -p P2:MODEL)"),
            ("%llm [options] PROMPT", "the same as %%llm, the prompt on the line")]
    rows += [(f"%llm {name} {args}".rstrip(), what) for name, args, what in COMMANDS]
    width = max(len(left) for left, _ in rows) + 2
    return "\n".join(textwrap.fill(what, _HELP_WIDTH, initial_indent=f"  {left:<{width}}",
                                    subsequent_indent=" " * (width + 2)) for left, what in rows)


def usage() -> str:
    """The short usage, generated from the parser and :data:`COMMANDS`."""
    import textwrap

    cell = " ".join(_prompt_parser().format_usage().split()[1:])
    line = "%llm " + " | ".join(f"{name} {args}".rstrip() for name, args, _ in COMMANDS)
    return "\n".join(textwrap.fill(text, _HELP_WIDTH, subsequent_indent="      ")
                     for text in (cell, "%llm [options] PROMPT", line))


def options_table() -> str:
    """The options as the README's Markdown table (a test keeps README.md equal to it)."""
    rows = ["| option | meaning |", "|---|---|"]
    for action in _prompt_parser()._actions:
        spec = ", ".join(action.option_strings)
        if action.nargs is None:
            spec += f" {action.metavar}"
        elif action.nargs == "?":
            spec += f" [{action.metavar}]"
        text = (action.help or "").replace("%%", "%").replace("|", "\\|")
        rows.append(f"| `{spec}` | {text} |")
    return "\n".join(rows)


def help_text() -> str:
    """Everything the magic takes: options (from argparse), line commands and notes."""
    options = _prompt_parser().format_help().strip()
    return f"{options}\n\nline magic:\n{_commands_help()}\n\n{NOTES}"


def _usage_error(message: str) -> UsageError:
    return UsageError(f"{message}\n{usage()}")


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line, posix=True)
    except ValueError as exc:  # e.g. "No closing quotation"
        raise _usage_error(f"cannot parse the options: {exc}") from None


def parse_prompt_args(tokens: Sequence[str]) -> PromptArgs:
    """Options → :class:`PromptArgs`; a bad option raises a UsageError with the usage."""
    try:
        ns = _prompt_parser().parse_args(list(tokens))
    except _ArgumentError as exc:
        raise _usage_error(str(exc)) from None
    from ._compare import targets_from_options

    try:
        provider, model, targets = targets_from_options(ns.provider or [], ns.model or [])
    except ValueError as exc:
        raise _usage_error(str(exc)) from None
    args = PromptArgs(
        provider=provider, model=model, temperature=ns.temperature,
        max_tokens=ns.max_tokens, reasoning=ns.reasoning, system=ns.system, format=ns.format,
        insert=ns.insert,
        output=ns.output, chat=ns.chat, new=ns.new, interpolate=not ns.no_interpolate,
        stream=not ns.no_stream, help=ns.help, log=not ns.no_log, targets=targets,
        with_=tuple(ns.with_), images=tuple(ns.image), schema=ns.schema,
        to_dataframe=ns.to_dataframe, repair=ns.repair, dry_run=ns.dry_run,
        tools=ns.tools, approve=ns.approve, max_steps=ns.max_steps,
    )
    _check_combinations(args)
    if targets and args.tools:
        raise _usage_error("comparing several models works without --tools")
    if targets and (args.chat is not None or args.new or args.insert):
        raise _usage_error("comparing several models works without --chat, --new and --insert")
    if args.insert:
        if args.format not in (None, "code"):
            raise _usage_error("--insert works with -f code only")
        args = dataclasses.replace(args, format="code")
    return args


def _check_combinations(args: PromptArgs) -> None:
    """Option combinations that make no sense: a usage error up front."""
    if args.to_dataframe and not args.schema:
        raise _usage_error("--to-dataframe needs --schema list[Model]")
    if args.repair and not args.schema:
        raise _usage_error("--repair works with --schema only")
    if args.targets and (args.with_ or args.images or args.schema or args.dry_run):
        raise _usage_error("--with, --image, --schema and --dry-run work with one model only")


def split_line_prompt(line: str) -> tuple[list[str], str]:
    """``-p x -t 0.2 What's up?`` → ``(["-p", "x", "-t", "0.2"], "What's up?")``.

    Options are read (shell quoting) until the first word that is not an option or an
    option's value, or until ``--``; the rest of the line is the prompt, as written."""
    source = io.StringIO(line)
    lexer = shlex.shlex(source, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    tokens: list[str] = []
    pos = 0
    expect_value = False
    value_options = _value_options()
    try:
        while True:
            rest = line[pos:]
            start = pos + len(rest) - len(rest.lstrip())
            if start >= len(line):
                return tokens, ""
            if not expect_value and not line.startswith("-", start):
                return tokens, line[start:].strip()
            token = lexer.get_token()
            pos = source.tell()
            if token is None:
                return tokens, ""
            if token == "--" and not expect_value:
                return tokens, line[pos:].strip()
            tokens.append(token)
            expect_value = not expect_value and token in value_options
    except ValueError as exc:
        raise _usage_error(f"cannot parse the options: {exc}") from None


def check_line_prompt(text: str) -> None:
    """Refuse a line that is more likely a mistyped command than a prompt: a single word, or
    a first word within a letter or two of a command. A typo must not become a paid call."""
    import difflib

    words = text.split()
    close = difflib.get_close_matches(words[0], sorted(_SUBCOMMANDS), n=1, cutoff=0.75)
    if len(words) > 1 and not close:
        return
    hint = f"Did you mean %llm {close[0]}? " if close else \
        f"The commands are: {', '.join(name for name, _, _ in COMMANDS)}. "
    what = f"'{words[0]}' is not a %llm command" if len(words) == 1 else \
        f"'{words[0]}' looks like a mistyped %llm command"
    raise UsageError(f"{what}. {hint}To send it to the model as a prompt, write "
                     f"%llm -- {text} (or %%llm with the prompt in the cell).")
