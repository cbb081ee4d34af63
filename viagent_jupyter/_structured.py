"""Structured output: a Python type (or a JSON Schema dict) → the JSON Schema a provider
constrains its answer to, and the answer's text → a validated Python object.

``output_schema(spec)`` accepts a pydantic model class, a dataclass, a ``TypedDict``,
``list[Model]`` (anything pydantic's ``TypeAdapter`` knows) or a JSON Schema dict. The schema
sent is always an *object* at the root — OpenAI's ``response_format`` and Anthropic's tool
``input_schema`` require one — so a non-object type (``list[Model]``) is wrapped as
``{"items": …}`` and unwrapped again by :meth:`OutputSchema.parse`. ``$ref``s are inlined
(Gemini's and Ollama's schema support is narrower; recursion is refused).

Each adapter turns :attr:`OutputSchema.schema` into its own mechanism; :func:`strict_schema`
is the OpenAI ``strict: true`` form. :func:`example_instance` builds the minimal valid
instance the offline demo provider answers with.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigValidationError, ProviderResponseError

__all__ = [
    "OutputSchema",
    "example_instance",
    "output_schema",
    "strict_schema",
    "to_dataframe",
]

WRAP_KEY = "items"


@dataclass(frozen=True)
class OutputSchema:
    """What the model is asked to produce and how its answer becomes a Python object."""

    name: str  # [A-Za-z0-9_-]{1,64}: OpenAI's json_schema name, Anthropic's tool name
    schema: dict[str, Any]  # an object schema, $refs inlined
    wrapped: bool = False  # the user's type sits under "items"
    spec: Any = field(default=None, repr=False, compare=False)
    _validate: Callable[[Any], Any] | None = field(default=None, repr=False, compare=False)

    def parse(self, text: str, *, provider: str | None = None,
              model: str | None = None) -> Any:
        """The final answer's text → a validated instance (``ProviderResponseError`` listing
        the failing fields when it does not fit)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            start = " ".join(text.split())[:80]
            raise ProviderResponseError(
                f"The structured answer is not valid JSON ({exc.msg} at position {exc.pos}; "
                f"it starts {start!r}): retry, or use --repair.", provider, model) from None
        data = _drop_added_nulls(data, self.schema)
        if self.wrapped:
            if not isinstance(data, dict) or WRAP_KEY not in data:
                raise _invalid([f"{WRAP_KEY}: missing"], self.name, provider, model)
            data = data[WRAP_KEY]
        if self._validate is None:
            return data
        return self._validate(data)


def _drop_added_nulls(data: Any, schema: Any) -> Any:
    """Undo what :func:`strict_schema` added: a ``null`` for an optional property that was not
    nullable means "left out" (so its default applies)."""
    if not isinstance(schema, dict):
        return data
    if isinstance(data, dict) and isinstance(schema.get("properties"), dict):
        props, required = schema["properties"], set(schema.get("required", []))
        return {k: _drop_added_nulls(v, props.get(k)) for k, v in data.items()
                if not (v is None and k not in required and k in props
                        and not _nullable(props[k]))}
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        return [_drop_added_nulls(v, schema["items"]) for v in data]
    return data


def _invalid(fields: list[str], name: str, provider: str | None,
             model: str | None) -> ProviderResponseError:
    shown = "; ".join(fields[:8]) + (f"; and {len(fields) - 8} more" if len(fields) > 8 else "")
    exc = ProviderResponseError(
        f"The structured answer does not fit {name}: {shown}. Retry, or use --repair.",
        provider, model)
    exc.fields = fields  # type: ignore[attr-defined]
    return exc


_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def _clean_name(name: str) -> str:
    return (_NAME.sub("_", name).strip("_") or "output")[:64]


def output_schema(spec: Any) -> OutputSchema:
    """``spec`` (a type or a JSON Schema dict) → :class:`OutputSchema`."""
    if isinstance(spec, OutputSchema):
        return spec
    if isinstance(spec, dict):
        return _from_dict(spec)
    from pydantic import TypeAdapter, ValidationError
    from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

    try:
        adapter: TypeAdapter[Any] = TypeAdapter(spec)
        schema = adapter.json_schema()
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
        raise ConfigValidationError(
            f"Cannot use {spec!r} as a schema: give a pydantic model class, a dataclass, a "
            f"TypedDict, list[Model] or a JSON Schema dict ({str(exc).splitlines()[0]}).",
            [{"field": "schema", "message": "not a schema type"}]) from None
    name = _type_name(spec)
    schema = inline_refs(schema)
    wrapped = schema.get("type") != "object"
    if wrapped:
        schema = _wrap(schema, name)

    def validate(data: Any) -> Any:
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            fields = [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}"
                      for e in exc.errors(include_input=False, include_url=False)]
            raise _invalid(fields, name, None, None) from None

    return OutputSchema(_clean_name(name), schema, wrapped, spec, validate)


def _type_name(spec: Any) -> str:
    args = getattr(spec, "__args__", None)
    origin = getattr(spec, "__origin__", None)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', 'list')}_of_{_type_name(args[0])}"
    return str(getattr(spec, "__name__", None) or "output")


def _wrap(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {"type": "object", "title": name, "properties": {WRAP_KEY: schema},
            "required": [WRAP_KEY]}


def _from_dict(schema: dict[str, Any]) -> OutputSchema:
    if not isinstance(schema.get("type", "object"), str) and "properties" not in schema:
        raise ConfigValidationError(
            "A JSON Schema dict needs a 'type' (e.g. {'type': 'object', 'properties': {...}}).",
            [{"field": "schema", "message": "no type"}])
    name = str(schema.get("title") or "output")
    inlined = inline_refs(schema)
    wrapped = inlined.get("type", "object") != "object"
    sent = _wrap(inlined, name) if wrapped else inlined

    def validate(data: Any) -> Any:
        import jsonschema

        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data),
                        key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            fields = [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                      for e in errors]
            raise _invalid(fields, name, None, None)
        return data

    return OutputSchema(_clean_name(name), sent, wrapped, schema, validate)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every local ``$ref`` replaced by its definition (no ``$defs`` left)."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
                key = ref.rsplit("/", 1)[1]
                if key in seen:
                    raise ConfigValidationError(
                        f"The schema is recursive ({key} contains itself); structured output "
                        "needs a finite schema.",
                        [{"field": "schema", "message": "recursive"}])
                target = walk(defs.get(key, {}), (*seen, key))
                extra = {k: walk(v, seen) for k, v in node.items() if k != "$ref"}
                return {**target, **extra}
            return {k: walk(v, seen) for k, v in node.items()
                    if k not in ("$defs", "definitions")}
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        return node

    out: dict[str, Any] = walk(schema, ())
    return out


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``strict: true`` subset: every object gets ``additionalProperties: false`` and
    lists all its properties as ``required``; a property that was optional becomes nullable
    (``anyOf [..., {"type": "null"}]``) so the model may still leave it empty — and
    :meth:`OutputSchema.parse` reads such a ``null`` as "left out", so the field's default
    applies; ``default`` (not supported in strict mode) is dropped."""
    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items() if k != "default"}
        props = out.get("properties")
        if out.get("type") == "object" or isinstance(props, dict):
            props = props if isinstance(props, dict) else {}
            required = set(node.get("required", []))
            for key, sub in list(props.items()):
                if key not in required and not _nullable(sub):
                    props[key] = {"anyOf": [sub, {"type": "null"}]}
            out["properties"] = props
            out["required"] = list(props)
            out["additionalProperties"] = False
        return out

    result: dict[str, Any] = walk(copy.deepcopy(schema))
    return result


def _nullable(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    t = node.get("type")
    if t == "null" or (isinstance(t, list) and "null" in t):
        return True
    return any(_nullable(s) for s in node.get("anyOf", []))


def example_instance(schema: dict[str, Any]) -> Any:
    """The minimal valid instance of ``schema``, deterministically (the demo provider's answer):
    every required property, null where allowed, the first enum value / const, ``minItems``
    items (at least one), the lowest number the bounds allow."""
    node = schema
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if node.get(key):
            if key != "allOf" and any(o.get("type") == "null" for o in node[key]):
                return None  # nullable: null is the smallest answer
            options = node[key]
            if key == "allOf":
                merged: dict[str, Any] = {}
                for o in options:
                    merged.update(o)
                return example_instance(merged)
            return example_instance(options[0])
    t = node.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object" or (t is None and "properties" in node):
        props = node.get("properties", {})
        return {k: example_instance(props.get(k, {})) for k in node.get("required", [])}
    if t == "array":
        return [example_instance(node.get("items", {}))
                for _ in range(int(node.get("minItems", 1)))]
    if t == "string":
        fmt = node.get("format")
        text = {"date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z",
                "email": "demo@example.com", "uri": "https://example.com",
                "uuid": "00000000-0000-4000-8000-000000000000"}.get(fmt or "", "demo")
        n = int(node.get("minLength", 0))
        return text + "x" * max(n - len(text), 0)
    if t in ("integer", "number"):
        low = node.get("minimum", node.get("exclusiveMinimum"))
        value = 1 if low is None else low + (1 if "exclusiveMinimum" in node else 0)
        high = node.get("maximum")
        if high is not None and value > high:
            value = high
        return int(value) if t == "integer" else float(value)
    if t == "boolean":
        return True
    if t == "null":
        return None
    return "demo"


def to_dataframe(value: Any) -> Any:
    """A list of records (models, dataclasses, dicts) → a pandas DataFrame."""
    import dataclasses

    import pandas as pd

    items = value if isinstance(value, (list, tuple)) else [value]
    rows = []
    for item in items:
        if hasattr(item, "model_dump"):
            rows.append(item.model_dump())
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            rows.append(dataclasses.asdict(item))
        elif isinstance(item, dict):
            rows.append(item)
        else:
            raise ConfigValidationError(
                "--to-dataframe needs a list of records (models, dataclasses or dicts); "
                f"got {type(item).__name__}.",
                [{"field": "to_dataframe", "message": "not records"}])
    return pd.DataFrame.from_records(rows)


def schema_from_name(expr: str, ns: Mapping[str, Any]) -> Any:
    """``--schema NAME``: a name (or ``list[Name]``) in the user's namespace."""
    try:
        return eval(expr, {"list": list}, dict(ns))  # the user's own kernel namespace
    except Exception as exc:
        raise ConfigValidationError(
            f"Cannot use --schema {expr}: {type(exc).__name__}: {exc}. Name a pydantic model, "
            "a dataclass, a TypedDict or a JSON Schema dict defined in the notebook.",
            [{"field": "schema", "message": f"{expr} not found"}]) from None
