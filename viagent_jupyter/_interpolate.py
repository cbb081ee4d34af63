"""``{name}`` fields in a prompt, filled from the notebook's namespace without ``eval``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["interpolate"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FIELD = rf"\{{({_NAME}(?:\.{_NAME}|\[[^\[\]{{}}]*\])*)\}}"
_TOKEN = re.compile(rf"\{{\{{|\}}\}}|{_FIELD}")
_PART = re.compile(rf"\.({_NAME})|\[([^\[\]{{}}]*)\]")
_INT = re.compile(r"-?\d+")
_MISSING = object()


def _lookup(field: str, namespace: Mapping[str, Any]) -> object:
    """Resolve ``name(.attr|[key])*`` with attribute/item lookups only; _MISSING if not."""
    name = re.match(_NAME, field)
    assert name is not None
    if name.group(0) not in namespace:
        return _MISSING
    obj = namespace[name.group(0)]
    try:
        for part in _PART.finditer(field, name.end()):
            attr, key = part.group(1), part.group(2)
            if attr is not None:
                if attr.startswith("_"):
                    return _MISSING  # no dunder/private walks (obj.__class__.__init__...)
                obj = getattr(obj, attr)
            else:
                key = key.strip()
                index: object
                if _INT.fullmatch(key):
                    index = int(key)
                elif len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
                    index = key[1:-1]
                else:
                    index = key
                obj = obj[index]
        return str(obj)
    except Exception:  # a failed lookup (or a property that raises) leaves the field as text
        return _MISSING


def interpolate(template: str, namespace: Mapping[str, Any]) -> str:
    """Fill ``{name}``, ``{name.attr}``, ``{name[0]}`` fields from ``namespace``.

    Unknown names, failed lookups, ``_private`` attributes and anything in braces that is not
    such a field (code, JSON, ``{x:>3}``) stay exactly as written. ``{{`` gives ``{``, and a
    ``}}`` closing it gives ``}`` (a lone ``}}``, as at the end of nested JSON, stays)."""
    out: list[str] = []
    pos = 0
    open_escapes = 0
    for m in _TOKEN.finditer(template):
        out.append(template[pos:m.start()])
        pos = m.end()
        token = m.group(0)
        if token == "{{":
            open_escapes += 1
            out.append("{")
        elif token == "}}":
            if open_escapes:
                open_escapes -= 1
                out.append("}")
            else:
                out.append("}}")
        else:
            value = _lookup(m.group(1), namespace)
            out.append(token if value is _MISSING else str(value))
    out.append(template[pos:])
    return "".join(out)
