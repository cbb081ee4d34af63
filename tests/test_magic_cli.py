"""The magic's command line: one description (argparse + COMMANDS) behind ``%llm?``,
``%llm help``, usage errors and the README; a line prompt is explicit, never a typo."""

from __future__ import annotations

import re
from pathlib import Path

import test_magics
from IPython.core.error import UsageError
from test_magics import Env

from viagent_jupyter import _magic_args, magics
from viagent_jupyter._magic_args import COMMANDS, help_text, options_table

# the magic's fixtures: a real InteractiveShell, the fake provider, the loaded magic
shell, srv, env = test_magics.shell, test_magics.srv, test_magics.env

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_table_is_the_parsers() -> None:
    text = README.read_text(encoding="utf-8")
    assert options_table() in text, "README's option table differs: paste options_table()"
    for name, args, what in COMMANDS:
        assert f"- `{f'%llm {name} {args}'.rstrip()}`: {what}" in text, name


def test_help_lists_every_option_and_command() -> None:
    text = help_text()
    for action in _magic_args._prompt_parser()._actions:
        for option in action.option_strings:
            assert option in text
        assert action.help and action.help.replace("%%", "%") in " ".join(text.split())
    for name, _, _ in COMMANDS:
        assert f"%llm {name}" in text


def test_question_mark_shows_the_generated_help(env: Env) -> None:
    assert env.shell.find_line_magic("llm").__doc__ == help_text()
    env.run("%llm?")
    env.run("%%llm?")
    out = env.outputs()
    assert out.count("--no-interpolate") >= 2 and "%llm models [ID] [--refresh]" in out


def test_help_and_usage_errors_come_from_the_parser(env: Env) -> None:
    env.run("%llm help")
    env.run("%llm")
    out = env.capsys.readouterr().out
    assert out.count("%%llm [-p ID]") == 2 and "--no-interpolate" in out
    res = env.run("%%llm --bogus-option\nhi")
    assert isinstance(res.error_in_exec, UsageError)
    assert "%%llm [-p ID]" in str(res.error_in_exec)
    assert env.chats() == []


def _refused(env: Env, line: str, *needles: str) -> None:
    res = env.run(line)
    assert isinstance(res.error_in_exec, UsageError), line
    message = str(res.error_in_exec)
    for needle in needles:
        assert needle in message, message
    assert env.chats() == [], line


def test_a_single_bare_word_is_not_sent(env: Env) -> None:
    _refused(env, "%llm bogus", "'bogus' is not a %llm command", "%llm -- bogus")
    _refused(env, "%llm stat", "Did you mean %llm stats?")
    _refused(env, "%llm modles --refresh", "Did you mean %llm models?",
             "%llm -- modles --refresh")
    _refused(env, "%llm Providers", "Did you mean %llm providers?")


def test_explicit_line_prompts_are_sent(env: Env) -> None:
    for line, prompt in [("%llm -- bogus", "bogus"), ('%llm "bogus"', "bogus"),
                         ("%llm 'two words'", "two words"), ("%llm -t 0 hello", "hello"),
                         ("%llm Explain recursion briefly", "Explain recursion briefly"),
                         ("%llm -- models are fun", "models are fun")]:
        assert env.run(line).success, line
        assert env.chats()[-1].json["messages"][-1]["content"] == prompt, line
    assert len(env.chats()) == 6


def test_module_docstring_does_not_repeat_the_options() -> None:
    doc = magics.__doc__ or ""
    assert not re.search(r"--max-tokens|--no-interpolate|-p PROVIDER", doc)
