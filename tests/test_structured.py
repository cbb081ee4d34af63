"""_structured.py: types → JSON Schema, the OpenAI strict form, validation, demo instances."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from viagent_jupyter._structured import (
    example_instance,
    output_schema,
    strict_schema,
    to_dataframe,
)
from viagent_jupyter.errors import ConfigValidationError, ProviderResponseError


class Address(BaseModel):
    city: str
    zip: str | None = None


class Person(BaseModel):
    name: str
    age: int = Field(ge=0)
    role: Literal["admin", "user"]
    address: Address
    tags: list[str] = []


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Movie(TypedDict):
    title: str
    year: int


def test_pydantic_model_schema_is_an_inlined_object() -> None:
    out = output_schema(Person)
    assert out.name == "Person" and not out.wrapped
    assert out.schema["type"] == "object"
    assert out.schema["properties"]["address"]["properties"]["city"] == {
        "title": "City", "type": "string"}
    assert "$defs" not in json.dumps(out.schema) and "$ref" not in json.dumps(out.schema)
    value = out.parse('{"name": "Ada", "age": 36, "role": "admin", "address": {"city": "L"}}')
    assert isinstance(value, Person) and value.address.city == "L"


def test_dataclass_typeddict_list_and_dict_specs() -> None:
    assert output_schema(Point).parse('{"x": 1, "y": 2.5}') == Point(1.0, 2.5)
    assert output_schema(Movie).parse('{"title": "M", "year": 1927}') == {
        "title": "M", "year": 1927}
    many = output_schema(list[Point])
    assert many.wrapped and many.name == "list_of_Point"
    assert many.schema["properties"]["items"]["type"] == "array"
    assert many.parse('{"items": [{"x": 0, "y": 0}]}') == [Point(0.0, 0.0)]
    raw = {"type": "object", "title": "Tag", "properties": {"t": {"type": "string"}},
           "required": ["t"]}
    assert output_schema(raw).parse('{"t": "a"}') == {"t": "a"}
    with pytest.raises(ConfigValidationError, match="Cannot use"):
        output_schema(object())


def test_failing_validation_lists_the_fields() -> None:
    out = output_schema(Person)
    with pytest.raises(ProviderResponseError) as err:
        out.parse('{"name": "Ada", "age": -1, "role": "root", "address": {}}')
    msg = str(err.value)
    assert "does not fit Person" in msg
    for field in ("age:", "role:", "address.city:"):
        assert field in msg
    assert err.value.fields  # type: ignore[attr-defined]
    with pytest.raises(ProviderResponseError, match="not valid JSON"):
        out.parse('{"name": ')
    raw = {"type": "object", "properties": {"t": {"type": "string"}}, "required": ["t"]}
    with pytest.raises(ProviderResponseError, match="'t' is a required property"):
        output_schema(raw).parse("{}")


def test_strict_schema_closes_objects_and_requires_everything() -> None:
    """OpenAI strict mode: every object `additionalProperties: false` and every property in
    `required`; optional ones become nullable (https://openrouter.ai/docs/structured-outputs,
    https://dev.to/dev_in_the_fog/why-llm-structured-output-strict-mode-rejects-valid-json-schema-additionalproperties-required-o54)."""
    s = strict_schema(output_schema(Person).schema)
    assert s["additionalProperties"] is False
    assert s["required"] == ["name", "age", "role", "address", "tags"]
    addr = s["properties"]["address"]
    assert addr["additionalProperties"] is False and addr["required"] == ["city", "zip"]
    assert "default" not in json.dumps(s)
    tags = s["properties"]["tags"]
    assert {"type": "null"} in tags["anyOf"]


def test_recursive_schema_refused() -> None:
    class Node(BaseModel):
        children: list[Node] = []

    with pytest.raises(ConfigValidationError, match="recursive"):
        output_schema(Node)


@pytest.mark.parametrize("spec", [Person, Point, Movie, list[Person], list[Point]])
def test_example_instance_is_valid_for_each_spec(spec: object) -> None:
    out = output_schema(spec)
    for schema in (out.schema, strict_schema(out.schema)):
        out.parse(json.dumps(example_instance(schema)))  # raises if invalid


def test_to_dataframe_from_models_dataclasses_dicts() -> None:
    df = to_dataframe([Point(1, 2), Point(3, 4)])
    assert list(df.columns) == ["x", "y"] and df.shape == (2, 2)
    assert to_dataframe([Address(city="a")]).loc[0, "city"] == "a"
    assert to_dataframe([{"a": 1}]).shape == (1, 1)
    with pytest.raises(ConfigValidationError, match="list of records"):
        to_dataframe([1, 2])
