"""Workspace: the store, vault, registry, stats and HTTP client of one home directory."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._settings import Settings
from .db import Database
from .store import ProviderStore
from .vault import CredentialVault

if TYPE_CHECKING:
    import httpx

    from .budgets import Budgets
    from .chat import AsyncChatStream, ChatServices, ChatStream
    from .history import History
    from .pricing import PriceCatalog
    from .registry import ModelRegistry
    from .schema import Message, ModelInfo
    from .usage import UsageStats

__all__ = ["Workspace", "default_home", "workspace"]

log = logging.getLogger("viagent_jupyter.workspace")

POLL_INTERVAL_S = 0.25


def default_home() -> Path:
    """``$VIAGENT_HOME``, else ``<jupyter data dir>/viagent``."""
    env = os.environ.get("VIAGENT_HOME")
    if env:
        return Path(env).expanduser()
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "viagent"


class Workspace:
    """Everything viagent_jupyter keeps for one home directory.

    ``Workspace(home=...)`` is isolated (its own database and vault key); ``workspace()`` is
    the kernel's default one. Several workspaces, kernels and processes may share a home:
    they see each other's changes through the database.
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        # every VIAGENT_* setting, checked once here (ConfigValidationError naming it)
        self.settings = Settings.from_env()
        vault_key = os.environ.get("VIAGENT_VAULT_KEY")
        if vault_key:
            from .vault import decode_vault_key

            decode_vault_key(vault_key)  # CredentialError saying how to make a valid one
        # the administrator's providers and policy (viagent.toml on Jupyter's config path),
        # read first: a broken admin file fails before anything is opened
        from ._admin_store import ManagedProviderStore
        from .admin import AdminConfig

        self.admin = AdminConfig()
        self.db = Database(self.home, journal_mode=self.settings.journal_mode)
        self.vault = CredentialVault(self.db, self.home, keyring=self.settings.keyring)
        self.providers: ProviderStore = ManagedProviderStore(self.db, self.vault, self.admin)
        self._stats: UsageStats | None = None
        self._registry: ModelRegistry | None = None
        self._history: History | None = None
        self._pricing: PriceCatalog | None = None
        self._budgets: Budgets | None = None
        self._client: httpx.Client | None = None
        self._lock = threading.RLock()
        self._poll_handle: asyncio.TimerHandle | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Workspace(home={str(self.home)!r}, providers={len(self.providers.providers)})"

    # -- parts made on first use ----------------------------------------------------------------
    @property
    def stats(self) -> UsageStats:
        if self._stats is None:
            with self._lock:
                if self._stats is None:
                    from .usage import UsageStats

                    self._stats = UsageStats(self.db)
        return self._stats

    @property
    def history(self) -> History:
        """Every chat of this workspace: iterate, ``search()``, ``export()``."""
        if self._history is None:
            with self._lock:
                if self._history is None:
                    from .history import History

                    self._history = History(self.db)
        return self._history

    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            with self._lock:
                if self._registry is None:
                    from .registry import ModelRegistry

                    self._registry = ModelRegistry(self.db, self.providers, lambda: self.http,
                                                   ttl=self.settings.models_ttl,
                                                   policy=self.admin)
        return self._registry

    @property
    def pricing(self) -> PriceCatalog:
        """Prices per provider:model (``get``, ``set``, ``refresh``); see pricing.py."""
        if self._pricing is None:
            with self._lock:
                if self._pricing is None:
                    from .pricing import PriceCatalog

                    self._pricing = PriceCatalog(self, **_shell_config())
        return self._pricing

    @property
    def budgets(self) -> Budgets:
        """Spending limits checked before every call (``set``, ``list``, ``remove``)."""
        if self._budgets is None:
            with self._lock:
                if self._budgets is None:
                    from .budgets import Budgets

                    self._budgets = Budgets(self, **_shell_config())
        return self._budgets

    @property
    def http(self) -> httpx.Client:
        """The workspace's pooled HTTP client (made on first use)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from .adapters._http import make_client

                    self._client = make_client()
        return self._client

    def _chat_services(self) -> ChatServices:
        """The parts a chat uses; stats and registry stay made on first use."""
        from .adapters._http import make_async_client
        from .admin import enforce
        from .chat import ChatServices

        return ChatServices(
            providers=self.providers,
            http=lambda: self.http,
            new_aclient=make_async_client,
            record_usage=lambda p, m, usage, cost, error, hold: self.stats.record(
                p, m, usage, cost, error=error, hold=hold),
            price=lambda ptype, model, pid, base_url: self.pricing.lookup(
                ptype, model, provider_id=pid, base_url=base_url),
            budgets=lambda: self.budgets,
            deadline=self.settings.chat_deadline,
            db=self.db,
            model_info=lambda pid, model: self.registry.info(pid, model),
            base_settings=lambda cfg, model: enforce(self.admin, cfg, model),
        )

    # -- the public calls -------------------------------------------------------------------------
    def models(self, provider: str | None = None, refresh: bool = False) -> list[ModelInfo]:
        """The models of a provider: cached (one hour by default) unless ``refresh``."""
        return self.registry.models(provider or self.require_selected(), refresh=refresh)

    def chat(
        self,
        prompt: str | Sequence[Message | dict[str, str]],
        provider: str | None = None,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        *,
        tools: Sequence[Any] | None = None,
        approve: Any = "ask",
        max_steps: int | None = None,
        **settings: Any,
    ) -> ChatStream:
        """Start a streamed chat; iterate the result for text deltas.

        ``tools=[f, g]`` lets the model call these functions (``@vj.tool``); ``approve``
        is ``"ask"`` (stdin, per call), ``"all"``, ``"none"`` or a function(call) -> bool;
        ``max_steps`` caps the model requests (default 8). ``.steps`` lists the calls."""
        from ._toolchat import start_chat

        stream = start_chat(self._chat_services(), prompt,
                            provider=provider or self.require_selected(), model=model,
                            system=system, temperature=temperature, max_tokens=max_tokens,
                            tools=tools, approve=approve, max_steps=max_steps, **settings)
        self.history.watch(stream)
        return stream

    def achat(
        self,
        prompt: str | Sequence[Message | dict[str, str]],
        provider: str | None = None,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        *,
        tools: Sequence[Any] | None = None,
        approve: Any = "ask",
        max_steps: int | None = None,
        **settings: Any,
    ) -> AsyncChatStream:
        """The async twin of :meth:`chat`: ``async for delta in ws.achat(...)``; async tools
        of one step run concurrently on the running loop."""
        from ._toolchat import start_achat

        stream = start_achat(self._chat_services(), prompt,
                             provider=provider or self.require_selected(), model=model,
                             system=system, temperature=temperature, max_tokens=max_tokens,
                             tools=tools, approve=approve, max_steps=max_steps, **settings)
        self.history.watch(stream)
        return stream

    def require_selected(self) -> str:
        """The provider to use when none is named: the selected one, else the only one."""
        from .errors import ProviderNotFoundError

        self.providers.refresh()
        if self.providers.selected:
            return self.providers.selected
        ids = [p["id"] for p in self.providers.providers]
        if len(ids) == 1:
            return str(ids[0])
        hint = "create one with ws.providers.create(...)" if not ids else \
            f"choose one of {', '.join(ids[:8])} with %llm use ID or ws.providers.select(ID)"
        raise ProviderNotFoundError(f"No provider is selected; {hint}.")

    # -- keeping in sync with other processes ------------------------------------------------------
    def poll(self) -> bool:
        """Reload whatever other processes changed (providers, selection, usage, budgets)."""
        changed = self.providers.refresh()
        if self._stats is not None:
            changed = self._stats.refresh() or changed
        if self._budgets is not None:
            changed = self._budgets.refresh() or changed
        return changed

    def start_autorefresh(self, loop: asyncio.AbstractEventLoop | None = None,
                          interval: float = POLL_INTERVAL_S) -> bool:
        """Poll for other processes' changes on ``loop`` (default: the running kernel's).

        Returns False when there is no event loop to run on (plain Python: use ``refresh``)."""
        if self._poll_handle is not None:
            return True
        if loop is None:
            loop = _kernel_loop()
        if loop is None:
            return False
        assert loop is not None

        def tick() -> None:
            if self._closed:
                return
            try:
                self.poll()
            except Exception:  # never let a poll kill the loop; the next tick retries
                log.debug("background refresh failed", exc_info=True)
            self._poll_handle = loop.call_later(interval, tick)

        self._poll_handle = loop.call_later(interval, tick)
        return True

    def stop_autorefresh(self) -> None:
        if self._poll_handle is not None:
            self._poll_handle.cancel()
            self._poll_handle = None

    async def aclose(self) -> None:
        """Nothing to do, kept for code that calls it: each async chat opens and closes its
        own client, so no connection outlives the event loop it was made on."""

    def close(self) -> None:
        """Stop syncing, close the pooled HTTP client and the database."""
        self._closed = True
        self.stop_autorefresh()
        if self._client is not None:
            self._client.close()
            self._client = None
        self.db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shell_config() -> dict[str, Any]:
    """``{"config": ...}`` of the running IPython (``ipython_config.py``), else nothing."""
    import sys

    if "IPython" not in sys.modules:
        return {}
    from IPython.core.getipython import get_ipython

    shell = get_ipython()  # type: ignore[no-untyped-call, unused-ignore]
    config = getattr(shell, "config", None)
    return {"config": config} if config is not None else {}


def _kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop of a running IPython kernel, or None outside one."""
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()  # type: ignore[no-untyped-call, unused-ignore]
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    io_loop = getattr(kernel, "io_loop", None)
    loop = getattr(io_loop, "asyncio_loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop):
        return loop
    return None


_default: Workspace | None = None
_default_lock = threading.Lock()


def workspace() -> Workspace:
    """The kernel's default workspace (home: ``$VIAGENT_HOME``, else the Jupyter data dir).

    Inside a kernel it keeps itself in sync with other kernels automatically."""
    global _default
    if _default is None or _default._closed:
        with _default_lock:
            if _default is None or _default._closed:
                _default = Workspace()
                _default.start_autorefresh()
    return _default
