"""VOI windows: parsing the request's ``window`` and the three VOI LUT functions of PS3.3.

All functions map modality values to display values ``0..255`` and truncate (never round) the
result, as dcmtk does: that choice is what makes our PNGs equal dcmtk's ``dcm2pnm`` pixel for pixel
(tests/test_dcmtk_parity.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
OUT_MAX = 255.0


@dataclass(frozen=True)
class Window:
    """A VOI window: Window Center (0028,1050), Window Width (0028,1051) and VOI LUT Function
    (0028,1056), PS3.3 C.11.2.1.2."""

    center: float
    width: float
    function: str = "LINEAR"

    def __post_init__(self) -> None:
        if self.function not in FUNCTIONS:
            raise ValueError(f"unknown VOI LUT function {self.function!r}; use one of {FUNCTIONS}")
        if self.function == "LINEAR" and self.width < 1:
            raise ValueError("a LINEAR window must be at least 1 wide (PS3.3 C.11.2.1.2.1)")
        if self.width <= 0:
            raise ValueError("the window width must be more than 0")


def parse_window(text: str) -> Window:
    """``"C,W"`` or ``"C,W,FUNCTION"`` (the DICOMweb rendered ``window`` parameter, PS3.18
    8.3.5.1.3) as a :class:`Window`; ValueError says what is wrong."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError("expected centre,width[,function]")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise ValueError("centre and width must be numbers") from exc
    if not (np.isfinite(center) and np.isfinite(width)):
        raise ValueError("centre and width must be finite")
    function = parts[2].upper() if len(parts) == 3 else "LINEAR"
    return Window(center, width, function)


def apply_window(values: np.ndarray, window: Window, inverse: bool = False) -> np.ndarray:
    """Display values ``0..255`` (uint8) of modality ``values`` through ``window``.

    Parameters
    ----------
    values : numpy.ndarray
        Modality values (any shape; computed in float64).
    window : Window
        The VOI window and its function.
    inverse : bool
        Map the window's low end to white (MONOCHROME1, PS3.3 C.7.6.3.1.2, or an INVERSE
        Presentation LUT Shape, C.11.6.1).

    Returns
    -------
    numpy.ndarray
        ``uint8`` of the same shape.

    Notes
    -----
    PS3.3 C.11.2.1.2.1 (LINEAR): below ``c - 0.5 - (w-1)/2`` the minimum, above
    ``c - 0.5 + (w-1)/2`` the maximum, else ``((x - (c - 0.5)) / (w-1) + 0.5) * 255``, evaluated
    as dcmtk does (``offset + x * gradient``, truncated) so that the results agree to the bit.
    C.11.2.1.3.2 (LINEAR_EXACT): ``((x - c) / w + 0.5) * 255`` clipped at ``c ± w/2``.
    C.11.2.1.3.1 (SIGMOID): ``255 / (1 + exp(-4 (x - c) / w))``.
    """
    x = np.asarray(values, dtype=np.float64)
    low, high = (OUT_MAX, 0.0) if inverse else (0.0, OUT_MAX)
    span = high - low
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        with np.errstate(over="ignore"):  # exp overflows to inf far below c: y is then low
            y = low + span / (1.0 + np.exp(-4.0 * (x - c) / w))
        return np.clip(y, 0.0, OUT_MAX).astype(np.uint8)
    if window.function == "LINEAR_EXACT":
        y = low + ((x - c) / w + 0.5) * span
        y = np.where(x <= c - w / 2, low, np.where(x > c + w / 2, high, y))
        return np.clip(y, 0.0, OUT_MAX).astype(np.uint8)
    w1 = w - 1
    left, right = c - 0.5 - w1 / 2, c - 0.5 + w1 / 2
    if w1 == 0:
        ramp = np.full_like(x, high)
    else:
        offset = high - ((c - 0.5) / w1 + 0.5) * span
        ramp = offset + x * (span / w1)
    y = np.where(x <= left, low, np.where(x > right, high, ramp))
    return np.clip(y, 0.0, OUT_MAX).astype(np.uint8)


def apply_voi_lut(values: np.ndarray, first: int, table: np.ndarray, bits: int) -> np.ndarray:
    """A VOI LUT Sequence (0028,3010) table (PS3.3 C.11.2.1.1) scaled to ``0..255``.

    Values before ``first`` take the first entry, values past the end the last one.
    """
    index = np.clip(np.floor(values).astype(np.int64) - first, 0, len(table) - 1)
    top = float(2**bits - 1) if bits else float(max(1, int(table.max())))
    return np.clip(table[index].astype(np.float64) * (OUT_MAX / top), 0, OUT_MAX).astype(np.uint8)
