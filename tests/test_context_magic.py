"""``%%llm --with / --image / --schema / --to-dataframe / --dry-run`` and ``%llm fix`` through a
real IPython InteractiveShell and a loopback fake provider (fixtures from test_magics)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import test_magics
from _util import PLANTED_KEY
from test_magics import Env

from viagent_jupyter.testing import Scripted

# the magic's fixtures: a real InteractiveShell, a recording publisher, a loopback provider
shell, srv, env = test_magics.shell, test_magics.srv, test_magics.env


def _png(w: int = 8, h: int = 6) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), "green").save(buf, format="PNG")
    return buf.getvalue()


SETUP = """
import pandas as pd
from pydantic import BaseModel

class City(BaseModel):
    name: str
    population: int

sales = pd.DataFrame({"region": ["n", "s"], "units": [3, None]})
cfg = {"lr": 0.1}
"""


def _last_user(env: Env) -> Any:
    return env.chats()[-1].json["messages"][-1]["content"]


def test_with_attaches_described_variables_and_dry_run_sends_nothing(env: Env) -> None:
    env.run(SETUP)
    env.run("%%llm --with sales,cfg --dry-run\nWhich region?")
    assert env.chats() == []
    out = env.outputs()
    assert "Context from the notebook" in out and "2 rows × 2 columns" in out
    assert "nothing was sent" in out and '\\"lr\\": 0.1' in out.replace("\\\\", "\\")
    env.run("%%llm --with sales --with cfg\nWhich region?")
    content = _last_user(env)
    assert content.startswith("Context from the notebook:")
    assert "### sales (DataFrame)" in content and "### cfg (JSON)" in content
    assert content.endswith("Which region?")


def test_schema_gives_a_validated_object_and_to_dataframe(env: Env) -> None:
    env.run(SETUP)
    env.run("%%llm --schema City -o c\nA city")
    c = env.shell.user_ns["c"]
    assert repr(c.value) == "City(name='demo', population=1)"
    assert env.shell.user_ns["_llm"].value is c.value
    sent = env.chats()[-1].json["response_format"]["json_schema"]
    assert sent["name"] == "City" and sent["strict"] is True
    env.run("%%llm --schema list[City] --to-dataframe\nCities")
    df = env.shell.user_ns["_llm"].value
    assert type(df).__name__ == "DataFrame" and list(df.columns) == ["name", "population"]


def test_schema_failure_is_one_line_listing_fields(env: Env) -> None:
    env.run(SETUP)
    body = json.dumps({"name": 5})
    head = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "demo-small"}
    events = [{**head, "choices": [{"index": 0, "delta": {"content": body}}]},
              {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    raw = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    env.srv.script("chat", Scripted(body=raw + b"data: [DONE]\n\n",
                                    content_type="text/event-stream"))
    env.run("%%llm --schema City\nA city")
    result = env.shell.user_ns["_llm"]
    assert result.value is None and result.error is not None
    msg = str(result.error)
    assert "does not fit City" in msg and "name:" in msg and "population:" in msg
    assert "does not fit City" in env.outputs()


def test_image_from_a_variable_and_the_last_displayed_image(env: Env) -> None:
    env.shell.user_ns["pic"] = _png(8, 6)
    env.run("%%llm --image pic\nWhat is this?")
    parts = _last_user(env)
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "I see 1 image (PNG, 8×6)" in env.shell.user_ns["_llm"].text
    # what the wrapped display publisher records when a cell shows a plot (the wrapping
    # itself: test_context.py::test_display_recorder_gives_last_and_cell_images)
    env.shell.display_pub._viagent_recorder.record(
        {"text/plain": "<Figure>", "image/png": base64.b64encode(_png(5, 4)).decode()})
    env.run("%%llm --image last --image pic\nCompare")
    assert "I see 2 images (PNG, 5×4; PNG, 8×6)" in env.shell.user_ns["_llm"].text
    env.run("%%llm --image nope\nx")
    assert "Cannot attach image 'nope'" in env.outputs()


def test_llm_fix_sends_the_last_error(env: Env) -> None:
    env.run("def f():\n    return {}['missing_key']\nf()")
    env.run("%llm fix")
    content = _last_user(env)
    assert "### error (last exception)" in content
    assert "KeyError: 'missing_key'" in content and "Why did it fail" in content


def test_a_variable_holding_a_key_is_refused(env: Env) -> None:
    env.ws.providers.update("fake", api_key=PLANTED_KEY)
    env.shell.user_ns["secret"] = {"token": PLANTED_KEY}
    n = len(env.chats())
    env.run("%%llm --with secret\nhi")
    assert len(env.chats()) == n
    out = env.outputs()
    assert "Refused to attach 'secret'" in out and PLANTED_KEY not in out


def test_context_cap_is_configurable(env: Env) -> None:
    env.shell.user_ns["items"] = list(range(5000))
    env.magics.context_cap = 300
    try:
        env.run("%%llm --with items\nhow many?")
    finally:
        env.magics.context_cap = 4000
    content = _last_user(env)
    block = content.split("### items (JSON)\n", 1)[1].split("\n\nhow many?")[0]
    assert len(block) <= 300 and block.endswith("[truncated]")


def test_option_combinations_checked(env: Env) -> None:
    env.run("%%llm --to-dataframe\nx")
    env.run("%%llm -m a -m b --with cfg\nx")
    out = env.outputs()
    assert "--to-dataframe needs --schema" in out
    assert "work with one model only" in out


def test_real_kernel_image_of_a_shown_plot_and_the_last_error(tmp_path: Any) -> None:
    """In a real ipykernel with the inline backend: a plot a cell *showed* (and closed) is
    found by ``--image Out[n]`` and ``--image last``; ``%llm fix`` sends that kernel's last
    error."""
    from kernel import kernel

    from viagent_jupyter.testing import FakeProviderServer

    with FakeProviderServer(delay=0) as server, \
            kernel({"VIAGENT_HOME": str(tmp_path), "VIAGENT_KEYRING": "0",
                    "IPYTHONDIR": str(tmp_path / "ipy")}) as k:
        k.check(f"""
%load_ext viagent_jupyter
%matplotlib inline
import viagent_jupyter as vj
ws = vj.workspace()
ws.providers.create(id="f", provider_type="ollama", name="F",
                    base_url="{server.url_for('ollama')}", default_model="demo-small")
ws.providers.select("f")
""")
        shown = k.run("import matplotlib.pyplot as plt\n"
                      "fig = plt.figure(figsize=(2, 1), dpi=50); plt.plot([1, 2]); plt.show()")
        assert any("image/png" in o.get("data", {}) for o in shown.outputs)
        count = k.check("print(get_ipython().execution_count - 1)").strip()
        k.check(f"%%llm --image Out[{count}] --image last\nTwo plots?")
        text = k.check("print(_llm.text)")
        import re

        # the inline backend crops to the drawn area ("tight"): the size is its choice
        assert re.search(r"I see 2 images \(PNG, (\d+)×(\d+); PNG, \1×\2\)", text), text
        k.run("1 / 0")
        k.check("%llm fix")
        sent = server.requests[-1].json["messages"][-1]["content"]
        assert "ZeroDivisionError: division by zero" in sent


def test_structured_json_shows_live_while_streaming(env: Env) -> None:
    """The partial JSON is on screen before the answer ends (the stream is paced)."""
    from test_magics import sse_script

    env.run(SETUP)
    env.magics.update_interval = 0.01
    try:
        env.srv.script("chat", sse_script(['{"name": "Ly', 'on", "popul', 'ation": 5}'],
                                          delay=0.3))
        env.run("%%llm --schema City\nA city")
    finally:
        env.magics.update_interval = 0.05
    partial = [c.data["text/plain"] for c in env.pub.calls if c.update]
    assert any(t.startswith('{"name": "Ly') and "population" not in t for t in partial), partial
    assert repr(env.shell.user_ns["_llm"].value) == "City(name='Lyon', population=5)"
