"""Pydantic models shared by every layer. None of them ever holds an API key."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigValidationError

__all__ = [
    "DEFAULT_BASE_URLS",
    "ENV_KEYS",
    "PROVIDER_TYPES",
    "REASONING_LEVELS",
    "TYPE_NAMES",
    "Message",
    "ModelInfo",
    "ModelSettings",
    "ProviderConfig",
    "ProviderType",
    "ReasoningLevel",
    "Usage",
    "UsageRecord",
    "display_label",
    "validation_error",
]

ProviderType = Literal["openai", "anthropic", "gemini", "openrouter", "ollama", "openai_compatible"]
PROVIDER_TYPES: tuple[str, ...] = (
    "openai",
    "anthropic",
    "gemini",
    "openrouter",
    "ollama",
    "openai_compatible",
)

# What people read for each type (panel, footers, prompts); the widgets ship this table to the
# browser in the panel's schema, so the front end never keeps a copy.
TYPE_NAMES: dict[str, str] = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "gemini": "Google Gemini",
    "openrouter": "OpenRouter",
    "ollama": "Ollama",
    "openai_compatible": "OpenAI-compatible",
}


def display_label(name: str, provider_type: str) -> str:
    """The name first, then the readable type: ``"Work (OpenAI)"``; just the name when it
    already says the type (``"OpenAI"``, ``"Local Ollama"``). JS twin: ``displayLabel`` in
    ``js/src/lib/format.js``."""
    kind = TYPE_NAMES.get(provider_type, provider_type)
    return name if kind.casefold() in name.casefold() else f"{name} ({kind})"


DEFAULT_BASE_URLS: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "openrouter": "https://openrouter.ai/api/v1",
    "ollama": "http://localhost:11434",
    "openai_compatible": None,  # must be given
}

# The environment variables each provider type reads its key from, in order.
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "openrouter": ("OPENROUTER_API_KEY",),
    "ollama": (),
    "openai_compatible": (),
}

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Headers that carry credentials belong in the vault, never in the plain config.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie",
     "x-auth-token", "x-access-token", "x-csrf-token", "x-amz-security-token", "set-cookie"}
)
_SECRET_HEADER_PARTS = re.compile(
    r"(^|-)(token|secret|key|password|passwd|auth|authorization|credentials?|session|cookie)"
    r"(-|$)"
)
# Headers that control the HTTP message itself: the client sets them, a config never does.
_TRANSPORT_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
     "trailer", "upgrade", "expect", "proxy-connection", "content-encoding"}
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")

KeySource = Literal["stored", "session", "environment", "managed", "none"]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


ReasoningLevel = Literal["none", "minimal", "low", "medium", "high"]
REASONING_LEVELS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high")


class ModelSettings(BaseModel):
    """What the user asked for. Every field defaults to ``None`` = unset = the provider's own
    default: an unset field is never sent (reasoning models refuse a temperature they were
    not asked for). ``reasoning`` is the effort level and ``reasoning_budget`` the thinking
    budget in tokens for the protocols that take one (Anthropic, Gemini 2.5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0, le=10_000_000)
    top_p: float | None = Field(None, ge=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    reasoning: ReasoningLevel | None = None
    reasoning_budget: int | None = Field(None, gt=0, le=10_000_000)


class ProviderConfig(BaseModel):
    """One configured provider. It never carries the key: see ``has_api_key``/``api_key_hint``."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str
    provider_type: ProviderType
    name: str
    base_url: str | None = None
    default_model: str | None = None
    settings: ModelSettings = Field(default_factory=ModelSettings)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(60.0, gt=0, le=3600)
    max_retries: int = Field(2, ge=0, le=10)
    allow_insecure_http: bool = False
    created_at: datetime = Field(default_factory=_utcnow)
    updated_at: datetime = Field(default_factory=_utcnow)
    version: int = Field(1, ge=1)
    has_api_key: bool = False
    api_key_hint: str | None = None
    key_source: KeySource = "none"
    # set by the administrator's layer (admin.py), never stored with a user's provider
    managed: bool = False
    managed_by: str | None = None
    key_notice: str | None = None  # why a stored key was cleared (its origin/type changed)

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(
                "must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
            )
        return v

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not 1 <= len(v) <= 200:
            raise ValueError("must be 1-200 characters")
        if not v.isprintable():
            raise ValueError("must contain printable characters only")
        return v

    @field_validator("default_model")
    @classmethod
    def _check_model(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if len(v) > 300 or not v.isprintable() or any(c.isspace() for c in v):
            raise ValueError("must be a model id: up to 300 printable characters, no spaces")
        return v

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if any(c.isspace() for c in v) or not v.isprintable():
            raise ValueError("must be a URL without spaces")
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must start with http:// or https://")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise ValueError("must not contain a user name or password; put the key in api_key")
        if not parts.hostname:
            raise ValueError("must name a host")
        if parts.fragment or v.endswith("#"):
            raise ValueError("must not contain a #fragment")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return v.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name[:40]!r} is not a valid header name")
            lower = name.lower()
            if lower in _TRANSPORT_HEADERS:
                raise ValueError(f"{name!r} is set by the HTTP client and cannot be configured")
            if lower in _SECRET_HEADERS or _SECRET_HEADER_PARTS.search(lower):
                raise ValueError(
                    f"{name!r} looks like it carries a credential; set it as api_key so it is "
                    "encrypted (extra headers are stored in clear)"
                )
            if "\n" in value or "\r" in value or len(value) > 4000:
                raise ValueError(f"the value of {name!r} must be one line under 4000 characters")
        return dict(v)

    @property
    def label(self) -> str:
        """What the UI shows: ``"OPENAI - My OpenAI"``."""
        return f"{self.provider_type.upper()} - {self.name}"

    @property
    def display_label(self) -> str:
        """What people read: ``"My OpenAI (OpenAI)"`` (see :func:`display_label`);
        :attr:`label` stays the API's value."""
        return display_label(self.name, self.provider_type)

    @property
    def endpoint(self) -> str:
        """The effective base URL (the configured one, else the provider's default)."""
        return self.base_url or default_base_url(self.provider_type) or ""

    def to_public_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict for traits and widgets (no secrets: there are none here)."""
        data = self.model_dump(mode="json")
        data["label"] = self.label
        data["endpoint"] = self.endpoint
        return data


def default_base_url(provider_type: str) -> str | None:
    if provider_type == "ollama":
        import os

        host = os.environ.get("OLLAMA_HOST", "").strip()
        if host:
            if "://" not in host:
                host = "http://" + host
            return host.rstrip("/")
    return DEFAULT_BASE_URLS.get(provider_type)


class ModelInfo(BaseModel):
    """A model as listed by its provider. ``pricing`` is USD per token."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str | None = None
    context_length: int | None = None
    #: The most output tokens one answer may have, when the model list says.
    max_output_tokens: int | None = None
    pricing: dict[str, Decimal] | None = None
    capabilities: tuple[str, ...] = ()
    created: int | None = None
    description: str | None = None


class Usage(BaseModel):
    """Token counts as reported; ``None`` where the provider reported nothing."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    #: Output tokens spent on reasoning, when the provider says; already part of
    #: ``completion_tokens`` (they are billed as output).
    reasoning_tokens: int | None = None
    # Of prompt_tokens: read from the provider's prompt cache / written to it (priced apart)
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None

    @property
    def reported(self) -> bool:
        return self.prompt_tokens is not None or self.completion_tokens is not None


class UsageRecord(BaseModel):
    """Counters for one provider:model."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    last_used: datetime | None = None
    errors: int = 0
    #: Requests whose usage the provider did not report: their tokens are unknown (the
    #: counters hold only what was reported). All of them unreported → show "—".
    unreported: int = 0

    @property
    def tokens_known(self) -> bool:
        return self.unreported < self.requests or self.requests == 0


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


def validation_error(exc: ValidationError, what: str = "provider config") -> ConfigValidationError:
    """Turn a pydantic error into ours, never echoing the rejected input."""
    errors = []
    for e in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(p) for p in e.get("loc", ())) or "(config)"
        msg = str(e.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            msg = "is not a known field"
        errors.append({"field": field, "message": msg})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return ConfigValidationError(
        f"Invalid {what}: {summary}{more}. Fix the field and retry.", errors
    )
