"""Administrator-managed providers on a real JupyterHub (loopback, two users).

The administrator's ``viagent.toml`` defines one managed provider (a LiteLLM-style gateway:
an OpenAI-compatible endpoint, here the loopback FakeProviderServer) whose virtual key the
spawner injects (``c.Spawner.environment``), and blocks a model. Each user's kernel, reached
through the hub's proxy with that user's token, must: see the managed provider read-only,
chat through it with the managed key, be refused the blocked model before any request (API
and magic), and not see the other user's own provider. Afterwards the key is in no file under
either home.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _hub import Hub, run_hub
from _util import files_containing

from viagent_jupyter.testing import FakeProviderServer, demo_text

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

VKEY = "sk-litellm-virtual-HUBPLANTED-27182818"
USERS = ("alice", "bob")


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0, require_key=VKEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory,
        provider: FakeProviderServer) -> Iterator[tuple[Hub, Path, float]]:
    tmp = tmp_path_factory.mktemp("hub")
    etc = tmp / "etc-jupyter"  # stands for /etc/jupyter (on Jupyter's config path)
    etc.mkdir()
    (etc / "viagent.toml").write_text(textwrap.dedent(f"""
        [providers.campus]
        provider_type = "openai_compatible"
        name = "Campus gateway"
        base_url = "{provider.url_for('openai_compatible')}"
        api_key = "${{CAMPUS_KEY}}"
        default_model = "demo-small"

        [policy]
        blocked_models = ["demo-large"]

        [defaults]
        provider = "campus"
    """))
    started = time.monotonic()
    with run_hub(tmp, {"CAMPUS_KEY": VKEY, "JUPYTER_CONFIG_PATH": str(etc)}) as h:
        for user in USERS:
            h.add_user(user)
        yield h, etc, time.monotonic() - started


SEE = """
import json, viagent_jupyter as vj
ws = vj.workspace()
out = {"home": str(ws.home), "providers": list(ws.providers.providers),
       "selected": ws.providers.selected}
for what, call in [("update", lambda: ws.providers.update("campus", name="mine")),
                   ("delete", lambda: ws.providers.delete("campus")),
                   ("blocked", lambda: ws.chat("hi", provider="campus", model="demo-large"))]:
    try:
        call()
        out[what] = None
    except vj.ViagentError as exc:
        out[what] = [exc.code, str(exc)]
s = ws.chat("hello from {user}")
out["text"], out["model"] = s.text, s.model
out["key_source"] = ws.providers.get("campus").key_source
print("RESULT " + json.dumps(out))
"""

OWN = """
import viagent_jupyter as vj
vj.workspace().providers.create(id="{user}-own", provider_type="ollama", name="{user}'s own",
                                base_url="http://127.0.0.1:9")
print("RESULT " + repr(sorted(p["id"] for p in vj.workspace().providers.providers)))
"""

OTHER = """
import viagent_jupyter as vj
try:
    vj.workspace().providers.get("{other}-own")
    print("RESULT visible")
except vj.ProviderNotFoundError:
    print("RESULT invisible " + repr(sorted(p["id"] for p in vj.workspace().providers.providers)))
"""

MAGIC = """%%llm -m demo-large
hello
"""


def result(out: dict[str, Any]) -> str:
    assert out["error"] is None, "\n".join(out["error"]["traceback"])
    (line,) = [ln for ln in out["stdout"].splitlines() if ln.startswith("RESULT ")]
    return line[len("RESULT "):]


def test_two_users_share_a_managed_provider_and_keep_their_own(
        hub: tuple[Hub, Path, float], provider: FakeProviderServer) -> None:
    h, etc, startup = hub
    began = time.monotonic()
    kernels = {user: h.start_kernel(user) for user in USERS}

    for user in USERS:
        seen = json.loads(result(h.execute(user, kernels[user], SEE.replace("{user}", user))))
        # each user's workspace is in their own home
        assert seen["home"].startswith(str(h.homes / user) + os.sep)
        (campus,) = seen["providers"]
        assert campus["id"] == "campus" and campus["managed"] is True
        assert campus["managed_by"] == str(etc / "viagent.toml")
        assert campus["key_source"] == "managed" and campus["has_api_key"] is True
        assert seen["selected"] == "campus"  # the administrator's default
        assert seen["update"][0] == seen["delete"][0] == "PROVIDER_MANAGED"
        assert "managed by your administrator" in seen["update"][1]
        assert seen["blocked"][0] == "POLICY_REFUSED" and "demo-large" in seen["blocked"][1]
        assert seen["text"] == demo_text(f"hello from {user}") and seen["model"] == "demo-small"
        assert seen["key_source"] == "managed"

    chats = [r for r in provider.requests if r.method == "POST"]
    assert len(chats) == 2  # one per user; the blocked model never left a kernel
    for user, req in zip(USERS, chats, strict=True):
        assert req.headers["authorization"] == f"Bearer {VKEY}"
        assert req.json["model"] == "demo-small"
        assert f"hello from {user}" in json.dumps(req.json["messages"])

    # the magic refuses the blocked model in one line, before any request
    h.execute("alice", kernels["alice"], "%load_ext viagent_jupyter")
    out = h.execute("alice", kernels["alice"], MAGIC)
    shown = out["stdout"] + out["stderr"] + out["display"]
    assert "demo-large" in shown and "refused by your administrator" in shown, out
    assert len([r for r in provider.requests if r.method == "POST"]) == 2

    # a user's own provider is theirs alone
    assert result(h.execute("alice", kernels["alice"], OWN.replace("{user}", "alice"))) == \
        "['alice-own', 'campus']"
    assert result(h.execute("bob", kernels["bob"], OTHER.replace("{other}", "alice"))) == \
        "invisible ['campus']"
    # ... and one user's token does not open the other's server
    status, _ = h.user_api("bob", "GET", "/api/kernels", token=h.user_tokens["alice"])
    assert status in (403, 302, 404), status

    for user in USERS:
        h.user_api(user, "DELETE", f"/api/kernels/{kernels[user]}")
    # the managed key is in no file under either home (database, WAL, vault, history, logs)
    for user in USERS:
        home = h.homes / user
        assert any(home.rglob("viagent.sqlite3")), list(home.rglob("*"))[:20]
        assert files_containing(home, VKEY) == []
    print(f"\nhub: startup with two users {startup:.1f} s, checks {time.monotonic() - began:.1f} s")
