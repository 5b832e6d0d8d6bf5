"""DICOM rendering for the specialists' viewer: decode one frame, apply the Modality LUT, the VOI
window and polarity, encode JPEG/PNG/WebP (pure functions; no I/O beyond the bytes given)."""

from .frames import DECODERS, Frame, UndecodableFrame, decode_frame
from .render import (
    RenderOptions,
    default_window,
    display,
    encode,
    modality_values,
    render,
    render_array,
)
from .window import Window, apply_window, parse_window

__all__ = [
    "DECODERS",
    "Frame",
    "RenderOptions",
    "UndecodableFrame",
    "Window",
    "apply_window",
    "decode_frame",
    "default_window",
    "display",
    "encode",
    "modality_values",
    "parse_window",
    "render",
    "render_array",
]
