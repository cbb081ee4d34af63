"""A planted key appears in no file, repr, dump, trait, log record or exception."""

from __future__ import annotations

import json
import logging
import pickle
import traceback
from pathlib import Path
from typing import Any

import pytest
from _util import PLANTED_KEY, PLANTED_ODD_KEY, files_containing

import viagent_jupyter as vj


def surfaces(obj: Any) -> list[str]:
    """Every textual form of an object a user or a log might see."""
    out = [repr(obj), str(obj)]
    if hasattr(obj, "model_dump"):
        out.append(repr(obj.model_dump()))
        out.append(obj.model_dump_json())
    if hasattr(obj, "__dict__"):
        out.append(repr(vars(obj)))
    if isinstance(obj, BaseException):
        out.append("".join(traceback.format_exception(type(obj), obj, obj.__traceback__)))
        out.append(repr(pickle.loads(pickle.dumps(obj)).__dict__))
    return out


@pytest.mark.parametrize("key", [PLANTED_KEY, PLANTED_ODD_KEY])
def test_planted_key_leaks_nowhere(
    ws: Any, home: Path, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    cfg = ws.providers.create(id="oa", provider_type="openai", name="OpenAI", api_key=key)
    seen += surfaces(cfg)
    cfg = ws.providers.update("oa", name="Renamed", api_key=key)
    seen += surfaces(cfg)
    seen += [json.dumps(ws.providers.providers), repr(ws), repr(ws.providers)]
    seen += [json.dumps(p.model_dump(mode="json")) for p in ws.providers.list()]
    seen += [repr(ws.providers.trait_values())]

    errors: list[BaseException] = []
    # another field is invalid while the key is valid
    for bad in (
        {"settings": {"temperature": 9}},
        {"name": ""},
        {"base_url": "ftp://x"},
        {"unknown_field": key},  # the key pasted into a wrong field
        {"headers": {"X-Custom": key + "\nInjected: 1"}},
        {"headers": {"Authorization": f"Bearer {key}"}},
        {"base_url": f"https://{key}@example.test"},
        {"default_model": f"model {key}"},
    ):
        with pytest.raises(vj.ConfigValidationError) as info:
            ws.providers.create(id="other", provider_type="openai", api_key=key, **bad)
        errors.append(info.value)
        with pytest.raises(vj.ConfigValidationError) as info:
            ws.providers.update("oa", api_key=key, **bad)
        errors.append(info.value)
    # the key itself as an invalid value of an id or type
    for call in (
        lambda: ws.providers.create(id=key, provider_type="openai"),
        lambda: ws.providers.create(id="x", provider_type=key),
        lambda: ws.providers.get(key),
    ):
        with pytest.raises(vj.ViagentError) as err_info:
            call()
        errors.append(err_info.value)
    for err in errors:
        seen += surfaces(err)
        if isinstance(err, vj.ConfigValidationError):
            seen.append(repr(err.errors))

    # decrypting keeps it out of everything but the returned value
    assert ws.providers.resolve_key("oa")[0] == key
    seen += [rec.getMessage() for rec in caplog.records]
    seen += [repr(rec.args) for rec in caplog.records]
    ws.close()

    leaks = [s for s in seen if key in s]
    assert leaks == []
    assert files_containing(home, key) == []
