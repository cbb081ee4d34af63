"""parse_json: the fast path through ``JSONDecoder.scan_once`` (an implementation detail)
and the plain ``json.loads`` fallback give the same answers and the same errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from viagent_jupyter.adapters import _common

CASES = [b'{"a": 1}', b' {"a": [1, 2]} ', b'"\\u00e9"', b"[]", b'{"x": null}\r\n',
         '{"t": "café 😊"}'.encode()]
BAD = [b"", b"{", b'{"a": 1} extra', b"nope", b"[" * 100_000]


@pytest.mark.parametrize("fast", [True, False], ids=["scan_once", "json.loads"])
def test_both_paths_agree(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    if not fast:
        monkeypatch.setattr(_common, "_scan_once", None)
    else:
        assert _common._scan_once is not None  # CPython has it
    for payload in CASES:
        assert _common.parse_json(payload) == json.loads(payload.decode())
    for bad in BAD:
        with pytest.raises(ValueError):
            _common.parse_json(bad)


def test_no_scanner_means_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoScanner:
        pass

    class OddScanner:
        def scan_once(self, text: str, idx: int) -> Any:
            return ("something else", 0)

    for decoder in (NoScanner, OddScanner):
        monkeypatch.setattr(_common, "JSONDecoder", decoder)
        assert _common._fast_scanner() is None
