"""Reading request input into declared models, with clear 4xx errors."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from .client_address import caller_address, trusted_networks
from .errors import ApiError
from .keys import SETTINGS
from .models import SQLITE_INTEGER_MAX

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 256 * 1024


async def read_model(request: web.Request, model: type[M]) -> M:
    """Parse a JSON body into ``model``; 400/413/415 with a reason otherwise."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ApiError(413, "too_large", f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(413, "too_large", f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return model.model_validate(data)


def path_id(request: web.Request, name: str = "id") -> int:
    """The number a route's ``{name:\\d+}`` segment holds, for every route that takes one.

    The route's pattern lets only digits through, but not every run of digits is an id: 0 and
    anything past SQLite's signed 64-bit INTEGER name no record (and a larger int cannot even be
    bound as a query parameter), so they answer 404 here instead of 500 further in. The length
    is checked before ``int()``, which refuses strings of more than 4300 digits with an error.
    """
    raw = request.match_info[name]
    value = int(raw) if len(raw) <= len(str(SQLITE_INTEGER_MAX)) else 0
    if not 1 <= value <= SQLITE_INTEGER_MAX:
        raise ApiError(404, "not_found", f"no such {name}: ids run from 1 to {SQLITE_INTEGER_MAX}")
    return value


def read_query(request: web.Request, model: type[M]) -> M:
    """Parse query parameters (repeatable or comma-separated lists) into ``model``."""
    values: dict[str, object] = {}
    for name, field in model.model_fields.items():
        raw = request.query.getall(name, [])
        if not raw:
            continue
        origin = getattr(field.annotation, "__origin__", None)
        if origin is list:
            values[name] = [part for item in raw for part in item.split(",") if part]
        else:
            values[name] = raw[-1]
    unknown = set(request.query) - set(model.model_fields)
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown query parameter(s): {sorted(unknown)}")
    return model.model_validate(values)


def client_ip(request: web.Request) -> str | None:
    """The caller's address, through trusted proxies (``client_address``)."""
    networks = trusted_networks(request.app[SETTINGS].trusted_proxies)
    if not networks:
        return request.remote
    return caller_address(request.remote, request.headers.getall("X-Forwarded-For", []), networks)


def public_base_url(request: web.Request) -> str:
    """The address users reach: TELEREAD_PUBLIC_URL behind a proxy, else what the request says."""
    configured = request.app[SETTINGS].public_url
    return (configured or f"{request.scheme}://{request.host}").rstrip("/")


def served_over_tls(request: web.Request) -> bool:
    """True over HTTPS, directly or behind a TLS proxy announced by TELEREAD_PUBLIC_URL."""
    return request.secure or public_base_url(request).startswith("https://")
