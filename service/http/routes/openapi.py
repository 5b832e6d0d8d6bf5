"""The OpenAPI document, generated from the route table and the declared models."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from ..access import PUBLIC, declared_access, public

DOC_ATTRIBUTE = "__teleread_doc__"


@dataclass(frozen=True)
class Operation:
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    body_media_type: str = "application/json"
    errors: tuple[int, ...] = field(default=())
    success: tuple[int, ...] = field(default=(200,))
    """What a success answers: 201 for a creation, 204 and 304 without a body."""


BODY_ERRORS = (413, 415)
"""What ``read_model`` answers for a body too large or not JSON, on every operation with one."""


def documented(summary: str, **kwargs: Any) -> Callable[[Any], Any]:
    """Attach an OpenAPI description to a handler."""

    def mark(handler: Any) -> Any:
        setattr(handler, DOC_ATTRIBUTE, Operation(summary, **kwargs))
        return handler

    return mark


_PATH_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<pattern>[^()]*)\)")


def path_parameters(resource: web.AbstractResource) -> list[dict[str, Any]]:
    """The route's ``{name}`` segments, as OpenAPI path parameters.

    A ``{name:\\d+}`` segment is an id that ``requests.path_id`` holds to ``RecordId``'s range,
    so it is declared with that range; any other segment is a non-empty string.
    """
    from ..models import RecordId

    pattern = resource.get_info().get("pattern")
    if pattern is None:
        return []
    parameters = []
    for group in _PATH_GROUP.finditer(pattern.pattern):
        if group["pattern"] == r"\d+":
            schema = TypeAdapter(RecordId).json_schema()
        else:
            schema = {"type": "string", "minLength": 1}
        parameters.append({"name": group["name"], "in": "path", "required": True, "schema": schema})
    return parameters


def build_openapi(app: web.Application) -> dict[str, Any]:
    from ..models import ErrorResponse

    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    for route in app.router.routes():
        operation: Operation | None = getattr(route.handler, DOC_ATTRIBUTE, None)
        if operation is None or route.resource is None:
            continue
        path = route.resource.canonical
        entry: dict[str, Any] = {"summary": operation.summary, "responses": {}}
        parameters = path_parameters(route.resource)
        if operation.query is not None:
            parameters += [
                {"name": name, "in": "query", "required": False, "schema": prop}
                for name, prop in operation.query.model_json_schema()["properties"].items()
            ]
        if parameters:
            entry["parameters"] = parameters
        if operation.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {operation.body_media_type: {"schema": ref(operation.body)}},
            }
        for status in operation.success:
            ok: dict[str, Any] = {"description": "OK"}
            if operation.response is not None and status not in (204, 304):
                ok["content"] = {"application/json": {"schema": ref(operation.response)}}
            entry["responses"][str(status)] = ok
        body_errors = BODY_ERRORS if operation.body is not None else ()
        for status in (400, 401, 403, 404, 409, *body_errors, *operation.errors):
            entry["responses"][str(status)] = {
                "description": "Error",
                "content": {"application/json": {"schema": ref(ErrorResponse)}},
            }
        access = declared_access(route.handler) or frozenset()
        if PUBLIC not in access:
            entry["security"] = [{"bearer": []}, {"cookie": []}]
            entry["x-roles"] = sorted(access)
        paths.setdefault(path, {})[route.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "teleread API", "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "teleread_session"},
            },
        },
    }


routes = web.RouteTableDef()


@routes.get("/api/openapi.json")
@public
async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(build_openapi(request.app))
