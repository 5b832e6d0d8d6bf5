"""Outbound notifications through pluggable notifiers: in-app always, a signed webhook optionally.

A :class:`Notice` says what happened to which consultation and whom it concerns. It never
carries a patient's name or id: webhook gateways (SMS, instant messaging) are outside the trust
boundary, so the payload holds the consultation id, priority, facility name, queue, deadline and
a link path; the reader opens the link and logs in to see the patient. See docs/notifications.md.

Publishers call :meth:`Notifications.send`, which writes the in-app rows and hands webhook
delivery to a background task, so no publisher ever waits for a gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from ..clock import to_iso, utc_now
from ..storage import Database
from ..storage import notifications as store

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Teleread-Signature"
TIMESTAMP_HEADER = "X-Teleread-Timestamp"


@dataclass(frozen=True)
class Notice:
    """One thing to tell some users about one consultation (no patient data)."""

    kind: str
    user_ids: tuple[int, ...]
    title: str
    consultation_id: int | None = None
    body: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    """Priority, facility, queue, due_at, reason: what a gateway may forward."""
    message: str = ""
    """Code of the in-app text (service/worklist/notice_text.py), rendered in each reader's
    language; ``title`` and ``body`` stay the English text a gateway forwards."""
    params: dict[str, Any] = field(default_factory=dict)
    """Values of the message (no patient data: the patient is named when it is shown)."""

    def payload(self, sent_at: str) -> dict[str, Any]:
        link = f"/consultations/{self.consultation_id}" if self.consultation_id else None
        return {
            "event": self.kind,
            "consultation_id": self.consultation_id,
            "recipients": list(self.user_ids),
            "title": self.title,
            "link": link,
            "sent_at": sent_at,
            **self.facts,
        }


class Notifier(Protocol):
    """A channel notices go out through; ``deliver`` must not wait on slow outside systems."""

    async def deliver(self, notice: Notice) -> None: ...

    async def close(self) -> None: ...


class InAppNotifier:
    """Rows in ``notifications``, shown to each recipient (GET /api/notifications)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def deliver(self, notice: Notice) -> None:
        now = to_iso(utc_now())
        rows = [
            {
                "user_id": user_id,
                "kind": notice.kind,
                "consultation_id": notice.consultation_id,
                "title": notice.title,
                "body": notice.body,
                "created_at": now,
                "message": notice.message,
                "params": notice.params,
            }
            for user_id in dict.fromkeys(notice.user_ids)
        ]
        if rows:
            await self.database.write(store.add_notifications, rows)

    async def close(self) -> None:
        return None


def sign(body: bytes, secret: str) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """A JSON POST per notice to a gateway, signed, retried with exponential backoff.

    Retries on connection errors, timeouts and 5xx; a 4xx is the gateway refusing the message
    and is logged, not retried. Deliveries run as background tasks.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 10.0,
    ) -> None:
        self.url, self.secret = url, secret
        self.attempts, self.backoff = attempts, backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[bool]] = set()

    async def deliver(self, notice: Notice) -> None:
        task = asyncio.get_running_loop().create_task(self.post(notice.payload(to_iso(utc_now()))))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def post(self, payload: dict[str, Any]) -> bool:
        """Send one payload; True when the gateway accepted it (2xx)."""
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self.secret),
            TIMESTAMP_HEADER: payload.get("sent_at") or to_iso(utc_now()),
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._session.post(self.url, data=body, headers=headers) as response:
                    if response.status < 300:
                        return True
                    if response.status < 500:
                        log.warning("webhook refused a notification: HTTP %s", response.status)
                        return False
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        log.warning("webhook delivery failed after %s attempts: %s", self.attempts, problem)
        return False

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for deliveries under way (tests, shutdown)."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)

    async def close(self) -> None:
        await self.drain(timeout=2.0)
        for task in list(self._pending):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()


class Notifications:
    """Every configured notifier; a failing channel never stops the others or the caller."""

    def __init__(self, notifiers: list[Notifier]) -> None:
        self.notifiers = notifiers

    async def send(self, notice: Notice) -> None:
        if not notice.user_ids:
            return
        for notifier in self.notifiers:
            try:
                await notifier.deliver(notice)
            except Exception:
                log.exception("notifier %s failed", type(notifier).__name__)

    async def close(self) -> None:
        for notifier in self.notifiers:
            with contextlib.suppress(Exception):
                await notifier.close()


def notice_facts(row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What a notice may say about a consultation row: never the patient's name or id."""
    return {
        "priority": row.get("priority"),
        "facility": row.get("facility_name"),
        "queue": row.get("queue"),
        "modality": row.get("modality"),
        "due_at": row.get("due_at"),
        **extra,
    }
