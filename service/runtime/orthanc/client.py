"""Async client for the Orthanc REST API (the service's hot paths never use a sync client).

Only the service talks to Orthanc, with credentials that never reach a browser or a log.

Orthancs that share one index (PostgreSQL, docs/scaling.md) are one archive with several doors:
given their URLs, the client turns to the next when the one it uses does not answer, and stays
there. Their change feeds are one feed (the same seqs), so the follower reads on unaware.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from .auth import basic_auth_header

log = logging.getLogger(__name__)


class OrthancError(Exception):
    """Orthanc answered with an error status."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"Orthanc answered {status}: {message}")
        self.status = status
        self.message = message
        self.body = body

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt with its fields (a render worker sends it to the main process pickled)."""
        return (type(self), (self.status, self.message, self.body))


KEEPALIVE_SECONDS = 0.4
"""How long an idle connection to Orthanc is kept for reuse: under Orthanc 1.10's ~0.8 s."""


class OrthancUnavailable(OrthancError):
    """Orthanc cannot be reached (connection refused, timeout, 502/503): retry later."""


@dataclass(frozen=True)
class Change:
    """One entry of Orthanc's ``/changes`` feed."""

    seq: int
    change_type: str
    resource_type: str
    resource_id: str
    date: str

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Change:
        return cls(raw["Seq"], raw["ChangeType"], raw["ResourceType"], raw["ID"], raw["Date"])


@dataclass(frozen=True)
class ChangesPage:
    changes: list[Change]
    done: bool
    last: int


class OrthancClient:
    """Thin async wrapper: JSON in, JSON out, Orthanc errors as exceptions."""

    def __init__(
        self,
        base_url: str,
        username: str | None,
        password: str | None,
        timeout: float = 60.0,
        *,
        other_urls: Sequence[str] = (),
    ) -> None:
        self._urls = [url.rstrip("/") for url in (base_url, *other_urls)]
        """``base_url`` first, then other Orthancs sharing its index (its doors)."""
        self._current = 0
        self.username = username  # Orthanc records it as HttpUsername on what we store by REST
        self.password = password  # for the renderer's blocking file reader (file_reader.py)
        # Identity: Orthanc would otherwise gzip every answer on the fly (45 ms for a 512 KB
        # instance file, 1 ms without), for a link that is loopback or a local network.
        headers = {"Accept-Encoding": "identity"}
        if username:
            headers.update(basic_auth_header(username, password or ""))
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout, connect=5),
            # Orthanc 1.10 (Debian 12) closes an idle keep-alive connection after about 0.8 s
            # (measured; KeepAliveTimeout is configurable only from 1.11.3). aiohttp keeps one
            # 15 s by default, so a request sent on a connection Orthanc was closing at that
            # moment failed with "Server disconnected" (a 503 on an upload under load). Reusing a
            # connection only while it has been idle for less than Orthanc's limit closes the race.
            connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=KEEPALIVE_SECONDS),
        )

    @property
    def base_url(self) -> str:
        """The Orthanc requests go to now."""
        return self._urls[self._current]

    @property
    def urls(self) -> tuple[str, ...]:
        """Every door: ``base_url`` as given first, then the others."""
        return tuple(self._urls)

    async def close(self) -> None:
        await self._session.close()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; decode JSON answers, return bytes for anything else.

        With other doors, an Orthanc that does not answer is left for the next; the request is
        sent again there at once when that cannot do anything twice: a GET, or a request that
        never left (no connection) with a body that can be sent again.
        """
        for attempt in range(len(self._urls)):
            door = self._current
            try:
                return await self._request(self._urls[door] + path, method, **kwargs)
            except OrthancUnavailable as exc:
                if len(self._urls) == 1:
                    raise
                self._leave(door, exc)
                if attempt == len(self._urls) - 1 or not _repeatable(method, exc, kwargs):
                    raise
        raise AssertionError("unreachable")

    def _leave(self, door: int, exc: OrthancUnavailable) -> None:
        """Requests go to the next door from now on (once, however many failed at once)."""
        if self._current == door:
            self._current = (door + 1) % len(self._urls)
            log.warning(
                "Orthanc at %s unavailable (%s); turning to %s",
                self._urls[door],
                exc.message,
                self.base_url,
            )

    async def _request(self, url: str, method: str, **kwargs: Any) -> Any:
        try:
            async with self._session.request(method, url, **kwargs) as response:
                body = await response.read()
                content_type = response.headers.get("Content-Type", "")
                data: Any = body
                if "json" in content_type and body:
                    data = await response.json(content_type=None)
                if response.status in (502, 503, 504):
                    raise OrthancUnavailable(response.status, response.reason or "", data)
                if response.status >= 400:
                    message = data.get("Message", "") if isinstance(data, dict) else ""
                    raise OrthancError(response.status, message or (response.reason or ""), data)
                return data
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise OrthancUnavailable(0, f"{type(exc).__name__}: {exc}") from exc

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params or None)

    async def stream(
        self, method: str, path: str, chunk: int = 1 << 16, **kwargs: Any
    ) -> AsyncIterator[bytes]:
        """An answer's body in chunks, as it arrives (a DICOM file passed on to a client
        without holding it whole); errors as :meth:`request` raises them, before the first. An
        Orthanc that does not answer is left for the next door, and, as there, the request is
        sent again there at once when it may be, if nothing was passed on yet."""
        for attempt in range(len(self._urls)):
            door = self._current
            passed_on = False
            chunks = self._stream(self._urls[door] + path, method, chunk, **kwargs)
            try:
                async with contextlib.aclosing(chunks):  # the answer released if we stop early
                    async for data in chunks:
                        passed_on = True
                        yield data
                return
            except OrthancUnavailable as exc:
                if len(self._urls) == 1:
                    raise
                self._leave(door, exc)
                last = attempt == len(self._urls) - 1
                if passed_on or last or not _repeatable(method, exc, kwargs):
                    raise

    async def _stream(
        self, url: str, method: str, chunk: int, **kwargs: Any
    ) -> AsyncIterator[bytes]:
        try:
            async with self._session.request(method, url, **kwargs) as response:
                if response.status >= 400:
                    body = await response.read()
                    kind = (
                        OrthancUnavailable if response.status in (502, 503, 504) else OrthancError
                    )
                    raise kind(response.status, response.reason or "", body)
                async for data in response.content.iter_chunked(chunk):
                    yield data
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise OrthancUnavailable(0, f"{type(exc).__name__}: {exc}") from exc

    async def system(self) -> dict[str, Any]:
        return await self.get("/system")

    async def plugins(self) -> list[str]:
        return await self.get("/plugins")

    async def changes(self, since: int, limit: int = 100) -> ChangesPage:
        raw = await self.get("/changes", since=since, limit=limit)
        return ChangesPage([Change.from_json(c) for c in raw["Changes"]], raw["Done"], raw["Last"])

    async def last_change(self) -> int:
        raw = await self.get("/changes", last="")
        return int(raw["Last"])

    async def study(self, study_id: str) -> dict[str, Any]:
        return await self.get(f"/studies/{study_id}")

    async def study_ids(self) -> list[str]:
        return await self.get("/studies")

    async def study_instances(self, study_id: str) -> list[dict[str, Any]]:
        return await self.get(f"/studies/{study_id}/instances")

    async def study_series(self, study_id: str) -> list[dict[str, Any]]:
        return await self.get(f"/studies/{study_id}/series")

    async def instance_metadata(self, instance_id: str) -> dict[str, str]:
        return await self.get(f"/instances/{instance_id}/metadata", expand="")

    async def instance_tags(self, instance_id: str) -> dict[str, Any]:
        return await self.get(f"/instances/{instance_id}/simplified-tags")

    async def store_instance(self, body: bytes | AsyncIterable[bytes] | Any) -> dict[str, Any]:
        """``POST /instances`` with one Part-10 file (bytes or an open binary file/stream)."""
        return await self.request(
            "POST", "/instances", data=body, headers={"Content-Type": "application/dicom"}
        )

    async def put_modality(self, name: str, body: dict[str, Any]) -> None:
        """Register (or update) a known DICOM modality: its AE title, address and what it may do
        (``body`` as built by :func:`service.intake.modalities.orthanc_modality`).

        Sent to every door: Orthancs sharing an index each keep their modalities apart (a
        property of each server in the index, measured: one registered at the first was unknown
        to the second, even restarted), and each must know a facility's AE title to answer its
        worklist queries and to send its reports."""
        await self.request_every_door("PUT", f"/modalities/{name}", json=body)

    async def request_every_door(self, method: str, path: str, **kwargs: Any) -> None:
        """Send a request to every door; an Orthanc that does not answer is logged and passed
        over (it fails only when none answers)."""
        missed: list[OrthancUnavailable] = []
        for url in self._urls:
            try:
                await self._request(url + path, method, **kwargs)
            except OrthancUnavailable as exc:
                missed.append(exc)
                if len(self._urls) > 1:
                    log.warning("Orthanc at %s missed %s %s (%s)", url, method, path, exc.message)
        if len(missed) == len(self._urls):
            raise missed[0]

    async def modalities(self) -> list[str]:
        return await self.get("/modalities")


def _repeatable(method: str, exc: OrthancUnavailable, kwargs: dict[str, Any]) -> bool:
    """Whether a request that met ``exc`` may be sent again at once to another door."""
    if method in ("GET", "HEAD"):
        return True
    never_sent = isinstance(exc.__cause__, aiohttp.ClientConnectorError)
    body = kwargs.get("data")
    return never_sent and (body is None or isinstance(body, bytes | str))


class AbsentOrthanc(OrthancClient):
    """The client of an app built without an archive (``create_app(..., orthanc=False)``).

    Every request fails with :class:`OrthancUnavailable`, exactly as when Orthanc is down, so
    nothing downstream needs a second code path: routes that need images answer 503, /healthz
    reports the archive missing, delivery waits to retry. It answers nothing an Orthanc would.
    """

    def __init__(self) -> None:
        # A name that cannot resolve (RFC 6761 ``.invalid``): the blocking file reader, which is
        # handed the address, fails too instead of reaching something else.
        super().__init__("http://orthanc.invalid", None, None)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        raise OrthancUnavailable(0, f"no image archive in this app ({method} {path})")

    async def request_every_door(self, method: str, path: str, **kwargs: Any) -> None:
        await self.request(method, path, **kwargs)
