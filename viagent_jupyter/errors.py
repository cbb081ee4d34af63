"""The exception tree of viagent_jupyter.

Every error the package raises on purpose is a :class:`ViagentError` with a stable
``.code`` (UPPER_SNAKE) and a message that is one readable line: what failed, where,
and what to do about it. No message, ``repr`` or attribute ever carries an API key::

    ViagentError (.code)
    ├─ ConfigValidationError      VALIDATION_ERROR     (.errors: [{field, message}])
    ├─ ProviderNotFoundError      PROVIDER_NOT_FOUND
    ├─ ProviderConflictError      PROVIDER_CONFLICT    (duplicate id; stale version)
    │  └─ ProviderManagedError    PROVIDER_MANAGED     (an administrator's provider: read-only)
    ├─ ProviderInUseError         PROVIDER_IN_USE      (deleting the selected provider)
    ├─ CredentialError            CREDENTIAL_ERROR     (missing key; vault key lost; tampered)
    ├─ StorageError               STORAGE_ERROR        (unreadable/corrupt db: kept, never reset)
    ├─ PolicyError                POLICY_REFUSED       (the administrator's policy forbids it)
    ├─ BudgetExceededError        BUDGET_EXCEEDED      (.budget, .spent: refused before sending)
    └─ ProviderError              (.provider, .model)
       ├─ ProviderConnectionError PROVIDER_UNREACHABLE (refused, DNS, TLS, timeout)
       ├─ ProviderAPIError        PROVIDER_API_ERROR   (.status_code, .retry_after, .error_type)
       │  ├─ AuthenticationError  PROVIDER_AUTH_ERROR  (401/403, Gemini API_KEY_INVALID)
       │  └─ RateLimitError       PROVIDER_RATE_LIMIT  (429, 529 overloaded)
       └─ ProviderResponseError   PROVIDER_BAD_RESPONSE (malformed or truncated stream/body)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigValidationError",
    "CredentialError",
    "PolicyError",
    "ProviderAPIError",
    "ProviderConflictError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderInUseError",
    "ProviderManagedError",
    "ProviderNotFoundError",
    "ProviderResponseError",
    "RateLimitError",
    "Secret",
    "StorageError",
    "ViagentError",
    "conceal",
    "one_line",
    "register_secret",
    "scrub",
]

_WS = re.compile(r"\s+")
# Shapes of well-known keys, scrubbed even when we were not told the exact value.
_KEY_SHAPES = re.compile(
    r"(sk-(?:proj-|ant-(?:api\d+-)?|or-(?:v\d+-)?)?[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,})"
)


# Every key this process has handled (entered, decrypted or read from the environment).
# ``scrub`` removes them from any text that is about to become a message.
_KNOWN_SECRETS: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a key so no message of this process can ever carry it."""
    if secret and len(secret) >= 4:
        _KNOWN_SECRETS.add(secret)


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove every known or given secret (and anything shaped like a provider key)."""
    for secret in (*secrets, *_KNOWN_SECRETS):
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, "[REDACTED]")
    return _KEY_SHAPES.sub("[REDACTED]", text)


class Secret:
    """A key on its way to the vault or a header: ``repr``/``str`` are masked.

    IPython's ``%xmode Verbose`` (and debuggers, ``cgitb``, error reporters) print the
    arguments and local variables of every frame in a traceback. Functions that receive a
    key rebind it to a ``Secret`` first thing (see :func:`conceal`), so a frame of ours that
    an exception passes through shows ``Secret('…')``, and the value is taken out with
    :meth:`reveal` only where it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('…')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickled (multiprocessing, caches) by accident
        raise TypeError("a Secret cannot be pickled")


def conceal(value: Any) -> Any:
    """``value`` as a :class:`Secret` when it is a ``str``; anything else as it is."""
    return Secret(value) if isinstance(value, str) else value


def one_line(text: str, limit: int = 400) -> str:
    """Fold whitespace so a message stays on one line, and cap its length."""
    text = _WS.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ViagentError(Exception):
    """Base class: ``.code`` is a stable string; ``str(err)`` is one readable line."""

    code = "VIAGENT_ERROR"

    def __init__(self, message: str) -> None:
        self.message = one_line(scrub(message))
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[ViagentError], state: dict[str, Any]) -> ViagentError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class ConfigValidationError(ViagentError, ValueError):
    """A provider config or setting was rejected. ``.errors`` lists ``{field, message}``."""

    code = "VALIDATION_ERROR"

    def __init__(self, message: str, errors: Sequence[Mapping[str, str]] = ()) -> None:
        self.errors: list[dict[str, str]] = [
            {"field": str(e.get("field", "")),
             "message": one_line(scrub(str(e.get("message", ""))))}
            for e in errors
        ]
        super().__init__(message)


class ProviderNotFoundError(ViagentError, KeyError):
    code = "PROVIDER_NOT_FOUND"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class ProviderConflictError(ViagentError):
    code = "PROVIDER_CONFLICT"


class ProviderManagedError(ProviderConflictError):
    """A change to a provider the administrator manages (``.managed_by``: where)."""

    code = "PROVIDER_MANAGED"

    def __init__(self, message: str, managed_by: str | None = None) -> None:
        self.managed_by = managed_by
        super().__init__(message)


class PolicyError(ViagentError):
    """The administrator's policy refuses this (``.rule``: the setting that did)."""

    code = "POLICY_REFUSED"

    def __init__(self, message: str, rule: str | None = None) -> None:
        self.rule = rule
        super().__init__(message)


class ProviderInUseError(ViagentError):
    code = "PROVIDER_IN_USE"


class CredentialError(ViagentError):
    code = "CREDENTIAL_ERROR"

    def __init__(self, message: str, provider: str | None = None) -> None:
        self.provider = provider
        super().__init__(message)


class StorageError(ViagentError):
    code = "STORAGE_ERROR"


class BudgetExceededError(ViagentError):
    """A spending limit refused a call before any request was sent. ``.budget`` is the
    limit (a :class:`~viagent_jupyter.budgets.Budget`), ``.spent`` the USD counted."""

    code = "BUDGET_EXCEEDED"

    def __init__(self, message: str, budget: Any = None, spent: Any = None) -> None:
        self.budget = budget
        self.spent = spent
        super().__init__(message)


class ProviderError(ViagentError):
    """A failure talking to a provider. ``.provider`` is the provider id."""

    code = "PROVIDER_ERROR"

    def __init__(self, message: str, provider: str | None = None, model: str | None = None):
        self.provider = provider
        self.model = model
        super().__init__(message)


class ProviderConnectionError(ProviderError):
    code = "PROVIDER_UNREACHABLE"


class ProviderAPIError(ProviderError):
    """The provider answered with an error (HTTP status or an error inside the stream)."""

    code = "PROVIDER_API_ERROR"

    def __init__(
        self,
        message: str,
        provider: str | None = None,
        model: str | None = None,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        error_type: str | None = None,
        provider_message: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.retry_after = retry_after
        self.error_type = error_type
        self.provider_message = one_line(scrub(provider_message)) if provider_message else None
        super().__init__(message, provider, model)


class AuthenticationError(ProviderAPIError):
    code = "PROVIDER_AUTH_ERROR"


class RateLimitError(ProviderAPIError):
    code = "PROVIDER_RATE_LIMIT"


class ProviderResponseError(ProviderError):
    code = "PROVIDER_BAD_RESPONSE"
