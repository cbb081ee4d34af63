"""What every viagent widget shares: its bundle, its subscriptions, request/response plumbing.

A widget here is a *view*: it copies derived, secret-free snapshots of the workspace's traits
into its own synced traits, and turns front-end requests into calls on the store. The front
end never writes a synced trait (``set_state`` from the browser is ignored), so the only way
in is a custom message ``{id, op, ...}``, answered with ``{type: "reply", id, ok, ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
from traitlets import HasTraits

from .._forms import error_payload
from ..errors import ConfigValidationError, ViagentError, scrub

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ["STATIC", "ViewWidget", "asset", "error_payload"]

log = logging.getLogger("viagent_jupyter.widgets")

STATIC = Path(__file__).resolve().parent.parent / "static"

_MISSING_BUNDLE_ESM = """
function render({ el }) {
  const p = document.createElement("p");
  p.className = "vj-missing-bundle";
  p.textContent = %s;
  el.appendChild(p);
}
export default { render };
"""


def asset(name: str) -> Path | str:
    """The text of the bundled file ``static/<name>``.

    Text, not a path: anywidget connects every instance to a file-watching signal when given a
    path, which keeps closed widgets alive. ``ANYWIDGET_HMR=1`` (front-end development with
    ``npm run watch``) gets the path and live reloading. A bundle that was never built gives
    an inline module (for ``.js``) that says how to build it, or no style (for ``.css``)."""
    path = STATIC / name
    if path.is_file():
        if os.environ.get("ANYWIDGET_HMR") == "1":
            return path
        text = path.read_text(encoding="utf-8")
        return text if "\n" in text else text + "\n"  # multi-line: never taken for a file name
    if name.endswith(".css"):
        return "\n"
    hint = ("viagent_jupyter: the widget front end is not built. Reinstall with "
            "`pip install -e .` (needs Node.js and npm), or run `npm --prefix js ci && "
            "npm --prefix js run build`, then restart the kernel.")
    return _MISSING_BUNDLE_ESM % json.dumps(hint)


Handler = Callable[[dict[str, Any]], None]


def _key_from_buffers(buffers: Any) -> str | None:
    """The key a front end sent as the first binary buffer of a request (UTF-8), if any."""
    if not buffers:
        return None
    first = buffers[0]
    try:
        raw = first.tobytes() if isinstance(first, memoryview) else bytes(first)
        return raw.decode("utf-8")
    except (TypeError, ValueError):
        return "\ufffd"  # undecodable: rejected by the key check, never echoed


class ViewWidget(anywidget.AnyWidget):
    """Base of the viagent widgets: observe workspace traits, answer front-end requests."""

    def __init__(self, ws: Workspace | None = None, **kwargs: Any) -> None:
        if ws is None:
            from .._workspace import workspace

            ws = workspace()
        self._ws = ws
        self._subscriptions: list[tuple[HasTraits, Handler, list[str]]] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        # The kernel's loop and thread: a change made on another thread (a chat run in a
        # thread, the Test button's worker) is applied here, so comm messages leave in order
        # from one thread.
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._thread = threading.get_ident()
        super().__init__(**kwargs)
        self.on_msg(self._on_custom_msg)

    @property
    def workspace(self) -> Workspace:
        return self._ws

    # -- observing the workspace ----------------------------------------------------------------
    def _subscribe(self, source: HasTraits, names: Iterable[str],
                   update: Callable[[], None]) -> None:
        """Call ``update()`` whenever one of ``names`` of ``source`` changes (on the kernel's
        thread), until the widget is closed."""
        names = list(names)

        def handler(_change: dict[str, Any]) -> None:
            loop = self._loop
            if loop is not None and threading.get_ident() != self._thread and \
                    not loop.is_closed():
                loop.call_soon_threadsafe(self._if_open, update)
            else:
                update()

        source.observe(handler, names=names)
        self._subscriptions.append((source, handler, names))

    def _if_open(self, update: Callable[[], None]) -> None:
        if self.comm is not None:
            update()

    def close(self) -> None:
        """Close the widget and stop observing the workspace (no observer outlives it)."""
        for source, handler, names in getattr(self, "_subscriptions", ()):
            with contextlib.suppress(ValueError):  # already gone
                source.unobserve(handler, names=names)
        self._subscriptions = []
        for task in list(getattr(self, "_tasks", ())):
            task.cancel()
        super().close()

    # -- the front end never writes state ---------------------------------------------------------
    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Ignore state sent by a front end: every synced trait is derived from the workspace,
        and edits arrive as requests that the store validates."""
        if sync_data:
            log.debug("ignored front-end state for %s: %s", type(self).__name__,
                      sorted(sync_data))

    # -- requests -------------------------------------------------------------------------------
    def _on_custom_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("op"), str):
            return
        rid = content.get("id")
        if "api_key" in content:
            # The JSON content of a comm message is logged at DEBUG by the kernel (ipykernel's
            # dispatch, the comm layer) before any code of ours runs: a key is accepted only
            # in the message's binary buffer, which no layer logs.
            self._reply(rid, error=ConfigValidationError(
                "Invalid request: the key must travel in the message's binary buffer, not in "
                "its JSON content (which the kernel may log); reload the page.",
                [{"field": "api_key", "message": "must be sent as a binary buffer"}]))
            return
        content = dict(content)
        key = _key_from_buffers(buffers)
        if key is not None:
            content["api_key"] = key
        secrets = [key]
        try:
            self._handle_request(content["op"], rid, content)
        except Exception as exc:  # every request gets an answer, never a traceback
            if not isinstance(exc, ViagentError):  # a bug: log it, one scrubbed line
                log.warning("%s request %r failed: %s", type(self).__name__, content["op"],
                            error_payload(exc, secrets)["message"])
            self._reply(rid, error=exc, secrets=secrets)

    def _handle_request(self, op: str, rid: Any, content: dict[str, Any]) -> None:
        raise ViagentError(f"Unknown request {op!r}.")

    def _reply(self, rid: Any, *, result: Any = None, error: BaseException | None = None,
               secrets: Sequence[str | None] = ()) -> None:
        msg: dict[str, Any] = {"type": "reply", "id": rid, "ok": error is None}
        if error is None:
            msg["result"] = result
        else:
            payload = error_payload(error, secrets)
            if "errors" in payload:
                msg["errors"] = payload.pop("errors")
            msg["error"] = payload
        text = json.dumps(msg, default=str)
        for secret in secrets:  # a last guard: a reply never carries the request's secret
            if secret and secret in text:
                msg = json.loads(scrub(text, [secret]))
                break
        self.send(msg)

    def _spawn(self, blocking: Callable[[], Any], done: Callable[[Any, BaseException | None],
                                                                  None]) -> None:
        """Run ``blocking`` off the kernel's thread, then ``done(result, error)`` back on it.

        Inside a kernel the widget stays live while it runs; without a running event loop
        (plain Python, tests) both run at once, in order."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            try:
                result = blocking()
            except Exception as exc:
                done(None, exc)
            else:
                done(result, None)
            return

        async def run() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = await loop.run_in_executor(None, blocking)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
            try:
                done(result, error)
            except Exception as exc:  # the widget may have been closed meanwhile
                log.warning("%s: could not deliver a result: %s", type(self).__name__,
                            error_payload(exc)["message"])

        task = loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
