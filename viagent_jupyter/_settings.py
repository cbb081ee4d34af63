"""The environment settings, parsed and checked once, when a ``Workspace`` is built.

A bad value is a :class:`ConfigValidationError` naming the variable and the accepted form right
there, never a raw ``ValueError`` in the middle of a chat. (``VIAGENT_VAULT_KEY`` is checked by
the vault, into a :class:`CredentialError`; it is re-read before each write.)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigValidationError

__all__ = ["CHAT_DEADLINE_S", "MODELS_TTL_S", "Settings"]

CHAT_DEADLINE_S = 900.0
MODELS_TTL_S = 3600.0
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bad(var: str, form: str) -> ConfigValidationError:
    return ConfigValidationError(
        f"Invalid environment setting {var}: expected {form}; fix or unset it.",
        [{"field": var, "message": f"expected {form}"}],
    )


def _seconds(env: Mapping[str, str], var: str, default: float, *, zero_ok: bool) -> float:
    raw = env.get(var, "").strip()
    if not raw:
        return default
    form = ("a number of seconds >= 0" if zero_ok else "a number of seconds > 0") + \
        ", like 900 or 2.5"
    try:
        value = float(raw)
    except ValueError:
        raise _bad(var, form) from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise _bad(var, form)
    return value


def _choice(env: Mapping[str, str], var: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(var, "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise _bad(var, " or ".join(choices))
    return raw


def _host(env: Mapping[str, str], var: str) -> None:
    """``OLLAMA_HOST``: ``host[:port]`` or an ``http(s)://`` URL (read where it is used)."""
    from urllib.parse import urlsplit

    raw = env.get(var, "").strip()
    if not raw:
        return
    url = raw if "://" in raw else "http://" + raw
    form = "host[:port] or an http(s):// URL, like localhost:11434"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise _bad(var, form) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or \
            any(c.isspace() for c in raw):
        raise _bad(var, form)


def _url_or_off(env: Mapping[str, str], var: str) -> None:
    """``VIAGENT_PRICES_URL``: an http(s) URL, or ``off``/``none`` (read where it is used)."""
    from urllib.parse import urlsplit

    raw = env.get(var, "").strip()
    if not raw or raw.lower() in ("off", "none"):
        return
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or \
            any(c.isspace() for c in raw):
        raise _bad(var, "an http(s):// URL, or off")


def _flag(env: Mapping[str, str], var: str, default: bool) -> bool:
    raw = env.get(var, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise _bad(var, "1 or 0 (true/false, yes/no, on/off)")


@dataclass(frozen=True)
class Settings:
    """``VIAGENT_CHAT_DEADLINE`` (seconds > 0), ``VIAGENT_MODELS_TTL`` (seconds >= 0),
    ``VIAGENT_JOURNAL_MODE`` (``wal``/``delete``), ``VIAGENT_KEYRING`` and ``VIAGENT_LOG``
    (1/0); ``OLLAMA_HOST`` (``host[:port]`` or an http(s) URL) and ``VIAGENT_PRICES_URL`` (a URL
    or ``off``) are checked too."""

    chat_deadline: float = CHAT_DEADLINE_S
    models_ttl: float = MODELS_TTL_S
    journal_mode: str = "wal"
    keyring: bool = True
    log: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        _host(env, "OLLAMA_HOST")
        _url_or_off(env, "VIAGENT_PRICES_URL")
        return cls(
            chat_deadline=_seconds(env, "VIAGENT_CHAT_DEADLINE", CHAT_DEADLINE_S, zero_ok=False),
            models_ttl=_seconds(env, "VIAGENT_MODELS_TTL", MODELS_TTL_S, zero_ok=True),
            journal_mode=_choice(env, "VIAGENT_JOURNAL_MODE", "wal", ("wal", "delete")),
            keyring=_flag(env, "VIAGENT_KEYRING", True),
            log=_flag(env, "VIAGENT_LOG", True),
        )
