"""What the panel, stats bar and footers say to people (issue 13, items 9, 11 and 13).

The recording comm and helpers of ``test_widgets`` stand in for the browser.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_widgets import ask, comms, widgets  # noqa: F401  (fixtures)

from viagent_jupyter import Workspace
from viagent_jupyter._display import Footer
from viagent_jupyter.schema import PROVIDER_TYPES, TYPE_NAMES, ProviderConfig, display_label
from viagent_jupyter.widgets import ConfigPanel, StatsBar


def test_an_empty_id_reports_the_id_not_the_name_it_would_have_given(
        widgets: list[Any], ws: Workspace) -> None:  # noqa: F811
    panel = ConfigPanel(ws)
    widgets.append(panel)
    reply = ask(panel, "create", fields={"id": "", "provider_type": "openai", "name": ""})
    assert reply["ok"] is False
    assert [e["field"] for e in reply["errors"]] == ["id"]
    assert "name" not in reply["error"]["message"]
    # the same through the API; a name typed by the user is still checked
    from viagent_jupyter.errors import ConfigValidationError

    with pytest.raises(ConfigValidationError) as caught:
        ws.providers.create(id="", provider_type="openai")
    assert [e["field"] for e in caught.value.errors] == ["id"]
    with pytest.raises(ConfigValidationError) as caught:
        ws.providers.create(id="ok", provider_type="openai", name="")
    assert [e["field"] for e in caught.value.errors] == ["name"]
    assert ws.providers.create(id="fine", provider_type="openai").name == "fine"


def test_display_labels_put_the_name_first_and_a_readable_type() -> None:
    assert set(TYPE_NAMES) == set(PROVIDER_TYPES)
    assert display_label("Local demo (offline)", "openai_compatible") == \
        "Local demo (offline) (OpenAI-compatible)"
    assert display_label("Work", "gemini") == "Work (Google Gemini)"
    assert display_label("OpenAI", "openai") == "OpenAI"  # no "OpenAI (OpenAI)"
    assert display_label("my ollama box", "ollama") == "my ollama box"
    cfg = ProviderConfig(id="w", provider_type="openai", name="Work")
    assert cfg.display_label == "Work (OpenAI)"
    assert cfg.label == "OPENAI - Work"  # the API's value is unchanged


def test_the_panel_ships_the_one_type_table_and_per_type_examples(
        widgets: list[Any], ws: Workspace) -> None:  # noqa: F811
    panel = ConfigPanel(ws)
    widgets.append(panel)
    types = {t["value"]: t for t in panel.schema["provider_types"]}
    assert {v: t["label"] for v, t in types.items()} == TYPE_NAMES
    examples = {v: t["model_example"] for v, t in types.items()}
    assert examples["openai"] == "gpt-4o-mini"
    assert len(set(examples.values())) == len(examples), "one example per type"
    assert not examples["anthropic"].startswith("gpt")


def test_the_stats_bar_shows_the_display_label(widgets: list[Any], ws: Workspace) -> None:  # noqa: F811
    ws.providers.create(id="demo", provider_type="openai_compatible",
                        name="Local demo (offline)", base_url="http://127.0.0.1:9/v1")
    ws.providers.select("demo")
    bar = StatsBar(ws)
    widgets.append(bar)
    assert bar.active["label"] == "Local demo (offline) (OpenAI-compatible)"


def test_the_cancelled_marker_is_plain_text() -> None:
    """U+23F9 is missing from Debian's default fonts (DejaVu): it rendered as a box."""
    for status in ("cancelled", "error", "truncated", "filtered", "streaming"):
        marker = Footer("L", "m", status=status).marker or ""
        assert all(not 0x2300 <= ord(c) <= 0x23FF for c in marker), (status, marker)
    assert Footer("L", "m", status="cancelled").text().endswith("· cancelled")
