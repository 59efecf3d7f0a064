"""Engine kind -> its control-plane half (:class:`~.base.EnginePlugin`).

Registering a new engine is one call, ``register(MyEngine())``, from the engine's own module;
the spec then accepts ``engine: {"kind": "<kind>", ...}`` validated by the engine's options
model, and the published JSON Schema lists every registered kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Union

from pydantic import (
    Field,
    GetJsonSchemaHandler,
    SerializeAsAny,
    TypeAdapter,
    ValidationError,
    WrapValidator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from .base import EngineOptions, EnginePlugin

_ENGINES: dict[str, EnginePlugin] = {}


class UnknownEngineError(LookupError):
    """No engine of this kind is registered."""


def register(engine: EnginePlugin) -> EnginePlugin:
    """Make ``engine`` the one for its kind (a second registration of a kind replaces it)."""
    _ENGINES[engine.kind] = engine
    return engine


def unregister(kind: str) -> None:
    _ENGINES.pop(kind, None)


def get_engine(kind: str) -> EnginePlugin:
    """Raises:
    UnknownEngineError: no engine of that kind is registered.
    """
    try:
        return _ENGINES[kind]
    except KeyError:
        raise UnknownEngineError(f"no engine '{kind}' is registered") from None


def engine_kinds() -> list[str]:
    return list(_ENGINES)


def _validate(value: Any, _handler: Callable[[Any], Any]) -> EngineOptions:
    """The spec's ``engine`` object, validated by the options model of its ``kind``; errors are
    located under ``engine.<kind>``, as pydantic's tagged unions do."""
    if isinstance(value, EngineOptions):
        return value
    if not isinstance(value, Mapping) or "kind" not in value:
        raise PydanticCustomError(
            "union_tag_not_found",
            "Unable to extract tag using discriminator 'kind'",
            {"discriminator": "'kind'"},
        )
    kind = value["kind"]
    engine = _ENGINES.get(kind) if isinstance(kind, str) else None
    if engine is None:
        raise PydanticCustomError(
            "union_tag_invalid",
            "Input tag '{tag}' found using 'kind' does not match any of the expected tags: "
            "{expected_tags}",
            {"tag": str(kind), "expected_tags": ", ".join(repr(k) for k in _ENGINES)},
        )
    try:
        return engine.options_model.model_validate(value)
    except ValidationError as exc:
        errors: list[Any] = [
            {
                "type": e["type"],
                "loc": (kind, *e["loc"]),
                "input": e["input"],
                **({"ctx": e["ctx"]} if "ctx" in e else {}),
            }
            for e in exc.errors(include_url=False)
        ]
        raise ValidationError.from_exception_data(exc.title, errors) from None


class _RegisteredEnginesSchema:
    """JSON Schema of the ``engine`` field: a ``oneOf`` of every registered options model,
    discriminated by ``kind`` (built when the schema is asked for)."""

    def __get_pydantic_json_schema__(
        self, _schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        models = tuple(e.options_model for e in _ENGINES.values())
        union = Annotated[Union[models], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
        return handler(TypeAdapter(union).core_schema)


#: The type of the spec's ``engine`` field.
EngineOptionsField = Annotated[
    SerializeAsAny[EngineOptions], WrapValidator(_validate), _RegisteredEnginesSchema()
]
