"""REST handlers under ``/viagent/api/``: Jupyter Server's authentication and XSRF on every route.

Every handler is an :class:`~jupyter_server.base.handlers.APIHandler` (JSON, XSRF-checked on
writes by Jupyter Server itself) whose methods are ``@tornado.web.authenticated`` and
``@authorized``. Errors are ``{code, message, errors?}`` with an HTTP status per code, never a
traceback; a body that carries a key is answered with a body checked not to contain it.

    GET    /viagent/api/state                         providers, selection, usage, features
    GET    /viagent/api/changes?since=V[&timeout=S]   long-poll: the state once version != V
    GET    /viagent/api/schema                        provider types and setting ranges
    GET    /viagent/api/providers                     list
    POST   /viagent/api/providers                     {fields, api_key?, persist_key?}
    GET    /viagent/api/providers/ID
    PATCH  /viagent/api/providers/ID                  {fields, expected_version?}
    DELETE /viagent/api/providers/ID
    PUT    /viagent/api/providers/ID/key              {api_key, persist_key?} (write-only)
    DELETE /viagent/api/providers/ID/key
    GET    /viagent/api/providers/ID/models           the cached list (fetched when none)
    POST   /viagent/api/providers/ID/models           {refresh: true}: fetch now, with the diff
    POST   /viagent/api/providers/ID/test             a tiny chat: latency, model
    PUT    /viagent/api/selected                      {provider: ID | null}
    GET    /viagent/api/usage                         {period, totals, records}
    GET    /viagent/api/budgets                       NOT_AVAILABLE until budgets exist
    GET    /viagent/api/prices?provider=ID[&model=M]  USD per million tokens (decimal strings)

A managed provider's write answers 403 ``PROVIDER_MANAGED`` (with ``managed_by``), a thing the
administrator's policy forbids 403 ``POLICY_REFUSED``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler

from ..errors import ConfigValidationError, ViagentError, scrub
from ._service import Service

__all__ = ["handlers"]

STATUS = {
    "VALIDATION_ERROR": 400,
    "CREDENTIAL_ERROR": 400,
    "PROVIDER_NOT_FOUND": 404,
    "PROVIDER_CONFLICT": 409,
    "PROVIDER_IN_USE": 409,
    "PROVIDER_MANAGED": 403,
    "POLICY_REFUSED": 403,
    "NOT_AVAILABLE": 501,
    "STORAGE_ERROR": 500,
}
HTTP_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND",
              405: "METHOD_NOT_ALLOWED", 500: "INTERNAL_ERROR"}
LONG_POLL_S = 25.0
MAX_BODY = 256 * 1024


def _status_of(exc: ViagentError) -> int:
    if exc.code in STATUS:
        return STATUS[exc.code]
    return 502 if exc.code.startswith("PROVIDER_") else 500


def _dumps(payload: Any, secrets: Sequence[str | None]) -> str:
    text = json.dumps(payload, default=str)
    for secret in secrets:  # a last guard: no body ever carries the request's key
        if secret and secret in text:
            text = scrub(text, [secret])
    return text


class _Base(APIHandler):
    auth_resource = "viagent"

    @property
    def service(self) -> Service:
        service: Service = self.settings["viagent_service"]
        return service

    def body(self) -> dict[str, Any]:
        raw = self.request.body or b"{}"
        if len(raw) > MAX_BODY:
            raise ConfigValidationError("Invalid request: the body is too large.",
                                        [{"field": "(body)", "message": "is too large"}])
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ConfigValidationError(
                "Invalid request: the body is not JSON.",
                [{"field": "(body)", "message": "is not JSON"}]) from None
        if not isinstance(data, dict):
            raise ConfigValidationError("Invalid request: the body must be a JSON object.",
                                        [{"field": "(body)", "message": "must be an object"}])
        return data

    async def answer(self, work: Callable[[], Any] | Callable[[], Awaitable[Any]], *,
                     status: int = 200, blocking: bool = True) -> None:
        """Run ``work`` (on the pool when ``blocking``) and answer with its JSON or an error."""
        secrets: list[str | None] = []
        try:
            if self.request.body:
                body = self.body()
                key = body.get("api_key")
                secrets.append(key if isinstance(key, str) else None)
            if blocking:
                result = await self.service.run(work)
            else:
                result = await work()
        except ViagentError as exc:
            from .._forms import error_payload

            self.set_status(_status_of(exc))
            self.finish(_dumps(error_payload(exc, secrets), secrets))
            return
        except Exception as exc:  # a bug: one scrubbed line in the log, no traceback out
            from .._forms import error_payload

            self.log.error("viagent: %s %s failed: %s", self.request.method, self.request.path,
                           error_payload(exc, secrets)["message"])
            self.set_status(500)
            self.finish(json.dumps({"code": "INTERNAL_ERROR",
                                    "message": "Unexpected server error; see the server log."}))
            return
        self.set_status(status)
        self.finish(_dumps(result, secrets))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Jupyter's own refusals (403 XSRF, 403 unauthenticated, 405): JSON, no traceback."""
        self.set_header("Content-Type", "application/json")
        reason = self._reason or "error"
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        self.finish(json.dumps({"code": HTTP_CODES.get(status_code, "HTTP_ERROR"),
                                "message": one_sentence(reason)}))


def one_sentence(text: str) -> str:
    from ..errors import one_line

    return one_line(text, 200)


class StateHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(self.service.snapshot)


class ChangesHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            since = int(self.get_query_argument("since", "0"))
            timeout = min(float(self.get_query_argument("timeout", str(LONG_POLL_S))),
                          LONG_POLL_S)
        except ValueError:
            since, timeout = -1, 0.0
        hub = self.service.hub()
        await self.service.run(lambda: self.service.ws)  # open it (and observe) off the loop
        await hub.wait(since, max(timeout, 0.0))
        await self.answer(self.service.snapshot)


class SchemaHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(self.service.schema)


class ProvidersHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(lambda: {"providers": list(self.service.ws.providers.providers),
                                   "selected": self.service.ws.providers.selected})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        await self.answer(lambda: self.service.create(self.body()), status=201)


class ProviderHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self, pid: str) -> None:
        await self.answer(lambda: self.service.provider(pid))

    @tornado.web.authenticated
    @authorized
    async def patch(self, pid: str) -> None:
        await self.answer(lambda: self.service.update(pid, self.body()))

    @tornado.web.authenticated
    @authorized
    async def delete(self, pid: str) -> None:
        await self.answer(lambda: self.service.delete(pid))


class KeyHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def put(self, pid: str) -> None:
        await self.answer(lambda: self.service.set_key(pid, self.body()))

    @tornado.web.authenticated
    @authorized
    async def delete(self, pid: str) -> None:
        await self.answer(lambda: self.service.remove_key(pid))


class ModelsHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self, pid: str) -> None:
        await self.answer(lambda: self.service.models(pid, refresh=False))

    @tornado.web.authenticated
    @authorized
    async def post(self, pid: str) -> None:
        await self.answer(
            lambda: self.service.models(pid, refresh=self.body().get("refresh", True) is True))


class TestHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def post(self, pid: str) -> None:
        await self.answer(lambda: self.service.test(pid))


class SelectedHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(lambda: {"selected": self.service.ws.providers.selected})

    @tornado.web.authenticated
    @authorized
    async def put(self) -> None:
        await self.answer(lambda: self.service.select(self.body()))


class UsageHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(self.service.usage)


class BudgetsHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.answer(self.service.budgets)


class PricesHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        pid = self.get_query_argument("provider", "")
        model = self.get_query_argument("model", "") or None

        def work() -> Any:
            if not pid:
                raise ConfigValidationError("Invalid request: give ?provider=ID.",
                                            [{"field": "provider", "message": "is required"}])
            return self.service.price(pid, model)

        await self.answer(work)


_ID = r"(?P<pid>[^/]+)"


def handlers(base_url: str) -> list[tuple[str, type[_Base]]]:
    from jupyter_server.utils import url_path_join

    def route(path: str) -> str:
        return url_path_join(base_url, "viagent", "api", path)

    return [
        (route("state"), StateHandler),
        (route("changes"), ChangesHandler),
        (route("schema"), SchemaHandler),
        (route("providers"), ProvidersHandler),
        (route(f"providers/{_ID}"), ProviderHandler),
        (route(f"providers/{_ID}/key"), KeyHandler),
        (route(f"providers/{_ID}/models"), ModelsHandler),
        (route(f"providers/{_ID}/test"), TestHandler),
        (route("selected"), SelectedHandler),
        (route("usage"), UsageHandler),
        (route("budgets"), BudgetsHandler),
        (route("prices"), PricesHandler),
    ]
