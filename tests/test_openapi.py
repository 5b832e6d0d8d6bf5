"""The served OpenAPI document (``/api/openapi.json``) is valid OpenAPI 3.1 and describes every
route the app serves, each with what a client needs to call it.

The route table is the truth: a route added without ``@documented(...)``, or documented without
its parts, fails here by name (``service.http.routes.openapi`` derives what it can from the
table itself). Static files are a directory, not operations, and are left out.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator

from service.app import create_app
from service.http.routes.openapi import build_openapi, documentation, documented_routes
from service.settings import Settings

WRITES = ("POST", "PUT", "PATCH")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> web.Application:
    """The app's route table, never started: what the document is built from."""
    data_dir = tmp_path_factory.mktemp("openapi") / "var"
    return create_app(Settings(data_dir=data_dir), orthanc=False)


@pytest.fixture(scope="module")
def document(app: web.Application) -> dict[str, Any]:
    return json.loads(json.dumps(build_openapi(app)))


async def test_the_served_document_is_valid_openapi_3_1(service):
    """openapi-spec-validator finds no error in /api/openapi.json (it names each one when it
    does)."""
    response = await service.client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    errors = [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in OpenAPIV31SpecValidator(document).iter_errors()
    ]
    assert not errors, "\n".join(errors)


def _problems(operation: dict[str, Any], method: str, path: str) -> list[str]:
    """What a client would miss in one operation's description."""
    problems = []
    if not operation.get("operationId"):
        problems.append("no operationId")
    declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
    if declared != set(re.findall(r"\{(\w+)\}", path)):
        problems.append(f"path parameters declared: {sorted(declared)}")
    if method in WRITES and "requestBody" not in operation:
        problems.append("no request body (body=NO_BODY says it takes none)")
    responses = operation.get("responses", {})
    if not any(status.startswith(("2", "3")) for status in responses):
        problems.append("no success response")
    if not any(status.startswith("4") for status in responses):
        problems.append("no error response")
    for status, answer in responses.items():
        if status in ("204", "304") or status.startswith("3"):
            continue
        content = answer.get("content") or {}
        if not content or any("schema" not in media for media in content.values()):
            problems.append(f"{status} without a media type and schema")
    return problems


def test_every_route_is_documented_with_its_parts(app, document):
    """Each method and path the router serves has an operation with a unique operationId, its
    path parameters, a request body on writes, and success and error answers with schemas."""
    paths = document["paths"]
    problems = []
    for route in documented_routes(app):
        path, method = route.resource.canonical, route.method
        name = f"{method} {path} ({route.handler.__module__}.{route.handler.__name__})"
        operation = paths.get(path, {}).get(method.lower())
        if documentation(route.handler) is None or operation is None:
            problems.append(f"{name}: not in the document (add @documented(...))")
            continue
        problems += [f"{name}: {p}" for p in _problems(operation, method, path)]
    ids = Counter(op["operationId"] for ops in paths.values() for op in ops.values())
    problems += [f"operationId {i!r} used {n} times" for i, n in ids.items() if n > 1]
    assert not problems, "\n".join(problems)


def test_errors_share_the_api_error_shape(app, document):
    """Every error answer names the one component the error middleware produces, except the
    statuses a handler declares a body of its own for (``answers=``)."""
    schemas = document["components"]["schemas"]
    assert {"error", "detail"} <= set(schemas["ErrorResponse"]["required"])
    wrong = []
    for route in documented_routes(app):
        own = {str(status) for status in documentation(route.handler).answers}
        path, method = route.resource.canonical, route.method
        for status, answer in document["paths"][path][method.lower()]["responses"].items():
            if status.startswith(("4", "5")) and status not in own:
                schema = answer["content"]["application/json"]["schema"]
                if schema != {"$ref": "#/components/schemas/ErrorResponse"}:
                    wrong.append(f"{method} {path} {status}: {schema}")
    assert not wrong, "\n".join(wrong)


def test_dicomweb_and_files_are_described_with_their_media_types(document):
    """DICOMweb routes are listed, with DICOM JSON and multipart media types; files and images
    name theirs."""
    paths = document["paths"]
    stow = paths["/dicom-web/studies"]["post"]
    assert "multipart/related" in stow["requestBody"]["content"]
    assert "application/dicom+json" in stow["responses"]["200"]["content"]
    metadata = paths["/dicom-web/studies/{study}/metadata"]["get"]
    assert "application/dicom+json" in metadata["responses"]["200"]["content"]
    pdf = paths["/api/consultations/{id}/report/versions/{version}/pdf"]["get"]
    assert "application/pdf" in pdf["responses"]["200"]["content"]
    upload = paths["/api/studies"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
