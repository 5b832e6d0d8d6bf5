"""Media types and transfer syntaxes of WADO-RS answers (PS3.18 8.7.3): what to send, given
the client's Accept header and what an instance is stored in.

An instance is sent as ``application/dicom`` in the syntax asked for (``*``: as stored; none
named: Explicit VR Little Endian, PS3.18 8.7.3.5.2), transcoded by Orthanc when it differs. A
frame is sent uncompressed as ``application/octet-stream``, or in its own compressed syntax with
that syntax's media type (``image/jls``, ``image/jpeg``...; Table 8.7.3-5) when the Accept allows
it (``transfer-syntax=*`` or that syntax). Nothing acceptable: None (the route's 406).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
UNCOMPRESSED = (EXPLICIT_LE, IMPLICIT_LE)
ANY = "*"
DICOM = "application/dicom"
OCTETS = "application/octet-stream"

# PS3.18 Table 8.7.3-5: the media type of a frame (or bulk pixel data) in a compressed syntax.
FRAME_MEDIA = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
# Syntaxes Orthanc (DCMTK) writes when asked to transcode an instance.
TRANSCODABLE = frozenset(
    {
        EXPLICIT_LE,
        IMPLICIT_LE,
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.5",
    }
)


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: ``multipart/related; type="..."; transfer-syntax=...``."""

    media: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def part_type(self) -> str | None:
        return self.params.get("type")

    @property
    def syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


_SPLIT = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')


def parse_accept(header: str) -> list[MediaRange]:
    """The media ranges of an Accept header, in order (quality values are not weighed)."""
    ranges = []
    for entry in _SPLIT.split(header or ""):
        media, *params = (p.strip() for p in entry.split(";"))
        if not media:
            continue
        values = {}
        for param in params:
            name, _, value = param.partition("=")
            values[name.strip().lower()] = value.strip().strip('"')
        ranges.append(MediaRange(media.lower(), values))
    return ranges or [MediaRange("*/*")]


def _multipart(ranges: list[MediaRange]) -> list[MediaRange]:
    return [r for r in ranges if r.media in ("multipart/related", "multipart/*", "*/*")]


@dataclass(frozen=True)
class InstanceChoice:
    """How to send instances: in ``syntax`` (``*``: each as stored)."""

    syntax: str


def choose_instance_syntax(ranges: list[MediaRange]) -> InstanceChoice | None:
    """The syntax to send instances in, or None when no range asks for application/dicom in a
    syntax teleread can produce."""
    for entry in _multipart(ranges):
        if entry.part_type not in (None, DICOM, "*/*"):
            continue
        syntax = entry.syntax or EXPLICIT_LE
        if syntax == ANY or syntax in TRANSCODABLE:
            return InstanceChoice(syntax)
    return None


@dataclass(frozen=True)
class FrameChoice:
    """How to send frames: the part's media type and syntax, and whether to decode them."""

    part_type: str
    syntax: str
    decode: bool


def choose_frame_syntax(ranges: list[MediaRange], stored: str) -> FrameChoice | None:
    """The form to send frames stored in ``stored`` in, or None (406)."""
    own_media = FRAME_MEDIA.get(stored)
    for entry in _multipart(ranges):
        part_type, syntax = entry.part_type or OCTETS, entry.syntax
        if part_type == "*/*" and syntax in (None, ANY):  # anything: the frame as stored
            part_type, syntax = own_media or OCTETS, ANY
        if stored in UNCOMPRESSED:
            if part_type == OCTETS and syntax in (None, ANY, EXPLICIT_LE):
                return FrameChoice(OCTETS, EXPLICIT_LE, decode=False)
            continue
        compressed_ok = (part_type == own_media and syntax in (None, ANY, stored)) or (
            part_type == OCTETS and syntax in (ANY, stored)
        )
        if own_media and compressed_ok:
            return FrameChoice(own_media, stored, decode=False)
        if part_type == OCTETS and syntax in (None, EXPLICIT_LE):
            return FrameChoice(OCTETS, EXPLICIT_LE, decode=True)
    return None
