"""Prompt interpolation for ``%%llm``: ``{name}``, ``{name.attr}``, ``{name[0]}`` filled from
the notebook's namespace, over plain data only.

No ``eval``, no format specs, no ``_private`` attributes; no property or other getter runs;
``os.environ`` and any value holding a known provider key are refused with
:class:`InterpolationRefused` (one line naming the field). Anything else in braces (code,
JSON) stays as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["InterpolationRefused", "interpolate"]


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FIELD = rf"\{{({_NAME}(?:\.{_NAME}|\[[^\[\]{{}}]*\])*)\}}"
_TOKEN = re.compile(rf"\{{\{{|\}}\}}|{_FIELD}")
_PART = re.compile(rf"\.({_NAME})|\[([^\[\]{{}}]*)\]")
_INT = re.compile(r"-?\d+")
_MISSING = object()


class InterpolationRefused(ValueError):
    """A ``{field}`` of a prompt that must not be filled in (one line, naming it)."""


def _is_environ(obj: object) -> bool:
    import os

    return obj is os.environ or obj is getattr(os, "environb", None) or \
        isinstance(obj, os._Environ)


def _attribute(obj: object, attr: str, field: str) -> object:
    """``obj.attr`` as plain data only: an instance ``__dict__`` entry, a ``__slots__`` value
    or a plain class attribute. No getter runs: properties and other descriptors (and
    ``__getattr__``) are refused, or missing."""
    import types

    owner = next((vars(k) for k in type(obj).__mro__ if attr in vars(k)), None)
    found: Any = owner[attr] if owner is not None else _MISSING
    kind = type(found)
    if found is not _MISSING and (hasattr(kind, "__set__") or hasattr(kind, "__delete__")):
        if kind is types.MemberDescriptorType:  # a __slots__ value: plain data
            try:
                return found.__get__(obj, type(obj))
            except AttributeError:
                return _MISSING
        raise InterpolationRefused(
            f"{{{field}}}: '{attr}' is a property (code that would run), not plain data; "
            "compute the value into a variable first.")
    try:
        inst = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        inst = None
    if isinstance(inst, Mapping) and attr in inst:
        return inst[attr]
    if found is _MISSING:
        return _MISSING
    if hasattr(kind, "__get__"):
        raise InterpolationRefused(
            f"{{{field}}}: '{attr}' is a method or descriptor, not plain data; compute the "
            "value into a variable first.")
    return found


def _lookup(field: str, namespace: Mapping[str, Any]) -> object:
    """Resolve ``name(.attr|[key])*`` over plain data only; _MISSING if not found."""
    name = re.match(_NAME, field)
    assert name is not None
    if name.group(0) not in namespace:
        return _MISSING
    obj = namespace[name.group(0)]
    for part in _PART.finditer(field, name.end()):
        if _is_environ(obj):
            break
        attr, key = part.group(1), part.group(2)
        if attr is not None:
            if attr.startswith("_"):
                return _MISSING  # no dunder/private walks (obj.__class__.__init__...)
            obj = _attribute(obj, attr, field)
            if obj is _MISSING:
                return _MISSING
            continue
        key = key.strip()
        index: object
        if _INT.fullmatch(key):
            index = int(key)
        elif len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
            index = key[1:-1]
        else:
            index = key
        try:
            obj = obj[index]
        except Exception:  # a failed lookup leaves the field as text
            return _MISSING
    if _is_environ(obj):
        raise InterpolationRefused(
            f"{{{field}}}: the environment (os.environ) is never put into a prompt: it holds "
            "secrets.")
    try:
        return str(obj)
    except Exception:
        return _MISSING


def _provider_keys() -> set[str]:
    """Every key this process knows: handled ones and those in the providers' variables."""
    import os

    from .errors import known_secrets
    from .schema import ENV_KEYS

    keys = set(known_secrets())
    keys.update(v for names in ENV_KEYS.values() for n in names if (v := os.environ.get(n)))
    return {k for k in keys if len(k) >= 8}


def interpolate(template: str, namespace: Mapping[str, Any],
                secrets: Iterable[str] | None = None) -> str:
    """Fill ``{name}``, ``{name.attr}``, ``{name[0]}`` fields from ``namespace``.

    Unknown names, failed lookups, ``_private`` attributes and anything in braces that is not
    such a field (code, JSON, ``{x:>3}``) stay exactly as written. ``{{`` gives ``{``, and a
    ``}}`` closing it gives ``}`` (a lone ``}}``, as at the end of nested JSON, stays).

    Refused with :class:`InterpolationRefused` (one line naming the field): ``os.environ``,
    a property or other getter (``{x.prop}`` runs no code), and any value holding a known
    provider key (``secrets``; default: every key this process handled or can read from
    the providers' environment variables)."""
    out: list[str] = []
    pos = 0
    open_escapes = 0
    keys: set[str] | None = None
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
            if value is _MISSING:
                out.append(token)
                continue
            if keys is None:
                keys = _provider_keys() if secrets is None else set(secrets)
            text = str(value)
            if any(k in text for k in keys if k):
                raise InterpolationRefused(
                    f"{token}: its value holds an API key; a key is never put into a prompt.")
            out.append(text)
    out.append(template[pos:])
    return "".join(out)
