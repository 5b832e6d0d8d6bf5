"""A key image as the reader saw it: one frame through the viewer's pipeline, placed as in the
viewport and with the measurements drawn (issue 19, 图文报告).

The order is the viewer's: the VOI window of ``render.display`` (the same lookup table the
browser's windowing matches bit for bit, tests/test_browser_viewer_pixels.py), the reader's
inversion (which, like MONOCHROME1, swaps the window's ends), the DICOM overlays when shown,
then the viewport's geometry (centre, pan, flip, rotation, zoom: ``viewer/static/viewport.js``
``matrix()``), then the measurements in image coordinates drawn over the result with Pillow,
then PNG (lossless). The figure has the
viewport's aspect ratio scaled to ``long_side`` pixels, so a small embedded viewer and a wide
reading-room screen give figures of the same size.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .frames import Frame
from .render import display
from .window import Window

LONG_SIDE = 1024
MEASURE_COLOUR = (79, 195, 247)  # viewport.js: "#4fc3f7"
MEASUREMENT_TYPES = ("length", "angle", "roi")


@dataclass(frozen=True)
class Measurement:
    """A finished measurement: ``points`` in image coordinates (pixel units, origin at the
    top-left corner of the first pixel), and the text the viewer labelled it with."""

    type: str
    points: tuple[tuple[float, float], ...]
    text: str = ""


@dataclass(frozen=True)
class KeyImageView:
    """What the viewport showed. ``scale``: display pixels per image pixel, None for "fit";
    ``pan`` and ``viewport`` in the same display pixels."""

    viewport: tuple[float, float]
    window: Window | None = None
    invert: bool = False
    rotation: int = 0
    flip_h: bool = False
    flip_v: bool = False
    scale: float | None = None
    pan: tuple[float, float] = (0.0, 0.0)
    measurements: tuple[Measurement, ...] = ()
    overlays: bool = False  # the frame's DICOM overlays (60xx) burnt in white, as shown


def _size(view: KeyImageView, long_side: int) -> tuple[int, int, float]:
    width, height = view.viewport
    factor = long_side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor)), factor


def view_scale(frame: Frame, view: KeyImageView) -> float:
    """Display pixels per image pixel as the viewport showed it (viewport.js ``scale()``)."""
    if view.scale is not None:
        return view.scale
    turned = (frame.rows, frame.columns) if view.rotation % 2 else (frame.columns, frame.rows)
    return min(view.viewport[0] / turned[0], view.viewport[1] / turned[1])


def image_to_figure(frame: Frame, view: KeyImageView, long_side: int = LONG_SIDE) -> np.ndarray:
    """The 3x3 matrix from image to figure coordinates (viewport.js ``matrix()``, scaled)."""
    out_w, out_h, factor = _size(view, long_side)
    rows, columns = frame.rows, frame.columns
    s = view_scale(frame, view) * factor
    angle = math.radians(90 * (view.rotation % 4))
    cos, sin = round(math.cos(angle)), round(math.sin(angle))
    centre_x, centre_y = out_w / 2 + view.pan[0] * factor, out_h / 2 + view.pan[1] * factor
    translate = np.array([[1, 0, centre_x], [0, 1, centre_y], [0, 0, 1]], dtype=float)
    flip = np.diag([-1.0 if view.flip_h else 1.0, -1.0 if view.flip_v else 1.0, 1.0])
    rotate = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], dtype=float)
    zoom = np.diag([s, s, 1.0])
    centre = np.array([[1, 0, -columns / 2], [0, 1, -rows / 2], [0, 0, 1]], dtype=float)
    return translate @ flip @ rotate @ zoom @ centre


def _windowed(frame: Frame, view: KeyImageView) -> np.ndarray:
    if frame.colour:
        pixels = frame.pixels
        return np.subtract(255, pixels, dtype=np.uint8) if view.invert else pixels
    # viewport.js / windowing.js: the reader's invert and MONOCHROME1 each swap the ends.
    shown = replace(frame, inverse=frame.inverse != view.invert, levels=[])
    out = display(shown, view.window)  # a new array: burning in is safe
    if view.overlays and frame.overlay is not None:
        out[frame.overlay] = 255  # render.render_array's overlays=true, viewport.js burnIn
    return out


def figure_pixels(
    frame: Frame, view: KeyImageView, font: Path | None = None, long_side: int = LONG_SIDE
) -> np.ndarray:
    """The figure as RGB ``uint8`` (rows, columns, 3)."""
    out_w, out_h, _ = _size(view, long_side)
    matrix = image_to_figure(frame, view, long_side)
    inverse = np.linalg.inv(matrix)
    source = Image.fromarray(_windowed(frame, view)).convert("RGB")
    # viewport.js smooths below 4 display pixels per image pixel and shows blocks from there on.
    smooth = view_scale(frame, view) < 4
    method = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    placed = source.transform(
        (out_w, out_h),
        Image.Transform.AFFINE,
        tuple(inverse[:2].ravel()),
        resample=method,
        fillcolor=(0, 0, 0),
    )
    _draw_measurements(placed, matrix, view.measurements, font, long_side)
    return np.asarray(placed)


def _draw_measurements(
    image: Image.Image,
    matrix: np.ndarray,
    measurements: tuple[Measurement, ...],
    font_path: Path | None,
    long_side: int,
) -> None:
    if not measurements:
        return
    draw = ImageDraw.Draw(image)
    line = max(2, round(long_side / 400))
    size = max(12, round(long_side / 48))
    font = _font(font_path, size)
    for m in measurements:
        points = [tuple((matrix @ np.array([x, y, 1.0]))[:2]) for x, y in m.points]
        if m.type == "roi" and len(points) == 2:
            (ax, ay), (bx, by) = points
            box = (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))
            draw.ellipse(box, outline=MEASURE_COLOUR, width=line)
        else:
            draw.line(points, fill=MEASURE_COLOUR, width=line, joint="curve")
        if m.text:
            last = points[-1]
            left, top, right, bottom = draw.textbbox((0, 0), m.text, font=font)
            x = max(4, min(last[0] + 6, image.width - (right - left) - 4))
            y = max(4, min(last[1] - 6 - (bottom - top), image.height - (bottom - top) - 4))
            draw.text(
                (x, y),
                m.text,
                font=font,
                fill=MEASURE_COLOUR,
                stroke_width=max(1, line // 2 + 1),
                stroke_fill=(0, 0, 0),
            )


def _font(path: Path | None, size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    if path is not None and path.exists():
        return ImageFont.truetype(str(path), size, index=0)
    return ImageFont.load_default(size)


def figure_png(
    frame: Frame, view: KeyImageView, font: Path | None = None, long_side: int = LONG_SIDE
) -> bytes:
    """The figure as PNG: lossless, so the PDF and the portal show the very pixels."""
    buffer = io.BytesIO()
    Image.fromarray(figure_pixels(frame, view, font, long_side)).save(buffer, "PNG", optimize=False)
    return buffer.getvalue()
