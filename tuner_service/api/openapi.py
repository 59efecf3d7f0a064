"""The published OpenAPI schema says what this server, with these settings, does.

FastAPI declares the bearer scheme on every guarded route; whether a route really asks for the
token depends on the settings (``TUNER_API_TOKEN``, ``TUNER_PROTECT_READS``), so the schema is
trimmed to match: an unguarded operation declares no security and no 401, a guarded one
both. Operations with a
body also document the 400 of a body that cannot be decoded, and every operation the 413 of an
oversize body (:class:`~tuner_service.api.limits.BodyLimit` answers it before any route), and
the tag of a tagged union is required, as pydantic requires it. The created study links to
what can be done with it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..settings import Settings

_ERROR = {"$ref": "#/components/schemas/ErrorPublic"}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def guarded(method: str, settings: Settings) -> bool:
    """Whether an operation that declares the bearer scheme asks for the token under these
    settings: reads (GET) use ``require_read``, every other method ``require_write``."""
    if settings.api_token is None:
        return False
    return method.lower() not in ("get", "head") or settings.protect_reads


def documented_methods(schema: dict[str, Any], path: str) -> list[str]:
    """The methods the schema documents at a concrete request path (for a 405's ``Allow``)."""
    methods: set[str] = set()
    for template, ops in schema.get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            methods.update(m.upper() for m in ops if m.lower() in _METHODS)
    return sorted(methods)


def _require_discriminators(schema: dict[str, Any]) -> None:
    """A tagged union's tag is required in each of its alternatives (pydantic refuses a member
    without it, even where the model alone has a default for it)."""
    components = schema.get("components", {}).get("schemas", {})

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            tag = node.get("discriminator", {}).get("propertyName")
            for ref in node.get("discriminator", {}).get("mapping", {}).values() if tag else ():
                target = components.get(str(ref).rsplit("/", 1)[-1])
                if target is not None and tag not in target.setdefault("required", []):
                    target["required"].append(tag)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)


#: What a client can do with the study ``POST /studies`` just created (OpenAPI links). The
#: best trial, its model and grid results are left out: they exist only once trials finished.
STUDY_LINKS = {
    "GetStudy": ("/studies/{study_id}", "get"),
    "ListTrials": ("/studies/{study_id}/trials", "get"),
    "EnqueueTrial": ("/studies/{study_id}/trials", "post"),
    "PauseStudy": ("/studies/{study_id}/pause", "post"),
    "ResumeStudy": ("/studies/{study_id}/resume", "post"),
    "CancelStudy": ("/studies/{study_id}/cancel", "post"),
}


def _link_created_study(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    links = {
        name: {
            "operationId": paths[path][method]["operationId"],
            "parameters": {"study_id": "$response.body#/id"},
        }
        for name, (path, method) in STUDY_LINKS.items()
        if method in paths.get(path, {})
    }
    created = paths.get("/studies", {}).get("post", {}).get("responses", {}).get("201")
    if created is not None:
        created["links"] = links


def _services_settings(app: FastAPI) -> Settings:
    settings: Settings = app.state.services.settings
    return settings


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def published_schema(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    settings = _services_settings(app)
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for ops in schema["paths"].values():
        for method, op in ops.items():
            if method not in _METHODS:
                continue
            responses = op.setdefault("responses", {})
            if "security" in op and not guarded(method, settings):
                del op["security"]
                responses.pop("401", None)
            elif "security" in op:
                responses.setdefault("401", _error("API token missing or wrong (TUNER_API_TOKEN)"))
            if "requestBody" in op:
                responses.setdefault("400", _error("the body could not be decoded"))
            responses.setdefault("413", _error("request body too large (TUNER_MAX_BODY_BYTES)"))
    _require_discriminators(schema)
    _link_created_study(schema)
    if not any("security" in op for ops in schema["paths"].values() for op in ops.values()):
        schema.get("components", {}).pop("securitySchemes", None)
    app.openapi_schema = schema
    return schema
