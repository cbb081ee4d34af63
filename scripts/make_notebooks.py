#!/usr/bin/env python
"""(Re)generate the documentation notebooks from the sources below, then execute them.

    python scripts/make_notebooks.py                 # all notebooks, executed
    python scripts/make_notebooks.py magic usage     # some of them
    python scripts/make_notebooks.py --no-execute    # write the cells only (no outputs)

The notebooks are executable documentation: CI runs them with nbval against the outputs
stored in notebooks/ (see ``scripts/nbval_sanitize.cfg`` for what is normalised before comparing)::

    VIAGENT_HOME=$(mktemp -d) VIAGENT_KEYRING=0 python -m pytest --nbval notebooks/ \\
        --nbval-sanitize-with scripts/nbval_sanitize.cfg -p no:cacheprovider

Execution happens in a fresh temporary workspace (``VIAGENT_HOME``, ``VIAGENT_KEYRING=0``),
in alphabetical order like nbval, with the provider key variables removed from the
kernel's environment, so the stored outputs are what a clean machine produces.

Cell tags used here:

* ``nbval-skip``: shown, never run (it needs a real key or types into a hidden prompt). The
  markdown cell above it says why; nbclient skips it too.
* ``nbval-ignore-output``: run, output not compared. Used for cells that *stream* an answer
  (``%%llm`` without ``--no-stream``): the magic shows an empty "streaming…" output and
  updates it with ``update_display_data`` messages, which nbval (0.11) does not apply — it
  would compare the first, empty state against the stored final answer. Such a cell is
  followed by a checked one (``_llm.text``, ``_llm.usage``, what the server received...).
  Also used where nbval cannot reproduce the output (it executes cells with
  ``store_history=False``, so ``In``/``Out`` are empty under test: the ``{In[-2]}`` example
  of magic.ipynb), and for outputs that genuinely depend on the whole workspace (``%llm
  providers``, ``%llm stats``, ``ws.stats.totals``), which other notebooks and earlier runs
  add to.

Cell ids are stable (``<notebook>-<n>``) and no execution timing is recorded, so
regenerating only changes what really changed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent.parent / "notebooks"  # where the notebooks go

SKIP = "nbval-skip"
IGNORE = "nbval-ignore-output"

# Variables that would change what the notebooks show (a real key, another Ollama host).
_ENV_REMOVED = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                "OPENROUTER_API_KEY", "OLLAMA_HOST", "VIAGENT_VAULT_KEY", "VIAGENT_MODELS_TTL")

Cell = nbformat.NotebookNode


def md(text: str) -> Cell:
    return new_markdown_cell(dedent(text).strip("\n"))


def code(text: str, *tags: str) -> Cell:
    cell = new_code_cell(dedent(text).strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# ------------------------------------------------------------------------------ quickstart

def quickstart() -> list[Cell]:
    return [
        md("""
        # Quickstart

        A short tour of viagent_jupyter: providers configured once with their keys encrypted,
        `%%llm` answers streamed into the notebook, and usage counted as you go.

        This notebook runs offline, top to bottom. The `demo` provider (*Local demo
        (offline)*) is a small server on 127.0.0.1 that answers every prompt itself: no key,
        no network, no cost.
        """),
        md("""
        ## Load the extension

        `%load_ext viagent_jupyter` adds the `%%llm` and `%llm` magics. `ws` is the kernel's
        workspace: your providers, their encrypted keys, cached model lists and usage, kept in
        one directory (`$VIAGENT_HOME`, else `<jupyter data dir>/viagent`) and shared by every
        notebook and kernel that uses it.

        `ensure_demo()` makes sure the `demo` provider answers: it reuses the one that
        `viagent-demo` runs, or starts one inside this kernel.
        """),
        code("""
        %load_ext viagent_jupyter
        import viagent_jupyter as vj
        from viagent_jupyter.demo import ensure_demo

        ws = vj.workspace()
        ensure_demo(ws)
        """),
        md("""
        `%llm use ID` selects the provider that `%%llm` and `ws.chat` use when you don't name
        one. The selection is saved in the workspace; switch back to your own provider the
        same way.
        """),
        code("%llm use demo"),
        md("""
        ## The configuration panel

        Add, edit, test and delete providers; set or replace a key (the key field is
        write-only: a stored key only ever shows as a masked hint such as `sk-…abcd`); pick a
        default model from the provider's live model list; adjust the sampling settings.
        Whatever you save goes to the workspace and shows in every open panel, in every
        notebook.
        """),
        code("vj.panel()"),
        md("""
        ## The stats bar

        One line: the selected provider and model, requests, tokens, cost and when it was last
        used. Click it for a table per provider and model. It updates as you chat, from this
        notebook or any other.
        """),
        code("vj.stats_bar()"),
        md("""
        In JupyterLab, `vj.sidebar()` (or `%llm sidebar`) puts a stats bar and a panel in the
        right-hand sidebar, where they stay while you scroll.
        """),
        code("vj.sidebar()"),
        md("""
        ## Ask

        `%%llm` sends the cell body as the prompt and streams the answer into the output as
        it arrives. The line under the answer says who answered, the tokens used, the cost
        when it is known, and how long it took.
        """),
        code("""
        %%llm
        Explain what a Jupyter kernel is, in two sentences
        """, IGNORE),
        md("""
        The demo provider does not think: it repeats your prompt and says that it is the
        demo. Use a real provider (see the end of this notebook) for real answers.

        `_llm` holds the last result: the text, the model, why it stopped, the usage.
        """),
        code("""
        print(_llm.text)
        print(_llm.model, _llm.finish_reason)
        _llm.usage
        """),
        md("""
        ## Variables in prompts

        `{name}` in a prompt is replaced by the value of `name` in the notebook; braces that
        are not a variable (code, JSON) are sent as written. `_llm.prompt` is what was sent.
        """),
        code('topic = "recursion"'),
        code("""
        %%llm
        In one sentence, explain {topic}
        """, IGNORE),
        code("_llm.prompt"),
        md("""
        ## From Python

        `ws.chat` returns a stream: iterate it for the text as it arrives, then read the
        usage. The same settings as the magic are keyword arguments.
        """),
        code("""
        stream = ws.chat("Hello from Python", temperature=0.2)
        for delta in stream:
            print(delta, end="")
        """),
        code("stream.finish_reason, stream.usage.prompt_tokens, stream.usage.completion_tokens"),
        md("""
        ## A real provider

        Create a provider once (the `if` makes the cell safe to run again), give it a key,
        select it. To store the key, run this in a cell of its own; it asks with a hidden
        prompt, so the key never appears in the notebook:

        ```
        %llm key oa
        ```

        Without a stored key, `$OPENAI_API_KEY` is used. The cells below never wait for input
        and select `oa` only once it has a key; the documentation tests do not run them (they
        depend on your key).
        """),
        code("""
        if "oa" not in ws.providers:
            ws.providers.create(id="oa", provider_type="openai", name="OpenAI",
                                default_model="gpt-4o-mini")
        ws.providers.get("oa").key_source  # 'stored', 'session', 'environment' or 'none'
        """, SKIP),
        code("""
        if ws.providers.get("oa").has_api_key:
            ws.providers.select("oa")
        else:
            print("No key for 'oa' yet: run  %llm key oa  in a cell of its own.")
        """, SKIP),
        md("""
        ## Next

        - [providers.ipynb](providers.ipynb): create, change and delete providers; keys, the
          vault and environment variables; every error and what it says.
        - [models.ipynb](models.ipynb): live model lists, refresh, prices, context lengths.
        - [magic.ipynb](magic.ipynb): every `%%llm` option, interpolation, conversations,
          output formats, the line commands.
        - [usage.ipynb](usage.ipynb): requests, tokens and cost per provider and model.
        - [many-notebooks.ipynb](many-notebooks.ipynb): one configuration shared live by every
          notebook and kernel.
        """),
    ]


# ------------------------------------------------------------------------------- providers

def providers() -> list[Cell]:
    return [
        md("""
        # Providers and keys

        A provider is a named configuration: a type (the wire protocol: `openai`, `anthropic`,
        `gemini`, `openrouter`, `ollama` or `openai_compatible`), a base URL, a default model,
        sampling settings and, kept apart and encrypted, an API key. This notebook creates,
        changes and deletes providers from Python, shows where keys are kept, and what each
        error says.

        Everything here talks to a local fake provider on 127.0.0.1
        (`viagent_jupyter.testing.FakeProviderServer`, which speaks the providers' protocols),
        so the keys are fake and nothing leaves your machine. The examples use ids starting
        with `ex-` and delete them first, so the notebook can be run again and never touches
        providers of your own.
        """),
        code("""
        %load_ext viagent_jupyter
        import os

        import viagent_jupyter as vj
        from viagent_jupyter.testing import FakeProviderServer, Scripted

        ws = vj.workspace()
        srv = FakeProviderServer(delay=0).start()  # a local stand-in for the providers' APIs

        # Set this kernel's OPENAI_API_KEY aside (it is put back at the end), so that the
        # examples behave the same everywhere.
        saved_openai_key = os.environ.pop("OPENAI_API_KEY", None)

        for pid in ("ex-openai", "ex-env", "ex-offline"):  # left over from an earlier run
            if pid in ws.providers:
                ws.providers.delete(pid)
        """),
        md("""
        ## Create

        `create` takes every field of a provider config as a keyword. `base_url` defaults to
        the provider's official one (here it points at the local fake instead); `api_key`
        goes to the vault.
        """),
        code("""
        cfg = ws.providers.create(
            id="ex-openai",
            provider_type="openai",
            name="OpenAI (example)",
            base_url=srv.url_for("openai"),
            default_model="demo-small",
            api_key="sk-example-not-a-real-key-1234",
            settings={"temperature": 0.2},
        )
        cfg.label, cfg.version, cfg.has_api_key, cfg.key_source, cfg.api_key_hint
        """),
        md("""
        The config says only that there is a key, where it comes from (`key_source`:
        `stored`, `session`, `environment` or `none`) and a masked hint. The key itself is not
        in the config, its repr, or the trait that every widget reads:
        """),
        code("""
        key = "sk-example-not-a-real-key-1234"
        key in repr(cfg), key in str(ws.providers.providers)
        """),
        md("""
        Don't type a real key into a cell: it would stay in the notebook file and in the
        kernel's history. Use `%llm key ID` (a hidden prompt) or `getpass`, in a cell of its
        own (it waits for you to type):

        ```python
        import getpass

        ws.providers.set_key("ex-openai", getpass.getpass("API key: "))
        ```
        """),
        md("""
        ## Read

        `get` returns a `ProviderConfig` (immutable); `list` returns all of them, in creation
        order; `in` checks whether an id exists.
        """),
        code("""
        cfg = ws.providers.get("ex-openai")
        cfg.provider_type, cfg.endpoint, cfg.default_model, cfg.settings.temperature
        """),
        code("""
        print([p.id for p in ws.providers.list() if p.id.startswith("ex-")])
        "ex-openai" in ws.providers, "ex-missing" in ws.providers
        """),
        md("""
        ## Update

        `update` changes the fields you pass. `settings` merges with the stored settings, and
        a `None` value resets one setting to its default. Every write bumps `version`.
        """),
        code("""
        cfg = ws.providers.update("ex-openai", name="Work", settings={"max_tokens": 512})
        cfg.name, cfg.version, cfg.settings.temperature, cfg.settings.max_tokens
        """),
        code("""
        cfg = ws.providers.update("ex-openai", settings={"max_tokens": None})
        cfg.version, cfg.settings.max_tokens
        """),
        md("""
        The next request uses the change. Settings resolve as call arguments, then the
        provider's settings; a setting left unset is not sent at all (the provider's own
        default applies).
        """),
        code("""
        print(ws.chat("Which temperature?", provider="ex-openai").wait().text)
        srv.requests[-1].json["temperature"]
        """),
        md("""
        ## Keys

        **Session-only keys.** `persist_key=False` keeps a key in this kernel's memory only:
        nothing is written, other kernels don't see it, and it is gone when the kernel stops.
        While it is there it is used instead of the stored key.
        """),
        code("""
        cfg = ws.providers.update("ex-openai", api_key="sk-session-only-not-real-5678",
                                  persist_key=False)
        cfg.key_source, cfg.api_key_hint
        """),
        md("""
        **Removing a key.** `api_key=None` removes the stored key (and a session one):
        """),
        code("""
        cfg = ws.providers.update("ex-openai", api_key=None)
        cfg.has_api_key, cfg.key_source
        """),
        md("""
        **The vault.** Stored keys are encrypted with AES-256-GCM. The master key comes from
        `$VIAGENT_VAULT_KEY`, else the OS keyring (with the `keyring` extra installed), else a
        key file in the workspace (`<home>/keys/master.key`, readable only by you). Each
        encrypted key is bound to its provider id and the origin of its base URL: a row copied
        to another provider, or a base URL edited behind the package's back, fails to decrypt
        (a `CredentialError` for that provider) instead of sending the key somewhere else. A
        key is only ever sent as a request header to its own provider. The README's *Security
        model* says what this does and does not protect against.

        ## Environment variables

        Without a stored key, the provider type's usual variable is used: `OPENAI_API_KEY`,
        `ANTHROPIC_API_KEY`, `GEMINI_API_KEY` or `GOOGLE_API_KEY`, `OPENROUTER_API_KEY`
        (Ollama and `openai_compatible` servers may need none). The key is read when it is
        needed and never copied into the vault. Here one is set for this kernel only, with an
        obviously fake value:
        """),
        code("""
        os.environ["OPENAI_API_KEY"] = "sk-demo-not-a-real-key"

        cfg = ws.providers.create(id="ex-env", provider_type="openai", name="From the environment",
                                  base_url=srv.url_for("openai"), default_model="demo-small")
        cfg.key_source, cfg.api_key_hint
        """),
        code('print(ws.chat("Where does my key come from?", provider="ex-env").wait().text)'),
        md("""
        The lookup order is: session key, stored key, environment variable. A change to the
        environment is noticed on `ws.providers.refresh()`, which a kernel also runs by
        itself while idle:
        """),
        code("""
        del os.environ["OPENAI_API_KEY"]
        ws.providers.refresh()
        ws.providers.get("ex-env").key_source
        """),
        md("""
        ## Errors

        Every error is a `vj.ViagentError` with a stable `.code` and a one-line message that
        says what failed and what to do. No message, repr or traceback ever contains a key.

        ```
        ViagentError
        ├─ ConfigValidationError      VALIDATION_ERROR       .errors: [{field, message}]
        ├─ ProviderNotFoundError      PROVIDER_NOT_FOUND
        ├─ ProviderConflictError      PROVIDER_CONFLICT      duplicate id; stale write
        ├─ ProviderInUseError         PROVIDER_IN_USE        deleting the selected provider
        ├─ CredentialError            CREDENTIAL_ERROR       no key; vault key lost; tampered row
        ├─ StorageError               STORAGE_ERROR          unreadable or corrupt database
        └─ ProviderError              .provider, .model
           ├─ ProviderConnectionError PROVIDER_UNREACHABLE   refused, DNS, TLS, timeout
           ├─ ProviderAPIError        PROVIDER_API_ERROR     .status_code, .retry_after
           │  ├─ AuthenticationError  PROVIDER_AUTH_ERROR    401, 403
           │  └─ RateLimitError       PROVIDER_RATE_LIMIT    429, 529
           └─ ProviderResponseError   PROVIDER_BAD_RESPONSE  malformed or cut-off answer
        ```
        """),
        code("""
        def show(err):
            print(f"{type(err).__name__} [{err.code}]: {err}")
        """),
        md("An id that does not exist:"),
        code("""
        try:
            ws.providers.get("ex-missing")
        except vj.ProviderNotFoundError as err:
            show(err)
        """),
        md("Invalid fields: `.errors` lists each field and what is wrong with it."),
        code("""
        try:
            ws.providers.create(id="Not An Id", provider_type="openai",
                                base_url="ftp://example.com", settings={"temperature": 3})
        except vj.ConfigValidationError as err:
            show(err)
            for e in err.errors:
                print(f"  {e['field']}: {e['message']}")
        """),
        md("An id that is taken:"),
        code("""
        try:
            ws.providers.create(id="ex-openai", provider_type="openai")
        except vj.ProviderConflictError as err:
            show(err)
        """),
        md("Deleting the selected provider:"),
        code("""
        previous = ws.providers.selected
        ws.providers.select("ex-openai")
        try:
            ws.providers.delete("ex-openai")
        except vj.ProviderInUseError as err:
            show(err)
        finally:
            ws.providers.select(previous)  # put the selection back
        """),
        md("A provider that needs a key and has none (none stored, no environment variable):"),
        code("""
        try:
            ws.chat("Hello", provider="ex-openai")
        except vj.CredentialError as err:
            show(err)
        """),
        md("""
        A key the provider refuses. The fake server is told to answer the next chat with
        `401 Unauthorized`, as a provider does for a wrong or revoked key:
        """),
        code("""
        ws.providers.update("ex-openai", api_key="sk-example-not-a-real-key-1234")
        srv.script("chat", Scripted(status=401))

        try:
            ws.chat("Hello", provider="ex-openai").wait().text
        except vj.AuthenticationError as err:
            show(err)
            print("status:", err.status_code, "| provider:", err.provider)
        """),
        md("""
        A provider that does not answer at all (nothing listens on port 9; `max_retries=0`
        skips the retries with back-off that would otherwise come first):
        """),
        code("""
        ws.providers.create(id="ex-offline", provider_type="ollama", base_url="http://127.0.0.1:9",
                            default_model="llama3.2", max_retries=0)
        try:
            ws.chat("Hello", provider="ex-offline").wait().text
        except vj.ProviderConnectionError as err:
            show(err)
        """),
        md("""
        ## Concurrent edits: `expected_version`

        Two editors (two notebooks, a panel and a script) may change the same provider. Pass
        the `version` you read as `expected_version`, and a write based on an outdated read is
        refused instead of silently overwriting the other change. The panel saves this way.
        """),
        code("""
        cfg = ws.providers.get("ex-openai")
        ws.providers.update("ex-openai", name="Changed elsewhere")  # e.g. in another notebook

        try:
            ws.providers.update("ex-openai", name="My edit", expected_version=cfg.version)
        except vj.ProviderConflictError as err:
            show(err)
        """),
        md("Reload, then apply the edit again:"),
        code("""
        cfg = ws.providers.get("ex-openai")
        cfg = ws.providers.update("ex-openai", name="My edit", expected_version=cfg.version)
        cfg.name, cfg.version
        """),
        md("""
        ## Delete

        `delete` removes the provider, its stored key and its cached model list; its usage
        history stays. Checking with `in` first makes a cell safe to run twice:
        """),
        code("""
        for pid in ("ex-openai", "ex-env", "ex-offline"):
            if pid in ws.providers:
                ws.providers.delete(pid)

        [p.id for p in ws.providers.list() if p.id.startswith("ex-")]
        """),
        md("""
        ## A real provider

        The next two cells set up and use a real OpenAI provider; the documentation tests do
        not run them (they depend on your key). Store its key with `%llm key oa` in a cell of
        its own (a hidden prompt); without one, `$OPENAI_API_KEY` is used. Anthropic, Gemini
        and OpenRouter work the same way (`provider_type="anthropic"`, `"gemini"`,
        `"openrouter"`); Ollama needs no key.
        """),
        code("""
        if "oa" not in ws.providers:  # safe to run again
            ws.providers.create(id="oa", provider_type="openai", name="OpenAI",
                                default_model="gpt-4o-mini")
        """, SKIP),
        code("""
        if ws.providers.get("oa").has_api_key:
            print(ws.chat("Say hello in French.", provider="oa").wait().text)
        else:
            print("No key for 'oa' yet: run  %llm key oa  in a cell of its own.")
        """, SKIP),
        md("## Tidy up"),
        code("""
        srv.stop()
        if saved_openai_key is not None:
            os.environ["OPENAI_API_KEY"] = saved_openai_key
        """),
    ]


# ---------------------------------------------------------------------------------- models

def models() -> list[Cell]:
    return [
        md("""
        # Model lists

        `ws.models(ID)` asks a provider which models it offers (ids, names, context lengths,
        prices where the provider publishes them) and caches the list in the workspace, so
        the panel's model picker, `%llm models` and every other kernel share it.

        This notebook uses a local fake provider in the OpenRouter style, whose model list
        carries prices and context lengths, so it runs offline. `max_retries=0` makes the
        failure shown below immediate instead of retried.
        """),
        code("""
        %load_ext viagent_jupyter
        import warnings

        import viagent_jupyter as vj
        from viagent_jupyter.testing import DEMO_MODELS, DemoModel, FakeProviderServer, Scripted

        ws = vj.workspace()
        srv = FakeProviderServer(delay=0).start()

        if "ex-router" in ws.providers:  # left over from an earlier run
            ws.providers.delete("ex-router")
        router = ws.providers.create(
            id="ex-router", provider_type="openrouter", name="Router (local fake)",
            base_url=srv.url_for("openrouter"), default_model="demo-small",
            api_key="sk-or-example-not-a-real-key", max_retries=0,
        )
        router.label
        """),
        md("""
        ## List

        The first call fetches the list; calls within the next hour answer from the cache.
        """),
        code("""
        models = ws.models("ex-router")
        for m in models:
            print(f"{m.id:<12} {m.name:<18} context {m.context_length:>7,}")
        models.from_cache
        """),
        code('ws.models("ex-router").from_cache'),
        md("`%llm models ID` shows the same as a table (prices per million tokens):"),
        code("%llm models ex-router"),
        md("""
        ## Prices

        `pricing` is in US dollars per token, as exact `Decimal`s, or `None` when the
        provider's list has no prices (most providers' lists don't; OpenRouter's does).
        """),
        code("""
        large = models[1]
        large.id, large.pricing
        """),
        code('{k: float(v * 1_000_000) for k, v in large.pricing.items()}  # USD per 1M tokens'),
        md("""
        The cost of a chat is the cost the provider reports with the answer (OpenRouter does),
        else it is computed from these prices, else it is unknown (`None`). See
        [usage.ipynb](usage.ipynb).

        ## Context length

        `context_length` is the most tokens (prompt and answer together) a model accepts,
        when the provider says (`None` when it doesn't):
        """),
        code("{m.id: m.context_length for m in models}"),
        md("""
        ## Refresh: what changed

        `refresh=True` asks the provider now and stores the new list; the result says which
        ids were `added` and `removed` since the cached list. Here the fake provider's
        catalogue is changed to have something to report:
        """),
        code("""
        srv.models = (DEMO_MODELS[0], DemoModel("demo-vision", "Demo Vision", 64_000))

        fresh = ws.models("ex-router", refresh=True)
        fresh.added, fresh.removed, fresh.ids
        """),
        md("`%llm models ID --refresh` does the same and notes the difference under the table:"),
        code("""
        srv.models = (*DEMO_MODELS, DemoModel("demo-vision", "Demo Vision", 64_000))
        %llm models ex-router --refresh
        """),
        md("""
        ## When the provider can't be reached

        If a refresh fails and a cached list exists, you get the cached list, marked `stale`,
        with a `StaleModelListWarning` that says why: an outage does not empty the model
        picker. Without a cached list, the provider's error is raised. Here the provider
        answers the next model-list request with `503 Service Unavailable`:
        """),
        code("""
        srv.script("models", Scripted(status=503))

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stale = ws.models("ex-router", refresh=True)

        print(caught[0].category.__name__ + ":", caught[0].message)
        stale.stale, stale.ids
        """),
        md("`%llm models --refresh` shows the cached list with a warning instead:"),
        code("""
        srv.script("models", Scripted(status=503))
        %llm models ex-router --refresh
        """),
        md("""
        ## How long a list is kept

        A list is reused for an hour (set `VIAGENT_MODELS_TTL` to a number of seconds to
        change that). `refresh=True`, `%llm models ID --refresh` and the panel's refresh button
        fetch at once. Changing a provider's type clears its cached list; deleting the
        provider deletes it.

        ## Tidy up
        """),
        code("""
        ws.providers.delete("ex-router")
        srv.stop()
        """),
    ]


# ----------------------------------------------------------------------------------- magic

def magic() -> list[Cell]:
    return [
        md("""
        # The `%%llm` magic

        Every option of `%%llm`, prompts with variables, conversations, output formats and
        the `%llm` line commands. Everything runs offline: the `demo` provider, and a second
        local fake provider `ex-echo` whose received requests we can look at
        (`last_sent()` below shows the messages and settings it got).

        In the stored outputs, a streamed answer appears in its final state; while it streams
        you see it grow, with *streaming…* in its footer.
        """),
        code('''
        %load_ext viagent_jupyter
        import viagent_jupyter as vj
        from viagent_jupyter.demo import ensure_demo
        from viagent_jupyter.testing import FakeProviderServer, Scripted

        ws = vj.workspace()
        ensure_demo(ws)

        srv = FakeProviderServer(delay=0).start()
        if "ex-echo" in ws.providers:  # left over from an earlier run
            ws.providers.delete("ex-echo")
        ws.providers.create(id="ex-echo", provider_type="openai_compatible", name="Echo (local)",
                            base_url=srv.url_for("openai_compatible"), default_model="demo-small")


        def last_sent():
            """The messages and settings of the last chat request ex-echo received."""
            body = srv.requests[-1].json
            return {k: v for k, v in body.items() if k not in ("model", "stream", "stream_options")}
        '''),
        code("%llm use demo"),
        md("""
        ## The basics

        The cell body is the prompt. The answer streams into the output; the footer says who
        answered (the provider's label and the model), the tokens used (prompt/answer), the
        cost when known and the time taken.
        """),
        code("""
        %%llm
        What is a magic command?
        """, IGNORE),
        md("""
        `_llm` always holds the last result (an `LLMResult`): `.text`, `.prompt`, `.provider`,
        `.model`, `.usage`, `.cost`, `.finish_reason`, `.error`.
        """),
        code("""
        print(_llm.text)
        _llm.provider, _llm.model, _llm.finish_reason, _llm.usage.completion_tokens
        """),
        md("""
        `%llm PROMPT` does the same on one line. A prompt that starts with a command word
        (`models`, `stats`, `use`...) needs `--` in front: `%llm -- models are...`.
        """),
        code("%llm What is 2 + 2?", IGNORE),
        code("%llm -- use the force", IGNORE),
        code("_llm.prompt"),
        md("""
        ## Options

        | option | meaning |
        |---|---|
        | `-p, --provider ID` | provider (default: the selected one, `%llm use ID`) |
        | `-m, --model MODEL` | model (default: the provider's `default_model`) |
        | `-t, --temperature T` | 0–2 |
        | `--max-tokens N` | cap on the answer's length, in tokens |
        | `-s, --system TEXT` | system prompt (quote it) |
        | `-f, --format F` | `markdown` (default), `text`, `code`, `json` |
        | `--insert` | with `-f code`: also put the code into a new cell below |
        | `-o, --output VAR` | also store the result in `VAR` |
        | `--chat [THREAD]` / `--new` | continue a conversation / start it afresh |
        | `--no-interpolate` | send `{braces}` as written |
        | `--no-stream` | wait for the whole answer, then show it |

        `%%llm --help` (or `%llm help`) prints them.

        ### Provider and model: `-p`, `-m`
        """),
        code("""
        %%llm -p ex-echo -m demo-large
        Which model is this?
        """, IGNORE),
        code("_llm.provider, _llm.model, _llm.label"),
        md("""
        ### Sampling and system prompt: `-t`, `--max-tokens`, `-s`

        These override the provider's settings for this one request. An answer cut short by
        `--max-tokens` is marked *truncated* and its `finish_reason` is `length`.
        """),
        code("""
        %%llm -p ex-echo -t 0.2 --max-tokens 8 -s "You are terse."
        Describe the sea
        """, IGNORE),
        code("""
        print(_llm.text)
        print(_llm.finish_reason)
        last_sent()
        """),
        md("""
        ### Keep the result: `-o`

        `-o VAR` stores the result in `VAR` as well as in `_llm`, so a later prompt doesn't
        overwrite it.
        """),
        code("""
        %%llm -o greeting
        Say hello
        """, IGNORE),
        code("greeting.text, greeting.usage"),
        md("""
        ### Wait for the whole answer: `--no-stream`

        The answer is shown once, when it is complete.
        """),
        code("""
        %%llm --no-stream
        Answer in one go, please
        """),
        md("""
        ## Variables in prompts

        `{name}`, `{name.attr}`, `{name[key]}`, `{name[0]}` are replaced by values from the
        notebook. Anything else in braces (code, JSON, format specs) and names that don't
        exist stay exactly as written; `{{` and `}}` give single braces. Nothing is evaluated:
        only variable, attribute and item lookups.
        """),
        code("""
        city = {"name": "Lyon", "rivers": ["Rhône", "Saône"]}
        year = 2024
        """),
        code("""
        %%llm -p ex-echo
        Tell me about {city[name]} in {year}; its first river is {city[rivers][0]}.
        Reply as JSON like {"summary": "...", "rivers": []}; {unknown} stays; {{year}} is escaped.
        """, IGNORE),
        code('print(last_sent()["messages"][-1]["content"])'),
        md("""
        `In` and `Out` are variables too: `{Out[5]}` is the output of cell 5, and `{In[-2]}`
        the source of the cell run just before this one, handy for asking about code you
        just wrote:
        """),
        code("""
        def mean(xs):
            return sum(xs) / len(xs)
        """),
        code("""
        %%llm -p ex-echo
        What does this function do? {In[-2]}
        """, IGNORE),
        # nbval runs cells with store_history=False: In and Out stay empty under test
        code('print(last_sent()["messages"][-1]["content"])', IGNORE),
        md("`--no-interpolate` sends the prompt exactly as written:"),
        code("""
        %%llm -p ex-echo --no-interpolate
        Keep {city[name]} and {{year}} as they are.
        """, IGNORE),
        code('print(last_sent()["messages"][-1]["content"])'),
        md("""
        ## Conversations: `--chat`, `--new`

        Without `--chat`, every prompt stands alone. With `--chat`, the earlier exchanges of
        the thread are sent along, so the model sees the conversation. Threads live in the
        kernel (not in the workspace); only completed answers are remembered.
        """),
        code("""
        %%llm -p ex-echo --chat
        My name is Ada
        """, IGNORE),
        code("""
        %%llm -p ex-echo --chat
        What is my name?
        """, IGNORE),
        code("""
        for message in last_sent()["messages"]:
            print(f"{message['role']:>9}: {message['content']}")
        """),
        md("""
        `--chat NAME` keeps a separate, named thread; `--new` starts a thread afresh (alone:
        the default one). `%llm history [THREAD]` shows the threads, `%llm reset [THREAD]`
        forgets them.
        """),
        code("""
        %%llm -p ex-echo --chat trip --new
        Plan a day in Lyon
        """, IGNORE),
        code("%llm history"),
        code("%llm reset trip"),
        code("%llm reset"),
        md("""
        ## Output formats: `-f`

        Model output is untrusted: it may repeat anything the model read. Whatever the
        format, it is shown inert.

        - `markdown` (the default) renders Markdown with raw HTML disabled and the result
          sanitised: HTML in the answer shows as text, `javascript:` and `data:` links are
          dropped, images are not loaded.
        - `text` shows the answer as plain text.
        - `code` shows the code blocks of the answer (or all of it) as code; `_llm.code` has
          it, and `--insert` also puts it into a new cell below, ready to run.
        - `json` checks that the answer is JSON: valid JSON is shown as JSON and parsed into
          `_llm.data`; anything else is shown as text with a warning.

        The demo only echoes, so to show real-looking answers, `answer_next()` makes the local
        fake provider give a fixed answer to the next request:
        """),
        code('''
        import json


        def answer_next(text):
            """Make ex-echo's next answer `text` (an OpenAI-style stream)."""
            events = [{"choices": [{"index": 0, "delta": {"content": text}}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
            body = "".join(f"data: {json.dumps(e)}\\n\\n" for e in events) + "data: [DONE]\\n\\n"
            srv.script("chat", Scripted(body=body, content_type="text/event-stream"))
        '''),
        code('''
        answer_next("""**Bold**, `code`, a [link](https://jupyter.org) and a list:

        - one
        - two

        <b>raw HTML</b> and [a script link](javascript:alert(1)) stay inert.""")
        '''),
        code("""
        %%llm -p ex-echo
        Show me some Markdown
        """, IGNORE),
        code("""
        answer_next("Here you are:\\n\\n```python\\ndef square(x):\\n    return x * x\\n```\\n")
        """),
        code("""
        %%llm -p ex-echo -f code
        Write a function that squares a number
        """, IGNORE),
        code("print(_llm.code)"),
        code("""
        answer_next('{"city": "Lyon", "rivers": ["Rhône", "Saône"]}')
        """),
        code("""
        %%llm -p ex-echo -f json
        Give me Lyon's rivers as JSON
        """, IGNORE),
        code('_llm.data["rivers"]'),
        md("An answer that is not JSON is shown as text with a warning; `_llm.data` is `None`:"),
        code("""
        %%llm -f json --no-stream
        This answer will not be JSON
        """),
        code("_llm.data is None"),
        md("`-f text` shows plain text:"),
        code("""
        %%llm -f text --no-stream
        Plain text, please
        """),
        md("""
        ## When something fails

        The cell shows one line that says what failed and what to do: no traceback, never a
        key. The cell itself does not fail, so "Run All" goes on; set
        `c.LLMMagics.stop_on_error = True` to stop there instead. `%llm error` shows the
        details of the last error. Here the provider refuses the next request with
        `401 Unauthorized`:
        """),
        code('srv.script("chat", Scripted(status=401))'),
        code("""
        %%llm -p ex-echo
        This request will be refused
        """, IGNORE),
        code("%llm error"),
        md("An error before anything is sent, such as an unknown provider, looks the same:"),
        code("""
        %%llm -p ex-nowhere
        Hello?
        """),
        md("""
        ## Stopping an answer

        Interrupt the kernel (the ■ button, or <kbd>I</kbd> <kbd>I</kbd>) while an answer
        streams: within a second the connection is closed, the partial answer stays, marked
        *cancelled*, its usage is counted, and `_llm` holds it (`finish_reason` is
        `cancelled`). The cell ends without a traceback. This can't be shown in an executed
        notebook: the documentation tests run the cells in order and cannot press the stop
        button.

        ## Line commands

        `%llm providers` lists the providers of the workspace (yours included, so your table
        differs from the stored one); `*` marks the selected one.
        """),
        code("%llm providers", IGNORE),
        md("`%llm models [ID] [--refresh]` lists a provider's models (default: the selected one):"),
        code("%llm models"),
        md("""
        `%llm stats` shows the usage counted in the workspace, per provider and model (your
        numbers differ from the stored ones):
        """),
        code("%llm stats", IGNORE),
        md("""
        `%llm key ID` asks for a provider's key with a hidden prompt and stores it encrypted
        (`--session`: keep it in this kernel's memory only). The key never appears in a cell,
        an output or the history. Run it in a cell of its own, as it waits for you to type
        (`oa` stands for a provider of your own):

        ```
        %llm key oa
        ```
        """),
        md("""
        `%llm panel` shows the configuration panel (like `vj.panel()`); `%llm sidebar` opens
        the JupyterLab sidebar (like `vj.sidebar()`).
        """),
        code("%llm panel"),
        md("`%llm help` lists everything:"),
        code("%llm help"),
        md("""
        ## Configuration

        In `ipython_config.py` (or with `%config` in a notebook):

        ```python
        c.LLMMagics.default_provider = "oa"      # instead of the workspace's selection
        c.LLMMagics.default_format = "markdown"  # markdown | text | code | json
        c.LLMMagics.max_history = 50             # messages kept per --chat thread
        c.LLMMagics.update_interval = 0.05       # seconds between display updates while streaming
        c.LLMMagics.stop_on_error = False        # True: an error or cancel stops "Run All"
        ```

        ## Tidy up
        """),
        code("""
        ws.providers.delete("ex-echo")
        srv.stop()
        """),
    ]


# ----------------------------------------------------------------------------------- usage

def usage() -> list[Cell]:
    return [
        md("""
        # Usage and cost

        Every request is counted per provider and model: requests, prompt and completion
        tokens, cost when it is known, errors, and when it was last used. The counts live in
        the workspace, so every notebook and kernel adds to the same numbers and shows them.

        This notebook uses a local fake provider in the OpenRouter style, which reports the
        cost of each answer, so it runs offline and costs nothing.
        """),
        code("""
        %load_ext viagent_jupyter
        import viagent_jupyter as vj
        from viagent_jupyter.testing import FakeProviderServer, Scripted

        ws = vj.workspace()
        srv = FakeProviderServer(delay=0).start()

        if "ex-usage" in ws.providers:  # left over from an earlier run
            ws.providers.delete("ex-usage")
        ws.providers.create(id="ex-usage", provider_type="openrouter", name="Priced (local fake)",
                            base_url=srv.url_for("openrouter"), default_model="demo-small",
                            api_key="sk-or-example-not-a-real-key", max_retries=0)
        ws.stats.reset("ex-usage")  # deleting a provider keeps its usage: start from zero
        """),
        md("""
        ## The stats bar

        One line for the whole workspace: the selected provider and model, requests, tokens,
        cost, and when it was last used. Click it for the table per provider and model. It
        updates as the cells below run.
        """),
        code("vj.stats_bar()"),
        md("""
        ## One request

        A chat stream knows its own usage and cost once it has ended; the workspace adds them
        to the counters of its provider and model.
        """),
        code("""
        s = ws.chat("How much does this cost?", provider="ex-usage")
        print(s.wait().text)
        print(s.usage)
        print(f"cost: ${s.cost:.7f}")
        """),
        code("""
        rec = ws.stats.get("ex-usage", "demo-small")
        rec.requests, rec.prompt_tokens, rec.completion_tokens, rec.cost
        """),
        md("`%%llm` counts the same way; `_llm.cost` is the cost of that answer:"),
        code("""
        %%llm -p ex-usage -m demo-large
        And with the larger model?
        """, IGNORE),
        code("_llm.usage, _llm.cost"),
        md("`ws.stats.all()` lists every provider and model; here, only this notebook's:"),
        code("""
        for r in ws.stats.all():
            if r.provider == "ex-usage":
                print(f"{r.model:<11} {r.requests} requests, {r.prompt_tokens} + "
                      f"{r.completion_tokens} tokens, ${r.cost:.7f}, {r.errors} errors")
        """),
        md("""
        ## Where the cost comes from

        The cost is the one the provider reports with the answer (OpenRouter does), else it
        is computed from the prices in the provider's model list (see
        [models.ipynb](models.ipynb)), else it is unknown: `None`, shown as `-`. Totals add up
        the known costs only.

        ## Errors

        A request that fails after the provider started answering (say, a stream cut off
        half-way) is counted, with an error. A request refused outright (a wrong key, a rate
        limit) never reached a model and is not counted.
        """),
        code("""
        srv.script("chat", Scripted(truncate_after=150))  # the next answer stops half-way
        try:
            ws.chat("This answer will be cut off", provider="ex-usage").wait().text
        except vj.ProviderError as err:
            print(type(err).__name__)

        srv.script("chat", Scripted(status=401))  # the next request is refused
        try:
            ws.chat("This one is refused", provider="ex-usage").wait().text
        except vj.AuthenticationError as err:
            print(type(err).__name__)

        rec = ws.stats.get("ex-usage", "demo-small")
        rec.requests, rec.errors
        """),
        md("""
        ## Totals

        `ws.stats.totals` sums everything in the workspace, every provider and every kernel,
        so your numbers differ from the stored ones. `%llm stats` shows the table.
        """),
        code("ws.stats.totals", IGNORE),
        code("%llm stats", IGNORE),
        md("""
        ## Watching the numbers

        `ws.stats.records` (one dict per provider and model) and `ws.stats.totals` are traits
        that are replaced on every change: at once for a request from this kernel, within a
        quarter of a second (while the kernel is idle) for one from another kernel. The stats
        bar observes them, and so can you:
        """),
        code("""
        def on_change(change):
            mine = [r for r in change["new"] if r["provider"] == "ex-usage"]
            print("ex-usage requests:", sum(r["requests"] for r in mine))


        ws.stats.observe(on_change, names="records")
        ws.chat("One more", provider="ex-usage").wait()
        ws.stats.unobserve(on_change, names="records")
        """),
        md("""
        ## Starting over

        `ws.stats.reset(ID)` forgets one provider's counters, `ws.stats.reset()` all of them.
        """),
        code("""
        ws.stats.reset("ex-usage")
        ws.stats.get("ex-usage", "demo-small").requests
        """),
        md("## Tidy up"),
        code("""
        ws.providers.delete("ex-usage")
        srv.stop()
        """),
    ]


# -------------------------------------------------------------------------- many notebooks

def many_notebooks() -> list[Cell]:
    return [
        md("""
        # One configuration, many notebooks

        Providers, their keys, the selected provider, cached model lists and usage belong to
        the *workspace*: a directory (`$VIAGENT_HOME`, else `<jupyter data dir>/viagent`)
        holding one SQLite database. Every notebook, kernel and process that opens the same
        directory works with the same configuration:

        - in one kernel, a change is seen at once by the Python API, the magic and every
          widget;
        - another kernel sees it within about a quarter of a second while it is idle (it
          checks the database for changes in the background), or at once on
          `ws.providers.refresh()`;
        - `%%llm` and `ws.chat` read the configuration when they run, so the very next request
          uses the change.

        What stays in one kernel: `%%llm --chat` conversations, keys given with
        `persist_key=False`, and `%config LLMMagics` settings.
        """),
        code("""
        import asyncio
        import sys
        import textwrap

        import viagent_jupyter as vj

        ws = vj.workspace()  # this kernel's workspace: it follows other kernels by itself

        if "ex-shared" in ws.providers:  # left over from an earlier run
            ws.providers.delete("ex-shared")
        cfg = ws.providers.create(id="ex-shared", provider_type="ollama", name="Shared example")
        cfg.label, cfg.version
        """),
        md("""
        ## Two views of one workspace

        `vj.Workspace(home=...)` opens a workspace by its directory. A second one on the same
        directory stands in for another notebook:
        """),
        code("""
        other = vj.Workspace(home=ws.home)

        ws.providers.update("ex-shared", name="Renamed here")
        other.providers.get("ex-shared").name
        """),
        md("""
        Widgets don't ask: they observe the store's traits (`providers`, `selected`), which
        are replaced whenever a change is seen. `other` is a plain object without the kernel's
        background check, so it looks when asked; `refresh()` says whether anything changed:
        """),
        code("""
        def show(change):
            for p in change["new"]:
                if p["id"] == "ex-shared":
                    print("other sees:", p["name"], "/", p["default_model"])


        other.providers.observe(show, names="providers")
        ws.providers.update("ex-shared", default_model="llama3.2")
        other.providers.refresh()
        """),
        md("""
        ## Another kernel

        A separate Python process, standing in for the kernel of another notebook (or a
        script), renames the provider. This kernel is not told anything: its background check
        finds the change in the database and replaces the traits, which fires the observer.
        The cell waits with `await`, which leaves the kernel free to run that check.
        """),
        code("""
        script = textwrap.dedent(f'''
            import viagent_jupyter as vj
            with vj.Workspace(home={str(ws.home)!r}) as ws:
                cfg = ws.providers.update("ex-shared", name="Renamed by another process")
                print("the other process wrote version", cfg.version)
        ''')

        seen = []
        def on_change(change):
            seen.extend(p["name"] for p in change["new"] if p["id"] == "ex-shared")

        ws.providers.observe(on_change, names="providers")

        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script,
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        print(out.decode().strip())

        for _ in range(100):  # the check runs every 0.25 s; allow up to 5 s
            if seen:
                break
            await asyncio.sleep(0.05)
        ws.providers.unobserve(on_change, names="providers")
        print("this kernel saw:", seen)
        """),
        code("""
        cfg = ws.providers.get("ex-shared")
        cfg.name, cfg.version
        """),
        md("`other` has no background check: it sees the change on `refresh()` or its next read."),
        code("""
        other.providers.unobserve(show, names="providers")
        other.providers.refresh(), other.providers.get("ex-shared").name
        """),
        md("""
        ## What is not shared

        A key given with `persist_key=False` lives in the memory of the workspace object that
        received it, so in this kernel only:
        """),
        code("""
        ws.providers.update("ex-shared", api_key="sk-session-only-not-real", persist_key=False)
        ws.providers.get("ex-shared").key_source, other.providers.get("ex-shared").key_source
        """),
        md("""
        ## Widgets

        Open `vj.panel()` in two notebooks (or a panel and the sidebar) and edit a provider in
        one: the other shows the change within a fraction of a second. The panel saves with
        `expected_version`, so a save from a form that is out of date is refused with a
        conflict instead of overwriting the newer change (see
        [providers.ipynb](providers.ipynb)). The stats bar works the same way for usage.

        ## Tidy up
        """),
        code("""
        other.close()
        ws.providers.delete("ex-shared")
        """),
    ]

# ------------------------------------------------------------------------------ context

def context() -> list[Cell]:
    return [
        md("""
        # The notebook as context

        Talk about *your data* and get *your types* back: `%%llm --with NAME` attaches
        variables (DataFrames, arrays, dicts, the last error...) as short, size-capped
        descriptions; `--image` attaches plots and pictures; `--schema` asks for structured
        output and hands back a validated Python object. Everything here runs offline against
        the `demo` provider, which acknowledges images and answers structured requests with a
        minimal valid instance of the schema.
        """),
        code("""
        %load_ext viagent_jupyter
        import matplotlib
        matplotlib.use("Agg")  # figures are attached, not shown, in this notebook
        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd
        import viagent_jupyter as vj
        from viagent_jupyter.demo import ensure_demo

        ws = vj.workspace()
        ensure_demo(ws)
        """),
        code("%llm use demo"),
        md("""
        ## Variables: `--with`

        A DataFrame is described by its shape, dtypes, first rows, null counts and a numeric
        summary — never the whole frame. Above 100,000 rows the counts and the summary come
        from an evenly spaced sample (the description says so), so a 10-million-row frame is
        described as fast as a small one. Each item is capped (4,000 characters by default)
        and marked *truncated* when cut. `describe` shows exactly what is sent:
        """),
        code("""
        sales = pd.DataFrame({
            "region": ["north", "south", "east", "west"] * 3,
            "units": [12, 7, None, 30, 14, 9, 3, 28, 11, 8, 5, 31],
            "price": np.linspace(9.5, 12.25, 12),
        })
        from viagent_jupyter.context import describe
        print(describe(sales, "sales").text)
        """),
        md("""
        `--dry-run` shows the exact request the provider would get — the context goes before
        the prompt — with an estimate of its tokens, and sends nothing:
        """),
        code("""
        %%llm --with sales --dry-run
        Which region sells best?
        """),
        code("""
        %%llm --with sales
        Which region sells best?
        """, IGNORE),
        code("print(_llm.text)"),
        md("""
        Several names at once: `--with sales,config` (or repeat `--with`). Also `In[3]` (a
        cell's source), `Out[3]` (its result) and `error` (the last exception with its
        traceback). NumPy arrays give shape, dtype and a few values; dicts and lists a
        truncated JSON preview; objects with `_repr_llm_()` or `_repr_markdown_()` describe
        themselves; anything else is its `repr`. A value holding a stored provider key is
        refused.
        """),
        code("""
        config = {"epochs": 10, "layers": [64, 32, 8], "notes": "x" * 300}
        print(describe(config, "config").text)
        print(describe(np.arange(12.0).reshape(3, 4), "grid").text)
        """),
        md("""
        ## Why did this fail? `%llm fix`

        After a cell raises, `%llm fix` sends the last error and its traceback with the
        question "why did this fail and how do I fix it?" (`--with error` attaches the same
        to any prompt).
        """),
        code("""
        revenue = sales["units"] * sales["price"]
        total = revenue.sum() / number_of_regions
        """, "raises-exception"),
        md("""
        With `--dry-run`, the request `%llm fix` would send: the question, and the error with
        its traceback as context.
        """),
        code("%llm fix --dry-run"),
        code("%llm fix", IGNORE),
        md("""
        ## Images: `--image`

        A matplotlib figure, a PIL image, PNG/JPEG bytes, a file path, `Out[n]` of a cell
        that returned or showed an image, or `last` (the last image the notebook displayed)
        — repeat `--image` for several. Each provider gets its own form (OpenAI `image_url`
        data URLs, Anthropic `image` blocks, Gemini `inlineData`, Ollama `images`). A model
        whose listing says it takes no images is refused before anything is sent.
        """),
        code("""
        fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
        ax.bar(sales["region"], sales["units"].fillna(0))
        ax.set_title("Units by region")
        plt.close(fig)  # not shown here: attached below
        """),
        code("""
        %%llm --image fig --dry-run
        What does this chart show?
        """),
        code("""
        %%llm --image fig
        What does this chart show?
        """, IGNORE),
        code("print(_llm.text)"),
        md("""
        ## Typed answers: `--schema`

        Name a pydantic model, a dataclass, a `TypedDict` or a JSON Schema dict from the
        notebook. The provider is asked for structured output with its own mechanism (OpenAI
        `response_format` strict JSON Schema, an Anthropic forced tool, Gemini
        `responseJsonSchema`, Ollama `format`); the JSON streams in live, and `_llm.value` (or
        `-o VAR`'s `.value`) holds the validated object. An answer that does not fit is an
        error naming the failing fields; `--repair` retries once with those fields.
        """),
        code("""
        from pydantic import BaseModel

        class RegionSummary(BaseModel):
            region: str
            units: int
            trend: str | None = None
        """),
        code("""
        %%llm --with sales --schema RegionSummary -o best
        Which region sells best?
        """, IGNORE),
        code("best.value"),
        md("""
        `--schema list[Model]` asks for a list; `--to-dataframe` turns the records into a
        pandas DataFrame:
        """),
        code("""
        %%llm --with sales --schema list[RegionSummary] --to-dataframe
        One row per region, please.
        """, IGNORE),
        code("_llm.value"),
        md("""
        ## In Python

        `ws.chat(..., context=[...], images=[...], schema=...)`; `s.value` is the validated
        object (it waits for the end of the stream).
        """),
        code("""
        s = ws.chat("Summarise the chart and the data.", context=[sales], images=[fig],
                    schema=RegionSummary)
        s.value
        """),
    ]


def tools() -> list[Cell]:
    return [
        md("""
        # Tools: the model calls your functions

        `@vj.tool` turns a typed Python function into a tool: its name, its docstring and
        its parameters (as a JSON Schema) are sent to the model; when the model asks for a
        call, the arguments are checked against the schema, the function runs **in this
        kernel**, and the result goes back to the model, until it answers. It works the same
        with OpenAI, Anthropic, Gemini and Ollama providers.

        This notebook uses a local fake Anthropic-style provider whose demo model calls the
        tool named in the prompt once (the first offered tool otherwise), so it runs offline.
        """),
        code("""
        %load_ext viagent_jupyter
        from typing import Annotated

        from pydantic import Field

        import viagent_jupyter as vj
        from viagent_jupyter.testing import FakeProviderServer

        ws = vj.workspace()
        srv = FakeProviderServer(delay=0).start()
        if "ex-tools" in ws.providers:  # left over from an earlier run
            ws.providers.delete("ex-tools")
        ws.providers.create(id="ex-tools", provider_type="anthropic", name="Tools (local fake)",
                            base_url=srv.url_for("anthropic"), default_model="demo-small",
                            api_key="sk-ant-example-not-a-real-key", max_retries=0)
        """),
        md("""
        ## A tool

        Type hints become the schema; `Annotated[..., Field(description=...)]` adds a
        description the model sees. `safe=True` marks a read-only tool that may run without
        asking.
        """),
        code('''
        @vj.tool
        def add(a: int, b: Annotated[int, Field(description="the second number")]) -> int:
            """Add two integers."""
            return a + b

        @vj.tool(safe=True)
        def population(city: Annotated[str, Field(description="a city name")]) -> dict:
            """Look up a city's population (read-only)."""
            return {"city": city, "population": 2_100_000}

        add.parameters
        '''),
        md("""
        ## From Python

        `tools=[...]` offers them; `approve="all"` runs every call without asking (the
        default, `"ask"`, asks on stdin; a function `approve=lambda call: ...` decides per
        call). `s.steps` lists each model request with its calls, results and timings;
        usage and cost add up over all requests.
        """),
        code("""
        s = ws.chat("Please use add", provider="ex-tools", tools=[add, population], approve="all")
        print(s.text)
        for step in s.steps:
            for r in step.results:
                print(f"step {step.index}: {r.name}({r.arguments}) -> {r.output} [{r.status}]")
        print(s.usage.prompt_tokens, s.usage.completion_tokens, s.finish_reason)
        """),
        md("What went back to the model, in the Anthropic protocol's own shape:"),
        code("""
        srv.requests[-1].json["messages"][-2:]
        """),
        md("""
        ## From the magic

        `--tools` names functions of the notebook. Each call shows as one collapsible line
        (tool, arguments, result, time), then the answer streams as usual. A safe tool runs
        without asking:
        """),
        code("""
        %%llm -p ex-tools --tools population,add
        Use population for Paris, please.
        """, IGNORE),
        code("_llm.text"),
        md("""
        Any other tool asks first, on each call: `Run tool add({"a": 2, "b": 2})? [y/N]` (in
        JupyterLab a text box appears under the cell). Without a way to ask (a notebook run
        by a script, like this one under test) the call is denied and the model is told so.
        `--approve all` runs every call; `--max-steps N` caps the model requests (default 8).
        """),
        code("""
        %%llm -p ex-tools --tools add --approve all --max-steps 3
        Use add, please.
        """, IGNORE),
        code("_llm.text"),
        md("""
        ## Built-in read-only tools

        `--tools builtins` lets the model look around the notebook without running code:
        `list_variables`, `describe_variable` (type, shape, columns, a short repr),
        `read_cell` (`In[n]`/`Out[n]`) and `last_error`. They are safe: no approval asked.
        """),
        code("""
        scores = [0.91, 0.87, 0.95]
        """),
        code("""
        %%llm -p ex-tools --tools builtins
        Please list_variables.
        """, IGNORE),
        code("'scores' in _llm.text"),
        code("""
        srv.stop()
        ws.providers.delete("ex-tools")
        """),
    ]


NOTEBOOKS: dict[str, Callable[[], list[Cell]]] = {
    "quickstart": quickstart,
    "providers": providers,
    "models": models,
    "magic": magic,
    "usage": usage,
    "many-notebooks": many_notebooks,
    "context": context,
    "tools": tools,
}


def build(name: str) -> nbformat.NotebookNode:
    cells = NOTEBOOKS[name]()
    for i, cell in enumerate(cells):
        cell.id = f"{name}-{i:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int) -> None:
    from nbclient import NotebookClient

    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", record_timing=False,
        store_widget_state=False, skip_cells_with_tag=SKIP,
        resources={"metadata": {"path": str(HERE)}},
    )
    client.execute()
    nb.metadata["language_info"] = {"name": "python"}  # no interpreter version in the file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"notebooks to make (default: all of "
                        f"{', '.join(NOTEBOOKS)})")
    parser.add_argument("--no-execute", action="store_true", help="write the cells only")
    parser.add_argument("--home", help="workspace to execute in (default: a fresh temporary "
                        "directory)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in NOTEBOOKS]
    if unknown:
        parser.error(f"unknown notebook(s): {', '.join(unknown)}")
    names = sorted(args.names or NOTEBOOKS)  # nbval's order: one home, alphabetical

    with tempfile.TemporaryDirectory(prefix="viagent-notebooks-") as tmp:
        if not args.no_execute:
            os.environ["VIAGENT_HOME"] = args.home or tmp
            os.environ["VIAGENT_KEYRING"] = "0"
            for var in _ENV_REMOVED:
                os.environ.pop(var, None)
        for name in names:
            nb = build(name)
            started = time.monotonic()
            if not args.no_execute:
                execute(nb, args.timeout)
            path = HERE / f"{name}.ipynb"
            nbformat.validate(nb)
            nbformat.write(nb, path)
            took = "" if args.no_execute else f", executed in {time.monotonic() - started:.1f} s"
            print(f"{path.relative_to(HERE.parent)}: {len(nb.cells)} cells{took}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
