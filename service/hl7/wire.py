"""Bytes on the wire to text and back, by the character set MSH-18 names (HL7 table 0211).

A message is decoded *before* it is parsed: GB 18030 and UTF-8 bytes of Chinese names are not
text until the character set is known, and the answer goes back in the sender's character set.
MSH-18 is read from the MSH segment's bytes (its fields before MSH-18 are codes and times,
ASCII in practice); an empty MSH-18 is read as UTF-8, which ASCII (the standard's default) is a
subset of.
"""

from __future__ import annotations

from dataclasses import dataclass

from .acks import Refusal

#: MSH-18 values (HL7 table 0211, and the spellings HIS vendors use) -> Python codec.
CHARSETS = {
    "": "utf-8",
    "ASCII": "utf-8",
    "UNICODEUTF8": "utf-8",
    "UTF8": "utf-8",
    "GB18030": "gb18030",
    "88591": "latin-1",
}


@dataclass(frozen=True)
class Decoded:
    """A message as text, with the codec it came in and MSH-18 as sent (echoed in the ACK)."""

    text: str
    codec: str
    charset: str


def declared_charset(raw: bytes) -> str:
    """MSH-18 as sent ('' when absent): the MSH segment's bytes split on its own field and
    component separators (MSH-1, MSH-2)."""
    segment = raw.split(b"\r", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    if len(segment) < 5:
        return ""
    fields = segment.split(segment[3])  # fields[n] is MSH-(n+1): MSH-1 is the separator
    return fields[17].split(segment[4])[0] if len(fields) > 17 else ""


def codec_for(charset: str) -> str | None:
    """The Python codec of an MSH-18 value, None if teleread does not read it."""
    key = "".join(ch for ch in charset.upper() if ch.isalnum())
    return CHARSETS.get(key)


def decode(raw: bytes) -> Decoded:
    """The message's text; a :class:`Refusal` (AR) when it is not an HL7 message in a
    character set teleread reads."""
    if not raw.startswith(b"MSH") or len(raw) < 8:
        raise Refusal("AR", "100", "the message does not begin with an MSH segment", "MSH")
    charset = declared_charset(raw).strip()
    codec = codec_for(charset)
    if codec is None:
        raise Refusal(
            "AR",
            "103",
            f"unsupported character set {charset!r} in MSH-18: send UNICODE UTF-8 or GB 18030",
            "MSH^1^18",
        )
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise Refusal(
            "AR",
            "102",
            f"the message is not valid {charset or 'UTF-8'} text (byte {exc.start})",
            "MSH^1^18",
        ) from exc
    return Decoded(text, codec, charset)


def encode(text: str, codec: str) -> bytes:
    """An answer in the sender's character set (what it cannot hold becomes '?')."""
    return text.encode(codec, "replace")
