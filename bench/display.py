"""Streaming display cost: ``%%llm`` vs a naive loop that redraws on every token.

Run: ``python -m bench.display`` (add ``--json`` for the raw numbers, ``--tokens N`` and
``--rate R`` to change the stream). A local fake provider streams N tokens (default 5,000)
at R tokens/s (default 1,000) into a real IPython kernel driven over jupyter_client; every
IOPub message of the cell is read off the socket and counted with its bytes.

The naive baseline is what a first implementation looks like: a display handle updated with
the whole answer re-rendered as Markdown on every token.

Targets for ``%%llm``: ≤ 25 display updates/s, ≤ 1.5 MB of IOPub traffic, never ≥ 1,000
messages in any 1-second window.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

WORDS = ["the", "model", "streams", "tokens", "into", "a", "notebook", "cell", "while", "the",
         "kernel", "keeps", "the", "display", "light", "and", "readable", "with", "**bold**",
         "words,", "`code`", "spans", "and", "plain", "text"]

NAIVE = """\
import viagent_jupyter as vj
from IPython.display import HTML, display
from markdown_it import MarkdownIt
_md = MarkdownIt("commonmark", {{"html": False}})
_h = display(HTML(""), display_id=True)
_text = ""
for _d in vj.workspace().chat({prompt!r}):
    _text += _d
    _h.update(HTML(_md.render(_text)))
"""


def tokens(n: int) -> list[str]:
    out = []
    for i in range(n):
        word = WORDS[i % len(WORDS)]
        sep = "\n\n" if i % 60 == 59 else " "
        out.append(word + sep)
    return out


@dataclass
class Run:
    name: str
    seconds: float  # first to last display message
    kernel_cpu_s: float
    display_msgs: int
    iopub_msgs: int
    iopub_bytes: int
    max_msgs_per_s: int  # any 1-second window, all IOPub messages of the cell
    updates_per_s: float


def _cell(kc: Any, code: str, timeout: float = 600.0) -> list[tuple[float, str, int]]:
    """Run ``code``; return (kernel time, msg_type, wire bytes) of its IOPub messages."""
    msg_id = kc.execute(code)
    sock, session = kc.iopub_channel.socket, kc.session
    seen: list[tuple[float, str, int]] = []
    deadline = time.monotonic() + timeout
    while True:
        if not sock.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            raise TimeoutError(f"the kernel did not finish: {code[:60]!r}")
        frames = sock.recv_multipart()
        _idents, parts = session.feed_identities(frames)
        msg = session.deserialize(parts)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"]))
        seen.append((msg["header"]["date"].timestamp(), kind, sum(len(f) for f in frames)))
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    return seen


def _stdout(kc: Any, code: str) -> str:
    msg_id = kc.execute(code)
    out = ""
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out += msg["content"]["text"]
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            kc.get_shell_msg(timeout=60)
            return out


def _measure(kc: Any, name: str, code: str) -> Run:
    _stdout(kc, "import time as _t; _c0 = _t.process_time()")
    msgs = _cell(kc, code)
    cpu = float(_stdout(kc, "print(_t.process_time() - _c0)").strip())
    displays = [m for m in msgs if m[1] in ("display_data", "update_display_data")]
    times = sorted(m[0] for m in msgs)
    best, j = 0, 0
    for i, t in enumerate(times):  # sliding 1-second window
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    span = displays[-1][0] - displays[0][0] if len(displays) > 1 else 0.0
    return Run(name=name, seconds=round(span, 2), kernel_cpu_s=round(cpu, 3),
               display_msgs=len(displays), iopub_msgs=len(msgs),
               iopub_bytes=sum(m[2] for m in msgs), max_msgs_per_s=best,
               updates_per_s=round(len(displays) / span, 1) if span else float(len(displays)))


def run(n_tokens: int = 5000, rate: float = 1000.0) -> dict[str, Any]:
    os.environ.setdefault("VIAGENT_KEYRING", "0")
    from jupyter_client.manager import start_new_kernel

    import viagent_jupyter as vj
    from viagent_jupyter.testing import FakeProviderServer, Scripted

    pieces = tokens(n_tokens)
    head = {"id": "b", "object": "chat.completion.chunk", "created": 1, "model": "demo-small"}

    def event(obj: Any) -> bytes:
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    def script(items: list[str]) -> Scripted:
        events = [event({**head, "choices": [{"index": 0, "delta": {"content": p}}]})
                  for p in items]
        events.append(event({**head, "choices": [{"index": 0, "delta": {},
                                                  "finish_reason": "stop"}]}))
        events.append(event({**head, "choices": [], "usage": {
            "prompt_tokens": 10, "completion_tokens": len(items),
            "total_tokens": 10 + len(items)}}))
        events.append(b"data: [DONE]\n\n")
        # 5 tokens per chunk, paced so that the stream runs at ``rate`` tokens/s
        per = 5
        sizes = [sum(len(e) for e in events[i:i + per]) for i in range(0, len(events), per)]
        return Scripted(body=b"".join(events), content_type="text/event-stream",
                        chunks=sizes, delay=per / rate)

    with tempfile.TemporaryDirectory() as home, FakeProviderServer(delay=0) as srv:
        with vj.Workspace(home=home) as ws:
            ws.providers.create(id="bench", provider_type="openai_compatible", name="Bench",
                                base_url=srv.url_for("openai_compatible"),
                                default_model="demo-small", max_retries=0, timeout=600)
            ws.providers.select("bench")
        env = {**os.environ, "VIAGENT_HOME": home, "VIAGENT_KEYRING": "0",
               "IPYTHONDIR": os.path.join(home, "ipython")}
        km, kc = start_new_kernel(kernel_name="python3", env=env)
        try:
            _stdout(kc, "%load_ext viagent_jupyter")
            for _ in range(2):  # warm up both paths (imports, connection pool)
                srv.script("chat", script(pieces[:50]))
                _cell(kc, "%%llm\nwarm up")
            srv.script("chat", script(pieces[:50]))
            _cell(kc, NAIVE.format(prompt="warm up"))

            srv.script("chat", script(pieces))
            ours = _measure(kc, "%%llm", "%%llm\nWrite a long answer")
            srv.script("chat", script(pieces))
            naive = _measure(kc, "naive", NAIVE.format(prompt="Write a long answer"))
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return {"tokens": n_tokens, "rate": rate, "ours": asdict(ours), "naive": asdict(naive)}


def main() -> None:
    args = sys.argv[1:]
    n = int(args[args.index("--tokens") + 1]) if "--tokens" in args else 5000
    rate = float(args[args.index("--rate") + 1]) if "--rate" in args else 1000.0
    result = run(n, rate)
    ours, naive = result["ours"], result["naive"]
    print(f"{n:,} tokens at {rate:,.0f} tokens/s through a real kernel "
          f"(python {sys.version.split()[0]})")
    rows = [
        ("stream shown over (s)", "seconds", "{:.2f}"),
        ("kernel CPU time (s)", "kernel_cpu_s", "{:.3f}"),
        ("display messages", "display_msgs", "{:,}"),
        ("display updates / s", "updates_per_s", "{:.1f}"),
        ("IOPub messages", "iopub_msgs", "{:,}"),
        ("IOPub bytes", "iopub_bytes", "{:,}"),
        ("max IOPub messages in 1 s", "max_msgs_per_s", "{:,}"),
    ]
    print(f"{'':28} {'%%llm':>14} {'naive':>14} {'naive / ours':>13}")
    for label, key, fmt in rows:
        a, b = ours[key], naive[key]
        ratio = f"{b / a:.1f}×" if a else "-"
        print(f"{label:28} {fmt.format(a):>14} {fmt.format(b):>14} {ratio:>13}")
    checks = [
        ("≤ 25 display updates/s", ours["updates_per_s"] <= 25),
        ("≤ 1.5 MB IOPub", ours["iopub_bytes"] <= 1_500_000),
        ("< 1,000 messages in any second", ours["max_msgs_per_s"] < 1000),
    ]
    print("targets: " + ", ".join(f"{name} {'ok' if ok else 'MISSED'}" for name, ok in checks))
    if "--json" in args:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
