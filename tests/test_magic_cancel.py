"""A cancelled answer's usage, through the magic: ``_llm.usage`` and the stream hold what
the provider reported before the cancel, and the stats count the request either way.

Anthropic sends ``input_tokens`` in ``message_start`` and a cumulative ``output_tokens``
in ``message_delta`` (https://docs.anthropic.com/en/api/messages-streaming); OpenAI sends
usage only in a last chunk when ``stream_options.include_usage`` is set
(https://platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options)."""

from __future__ import annotations

from typing import Any

import pytest
import test_magics
from test_magics import Env

from viagent_jupyter.testing import Scripted

shell, srv, env = test_magics.shell, test_magics.srv, test_magics.env


def _interrupt_on_first_update(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C landing in the display code, after the first words are shown."""
    publish = env.pub.publish
    fired: list[bool] = []

    def publish_then_interrupt(data: Any, *args: Any, update: bool = False, **kw: Any) -> None:
        publish(data, *args, update=update, **kw)
        if update and not fired and "You said" in data["text/plain"]:
            fired.append(True)
            raise KeyboardInterrupt

    monkeypatch.setattr(env.pub, "publish", publish_then_interrupt)
    env.magics.update_interval = 0.0


@pytest.mark.parametrize("ptype", ["anthropic", "openai"])
def test_cancelled_answer_keeps_the_usage_reported_so_far(
    env: Env, monkeypatch: pytest.MonkeyPatch, ptype: str
) -> None:
    env.ws.providers.create(id=f"c-{ptype}", provider_type=ptype, api_key="sk-test-cancel-0001",
                            base_url=env.srv.url_for(ptype), default_model="demo-small")
    env.srv.script("chat", Scripted(delay=0.2))  # a slow answer: the cancel comes first
    _interrupt_on_first_update(env, monkeypatch)
    assert env.run(f"%%llm -p c-{ptype}\nplease give me a long answer about cancelling").success
    result = env.shell.user_ns["_llm"]
    assert result.finish_reason == "cancelled" and result.text.startswith("You said")
    rec = env.ws.stats.get(f"c-{ptype}", "demo-small")
    assert rec.requests == 1
    final = env.pub.calls[-1].data["text/plain"]
    if ptype == "anthropic":  # reported as it streams
        assert result.usage.prompt_tokens and result.usage.completion_tokens
        assert rec.prompt_tokens == result.usage.prompt_tokens
        assert f"{result.usage.prompt_tokens}/{result.usage.completion_tokens} tokens" in final
    else:  # reported only at the end: unknown, and said so
        assert result.usage.prompt_tokens is None and result.usage.completion_tokens is None
        assert rec.prompt_tokens == 0 and rec.completion_tokens == 0
        assert "— tokens" in final
    assert "cancelled" in final
