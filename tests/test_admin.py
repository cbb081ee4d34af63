"""The administrator's layer (admin.py): managed providers with key references, policy,
default settings and budget limits, over real SQLite homes and loopback HTTP."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _util import PLANTED_KEY, files_containing
from IPython.core.interactiveshell import InteractiveShell
from test_widgets import comms, widgets  # noqa: F401 - fixtures for the panel test
from traitlets.config import Config

import viagent_jupyter as vj
from viagent_jupyter.admin import AdminConfig
from viagent_jupyter.testing import FakeProviderServer

VKEY = "sk-litellm-virtual-PLANTED-31415926"


@pytest.fixture
def srv() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0, require_key=VKEY) as server:
        yield server


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An admin config dir on Jupyter's config path (like /etc/jupyter), and a user config
    dir of its own (~/.jupyter) that must be ignored."""
    d = tmp_path / "etc-jupyter"
    d.mkdir()
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(d))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "user-jupyter"))
    monkeypatch.setenv("CAMPUS_KEY", VKEY)
    return d


def write(etc: Path, text: str, name: str = "viagent.toml") -> Path:
    path = etc / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def gateway(srv: FakeProviderServer, key: str = '"${CAMPUS_KEY}"', extra: str = "") -> str:
    return f"""
        [providers.campus]
        provider_type = "openai_compatible"
        name = "Campus gateway"
        base_url = "{srv.url_for('openai_compatible')}"
        api_key = {key}
        default_model = "demo-small"
        max_retries = 0
        {extra}
    """


@pytest.fixture
def managed(etc: Path, srv: FakeProviderServer, home: Path) -> Iterator[Any]:
    write(etc, gateway(srv))
    ws = vj.Workspace(home=home)
    yield ws
    ws.close()


# -- managed providers ------------------------------------------------------------------------


def test_managed_provider_is_listed_read_only_with_its_source(managed: Any, etc: Path) -> None:
    ws = managed
    cfg = ws.providers.get("campus")
    assert cfg.managed and cfg.managed_by == str(etc / "viagent.toml")
    assert cfg.key_source == "managed" and cfg.has_api_key and cfg.api_key_hint == "sk-…5926"
    (public,) = ws.providers.providers
    assert public["managed"] is True and public["managed_by"] == str(etc / "viagent.toml")
    assert [p.id for p in ws.providers.list()] == ["campus"] and "campus" in ws.providers
    for call in (lambda: ws.providers.update("campus", name="Mine"),
                 lambda: ws.providers.delete("campus"),
                 lambda: ws.providers.set_key("campus", "sk-mine-000000000000"),
                 lambda: ws.providers.create(id="campus", provider_type="openai")):
        with pytest.raises(vj.ProviderManagedError) as err:
            call()
        assert err.value.code == "PROVIDER_MANAGED"
        assert isinstance(err.value, vj.ProviderConflictError)
        assert f"managed by your administrator ({etc / 'viagent.toml'})" in str(err.value)
        assert "\n" not in str(err.value)
    assert ws.providers.get("campus").name == "Campus gateway"


def test_chat_uses_the_managed_key_which_is_in_no_file(managed: Any, srv: FakeProviderServer,
                                                       home: Path) -> None:
    ws = managed
    ws.providers.select("campus")
    s = ws.chat("Hello")
    assert s.wait().text and s.finish_reason == "stop"
    (req,) = [r for r in srv.requests if r.method == "POST"]
    assert req.headers["authorization"] == f"Bearer {VKEY}"
    assert ws.models("campus").ids == ["demo-small", "demo-large"]
    assert ws.stats.get("campus", "demo-small").requests == 1
    assert VKEY not in repr(ws.providers.providers) and VKEY not in repr(ws.providers.list())
    ws.close()
    assert files_containing(home, VKEY) == []


def test_missing_environment_key_says_who_to_ask(managed: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("CAMPUS_KEY")
    ws = managed
    ws.providers.refresh()
    assert ws.providers.get("campus").has_api_key is False
    with pytest.raises(vj.CredentialError, match=r"\$CAMPUS_KEY, which is not set.*administr"):
        ws.chat("Hi", provider="campus")


def test_key_file_must_be_private(etc: Path, srv: FakeProviderServer, home: Path,
                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # "~" is each user's own home
    keyfile = tmp_path / "campus.key"
    keyfile.write_text(VKEY + "\n")
    keyfile.chmod(0o600)
    write(etc, gateway(srv, key='"file:~/campus.key"'))
    with vj.Workspace(home=home) as ws:
        assert ws.chat("Hi", provider="campus").wait().text
        assert srv.requests[-1].headers["authorization"] == f"Bearer {VKEY}"
        keyfile.chmod(0o640)
        ws.providers.refresh()
        assert ws.providers.get("campus").has_api_key is False
        with pytest.raises(vj.CredentialError, match=r"readable by you only.*-rw-r-----"):
            ws.chat("Hi", provider="campus")
    assert files_containing(home, VKEY) == []


@pytest.mark.parametrize("text, field", [
    ('[providers.x]\nprovider_type = "openai"\napi_key = "sk-literal-key-123456789"', "api_key"),
    ('[providers.x]\nprovider_type = "openai"\nbase_urll = "http://x"', "providers.x"),
    ('[policy]\nblocked_model = ["x"]', "policy.blocked_model"),
    ('[budgets]\nweek = 3', "budgets.week"),
    ('[defaults]\nsettings = {temperature = 9}', "defaults.settings"),
    ('[polic', "(file)"),
    ('[providers.x]\nprovider_type = "openai"\napi_key = "file:keys/x"', "absolute path"),
])
def test_a_bad_admin_file_is_an_error_naming_it(etc: Path, home: Path, text: str,
                                                field: str) -> None:
    path = write(etc, text)
    with pytest.raises(vj.ConfigValidationError) as err:
        vj.Workspace(home=home)
    assert str(path) in str(err.value) and field in str(err.value)
    assert "administrator" in str(err.value) and "sk-literal" not in str(err.value)


def test_the_users_own_config_dir_is_not_an_admin_dir(etc: Path, tmp_path: Path,
                                                      home: Path) -> None:
    own = tmp_path / "user-jupyter"
    own.mkdir()
    write(own, '[policy]\nallow_user_providers = true\n[providers.fake]\n'
               'provider_type = "ollama"')
    write(etc, "[policy]\nallow_user_providers = false\n")
    with vj.Workspace(home=home) as ws:
        assert ws.admin.files() == [etc / "viagent.toml"]
        assert ws.providers.list() == []


def test_files_merge_by_priority_and_changes_are_picked_up(etc: Path, tmp_path: Path,
                                                           home: Path) -> None:
    low = tmp_path / "usr-local-etc"
    low.mkdir()
    write(low, '[policy]\nblocked_models = ["a*"]\nallowed_models = ["*"]\n')
    write(etc, '[policy]\nblocked_models = ["b*"]\n')
    admin = AdminConfig([etc, low])  # highest priority first, as jupyter_config_path()
    assert admin.rule("blocked_models") == ("b*",) and admin.rule("allowed_models") == ("*",)
    assert admin.reload_if_changed() is False
    write(etc, '[policy]\nblocked_models = ["c*"]\n# longer now\n')
    assert admin.reload_if_changed() is True and admin.rule("blocked_models") == ("c*",)


# -- policy -----------------------------------------------------------------------------------


def test_blocked_model_is_refused_before_any_request(etc: Path, srv: FakeProviderServer,
                                                     home: Path) -> None:
    write(etc, gateway(srv) + '\n[policy]\nblocked_models = ["*-large"]\n')
    with vj.Workspace(home=home) as ws:
        with pytest.raises(vj.PolicyError) as err:
            ws.chat("Hi", provider="campus", model="demo-large")
        assert err.value.code == "POLICY_REFUSED" and "\n" not in str(err.value)
        assert "'demo-large'" in str(err.value) and "blocked_models '*-large'" in str(err.value)
        assert srv.requests == []
        models = ws.models("campus")
        assert models.ids == ["demo-small"]
        assert ws.models("campus").from_cache and ws.models("campus").ids == ["demo-small"]


def test_allowed_models_by_provider_pattern(etc: Path, srv: FakeProviderServer,
                                            home: Path) -> None:
    write(etc, gateway(srv) + '\n[policy]\nallowed_models = ["campus:demo-small", "gpt-*"]\n')
    with vj.Workspace(home=home) as ws:
        assert ws.models("campus").ids == ["demo-small"]
        with pytest.raises(vj.PolicyError, match="not in allowed_models"):
            ws.chat("Hi", provider="campus", model="demo-large")


def test_the_magic_refuses_a_blocked_model_in_one_line(
        etc: Path, srv: FakeProviderServer, home: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from viagent_jupyter.magics import load, unload

    write(etc, gateway(srv) + '\n[policy]\nblocked_models = ["demo-large"]\n')
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=cfg)
    ws = vj.Workspace(home=home)
    try:
        load(shell, workspace=ws)
        shell.run_cell("%%llm -p campus -m demo-large\nHello")
        out, err = capsys.readouterr()
        shown = [line for line in (out + err).splitlines() if "demo-large" in line]
        assert shown and "refused by your administrator" in shown[0], out + err
        assert srv.requests == []
        unload(shell)
    finally:
        ws.close()
        shell.history_manager.end_session()
        InteractiveShell.clear_instance()


def test_no_user_providers_hides_them_and_refuses_new_ones(etc: Path, srv: FakeProviderServer,
                                                          home: Path) -> None:
    with vj.Workspace(home=home) as ws:  # before the admin's rule: the user's own provider
        ws.providers.create(id="mine", provider_type="openai", api_key=PLANTED_KEY)
        ws.providers.select("mine")
    write(etc, gateway(srv) + "\n[policy]\nallow_user_providers = false\n"
          '[defaults]\nprovider = "campus"\n')
    with vj.Workspace(home=home) as ws:
        assert [p["id"] for p in ws.providers.providers] == ["campus"]
        assert ws.providers.selected == "campus"  # the admin's default, as "mine" is hidden
        with pytest.raises(vj.PolicyError, match=r"your own.*allows only the managed "
                           r"providers \(campus\).*allow_user_providers"):
            ws.providers.get("mine")
        with pytest.raises(vj.PolicyError, match="allow_user_providers"):
            ws.chat("Hi", provider="mine")
        with pytest.raises(vj.PolicyError, match="cannot add your own"):
            ws.providers.create(id="other", provider_type="ollama")
        with pytest.raises(vj.PolicyError):
            ws.providers.update("mine", name="x")
        assert ws.chat("Hi").wait().text  # the default provider answers
        ws.providers.delete("mine")  # your own may still be removed (it was selected)
        assert ws.providers.selected == "campus"
        assert PLANTED_KEY not in json.dumps(ws.providers.providers)


def test_blocked_provider_types(etc: Path, home: Path) -> None:
    write(etc, '[policy]\nblocked_providers = ["openai", "anthropic"]\n')
    with vj.Workspace(home=home) as ws:
        with pytest.raises(vj.PolicyError, match=r"'oa' \(openai\) is blocked.*'openai'"):
            ws.providers.create(id="oa", provider_type="openai")
        ws.providers.create(id="local", provider_type="ollama")
        assert [p.id for p in ws.providers.list()] == ["local"]


def test_admin_default_settings_sit_under_the_users(etc: Path, srv: FakeProviderServer,
                                                    home: Path) -> None:
    write(etc, gateway(srv) + "\n[defaults]\nsettings = {temperature = 0.1, max_tokens = 77}\n")
    with vj.Workspace(home=home) as ws:
        ws.chat("Hi", provider="campus").wait()
        body = srv.requests[-1].json
        assert body["temperature"] == 0.1 and body["max_tokens"] == 77
        ws.chat("Hi", provider="campus", temperature=0.9).wait()
        assert srv.requests[-1].json["temperature"] == 0.9
        ws.providers.create(id="own", provider_type="openai_compatible", api_key=VKEY,
                            base_url=srv.url_for("openai_compatible"),
                            default_model="demo-small", settings={"max_tokens": 5})
        ws.chat("Hi", provider="own").wait()
        body = srv.requests[-1].json
        assert body["max_tokens"] == 5 and body["temperature"] == 0.1


# -- budgets: the seam for budgets.py ---------------------------------------------------------


def test_admin_budgets_can_be_lowered_not_raised(etc: Path, home: Path) -> None:
    write(etc, "[budgets]\nday = 2.0\nmonth = 20\n[budgets.campus]\nday = 0.5\n")
    admin = AdminConfig()
    assert admin.budget_limit("day") == 2.0 and admin.budget_limit("month") == 20.0
    assert admin.budget_limit("day", "campus") == 0.5
    assert admin.budget_limit("month", "campus") == 20.0
    admin.check_user_budget(1.0, "day")
    with pytest.raises(vj.PolicyError, match=r"\$2\.00 a day \(budgets\.day in .*lower"):
        admin.check_user_budget(5.0, "day")
    with pytest.raises(vj.PolicyError, match=r"budgets\.campus\.day"):
        admin.check_user_budget(1.0, "day", "campus")
    assert admin.effective_limit("day", None, 1.0) == 1.0
    assert admin.effective_limit("day", None, 9.0) == 2.0
    assert admin.effective_limit("day", "campus", None) == 0.5
    assert AdminConfig([]).effective_limit("day", None, None) is None


def test_without_admin_files_nothing_changes(home: Path, monkeypatch: Any,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(tmp_path / "none"))
    with vj.Workspace(home=home) as ws:
        assert ws.admin.files() == [] or all(
            not str(f).startswith(str(tmp_path)) for f in ws.admin.files())
        cfg = ws.providers.create(id="x", provider_type="ollama")
        assert cfg.managed is False and cfg.managed_by is None
        ws.providers.update("x", name="y")
        ws.providers.delete("x")
    with pytest.raises(vj.ConfigValidationError, match="cannot be set"):
        vj.Workspace(home=home).providers.create(id="z", provider_type="ollama", managed=True)


def test_a_managed_key_never_reaches_the_users_vault(managed: Any, home: Path) -> None:
    ws = managed
    with ws.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM credentials").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM providers").fetchone()[0] == 0
    assert not os.path.exists(home / "keys" / "master.key")


def test_gateway_prices_from_the_admin_give_stats_a_cost(etc: Path, srv: FakeProviderServer,
                                                          home: Path) -> None:
    """A LiteLLM proxy prices each call in the ``x-litellm-response-cost`` header, but headers
    go out before a streamed answer exists, so a stream carries tokens only
    (https://docs.litellm.ai/docs/proxy/response_headers; docs.stigg.io's LiteLLM page: "a
    streamed LiteLLM call cannot carry a cost"). Its stream does carry token usage when asked
    with ``stream_options.include_usage``, as the openai adapter does
    (https://docs.litellm.ai/docs/completion/usage). The administrator's price table fills in."""
    write(etc, gateway(srv, extra='pricing = {"demo-*" = {input_per_mtok = 1_000_000, '
                       "output_per_mtok = 2_000_000}}"))
    with vj.Workspace(home=home) as ws:
        s = ws.chat("Hello", provider="campus").wait()
        assert s.usage.prompt_tokens and s.usage.completion_tokens
        assert s.cost == pytest.approx(s.usage.prompt_tokens + 2 * s.usage.completion_tokens)
        assert ws.stats.get("campus", "demo-small").cost == pytest.approx(s.cost)
        assert ws.admin.pricing("campus", "other") is None
    write(etc, gateway(srv, extra='pricing = {"demo-*" = {input_per_mtok = -1, '
                       "output_per_mtok = 1}}"))
    with pytest.raises(vj.ConfigValidationError, match=r"providers\.campus\.pricing\.demo-\*"):
        vj.Workspace(home=home)


def test_a_running_workspace_picks_up_the_admins_change(etc: Path, srv: FakeProviderServer,
                                                        home: Path) -> None:
    with vj.Workspace(home=home) as ws:
        ws.providers.create(id="mine", provider_type="ollama")
        seen: list[tuple[str, ...]] = []
        ws.providers.observe(lambda ch: seen.append(tuple(p["id"] for p in ch["new"])),
                             "providers")
        write(etc, gateway(srv))
        assert ws.providers.refresh() is True
        assert seen[-1] == ("campus", "mine") and ws.providers.get("campus").managed
        write(etc, gateway(srv) + "\n[policy]\nallow_user_providers = false\n")
        assert ws.providers.refresh() is True and seen[-1] == ("campus",)
        (etc / "viagent.toml").unlink()
        assert ws.providers.refresh() is True and seen[-1] == ("mine",)
        with pytest.raises(vj.ProviderNotFoundError):
            ws.providers.get("campus")


def test_the_managed_key_leaks_nowhere(etc: Path, home: Path, caplog: Any,
                                       tmp_path: Path) -> None:
    """A planted managed key, refused by the provider: not in the error, its repr, the logs
    (DEBUG), the trait, the admin config's repr, nor any file of the home."""
    import logging
    import pickle

    with FakeProviderServer(delay=0, require_key="sk-the-right-one-000000000") as other:
        write(etc, gateway(other))
        caplog.set_level(logging.DEBUG)
        with vj.Workspace(home=home) as ws:
            with pytest.raises(vj.AuthenticationError) as err:
                ws.chat("Hi", provider="campus").wait()
            assert other.requests[-1].headers["authorization"] == f"Bearer {VKEY}"
            texts = [str(err.value), repr(err.value), repr(pickle.loads(pickle.dumps(err.value))),
                     caplog.text, json.dumps(ws.providers.providers), repr(ws.admin.providers),
                     repr(ws.providers.get("campus")), repr(ws)]
            for text in texts:
                assert VKEY not in text and "31415926" not in text
    assert files_containing(home, VKEY) == []


def test_the_panel_shows_managed_and_says_why_it_refuses(
        managed: Any, etc: Path, srv: FakeProviderServer, request: pytest.FixtureRequest) -> None:
    """The panel is a view of the same store: the managed flags reach its trait, and its
    edit/delete/model requests get the administrator's reasons as one-line errors."""
    from test_widgets import ask

    from viagent_jupyter.widgets import ConfigPanel

    made: list[Any] = request.getfixturevalue("widgets")  # records and checks the comms

    write(etc, gateway(srv) + '\n[policy]\nblocked_models = ["demo-large"]\n')
    managed.providers.refresh()
    panel = ConfigPanel(managed)
    made.append(panel)
    (campus,) = panel.providers
    assert campus["managed"] is True and campus["managed_by"] == str(etc / "viagent.toml")
    for op, extra in (("update", {"fields": {"name": "x"}}), ("delete", {}),
                      ("settings", {"settings": {"temperature": 1}})):
        reply = ask(panel, op, provider="campus", **extra)
        assert not reply["ok"] and reply["error"]["code"] == "PROVIDER_MANAGED", reply
        assert "managed by your administrator" in reply["error"]["message"]
    reply = ask(panel, "models", provider="campus", refresh=True)
    assert reply["ok"] and [m["id"] for m in panel.models] == ["demo-small"]
    assert ask(panel, "select", provider="campus")["result"] == {"selected": "campus"}


def test_summary_says_what_the_administrator_set_without_keys(
        etc: Path, srv: FakeProviderServer, home: Path) -> None:
    write(etc, gateway(srv) + '\n[policy]\nallow_user_providers = false\nblocked_models = '
          '["x*"]\n[defaults]\nprovider = "campus"\nsettings = {max_tokens = 9}\n'
          "[budgets]\nmonth = 20\n[budgets.campus]\nday = 1\n")
    with vj.Workspace(home=home) as ws:
        ws.providers.get("campus")  # the key has been read
        summary = ws.admin.summary()
        text = json.dumps(summary) + repr(ws.admin)
    assert VKEY not in text
    assert summary["files"] == [str(etc / "viagent.toml")]
    assert summary["providers"] == [{"id": "campus", "label": "OPENAI_COMPATIBLE - Campus "
                                     "gateway", "source": str(etc / "viagent.toml"),
                                     "key": "$CAMPUS_KEY"}]
    assert summary["allow_user_providers"] is False and summary["blocked_models"] == ["x*"]
    assert summary["allowed_models"] == [] and summary["default_provider"] == "campus"
    assert summary["settings"] == {"max_tokens": 9}
    assert summary["budgets"] == [{"provider": None, "period": "month", "usd": 20.0},
                                  {"provider": "campus", "period": "day", "usd": 1.0}]


def test_a_file_broken_while_running_keeps_the_last_rules(etc: Path, srv: FakeProviderServer,
                                                          home: Path) -> None:
    write(etc, gateway(srv) + '\n[policy]\nblocked_models = ["demo-large"]\n')
    with vj.Workspace(home=home) as ws:
        write(etc, "[policy\nthis is not toml")
        with pytest.raises(vj.ConfigValidationError, match="not valid TOML"):
            ws.providers.refresh()
        with pytest.raises(vj.PolicyError):  # the last good rules still hold
            ws.chat("Hi", provider="campus", model="demo-large")
        write(etc, gateway(srv))
        assert ws.providers.refresh() is True
        assert ws.chat("Hi", provider="campus", model="demo-large").wait().text


def test_the_traitlets_way_in_jupyter_config_files(etc: Path, srv: FakeProviderServer,
                                                   home: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "usr-local-etc"
    other.mkdir()  # a Jupyter config that does not set ViagentAdmin is never executed here
    write(other, "raise RuntimeError('executed')\n", "jupyter_config.py")
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", os.pathsep.join([str(etc), str(other)]))
    write(etc, f"""
        c = get_config()  # noqa
        c.ViagentAdmin.providers = {{"campus": {{
            "provider_type": "openai_compatible", "name": "Campus gateway",
            "base_url": "{srv.url_for('openai_compatible')}", "api_key": "${{CAMPUS_KEY}}",
            "default_model": "demo-small"}}}}
        c.ViagentAdmin.policy = {{"blocked_models": ["demo-large"]}}
        c.ServerApp.open_browser = False
    """, "jupyter_config.py")
    write(etc, json.dumps({"ViagentAdmin": {"defaults": {"provider": "campus"}}}),
          "jupyter_config.json")
    with vj.Workspace(home=home) as ws:
        assert ws.admin.files() == [etc / "jupyter_config.json", etc / "jupyter_config.py"]
        assert ws.providers.selected == "campus" and ws.providers.get("campus").managed
        assert ws.providers.get("campus").managed_by == str(etc / "jupyter_config.py")
        assert ws.chat("Hi").wait().text and srv.requests[-1].headers["authorization"] == \
            f"Bearer {VKEY}"
        with pytest.raises(vj.PolicyError):
            ws.chat("Hi", model="demo-large")
        write(etc, '[policy]\nblocked_models = []\n')  # viagent.toml wins in its directory
        assert ws.providers.refresh() and ws.chat("Hi", model="demo-large").wait().text
    write(etc, 'c.ViagentAdmin.policy = {"blocked_models": [object()]}\n', "jupyter_config.py")
    with pytest.raises(vj.ConfigValidationError, match=r"ViagentAdmin\.policy\.blocked_models"):
        vj.Workspace(home=home)
