"""Compression of large binary answers (modality values), chosen by the client's Accept-Encoding.

Three codings, best first: zstd, gzip, identity. The client's ``Accept-Encoding`` (RFC 9110
12.5.3) picks among them by its q-values; on equal q, zstd before gzip before identity. Every
answer says ``Vary: Accept-Encoding``, so no cache hands one client's coding to another.

*zstd* (RFC 8878) because the browser inflating gzip was the viewer's largest remaining cost
(docs/viewer.md, "Speed in the browser", round 5): a 150-slice 512x512 CT is 79 MB of values, and
Chromium's network service inflates every byte of it on the same two cores as everything else.
zstd decodes the same frames several times faster than inflate at a similar ratio, and
compresses them at least as fast as ISA-L's deflate. Chromium (123 and later) advertises it over
HTTPS and to localhost; it has no ``DecompressionStream("zstd")``, so it must be a
Content-Encoding. ``ZSTD_LEVEL`` 1 measured best (round 5). Its window (512 KiB) stays far under
the 8 MiB that browsers may refuse to exceed when decoding HTTP content (RFC 9659), whatever the
size of the body (a 3000x3000 CR is 18 MB).

*gzip* for the clients that do not take zstd, at level 1 (aiohttp's ``enable_compression``
deflates at level 6: about 32 ms of CPU a 512x512 CT frame for 2.15:1, where level 1 takes
about 4.4 ms for 2.12:1). The deflate is ISA-L's (the ``isal`` package, Intel's hand-vectorised
deflate), which writes the same gzip format any client inflates: 1.55 ms a 512x512 CT frame for
2.08:1, against zlib level 1's 5.1 ms for 2.14:1. Where ``isal`` has no wheel, zlib level 1.

Both compress on a thread (each releases the GIL).
"""

from __future__ import annotations

import asyncio
import threading
import zlib

import zstandard
from aiohttp import web

try:
    from isal import isal_zlib as deflate
except ImportError:  # pragma: no cover - a platform without an isal wheel
    deflate = zlib  # type: ignore[assignment]

LEVEL = 1
"""gzip's level."""
ZSTD_LEVEL = 1
SMALLEST = 1024  # below this, the coding's header and a thread hop cost more than they save
PREFERENCE = ("zstd", "gzip", "identity")
"""The codings this module writes, best first: the order that breaks a tie of q-values."""

_IMPLICIT = 0.0001  # below the smallest weight a header can give (0.001)
_local = threading.local()


def accepted(header: str) -> dict[str, float]:
    """Each coding of an Accept-Encoding value, lower-cased, with its q-value (1 if none given;
    0 if it is not a number from 0 to 1, so a malformed weight never turns a coding on)."""
    weights: dict[str, float] = {}
    for part in header.split(","):
        name, *params = (p.strip() for p in part.split(";"))
        if not name:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        weights[name.lower()] = q
    return weights


def coding_for(header: str | None) -> str:
    """The coding to answer with: the one of ``PREFERENCE`` the header weighs highest.

    A coding not named takes ``*``'s weight; identity, when neither it nor ``*`` is named, is
    acceptable but chosen only when nothing else is. No header (or an empty one), or every
    coding refused: identity.
    """
    weights = accepted(header or "")
    star = weights.get("*", 0.0)
    q = {coding: weights.get(coding, star) for coding in PREFERENCE}
    if "identity" not in weights and "*" not in weights:
        q["identity"] = _IMPLICIT
    best = max(PREFERENCE, key=lambda coding: (q[coding], -PREFERENCE.index(coding)))
    return best if q[best] > 0 else "identity"


def accepts_gzip(request: web.Request) -> bool:
    """Whether Accept-Encoding lists gzip (or ``*``) without ``q=0``."""
    weights = accepted(request.headers.get("Accept-Encoding", ""))
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def gzip_fast(body: bytes) -> bytes:
    compressor = deflate.compressobj(LEVEL, deflate.DEFLATED, 16 + deflate.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


def zstd_fast(body: bytes) -> bytes:
    """One zstd frame (RFC 8878) of ``body``, its size in the header, at ``ZSTD_LEVEL``; one
    compressor per thread (a zstandard compressor is not safe to share between threads)."""
    compressor = getattr(_local, "zstd", None)
    if compressor is None:
        compressor = _local.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return compressor.compress(body)


ENCODERS = {"zstd": zstd_fast, "gzip": gzip_fast}


async def compressed(request: web.Request, body: bytes) -> tuple[bytes, dict[str, str]]:
    """``body`` in the coding the client prefers (``coding_for``), with the headers that say so."""
    headers = {"Vary": "Accept-Encoding"}
    coding = coding_for(request.headers.get("Accept-Encoding"))
    if len(body) < SMALLEST or coding == "identity":
        return body, headers
    data = await asyncio.to_thread(ENCODERS[coding], body)
    return data, {**headers, "Content-Encoding": coding}
