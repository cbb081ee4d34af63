"""The side-by-side comparison in a real Chromium: columns on a wide output, rows on a
narrow one, and model text that stays text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from viagent_jupyter import Workspace
from viagent_jupyter._compare import Comparison
from viagent_jupyter.testing import FakeProviderServer


def _compare_html(home: Path) -> str:
    with FakeProviderServer(delay=0) as srv, Workspace(home=home) as ws:
        ws.providers.create(id="fake", provider_type="openai_compatible", name="Fake",
                            base_url=srv.url_for("openai_compatible"),
                            default_model="demo-small", max_retries=0)
        comparison = Comparison(ws, "<img src=x onerror=window.hit=1> compare",
                                [("fake", "a"), ("fake", "b"), ("fake", "c")])
        comparison.run()
        return str(comparison.results()._repr_mimebundle_()["text/html"])


def _tops(browser: Any, html: str, width: int) -> list[float]:
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.set_content(f"<!doctype html><body style='margin:8px'>{html}</body>")
        boxes = [c.bounding_box() for c in page.locator(".viagent-llm-column").all()]
        assert page.evaluate("window.hit === undefined")  # the model's markup did nothing
        assert "<img src=x" in page.locator(".viagent-llm-column").first.inner_text()
        return [b["y"] for b in boxes if b is not None]
    finally:
        context.close()


def test_columns_wrap_into_rows_on_a_narrow_output(browser: Any, tmp_path: Path) -> None:
    html = _compare_html(tmp_path / "home")
    wide = _tops(browser, html, 1400)
    assert len(wide) == 3 and max(wide) - min(wide) < 1  # one row of three columns
    narrow = _tops(browser, html, 420)
    assert len(narrow) == 3 and narrow[0] < narrow[1] < narrow[2]  # stacked
