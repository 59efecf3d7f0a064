"""A JSON Schema (draft 2020-12) of the search-space language, embedded in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from .dimensions import MAX_CHOICES, MAX_DIMENSIONS, TYPES_FOR_KIND
from .values import fmt
from .vocabulary import VOCABULARY, HyperParameter

__all__ = ["search_space_json_schema"]


def _value_schema(hp: HyperParameter) -> dict[str, Any]:
    if hp.kind == "bool":
        return {"type": "boolean"}
    if hp.kind == "categorical":
        return {"enum": list(hp.choices or ())}
    schema: dict[str, Any] = {"type": "integer" if hp.kind == "int" else "number"}
    if hp.low is not None:
        schema["minimum"] = hp.low
    if hp.high is not None:
        schema["exclusiveMaximum" if hp.high_exclusive else "maximum"] = hp.high
    return schema


def _when_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Active only when every named hyperparameter's value is in its list.",
        "propertyNames": {"enum": list(VOCABULARY)},
        "additionalProperties": {
            "type": "array",
            "minItems": 1,
            "items": {"type": ["string", "number", "integer", "boolean"]},
        },
    }


def _dimension_schemas(hp: HyperParameter) -> list[dict[str, Any]]:
    value = _value_schema(hp)
    shapes: list[dict[str, Any]] = []
    for dtype in TYPES_FOR_KIND[hp.kind]:
        props: dict[str, Any] = {"type": {"const": dtype}}
        required = ["type"]
        if dtype in ("float", "int"):
            props["low"] = value
            props["high"] = value
            props["log"] = {"type": "boolean", "default": False}
            props["step"] = {
                "type": "integer" if dtype == "int" else "number",
                "exclusiveMinimum": 0,
            }
            required += ["low", "high"]
        elif dtype == "categorical":
            props["choices"] = {
                "type": "array",
                "items": value,
                "minItems": 1,
                "maxItems": MAX_CHOICES,
                "uniqueItems": True,
            }
            required.append("choices")
        else:
            props["value"] = value
            required.append("value")
        props["when"] = _when_schema()
        shapes.append(
            {
                "title": f"{hp.name}: {dtype}",
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }
        )
    return shapes


def search_space_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the search-space language.

    Self-contained (no ``$ref``), so it can be embedded in an OpenAPI document. Rules that span
    fields (``low < high``, ``step`` dividing the range, conditions, cycles) are checked by
    :func:`validate_space`, not by the schema.
    """
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SearchSpace",
        "description": (
            "Hyperparameter name -> dimension (float, int, categorical or fixed). "
            "Hyperparameters not named take their default. See docs/search-space.md."
        ),
        "type": "object",
        "maxProperties": MAX_DIMENSIONS,
        "additionalProperties": False,
        "properties": {
            hp.name: {
                "description": f"{hp.description} Default: {fmt(hp.default)}.",
                "oneOf": _dimension_schemas(hp),
            }
            for hp in VOCABULARY.values()
        },
    }
