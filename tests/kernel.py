"""A real IPython kernel for tests: start it, run code, collect outputs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)  # every iopub message content
    messages: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)  # input() prompts answered


class Kernel:
    def __init__(self, kc: Any) -> None:
        self.kc = kc

    def run(self, code: str, timeout: float = 60.0,
            stdin: list[str] | None = None) -> Result:
        """Run ``code``; with ``stdin``, the cell may ask for input (``input()``) and gets
        these answers in turn (the prompts are kept in ``Result.prompts``)."""
        import queue

        msg_id = self.kc.execute(code, allow_stdin=stdin is not None)
        result = Result()
        answers = list(stdin or [])
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"kernel did not finish: {code[:80]!r}")
            if stdin is not None:
                try:
                    req = self.kc.get_stdin_msg(timeout=0.02)
                except queue.Empty:
                    pass
                else:
                    if req["msg_type"] == "input_request":
                        result.prompts.append(req["content"]["prompt"])
                        self.kc.input(answers.pop(0) if answers else "")
                try:
                    msg = self.kc.get_iopub_msg(timeout=0.05)
                except queue.Empty:
                    continue
            else:
                msg = self.kc.get_iopub_msg(timeout=remaining)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            result.messages.append(msg)
            if kind == "stream":
                if content["name"] == "stdout":
                    result.stdout += content["text"]
                else:
                    result.stderr += content["text"]
            elif kind == "error":
                result.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                return result
            if kind != "status":
                result.outputs.append({"type": kind, **content})

    def check(self, code: str, timeout: float = 60.0) -> str:
        res = self.run(code, timeout)
        if res.error:
            raise AssertionError("kernel error: " + "\n".join(res.error.get("traceback", [])))
        return res.stdout


@contextmanager
def kernel(env: dict[str, str] | None = None) -> Iterator[Kernel]:
    from jupyter_client.manager import start_new_kernel

    kenv = dict(os.environ)
    kenv.update(env or {})
    km, kc = start_new_kernel(kernel_name="python3", env=kenv)
    try:
        yield Kernel(kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
