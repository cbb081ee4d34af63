"""``python -m viagent_jupyter.testing --port N [--delay S]``: run the fake provider in the
foreground. The first line printed is its base URL; SIGINT or SIGTERM stops it."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from ._server import FakeProviderServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m viagent_jupyter.testing",
                                     description="Run the offline fake LLM provider.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--delay", type=float, default=0.02,
                        help="seconds between streamed deltas (default 0.02)")
    parser.add_argument("--openrouter", action="store_true",
                        help="OpenRouter flavour (pricing, cost) on every OpenAI-style route")
    parser.add_argument("--require-key", default=None, metavar="KEY",
                        help="answer 401 (in each provider's shape) unless this key is sent")
    args = parser.parse_args(argv)

    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with FakeProviderServer(args.port, delay=args.delay, openrouter=args.openrouter,
                            require_key=args.require_key) as srv:
        print(srv.base_url, flush=True)
        print("viagent fake provider: base_url per type: "
              + ", ".join(f"{t}={srv.url_for(t)}" for t in
                          ("openai", "openrouter", "anthropic", "gemini", "ollama"))
              + ". Ctrl-C to stop.", file=sys.stderr, flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
