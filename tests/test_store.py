"""ProviderStore: CRUD, every error code, persistence, traits and key resolution."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import viagent_jupyter as vj
from viagent_jupyter.errors import (
    ConfigValidationError,
    CredentialError,
    ProviderConflictError,
    ProviderInUseError,
    ProviderNotFoundError,
)


def make(ws: Any, id: str = "oa", **kw: Any) -> vj.ProviderConfig:
    args: dict[str, Any] = {"provider_type": "openai", "name": "OpenAI",
                            "default_model": "gpt-4o-mini"}
    args.update(kw)
    cfg: vj.ProviderConfig = ws.providers.create(id=id, **args)
    return cfg


def test_contract_calls_work_as_written(ws: Any) -> None:
    cfg = ws.providers.create(id="oa", provider_type="openai", name="OpenAI",
                              api_key="sk-test-contract-0001", base_url=None,
                              default_model="gpt-4o-mini", settings={"temperature": 0.2})
    assert cfg.id == "oa" and cfg.version == 1 and cfg.settings.temperature == 0.2
    assert cfg.has_api_key and cfg.api_key_hint == "sk-…0001" and cfg.key_source == "stored"
    assert cfg.label == "OPENAI - OpenAI"
    assert ws.providers.get("oa") == cfg
    assert [p.id for p in ws.providers.list()] == ["oa"]
    upd = ws.providers.update("oa", name="Work", settings={"max_tokens": 512},
                              api_key="sk-new-contract-0002")
    assert upd.name == "Work" and upd.version == 2
    assert upd.settings.max_tokens == 512 and upd.settings.temperature == 0.2  # merged
    assert upd.api_key_hint == "sk-…0002"
    upd3 = ws.providers.update("oa", name="X", expected_version=2)
    assert upd3.version == 3
    with pytest.raises(ProviderConflictError) as info:
        ws.providers.update("oa", name="Y", expected_version=2)
    assert info.value.code == "PROVIDER_CONFLICT" and "'oa'" in str(info.value)
    ws.providers.select("oa")
    assert ws.providers.selected == "oa"
    with pytest.raises(ProviderInUseError) as in_use:
        ws.providers.delete("oa")
    assert in_use.value.code == "PROVIDER_IN_USE"
    ws.providers.select(None)
    ws.providers.delete("oa")
    with pytest.raises(ProviderNotFoundError) as nf:
        ws.providers.get("oa")
    assert nf.value.code == "PROVIDER_NOT_FOUND"
    assert "ws.providers.create" in str(nf.value)


def test_refresh_is_callable_and_reports_nothing_new(ws: Any) -> None:
    make(ws)
    assert ws.providers.refresh() is False


def test_every_error_code(ws: Any) -> None:
    make(ws)
    cases = [
        (lambda: make(ws), "PROVIDER_CONFLICT"),  # duplicate id
        (lambda: ws.providers.get("nope"), "PROVIDER_NOT_FOUND"),
        (lambda: ws.providers.update("nope", name="x"), "PROVIDER_NOT_FOUND"),
        (lambda: ws.providers.delete("nope"), "PROVIDER_NOT_FOUND"),
        (lambda: ws.providers.select("nope"), "PROVIDER_NOT_FOUND"),
        (lambda: ws.providers.update("oa", settings={"temperature": 3}), "VALIDATION_ERROR"),
        (lambda: ws.providers.create(id="x", provider_type="nope"), "VALIDATION_ERROR"),
        (lambda: ws.providers.update("oa", version=9), "VALIDATION_ERROR"),
        (lambda: ws.providers.resolve_key("oa"), "CREDENTIAL_ERROR"),
    ]
    for call, code in cases:
        with pytest.raises(vj.ViagentError) as info:
            call()
        assert info.value.code == code, (code, info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "Upper"),
        ("id", "-lead"),
        ("id", "x" * 65),
        ("name", ""),
        ("name", "tab\there"),
        ("name", "n" * 201),
        ("base_url", "ftp://host"),
        ("base_url", "https://user:pw@host/v1"),
        ("base_url", "https://host/v1#frag"),
        ("base_url", "https:///nohost"),
        ("headers", {"Authorization": "Bearer x"}),
        ("headers", {"X-Ok": "a\nb"}),
        ("settings", {"temperature": -0.1}),
        ("settings", {"top_p": 1.5}),
        ("settings", {"max_tokens": 0}),
        ("settings", {"frequency_penalty": 2.5}),
        ("settings", {"presence_penalty": -3}),
        ("settings", {"unknown": 1}),
        ("timeout", 0),
        ("max_retries", -1),
        ("extra_field", 1),
    ],
)
def test_invalid_configs_are_rejected_and_nothing_is_stored(
    ws: Any, field: str, value: Any
) -> None:
    args: dict[str, Any] = {"id": "ok", "provider_type": "openai", "name": "OK", field: value}
    with pytest.raises(ConfigValidationError) as info:
        ws.providers.create(**args)
    err = info.value
    assert err.errors and err.errors[0]["field"].split(".")[0] == field
    assert ws.providers.list() == []


def test_validation_bounds_are_inclusive(ws: Any) -> None:
    cfg = make(ws, settings={"temperature": 2, "top_p": 0, "frequency_penalty": -2,
                             "presence_penalty": 2, "max_tokens": 1})
    assert cfg.settings.temperature == 2 and cfg.settings.top_p == 0


def test_openai_compatible_needs_base_url(ws: Any) -> None:
    with pytest.raises(ConfigValidationError, match="base_url"):
        ws.providers.create(id="local", provider_type="openai_compatible", name="Local")
    cfg = ws.providers.create(id="local", provider_type="openai_compatible", name="Local",
                              base_url="http://127.0.0.1:8000/v1/")
    assert cfg.base_url == "http://127.0.0.1:8000/v1" and cfg.endpoint == cfg.base_url


def test_update_is_partial_and_settings_merge_and_reset(ws: Any) -> None:
    make(ws, settings={"temperature": 0.2, "top_p": 0.9})
    cfg = ws.providers.update("oa", settings={"max_tokens": 100})
    s = cfg.settings
    assert (s.temperature, s.top_p, s.max_tokens) == (0.2, 0.9, 100)
    cfg = ws.providers.update("oa", settings={"top_p": None})
    assert cfg.settings.top_p is None and cfg.settings.max_tokens == 100
    assert cfg.name == "OpenAI" and cfg.default_model == "gpt-4o-mini"
    with pytest.raises(ConfigValidationError):
        ws.providers.update("oa", id="other")


def test_failed_update_changes_nothing(ws: Any) -> None:
    before = make(ws)
    with pytest.raises(ConfigValidationError):
        ws.providers.update("oa", name="", settings={"temperature": 1})
    assert ws.providers.get("oa") == before


def test_persistence_across_workspaces(home: Path) -> None:
    with vj.Workspace(home=home) as a:
        make(a, api_key="sk-persist-0001")
        make(a, "an", provider_type="anthropic", name="Claude")
        a.providers.select("an")
    with vj.Workspace(home=home) as b:
        assert [p.id for p in b.providers.list()] == ["oa", "an"]
        assert b.providers.selected == "an"
        assert b.providers.resolve_key("oa") == ("sk-persist-0001", "stored")


def test_traits_hold_plain_dicts_and_fire_once_per_change(ws: Any) -> None:
    seen: list[Any] = []
    ws.providers.observe(lambda ch: seen.append(ch["name"]), names=["providers", "selected"])
    make(ws)
    assert seen == ["providers"]
    ws.providers.update("oa", name="New")
    assert seen == ["providers", "providers"]
    ws.providers.select("oa")
    assert seen[-1] == "selected" and len(seen) == 3
    (entry,) = ws.providers.providers
    assert isinstance(ws.providers.providers, tuple) and type(entry) is dict
    assert entry["name"] == "New" and entry["label"] == "OPENAI - New"


def test_change_in_another_workspace_reaches_observers_via_refresh(home: Path) -> None:
    with vj.Workspace(home=home) as a, vj.Workspace(home=home) as b:
        seen: list[tuple[str, ...]] = []
        a.providers.observe(
            lambda ch: seen.append(tuple(p["name"] for p in ch["new"])), names=["providers"]
        )
        make(b)
        assert a.providers.refresh() is True
        b.providers.update("oa", name="Renamed")
        a.providers.refresh()
        assert seen == [("OpenAI",), ("Renamed",)]
        # get() reads the store at call time
        b.providers.update("oa", name="Third")
        assert a.providers.get("oa").name == "Third"


def test_session_only_key_is_never_written(ws: Any, home: Path) -> None:
    make(ws, api_key="sk-session-only-77", persist_key=False)
    cfg = ws.providers.get("oa")
    assert cfg.key_source == "session" and cfg.has_api_key
    assert ws.providers.resolve_key("oa") == ("sk-session-only-77", "session")
    from _util import files_containing

    assert files_containing(home, "sk-session-only-77") == []
    with vj.Workspace(home=home) as other:
        assert other.providers.get("oa").key_source == "none"


def test_key_lookup_order_and_environment_is_not_copied(
    ws: Any, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    make(ws)
    with pytest.raises(CredentialError) as info:
        ws.providers.resolve_key("oa")
    msg = str(info.value)
    assert "%llm key oa" in msg and "OPENAI_API_KEY" in msg and "update('oa'" in msg
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-12345678")
    before = dict(os.environ)
    assert ws.providers.resolve_key("oa") == ("sk-from-env-12345678", "environment")
    assert dict(os.environ) == before
    ws.providers.refresh()
    assert ws.providers.get("oa").key_source == "environment"
    from _util import files_containing

    assert files_containing(home, "sk-from-env-12345678") == []
    ws.providers.update("oa", api_key="sk-stored-wins-0009")
    assert ws.providers.resolve_key("oa") == ("sk-stored-wins-0009", "stored")
    ws.providers.update("oa", api_key=None)
    assert ws.providers.resolve_key("oa")[1] == "environment"


def test_gemini_reads_either_variable_and_ollama_needs_none(
    ws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.providers.create(id="g", provider_type="gemini", name="Gemini")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-google-var-0001")
    assert ws.providers.resolve_key("g") == ("AIza-google-var-0001", "environment")
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-var-first-0002")
    assert ws.providers.resolve_key("g") == ("gemini-var-first-0002", "environment")
    ws.providers.create(id="ol", provider_type="ollama", name="Local")
    assert ws.providers.resolve_key("ol") == (None, "none")
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11434")
    assert ws.providers.get("ol").endpoint == "http://gpu-box:11434"


def test_delete_removes_credential_and_cache(ws: Any) -> None:
    make(ws, api_key="sk-delete-me-0001")
    with ws.db.write() as conn:
        conn.execute("INSERT INTO model_cache VALUES ('oa', 0, '[]')")
    ws.providers.delete("oa")
    with ws.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM credentials").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM model_cache").fetchone()[0] == 0
    # a new provider with the same id starts without the old key
    cfg = make(ws)
    assert cfg.key_source == "none"


def test_moving_base_url_through_the_api_keeps_the_key_only_when_asked(ws: Any) -> None:
    make(ws, provider_type="openai_compatible", base_url="http://127.0.0.1:9/v1",
         api_key="sk-moving-key-0001")
    # explicit: the caller re-binds the stored key to the new origin
    ws.providers.update("oa", base_url="https://example.test/v1", rebind_key=True)
    assert ws.providers.resolve_key("oa") == ("sk-moving-key-0001", "stored")
    # implicit: the key is not carried to another origin; it is cleared, and said so
    cfg = ws.providers.update("oa", base_url="https://other.test/v1")
    assert not cfg.has_api_key and "origin changed" in (cfg.key_notice or "")


def test_home_and_files_are_private(ws: Any, home: Path) -> None:
    make(ws, api_key="sk-private-files-1")
    assert (home.stat().st_mode & 0o777) == 0o700
    for path in home.rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_default_workspace_uses_viagent_home(home: Path) -> None:
    from viagent_jupyter import _workspace as ws_mod

    w = vj.workspace()
    try:
        assert w.home == home and vj.workspace() is w
    finally:
        w.close()
        ws_mod._default = None


def test_require_selected_falls_back_to_the_only_provider(ws: Any) -> None:
    with pytest.raises(ProviderNotFoundError):
        ws.require_selected()
    make(ws)
    assert ws.require_selected() == "oa"
    make(ws, "two")
    with pytest.raises(ProviderNotFoundError, match="%llm use"):
        ws.require_selected()
    ws.providers.select("two")
    assert ws.require_selected() == "two"
