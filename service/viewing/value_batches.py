"""Several frames' modality values in one body, for the viewer page to take in at once.

The page used to ask for each greyscale frame on its own (the per-frame ``values`` route): a
150-slice CT was 150 answers, and Chromium's work per answer (on the page's main thread, where it
took about 1.5 s of a series' load, docs/viewer.md) showed in the whole-series time. A batch is
one answer for up to ``MOST_FRAMES`` frames of a series, taken in by a Web Worker and split into
typed-array views of the one buffer, without copying (viewer/static/frame_worker.js).

The body (little-endian throughout)::

    uint32 H | H bytes of JSON index, space-padded | frame values ... (each at a multiple of 8)

The index is ``{"frames": [...]}`` with one entry per frame asked for, in the order asked: either
``{"instance", "frame", "dtype", "rows", "columns", "photometric", "offset", "length"}`` (offset
in bytes from the end of the index, 4 + H, which is a multiple of 8; the values are those the
per-frame route answers),
or ``{"instance", "frame", "status", "error"}`` for a frame without values (409
``colour_image``, 422 ``undecodable_image``), so one such frame does not cost the others theirs.
Eight-byte alignment lets the page view any dtype in place.

With ``packing="delta8"`` (the page asks for it; other clients get the values as they are), each
``int16`` frame's entry also says ``"packing": "delta8"`` and its ``length`` bytes are
``delta8(values)``: each value's difference from the one before (from 0 for the first),
modulo 2**16, as one signed byte when it is within -127..127, else the byte 0x80 and the value
itself in two bytes, little-endian. CT values change little from pixel to pixel, so a 512x512
CT frame takes about half its bytes, and zstd then packs it better than the raw values: 79 MB of
a 150-slice CT become 40 MB handed to the page and 28 MB on the wire, where zstd alone leaves
41 MB on the wire and hands over all 79 (docs/viewer.md, round 5). The page's worker rebuilds
the values (viewer/static/batches.js, ``unpackBatch``). ``float32`` frames stay as they are.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

MOST_FRAMES = 32
"""At most this many frames per request: a bounded body (16 MB of 512x512 int16) and work."""

ALIGN = 8
PACKINGS = ("delta8",)
"""The packings a client may ask for (module docstring)."""
ESCAPE = 0x80
_FRAME = re.compile(r"^(?P<uid>[0-9.]{1,64}):(?P<n>[0-9]{1,9})$")


class BadFrameList(ValueError):
    """The ``frames`` query is not a list of ``instance:frame`` pairs within the bounds."""


@dataclass(frozen=True)
class FrameRequest:
    """One frame asked for: its instance's SOP Instance UID and its 1-based frame number."""

    instance: str
    frame: int


@dataclass(frozen=True)
class FrameValues:
    """What one frame of a batch holds: values and how to read them, or why there are none."""

    request: FrameRequest
    data: bytes = b""
    dtype: str = ""
    rows: int = 0
    columns: int = 0
    photometric: str = ""
    status: int = 200
    error: str = ""


def parse_frames(text: str) -> list[FrameRequest]:
    """``uid:n,uid:n,...`` (1 to ``MOST_FRAMES`` distinct pairs) as frame requests, in order."""
    parts = [p for p in text.split(",") if p]
    if not 1 <= len(parts) <= MOST_FRAMES:
        raise BadFrameList(f"frames must list 1 to {MOST_FRAMES} instance:frame pairs")
    frames = []
    for part in parts:
        match = _FRAME.match(part)
        if match is None or int(match["n"]) < 1:
            raise BadFrameList(f"not an instance UID and a frame number from 1: {part[:80]!r}")
        frames.append(FrameRequest(match["uid"], int(match["n"])))
    if len(set(frames)) != len(frames):
        raise BadFrameList("a frame is listed twice")
    return frames


def delta8(data: bytes) -> bytes:
    """``data`` (little-endian int16 values) as the ``delta8`` packing of the module docstring.

    Vectorised: the differences in int16 (wrapping as the decoder's do), then the escaped ones
    placed at their output positions (each escape before position i adds two bytes): about
    0.85 ms of CPU a 512x512 CT frame.
    """
    values = np.frombuffer(data, dtype="<i2")
    if values.size == 0:
        return b""
    deltas = np.empty_like(values)
    deltas[0] = values[0]
    np.subtract(values[1:], values[:-1], out=deltas[1:])
    escaped = (deltas.view(np.uint16) + np.uint16(127)) > np.uint16(254)  # outside -127..127
    where = np.flatnonzero(escaped)
    if where.size == 0:
        return deltas.astype(np.int8).tobytes()
    starts = where + 2 * np.arange(where.size)
    out = np.empty(values.size + 2 * where.size, dtype=np.uint8)
    small = np.ones(out.size, dtype=bool)
    small[starts] = small[starts + 1] = small[starts + 2] = False
    out[small] = deltas[~escaped].astype(np.int8).view(np.uint8)
    out[starts] = ESCAPE
    both = values[where].astype("<i2").view(np.uint8).reshape(-1, 2)
    out[starts + 1], out[starts + 2] = both[:, 0], both[:, 1]
    return out.tobytes()


def _padding(length: int) -> int:
    return -length % ALIGN


def pack(frames: list[FrameValues], packing: str | None = None) -> bytes:
    """The batch body of ``frames`` (module docstring): the index, then each frame's values,
    ``int16`` ones packed as ``packing`` says (None: as they are)."""
    entries: list[dict[str, Any]] = []
    parts: list[bytes] = []
    offset = 0
    for f in frames:
        entry: dict[str, Any] = {"instance": f.request.instance, "frame": f.request.frame}
        if f.error:
            entry |= {"status": f.status, "error": f.error}
        else:
            data = f.data
            entry |= {
                "dtype": f.dtype,
                "rows": f.rows,
                "columns": f.columns,
                "photometric": f.photometric,
            }
            if packing == "delta8" and f.dtype == "int16":
                data = delta8(data)
                entry["packing"] = packing
            entry |= {"offset": offset, "length": len(data)}
            parts += [data, b"\0" * _padding(len(data))]
            offset += len(data) + _padding(len(data))
        entries.append(entry)
    header = json.dumps({"frames": entries}, separators=(",", ":")).encode()
    header += b" " * _padding(4 + len(header))
    return b"".join([struct.pack("<I", len(header)), header, *parts])
