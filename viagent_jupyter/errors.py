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
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    "known_secrets",
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
# Any run of this many characters of a known key is redacted (a prefix, a suffix, the two
# halves of a key a provider echoed with "..." inserted).
PARTIAL_RUN = 8
_GRAM = PARTIAL_RUN // 2  # every run of PARTIAL_RUN holds one 4-gram at an offset % 4 == 0


def register_secret(secret: str | None) -> None:
    """Remember a key so no message of this process can ever carry it."""
    if secret and len(secret) >= 4:
        _KNOWN_SECRETS.add(secret)


def known_secrets() -> frozenset[str]:
    """Every key this process has handled so far (for checks that must not pass one on)."""
    return frozenset(_KNOWN_SECRETS)


def _partial_spans(text: str, secret: str) -> Iterator[tuple[int, int]]:
    """Where ``text`` holds a run of ``PARTIAL_RUN`` or more characters of ``secret``: seeds
    are the key's aligned 4-grams (found with ``str.find``), each extended both ways."""
    n = len(secret)
    for k in range(0, n - _GRAM + 1, _GRAM):
        gram = secret[k:k + _GRAM]
        pos = text.find(gram)
        while pos != -1:
            left = 0
            while k - left > 0 and pos - left > 0 and text[pos - left - 1] == secret[k - left - 1]:
                left += 1
            right = 0
            while (k + _GRAM + right < n and pos + _GRAM + right < len(text)
                   and text[pos + _GRAM + right] == secret[k + _GRAM + right]):
                right += 1
            start, end = pos - left, pos + _GRAM + right
            if end - start >= PARTIAL_RUN and not _word(text[start:end]):
                yield start, end
            pos = text.find(gram, pos + 1)


def _word(run: str) -> bool:
    """A run of lowercase letters only ("anthropic", "environment"): in a message that is an
    ordinary word, not a fragment of a random key (8 random base62 characters are all
    lowercase letters about once in a thousand)."""
    return run.isascii() and run.isalpha() and run.islower()


def _key_like(secret: str) -> bool:
    """Partial runs are looked for only in secrets shaped like keys (16+ characters, no
    whitespace): a run of 8 characters of a random key is the key leaking, while 8 characters
    of some phrase registered as a secret would blank out ordinary words."""
    return len(secret) >= 2 * PARTIAL_RUN and not any(c.isspace() for c in secret)


def _redact_partials(text: str, secrets: Iterable[str]) -> str:
    spans = sorted(span for s in secrets if _key_like(s) for span in _partial_spans(text, s))
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for start, end in spans:
        if end <= pos:
            continue
        out += [text[pos:max(start, pos)], "[REDACTED]"] if start >= pos else ["[REDACTED]"]
        pos = end
    out.append(text[pos:])
    return "".join(out).replace("[REDACTED][REDACTED]", "[REDACTED]")


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove every known or given secret, any run of 8 or more characters of one (a
    prefix, a suffix, a key with "..." inserted; not a run that is only lowercase letters,
    which is an ordinary word), and anything shaped like a provider key."""
    known = {s for s in (*secrets, *_KNOWN_SECRETS) if s and len(s) >= 4}
    for secret in sorted(known, key=len, reverse=True):  # a key that contains another first
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    # whole key shapes before partial runs: a run shared with another known key must not
    # split an unregistered key so that its shape no longer matches
    text = _KEY_SHAPES.sub("[REDACTED]", text)
    return _redact_partials(text, known)


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
