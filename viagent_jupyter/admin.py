"""The administrator's layer: managed providers, key references and policy.

On a shared deployment (JupyterHub) an administrator writes ``viagent.toml`` into a Jupyter
config directory (``jupyter --paths``: e.g. ``/etc/jupyter``, ``/usr/local/etc/jupyter``,
``<sys.prefix>/etc/jupyter`` or a directory on ``$JUPYTER_CONFIG_PATH``). The user's own
config directory (``~/.jupyter``) is not read: a user does not manage themselves. Several
files merge, the higher-priority directory winning key by key.

* ``[providers.ID]``: providers every user sees, read-only (``managed=True``, ``managed_by``:
  the file). Their ``api_key`` is a *reference*, never a key: ``"${ENV_VAR}"`` (set by the
  spawner) or ``"file:PATH"`` (a file only the user can read). It is read at request time and
  never copied into the vault or any file.
* ``[policy]``: ``allow_user_providers``, ``allowed_providers``/``blocked_providers`` (globs on
  a provider's id or type; managed providers are always allowed), ``allowed_models``/
  ``blocked_models`` (globs on ``MODEL`` or ``PROVIDER:MODEL``).
* ``[defaults]``: ``provider`` (used when the user selected none) and ``settings`` (they
  replace the built-in defaults; the user's own settings and call arguments still win).
* ``[budgets]``: ``day``/``month`` in USD, and ``[budgets.ID]`` per provider: limits a user
  may lower but not raise (see :meth:`AdminConfig.budget_limit`, the seam for ``budgets``).

The same tables may be given the traitlets way, ``c.ViagentAdmin.providers = {...}``
(``policy``, ``defaults``, ``budgets``), in a ``jupyter_config.py``/``.json`` of those
directories; ``viagent.toml`` wins over them in the same directory.

A file that cannot be read, or that has an unknown key, is an error naming the file: a typo
must never silently lift a rule. :class:`ManagedProviderStore` merges the layer under the
user's own providers; :func:`enforce` is the check a chat plan makes before any request.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .errors import (
    ConfigValidationError,
    CredentialError,
    PolicyError,
    ProviderManagedError,
    register_secret,
)
from .schema import ModelSettings, ProviderConfig, validation_error
from .vault import key_hint

if TYPE_CHECKING:
    from .registry import ModelList

__all__ = ["ADMIN_FILE", "AdminConfig", "KeyRef", "ManagedProvider", "admin_dirs", "enforce"]

ADMIN_FILE = "viagent.toml"
# Jupyter's own config files, read only when they set ``c.ViagentAdmin`` (json wins over py)
TRAITLETS_FILES = ("jupyter_config.json", "jupyter_config.py")
PERIODS = ("day", "month")
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_TOP = frozenset({"providers", "policy", "defaults", "budgets"})
_POLICY_LISTS = ("allowed_providers", "blocked_providers", "allowed_models", "blocked_models")
_COMPUTED = frozenset({"id", "created_at", "updated_at", "version", "has_api_key",
                       "api_key_hint", "key_source", "managed", "managed_by"})
_BUILTIN_SETTINGS = ModelSettings().model_dump(exclude_none=True)


def admin_dirs() -> list[Path]:
    """Jupyter's config directories, highest priority first, without the user's own."""
    from jupyter_core.paths import jupyter_config_dir, jupyter_config_path

    own = os.path.abspath(jupyter_config_dir())
    return [Path(p) for p in jupyter_config_path() if os.path.abspath(p) != own]


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _bad(path, "(file)", f"cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _bad(path, "(file)", f"is not valid TOML ({exc})") from None
    return data


def _load_traitlets(path: Path) -> dict[str, Any]:
    """``c.ViagentAdmin.providers/policy/defaults/budgets`` from a Jupyter config file (the
    same tables as ``viagent.toml``)."""
    from traitlets.config.loader import (
        ConfigFileNotFound,
        JSONFileConfigLoader,
        PyFileConfigLoader,
    )

    loader_class = JSONFileConfigLoader if path.suffix == ".json" else PyFileConfigLoader
    try:
        config = loader_class(path.name, str(path.parent)).load_config()
    except ConfigFileNotFound:
        return {}
    except Exception as exc:  # the administrator's file: any failure is theirs to fix
        raise _bad(path, "(file)", f"cannot be loaded ({type(exc).__name__}: {exc})") from None
    section = config.get("ViagentAdmin", {})

    def plain(value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v, where) for v in value]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise _bad(path, where, "must be plain data (assign a dict, list, string or number)")

    return {key: plain(value, f"ViagentAdmin.{key}") for key, value in section.items()}


def _bad(path: Path | str, where: str, message: str) -> ConfigValidationError:
    return ConfigValidationError(
        f"Invalid administrator config {path}: {where}: {message}. Ask your administrator "
        "to fix it.",
        [{"field": where, "message": message}],
    )


@dataclass(frozen=True)
class KeyRef:
    """Where a managed key comes from: an environment variable or a private file."""

    env: str | None = None
    file: str | None = None

    @classmethod
    def parse(cls, value: Any, path: Path, where: str) -> KeyRef:
        if isinstance(value, str):
            m = _ENV_REF.match(value.strip())
            if m:
                return cls(env=m.group(1))
            if value.startswith("file:") and len(value) > 5:
                if not os.path.isabs(os.path.expanduser(value[5:])):
                    raise _bad(path, where, "a key file must be an absolute path or start "
                               "with ~/ (the user's home)")
                return cls(file=value[5:])
        raise _bad(path, where, "must be a reference, \"${ENV_VAR}\" or \"file:PATH\" (a key "
                   "written here would be readable by every user)")

    def describe(self) -> str:
        return f"${self.env}" if self.env else f"the file {self.file}"


@dataclass(frozen=True)
class ManagedProvider:
    config: ProviderConfig
    key: KeyRef | None
    source: str
    # model glob -> {"prompt": USD per token, "completion": ...}: a gateway's prices
    pricing: dict[str, dict[str, Decimal]] = field(default_factory=dict)


@dataclass
class _Layer:
    """The merged content of every admin file (lowest priority applied first)."""

    providers: dict[str, ManagedProvider] = field(default_factory=dict)
    rules: dict[str, Any] = field(default_factory=dict)  # policy + defaults
    settings: dict[str, Any] = field(default_factory=dict)
    budgets: dict[tuple[str | None, str], float] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)  # rule -> file

    def apply(self, path: Path, data: Mapping[str, Any]) -> None:
        for key in data:
            if key not in _TOP:
                raise _bad(path, key, f"is not a known table (known: {', '.join(sorted(_TOP))})")
        for pid, entry in _table(path, data, "providers").items():
            self.providers[pid] = _managed(path, pid, entry)
        policy = _table(path, data, "policy")
        for key, value in policy.items():
            where = f"policy.{key}"
            if key == "allow_user_providers":
                if not isinstance(value, bool):
                    raise _bad(path, where, "must be true or false")
            elif key in _POLICY_LISTS:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise _bad(path, where, "must be a list of glob patterns")
                value = tuple(value)
            else:
                raise _bad(path, where, "is not a known setting (known: allow_user_providers, "
                           + ", ".join(_POLICY_LISTS) + ")")
            self.rules[key] = value
            self.source[key] = str(path)
        defaults = _table(path, data, "defaults")
        for key, value in defaults.items():
            where = f"defaults.{key}"
            if key == "provider":
                if not isinstance(value, str):
                    raise _bad(path, where, "must be a provider id")
                self.rules["default_provider"] = value
            elif key == "settings":
                if not isinstance(value, dict):
                    raise _bad(path, where, "must be a table of model settings")
                try:
                    ModelSettings.model_validate(value)
                except ValidationError as exc:
                    raise _bad(path, where, str(validation_error(exc, "settings"))) from None
                self.settings.update(value)
                self.source["settings"] = str(path)
            else:
                raise _bad(path, where, "is not a known setting (known: provider, settings)")
        for key, value in _table(path, data, "budgets").items():
            if isinstance(value, dict):
                for period, usd in value.items():
                    self._budget(path, key, period, usd)
            else:
                self._budget(path, None, key, value)

    def _budget(self, path: Path, provider: str | None, period: str, usd: Any) -> None:
        where = f"budgets.{provider + '.' if provider else ''}{period}"
        if period not in PERIODS:
            raise _bad(path, where, "is not a period (day or month)")
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or usd < 0:
            raise _bad(path, where, "must be an amount in USD >= 0")
        self.budgets[(provider, period)] = float(usd)
        self.source[where] = str(path)


def _table(path: Path, data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise _bad(path, name, "must be a table")
    return value


def _managed(path: Path, pid: str, entry: Any) -> ManagedProvider:
    where = f"providers.{pid}"
    if not isinstance(entry, dict):
        raise _bad(path, where, "must be a table")
    entry = dict(entry)
    computed = sorted(_COMPUTED.intersection(entry))
    if computed:
        raise _bad(path, f"{where}.{computed[0]}", "cannot be set")
    key = KeyRef.parse(entry.pop("api_key"), path, f"{where}.api_key") \
        if "api_key" in entry else None
    pricing = _pricing(path, f"{where}.pricing", entry.pop("pricing", {}))
    from .store import ProviderStore

    try:
        cfg = ProviderStore._validate_loaded(
            {"name": pid, **entry, "id": pid, "managed": True, "managed_by": str(path)})
    except ConfigValidationError as exc:
        raise _bad(path, where, exc.message.removeprefix("Invalid provider config: ")
                   .removesuffix(" Fix the field and retry.").rstrip(".")) from None
    return ManagedProvider(cfg, key, str(path), pricing)


def _pricing(path: Path, where: str, table: Any) -> dict[str, dict[str, Decimal]]:
    """``{"MODEL-GLOB": {input_per_mtok = USD, output_per_mtok = USD}}`` → USD per token."""
    if not isinstance(table, dict):
        raise _bad(path, where, "must be a table of model = {input_per_mtok, output_per_mtok}")
    out: dict[str, dict[str, Decimal]] = {}
    for model, prices in table.items():
        ok = isinstance(prices, dict) and set(prices) == {"input_per_mtok", "output_per_mtok"} \
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                    for v in prices.values())
        if not ok:
            raise _bad(path, f"{where}.{model}", "must be {input_per_mtok = USD, "
                       "output_per_mtok = USD} (per million tokens, >= 0)")
        out[model] = {"prompt": Decimal(str(prices["input_per_mtok"])) / 1_000_000,
                      "completion": Decimal(str(prices["output_per_mtok"])) / 1_000_000}
    return out


def _match(name: str, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, pattern):
            return pattern
    return None


class AdminConfig:
    """The administrator's files, re-read when they change (a ``stat`` per refresh)."""

    def __init__(self, dirs: Iterable[str | os.PathLike[str]] | None = None) -> None:
        self._dirs = None if dirs is None else [Path(d) for d in dirs]
        self._token: Any = None
        self._layer = _Layer()
        self._key_cache: dict[str, tuple[Any, str]] = {}
        self._mentions: dict[str, tuple[Any, bool]] = {}
        self.reload_if_changed()

    # -- loading --------------------------------------------------------------------------------
    def files(self) -> list[Path]:
        """The admin files that exist, highest priority first: in each directory
        ``viagent.toml``, then a ``jupyter_config.json``/``.py`` that sets ``ViagentAdmin``."""
        dirs = self._dirs if self._dirs is not None else admin_dirs()
        found = []
        for d in dirs:
            for name in (ADMIN_FILE, *TRAITLETS_FILES):
                path = d / name
                if path.is_file() and (name == ADMIN_FILE or self._mentions_us(path)):
                    found.append(path)
        return found

    def _mentions_us(self, path: Path) -> bool:
        """Whether a Jupyter config file sets ``c.ViagentAdmin`` (read again on change only:
        a file that does not is never executed here)."""
        try:
            st = path.stat()
        except OSError:
            return False
        token = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._mentions.get(str(path))
        if cached is None or cached[0] != token:
            try:
                found = b"ViagentAdmin" in path.read_bytes()
            except OSError:
                found = False
            cached = (token, found)
            self._mentions[str(path)] = cached
        return cached[1]

    def reload_if_changed(self) -> bool:
        """Re-read the files when one appeared, changed or went; True when it did."""
        files = self.files()
        token = []
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            token.append((str(f), st.st_mtime_ns, st.st_size, st.st_ino))
        if token == self._token:
            return False
        layer = _Layer()
        for f in reversed(files):  # lowest priority first: later files override
            layer.apply(f, _load_toml(f) if f.name == ADMIN_FILE else _load_traitlets(f))
        self._layer, self._token = layer, token
        return True

    @property
    def active(self) -> bool:
        return bool(self._token)

    @property
    def providers(self) -> dict[str, ManagedProvider]:
        return self._layer.providers

    def is_managed(self, pid: str) -> bool:
        return pid in self._layer.providers

    def rule(self, name: str, default: Any = None) -> Any:
        return self._layer.rules.get(name, default)

    def source(self, rule: str) -> str:
        return self._layer.source.get(rule) or ", ".join(str(f) for f in self.files())

    @property
    def default_provider(self) -> str | None:
        value: str | None = self._layer.rules.get("default_provider")
        return value

    def summary(self) -> dict[str, Any]:
        """What the administrator set, as plain JSON-able data (no keys: a key reference is
        shown as the variable's name or the file's path) — for a sidebar or ``%llm``."""
        rules = self._layer.rules
        return {
            "files": [str(f) for f in self.files()],
            "providers": [{"id": pid, "label": mp.config.label, "source": mp.source,
                           "key": mp.key.describe() if mp.key else None}
                          for pid, mp in self._layer.providers.items()],
            "allow_user_providers": rules.get("allow_user_providers", True),
            **{name: list(rules.get(name, ())) for name in _POLICY_LISTS},
            "default_provider": self.default_provider,
            "settings": dict(self._layer.settings),
            "budgets": [{"provider": p, "period": period, "usd": usd}
                        for (p, period), usd in sorted(self._layer.budgets.items(),
                                                       key=lambda kv: (kv[0][0] or "", kv[0][1]))],
        }

    def __repr__(self) -> str:
        files = ", ".join(str(f) for f in self.files()) or "none"
        return (f"AdminConfig(files=[{files}], providers={list(self._layer.providers)}, "
                f"rules={sorted(self._layer.rules)})")

    # -- keys -----------------------------------------------------------------------------------
    def resolve_key(self, pid: str) -> str | None:
        """The managed provider's key, read now from its reference (never stored)."""
        mp = self._layer.providers[pid]
        if mp.key is None:
            return None
        who = f"Provider '{pid}' is managed by your administrator ({mp.source})"
        if mp.key.env:
            value = os.environ.get(mp.key.env)
            if not value:
                raise CredentialError(
                    f"{who}; its key comes from ${mp.key.env}, which is not set in this "
                    "server's environment: ask your administrator (restart your server after "
                    "they fix it).", pid)
            register_secret(value)
            return value
        return self._read_key_file(pid, who, os.path.expanduser(mp.key.file or ""))

    def _read_key_file(self, pid: str, who: str, path: str) -> str:
        try:
            st = os.stat(path)
        except OSError:
            raise CredentialError(f"{who}; its key file {path} cannot be read: ask your "
                                  "administrator.", pid) from None
        getuid = getattr(os, "getuid", None)
        if getuid is not None and (st.st_uid != getuid() or st.st_mode & 0o077):
            raise CredentialError(
                f"{who}; its key file {path} is refused: it must belong to you and be "
                f"readable by you only (it is mode {stat.filemode(st.st_mode)}, owner uid "
                f"{st.st_uid}); ask your administrator to chmod 600 it.", pid)
        token = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._key_cache.get(path)
        if cached is not None and cached[0] == token:
            return cached[1]
        try:
            with open(path, encoding="utf-8") as fh:
                value = fh.read().strip()
        except (OSError, UnicodeDecodeError):
            value = ""
        if not value:
            raise CredentialError(f"{who}; its key file {path} is empty or unreadable: ask "
                                  "your administrator.", pid)
        register_secret(value)
        self._key_cache[path] = (token, value)
        return value

    def pricing(self, pid: str, model: str) -> dict[str, Decimal] | None:
        """The administrator's price of a managed provider's model (USD per token), if any:
        a gateway (LiteLLM) does not put its cost into a streamed answer."""
        mp = self._layer.providers.get(pid)
        if mp is None:
            return None
        for pattern, price in mp.pricing.items():
            if fnmatch.fnmatchcase(model, pattern):
                return dict(price)
        return None

    def key_status(self, pid: str) -> dict[str, Any]:
        try:
            key = self.resolve_key(pid)
        except CredentialError:
            key = None
        return {"has_api_key": key is not None,
                "api_key_hint": key_hint(key) if key else None, "key_source": "managed"}

    # -- policy ---------------------------------------------------------------------------------
    def hidden_reason(self, cfg: ProviderConfig) -> str | None:
        """Why a user's own provider is not available, or None when it is."""
        if not self.rule("allow_user_providers", True):
            managed = ", ".join(self._layer.providers) or "none"
            return (f"Provider '{cfg.id}' is your own, and your administrator allows only the "
                    f"managed providers ({managed}) (allow_user_providers in "
                    f"{self.source('allow_user_providers')}).")
        return self._provider_refusal(cfg.id, cfg.provider_type)

    def _provider_refusal(self, pid: str, provider_type: str) -> str | None:
        names = (pid, provider_type)
        for name in names:
            hit = _match(name, self.rule("blocked_providers", ()))
            if hit is not None:
                return (f"Provider '{pid}' ({provider_type}) is blocked by your administrator "
                        f"(blocked_providers '{hit}' in {self.source('blocked_providers')}).")
        allowed = self.rule("allowed_providers", ())
        if allowed and not any(_match(n, allowed) for n in names):
            return (f"Provider '{pid}' ({provider_type}) is not among the providers your "
                    f"administrator allows (allowed_providers in "
                    f"{self.source('allowed_providers')}).")
        return None

    def check_create(self, pid: str, provider_type: str) -> None:
        if pid in self._layer.providers:
            self.check_write(pid, "created again")
        if not self.rule("allow_user_providers", True):
            raise PolicyError(
                "Your administrator allows only the managed providers "
                f"({', '.join(self._layer.providers) or 'none'}); you cannot add your own "
                f"(allow_user_providers in {self.source('allow_user_providers')}).",
                "allow_user_providers")
        reason = self._provider_refusal(pid, str(provider_type))
        if reason:
            raise PolicyError(reason + " Choose another provider.", "providers")

    def check_write(self, pid: str, action: str) -> None:
        mp = self._layer.providers.get(pid)
        if mp is not None:
            raise ProviderManagedError(
                f"Provider '{pid}' is managed by your administrator ({mp.source}); it cannot "
                f"be {action} here. Ask your administrator, or add a provider of your own "
                "with another id.", mp.source)

    def model_refusal(self, pid: str, model: str) -> str | None:
        names = (model, f"{pid}:{model}")
        for name in names:
            hit = _match(name, self.rule("blocked_models", ()))
            if hit is not None:
                return f"blocked_models '{hit}' in {self.source('blocked_models')}"
        allowed = self.rule("allowed_models", ())
        if allowed and not any(_match(n, allowed) for n in names):
            return f"not in allowed_models in {self.source('allowed_models')}"
        return None

    def check_model(self, pid: str, model: str) -> None:
        why = self.model_refusal(pid, model)
        if why:
            raise PolicyError(
                f"Model '{model}' on provider '{pid}' is refused by your administrator ({why}); "
                f"choose another (ws.models('{pid}') lists the allowed ones).", "models")

    def filter_models(self, pid: str, models: ModelList) -> ModelList:
        """The list without the models the policy refuses (same provenance fields)."""
        if not (self.rule("blocked_models") or self.rule("allowed_models")):
            return models
        from .registry import ModelList

        return ModelList(
            (m for m in models if self.model_refusal(pid, m.id) is None), provider=models.provider,
            fetched_at=models.fetched_at, from_cache=models.from_cache, stale=models.stale,
            added=[m for m in models.added if self.model_refusal(pid, m) is None],
            removed=[m for m in models.removed if self.model_refusal(pid, m) is None])

    def base_settings(self, cfg: ProviderConfig) -> dict[str, Any]:
        """The provider's settings over the admin defaults (which replace the built-in ones)."""
        base = cfg.settings.model_dump(exclude_none=True)
        for key, value in self._layer.settings.items():
            if base.get(key) is None or (key in _BUILTIN_SETTINGS
                                         and base[key] == _BUILTIN_SETTINGS[key]
                                         and key not in cfg.settings.model_fields_set):
                base[key] = value
        return base

    # -- budgets (the seam for budgets.py) --------------------------------------------------------
    def budget_limit(self, period: str, provider: str | None = None) -> float | None:
        """The administrator's limit in USD for ``period`` (``day``/``month``): the provider's
        own when set, else the overall one; None when there is none."""
        budgets = self._layer.budgets
        if provider is not None and (provider, period) in budgets:
            return budgets[(provider, period)]
        return budgets.get((None, period))

    def budget_limits(self) -> dict[tuple[str | None, str], float]:
        """Every administrator limit: ``{(provider or None, period): usd}``."""
        return dict(self._layer.budgets)

    def check_user_budget(self, usd: float, period: str, provider: str | None = None) -> None:
        """Refuse a user's limit above the administrator's (lowering it is fine)."""
        limit = self.budget_limit(period, provider)
        if limit is not None and usd > limit:
            own = provider is not None and (provider, period) in self._layer.budgets
            where = f"budgets.{provider}.{period}" if own else f"budgets.{period}"
            raise PolicyError(
                f"Your administrator limits spending to ${limit:.2f} a {period}"
                f"{' on ' + provider if provider else ''} ({where} in {self.source(where)}); "
                "you can set a lower limit, not a higher one.", "budgets")

    def effective_limit(self, period: str, provider: str | None,
                        user_usd: float | None) -> float | None:
        """The limit that applies: the lower of the user's and the administrator's."""
        limits = [v for v in (user_usd, self.budget_limit(period, provider)) if v is not None]
        return min(limits) if limits else None


def enforce(admin: AdminConfig | None, cfg: ProviderConfig, model: str) -> dict[str, Any]:
    """The policy check of a chat plan, before any request: a refused model raises
    :class:`PolicyError`. Returns the provider's settings over the admin defaults."""
    if admin is None:
        return cfg.settings.model_dump(exclude_none=True)
    admin.check_model(cfg.id, model)
    return admin.base_settings(cfg)
