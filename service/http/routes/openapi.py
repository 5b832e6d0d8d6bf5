"""The OpenAPI 3.1 document, generated from the route table and the declared models.

Every route a handler serves is described by the ``@documented(...)`` declaration on its handler;
what the route table already knows is derived here rather than declared twice: the path
parameters (from the route's pattern), the operationId (from the handler's module and name),
the tag (the module), the security (from ``@allow``/``@public``) and the error answers every
operation can give (the one JSON shape of ``service.http.errors.ApiError``).
``tests/test_openapi.py`` validates the served document with openapi-spec-validator and walks the
route table for routes missing from it; docs/api.md says how to read it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from ..access import PUBLIC, declared_access, public

DOC_ATTRIBUTE = "__teleread_doc__"

Schema = type[BaseModel] | Mapping[str, Any]
"""A declared model, or a JSON Schema written out (for what no pydantic model describes: a file,
DICOM JSON, a page)."""

JSON = "application/json"
HTML = "text/html"
API_PREFIXES = ("/api/", "/dicom-web/")
NO_CONTENT = (204, 304)
"""Statuses answered without a body."""


class NoBody:
    """``body=NO_BODY``: a write that takes no request body (a command named by its path)."""

    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY = NoBody()

BINARY: Mapping[str, Any] = {"type": "string", "format": "binary"}
"""A file or image: any bytes (OpenAPI's way to say so that tools generating clients know)."""
TEXT: Mapping[str, Any] = {"type": "string"}


@dataclass(frozen=True)
class Operation:
    summary: str
    body: Schema | NoBody | None = None
    """The request body's model (or schema); ``NO_BODY`` for a write that takes none."""
    query: type[BaseModel] | None = None
    response: Schema | None = None
    body_media_type: str | tuple[str, ...] = JSON
    errors: tuple[int, ...] = field(default=())
    success: tuple[int, ...] = field(default=(200,))
    """What a success answers: 201 for a creation, 204 and 304 without a body."""
    response_media_type: str | tuple[str, ...] = JSON
    """The media type(s) of the success body; a non-JSON type without a ``response`` schema is
    described as text (``text/*``) or bytes."""
    parameters: tuple[Mapping[str, Any], ...] = field(default=())
    """Parameters beyond the path's and ``query``'s, as OpenAPI Parameter Objects (headers,
    query parameters read without a model)."""
    operation_id: str | None = None
    """Only to override the derived ``module.handler`` id."""
    redirects: tuple[int, ...] = field(default=())
    """Redirect statuses a success may answer besides ``success`` (a page sends the logged-out
    to /login: 303); a redirect, here or in ``success``, is declared without a body."""
    answers: Mapping[int, Mapping[str, Schema]] = field(default_factory=dict)
    """Statuses whose body is not the success's nor the API error shape, by media type (STOW-RS
    answers 409 with a DICOM JSON failure list; /healthz answers 503 with its report)."""


BODY_ERRORS = (413, 415)
"""What ``read_model`` answers for a body too large or not JSON, on every operation with one."""
COMMON_ERRORS = (400, 401, 403, 404, 409)
"""What the access and error middleware may answer on any route (docs/api.md)."""


def documented(summary: str, **kwargs: Any) -> Callable[[Any], Any]:
    """Attach an OpenAPI description to a handler (keywords: the fields of ``Operation``)."""

    def mark(handler: Any) -> Any:
        setattr(handler, DOC_ATTRIBUTE, Operation(summary, **kwargs))
        return handler

    return mark


def page(summary: str, **kwargs: Any) -> Callable[[Any], Any]:
    """``documented`` for a server-rendered page: HTML, and a 303 to /login when logged out."""
    return documented(summary, response_media_type="text/html", redirects=(303,), **kwargs)


def documentation(handler: Any) -> Operation | None:
    return getattr(handler, DOC_ATTRIBUTE, None)


_PATH_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<pattern>[^()]*)\)")
_DEFAULT_SEGMENT = r"[^{}/]+"


def _segments(resource: web.AbstractResource) -> list[tuple[str, str]]:
    """The route's ``{name}`` segments with the regular expression each must match."""
    pattern = resource.get_info().get("pattern")
    if pattern is None:
        return []
    return [(g["name"], g["pattern"]) for g in _PATH_GROUP.finditer(pattern.pattern)]


def path_parameters(resource: web.AbstractResource) -> list[dict[str, Any]]:
    """The route's ``{name}`` segments, as OpenAPI path parameters.

    A ``{name:\\d+}`` segment is an id that ``requests.path_id`` holds to ``RecordId``'s range,
    so it is declared with that range; a segment with a pattern of its own declares it; any
    other segment is a non-empty string without a slash.
    """
    from ..models import RecordId

    parameters = []
    for name, regex in _segments(resource):
        if regex == r"\d+":
            schema = TypeAdapter(RecordId).json_schema()
        elif regex == _DEFAULT_SEGMENT:
            schema = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
        else:
            schema = {"type": "string", "minLength": 1, "pattern": f"^(?:{regex})$"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return parameters


def operation_ids(routes: list[web.AbstractRoute]) -> dict[web.AbstractRoute, str]:
    """``module.handler`` for each route (``.head`` for the HEAD that aiohttp adds to a GET).

    A handler serving several paths (STOW-RS with and without a study, say) gets its path's
    parameter names appended (``.study``; ``.root`` for none), or the path itself where those
    are the same (``/ohif`` and ``/ohif/``), so each id stays the same whatever other routes are
    added.
    """
    paths: dict[Any, set[str]] = defaultdict(set)
    for route in routes:
        paths[route.handler].add(route.resource.canonical)
    qualifiers: dict[str, str] = {}
    for handler_paths in (p for p in paths.values() if len(p) > 1):
        by_names = {p: "_".join(re.findall(r"\{(\w+)", p)) or "root" for p in handler_paths}
        unique = len(set(by_names.values())) == len(by_names)
        for path, names in by_names.items():
            qualifiers[path] = names if unique else _slug(path)
    ids = {}
    for route in routes:
        declared, handler = documentation(route.handler), route.handler
        name = f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__}"
        if declared is not None and declared.operation_id:
            name = declared.operation_id
        elif len(paths[handler]) > 1:
            name += "." + qualifiers[route.resource.canonical]
        ids[route] = name + (".head" if route.method == "HEAD" else "")
    return ids


def _slug(path: str) -> str:
    """``/ohif/`` -> ``ohif_index``: a path as an identifier."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root"
    return slug + "_index" if path.endswith("/") and len(path) > 1 else slug


def _media_types(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else value


def _is_json(media_type: str) -> bool:
    return media_type == JSON or media_type.endswith("+json")


class _Builder:
    """Collects component schemas while the paths are written."""

    def __init__(self) -> None:
        from ..models import ErrorResponse

        self.schemas: dict[str, Any] = {}
        self.error = self.schema(ErrorResponse)

    def schema(self, declared: Schema) -> dict[str, Any]:
        if isinstance(declared, Mapping):
            return dict(declared)
        schema = declared.model_json_schema(ref_template="#/components/schemas/{model}")
        self.schemas.update(schema.pop("$defs", {}))
        self.schemas[declared.__name__] = schema
        return {"$ref": f"#/components/schemas/{declared.__name__}"}

    def content(
        self, media_types: tuple[str, ...], declared: Schema | NoBody | None
    ) -> dict[str, Any]:
        """The media types with their schemas: the declared one for JSON (for every type when
        none is JSON), text or bytes for the others. JSON without a declaration gets no schema,
        which tests/test_openapi.py reports."""
        any_json = any(_is_json(m) for m in media_types)
        content: dict[str, Any] = {}
        for media_type in media_types:
            if isinstance(declared, Mapping | type) and (_is_json(media_type) or not any_json):
                content[media_type] = {"schema": self.schema(declared)}
            elif _is_json(media_type):
                content[media_type] = {}
            elif media_type.startswith("text/"):
                content[media_type] = {"schema": dict(TEXT)}
            else:
                content[media_type] = {"schema": dict(BINARY)}
        return content

    def operation(self, route: web.AbstractRoute, declared: Operation, op_id: str) -> dict:
        entry: dict[str, Any] = {
            "operationId": op_id,
            "summary": declared.summary,
            "tags": [route.handler.__module__.rsplit(".", 1)[-1]],
        }
        if parameters := self.parameters(route, declared):
            entry["parameters"] = parameters
        if (body := self.request_body(declared)) is not None:
            entry["requestBody"] = body
        entry["responses"] = self.successes(declared) | self.failures(route, declared)
        access = declared_access(route.handler) or frozenset()
        if PUBLIC not in access:
            entry["security"] = [{"bearer": []}, {"cookie": []}]
            entry["x-roles"] = sorted(access)
        return entry

    @staticmethod
    def parameters(route: web.AbstractRoute, declared: Operation) -> list[dict[str, Any]]:
        parameters = path_parameters(route.resource)
        if declared.query is not None:
            parameters += [
                {"name": name, "in": "query", "required": False, "schema": prop}
                for name, prop in declared.query.model_json_schema()["properties"].items()
            ]
        return parameters + [dict(p) for p in declared.parameters]

    def request_body(self, declared: Operation) -> dict[str, Any] | None:
        if declared.body is None:
            return None
        if isinstance(declared.body, NoBody):
            return {
                "description": "None: the path names what to do; a body sent is ignored",
                "required": False,
                "content": {JSON: {"schema": {"type": "object", "maxProperties": 0}}},
            }
        return {
            "required": True,
            "content": self.content(_media_types(declared.body_media_type), declared.body),
        }

    def successes(self, declared: Operation) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        for status in (*declared.success, *declared.redirects):
            answer: dict[str, Any] = {"description": HTTPStatus(status).phrase}
            if status not in NO_CONTENT and not 300 <= status < 400:
                media = _media_types(declared.response_media_type)
                answer["content"] = self.content(media, declared.response)
            answers[str(status)] = answer
        return answers

    def failures(self, route: web.AbstractRoute, declared: Operation) -> dict[str, Any]:
        """The API error shape for what any route may answer and the declared ``errors``; the
        declared ``answers`` with bodies of their own."""
        takes_body = declared.body is not None and not isinstance(declared.body, NoBody)
        content: dict[str, Any] = {JSON: {"schema": self.error}}
        if HTML in _media_types(declared.response_media_type):
            content[HTML] = {"schema": dict(TEXT)}  # a page may answer its own error page
        if not route.resource.canonical.startswith(API_PREFIXES):
            # A segment that fails the path's pattern (/viewer/abc) matches no route: aiohttp's
            # own 404, in plain text outside the API (errors.py answers JSON under API_PREFIXES).
            content["text/plain"] = {"schema": dict(TEXT)}
        statuses = {*COMMON_ERRORS, *(BODY_ERRORS if takes_body else ()), *declared.errors}
        answers = {
            str(status): {"description": HTTPStatus(status).phrase, "content": content}
            for status in sorted(statuses)
        }
        for status, media_types in declared.answers.items():
            answers[str(status)] = {
                "description": HTTPStatus(status).phrase,
                "content": {m: {"schema": self.schema(v)} for m, v in media_types.items()},
            }
        return answers


def documented_routes(app: web.Application) -> list[web.AbstractRoute]:
    """Every route with a path of its own (static files are a directory, not an operation)."""
    return [
        route
        for route in app.router.routes()
        if route.resource is not None and not isinstance(route.resource, web.StaticResource)
    ]


def build_openapi(app: web.Application) -> dict[str, Any]:
    from . import openapi_schemas

    builder = _Builder()
    paths: dict[str, Any] = {}
    routes = documented_routes(app)
    ids = operation_ids(routes)
    for route in routes:
        declared = documentation(route.handler)
        if declared is None:
            continue
        entry = builder.operation(route, declared, ids[route])
        paths.setdefault(route.resource.canonical, {})[route.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "teleread API",
            "version": "0.1.0",
            "description": "Generated from the route table (docs/api.md).",
        },
        "paths": paths,
        "components": {
            "schemas": {**builder.schemas, **openapi_schemas.COMPONENTS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "teleread_session"},
            },
        },
    }


routes = web.RouteTableDef()


@routes.get("/api/openapi.json")
@public
@documented(
    "This document: the API as OpenAPI 3.1, generated from the route table",
    response={"type": "object", "required": ["openapi", "paths"]},
)
async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(build_openapi(request.app))
