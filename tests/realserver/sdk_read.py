"""What an official SDK reads from a server: run with the LiteLLM venv's python (the SDKs
are installed there, never in ours). Prints one JSON object: text, finish_reason, usage.

    python sdk_read.py BASE_URL KEY openai-stream MODEL PROMPT
    python sdk_read.py BASE_URL KEY anthropic MODEL PROMPT
"""

from __future__ import annotations

import json
import sys


def openai_stream(base: str, key: str, model: str, prompt: str) -> dict[str, object]:
    import openai

    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
    text, finish, usage = [], None, None
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True,
        stream_options={"include_usage": True})
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta and choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
        if chunk.usage:
            usage = {"prompt_tokens": chunk.usage.prompt_tokens,
                     "completion_tokens": chunk.usage.completion_tokens}
    return {"text": "".join(text), "finish_reason": finish, "usage": usage}


def anthropic_message(base: str, key: str, model: str, prompt: str) -> dict[str, object]:
    import anthropic

    client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    msg = client.messages.create(model=model, max_tokens=256,
                                 messages=[{"role": "user", "content": prompt}])
    text = "".join(b.text for b in msg.content if b.type == "text")
    return {"text": text, "finish_reason": msg.stop_reason,
            "usage": {"prompt_tokens": msg.usage.input_tokens,
                      "completion_tokens": msg.usage.output_tokens}}


def main() -> None:
    base, key, kind, model, prompt = sys.argv[1:6]
    if kind == "openai-stream":
        out = openai_stream(base, key, model, prompt)
    elif kind == "anthropic":
        out = anthropic_message(base, key, model, prompt)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
