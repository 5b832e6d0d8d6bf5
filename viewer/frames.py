"""Decoding one frame of a DICOM object into what the renderer needs, and nothing more.

Only the requested frame is decoded (``pydicom.pixels.pixel_array(..., index=i)``), so the frame
of a 300-frame object costs one frame. The decoder is pinned per transfer syntax (``DECODERS``):
the plugin that both decodes what dcmtk decodes, value for value, and is the fastest here
(docs/viewer.md, "Decoders"). Uncompressed little-endian greyscale frames are read straight
from the Pixel Data instead (``_native_frame``, the same values as pydicom's; checked in
tests/test_native_decode.py): pydicom's per-call option handling cost a third of a CT slice's
decode.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, get_decoder, pixel_array
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from . import jpeg12
from .quick_read import quick_dataset
from .window import Window

# Transfer syntax -> pydicom decoding plugin. Native (uncompressed) syntaxes use pydicom itself
# where _native_frame does not read them.
DECODERS: dict[str, str] = {  # measured in tests/test_dcmtk_parity.py and bench/decoders.py
    JPEGBaseline8Bit: "pylibjpeg",  # same samples as GDCM and Pillow, as fast
    JPEGExtended12Bit: "pylibjpeg",  # 12-bit: Pillow cannot, libjpeg can
    JPEGLossless: "pylibjpeg",
    JPEGLosslessSV1: "pylibjpeg",
    JPEGLSLossless: "pyjpegls",  # CharLS, as dcmtk's dcml2pnm; 3x pylibjpeg's speed
    JPEGLSNearLossless: "pyjpegls",
    JPEG2000Lossless: "pylibjpeg",  # OpenJPEG; GDCM and Pillow agree, neither faster
    JPEG2000: "pylibjpeg",
    RLELossless: "pylibjpeg",  # pylibjpeg-rle (Rust), 3-4x pydicom's own RLE decoder
}
# Tried when the pinned decoder fails: GDCM decodes 12-bit JPEG that libjpeg 9 refuses (jpeg12).
FALLBACKS: dict[str, str] = {JPEGExtended12Bit: jpeg12.LABEL}
# A frame larger than this is refused before anything is allocated for it: 2^28 samples is a
# 16384² frame, far above any modality's (a 43x43 cm DR plate at 0.1 mm is 4300²).
MAX_FRAME_SAMPLES = 1 << 28
# Native syntaxes whose frames ``_native_frame`` reads itself, and what it reads of them.
NATIVE_LITTLE_ENDIAN = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
NATIVE_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR")
# Samples per Pixel, Rows, Columns, Bits Allocated, Bits Stored, Pixel Representation (all US)
NATIVE_MODULE = (0x00280002, 0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280103)
FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA = 0x7FE00008, 0x7FE00009
PIXEL_DATA, NUMBER_OF_FRAMES, PHOTOMETRIC = 0x7FE00010, 0x00280008, 0x00280004
SAMPLES, ROWS, COLUMNS, BITS_ALLOCATED = 0x00280002, 0x00280010, 0x00280011, 0x00280100
WINDOW_CENTER, WINDOW_WIDTH, VOI_LUT_FUNCTION = 0x00281050, 0x00281051, 0x00281056
RESCALE_INTERCEPT, RESCALE_SLOPE = 0x00281052, 0x00281053
MODALITY_LUT_SEQUENCE, VOI_LUT_SEQUENCE = 0x00283000, 0x00283010
PRESENTATION_LUT_SHAPE = 0x20500020
SHARED_GROUPS, PER_FRAME_GROUPS = 0x52009229, 0x52009230
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT")


def is_colour(photometric: str) -> bool:
    """Whether a Photometric Interpretation (0028,0004) is colour (C.7.6.3.1.2): shown as RGB,
    with no modality values to window. PALETTE COLOR counts (its tables make it RGB)."""
    value = photometric.strip().upper()
    return value in COLOUR or value == "PALETTE COLOR"


def _register_plugins() -> None:
    decoder = get_decoder(JPEGExtended12Bit)
    try:
        decoder.add_plugin(jpeg12.LABEL, ("viewer.jpeg12", "decode_frame"))
    except ValueError:  # registered already (a module reloaded)
        pass


_register_plugins()


class UndecodableFrame(ValueError):
    """The object's pixels cannot be decoded into a frame; the message says why (shown to the
    reader as the 422's detail, so it names the DICOM attribute or the decoder's complaint)."""


PYRAMID_FROM = 2048  # frames larger than this also keep reduced copies for small viewports


@dataclass(eq=False)
class Frame:
    """One decoded frame and the attributes that turn it into display values.

    ``pixels`` holds stored values (PS3.3 C.7.6.3.1) for greyscale, RGB ``uint8`` for colour.
    ``levels`` are reduced copies of large greyscale frames (``pyramid``), largest first.
    """

    pixels: np.ndarray
    slope: float = 1.0
    intercept: float = 0.0
    modality_lut: tuple[int, np.ndarray] | None = None
    windows: tuple[Window, ...] = ()
    voi_lut: tuple[int, np.ndarray, int] | None = None
    inverse: bool = False
    overlay: np.ndarray | None = None
    levels: list[np.ndarray] = field(default_factory=list)
    full_range: Window | None = None

    @property
    def colour(self) -> bool:
        return self.pixels.ndim == 3

    @property
    def nbytes(self) -> int:
        extra = sum(level.nbytes for level in self.levels)
        return self.pixels.nbytes + extra + (0 if self.overlay is None else self.overlay.nbytes)

    @property
    def rows(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def columns(self) -> int:
        return int(self.pixels.shape[1])


def decode_frame(data: bytes, index: int) -> Frame:
    """Decode frame ``index`` (0-based) of the Part-10 file ``data``.

    Parameters
    ----------
    data : bytes
        A DICOM Part-10 file.
    index : int
        0-based frame number (PS3.3 C.7.6.6 Multi-frame: Number of Frames (0028,0008)).

    Returns
    -------
    Frame
        Stored values and the Modality LUT (C.11.1), VOI (C.11.2), Presentation LUT Shape
        (C.11.6) and overlay (C.9.2) attributes that apply to this frame.
    """
    frame = _quick_native(data, index)
    return frame if frame is not None else _decode_file(data, index)


def _decode_file(data: bytes, index: int) -> Frame:
    """:func:`decode_frame` through ``pydicom.dcmread`` of the whole file."""
    # Read whole: the pixel data element is one slice of ``data`` (frames are decoded from it on
    # demand), and reading once is faster than a header pass plus a second pass for the pixels.
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        syntax = str(ds.file_meta.TransferSyntaxUID)
        frames = int(ds.get("NumberOfFrames") or 1)
    except Exception as exc:  # anything pydicom raises on a damaged header
        raise UndecodableFrame(f"unreadable DICOM header ({_reason(exc)})") from exc
    if not 0 <= index < frames:
        raise IndexError(f"frame {index + 1} of {frames}")
    _check_frame_size(ds)
    photometric = _raw_code(ds, PHOTOMETRIC)
    if photometric is None:
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    photometric = photometric.strip().upper()
    try:
        return _decode(ds, syntax, index, frames, photometric)
    except UndecodableFrame:
        raise
    except MemoryError as exc:
        raise UndecodableFrame("the frame is too large to decode") from exc
    except Exception as exc:  # whatever a decoder or a LUT of a broken object raises
        raise UndecodableFrame(_reason(exc)) from exc


def _quick_native(data: bytes, index: int) -> Frame | None:
    """The frame when the file is one ``_native_frame`` reads, its data set read without the
    file meta group (:mod:`viewer.quick_read`: 0.25 ms less CPU for a 512² CT slice); None for
    any other file, or whenever anything is unusual, so that ``dcmread`` and the path below
    decide (and raise, and warn) exactly as before. Same frame: tests/test_quick_read.py."""
    try:
        found = quick_dataset(data)
        if found is None:
            return None
        ds, syntax = found
        frames = ds.get("NumberOfFrames", 1) if NUMBER_OF_FRAMES in ds else 1
        if not isinstance(frames, int) or not 0 <= index < frames:
            return None
        _check_frame_size(ds)
        photometric = _raw_code(ds, PHOTOMETRIC)
        if photometric not in ("MONOCHROME1", "MONOCHROME2") or _has_overlays(ds):
            return None
        pixels = _native_frame(ds, syntax, index)
        if pixels is None:
            return None
        return _decode(ds, syntax, index, frames, photometric, pixels)
    except Exception:  # noqa: BLE001 - the full path below raises what it should
        return None


def _has_overlays(ds: Dataset) -> bool:
    return any((group << 16 | 0x3000) in ds for group in range(0x6000, 0x6020, 2))


def _reason(exc: BaseException) -> str:
    """A decoder's complaint, on one line and short enough for a header or a JSON detail."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _check_frame_size(ds: Dataset) -> None:
    """Refuse a frame whose (0028,0010) *Rows* x (0028,0011) *Columns* x (0028,0002) *Samples
    per Pixel* is absent or beyond ``MAX_FRAME_SAMPLES``, and (0028,0100) *Bits Allocated*
    other than 1 or a multiple of 8 (PS3.5 8.1.1), before a decoder allocates for it."""
    read = [_raw_unsigned_short(ds, tag) for tag in (ROWS, COLUMNS, SAMPLES, BITS_ALLOCATED)]
    if None not in read:
        rows, columns, samples, allocated = (int(value or 0) for value in read)
        samples = samples or 1
    else:
        try:
            rows, columns = int(ds.Rows), int(ds.Columns)
            samples = int(ds.get("SamplesPerPixel") or 1)
            allocated = int(ds.BitsAllocated)
        except Exception as exc:  # absent, or not a number
            raise UndecodableFrame(f"no usable Image Pixel module ({_reason(exc)})") from exc
    if rows <= 0 or columns <= 0 or rows * columns * samples > MAX_FRAME_SAMPLES:
        raise UndecodableFrame(f"a frame of {rows} x {columns} x {samples} samples is refused")
    if allocated != 1 and (allocated <= 0 or allocated % 8 or allocated > 64):
        raise UndecodableFrame(
            f"(0028,0100) Bits Allocated {allocated} is neither 1 nor a multiple of 8"
        )


def _decode(
    ds: Dataset,
    syntax: str,
    index: int,
    frames: int,
    photometric: str,
    pixels: np.ndarray | None = None,
) -> Frame:
    if pixels is None:
        pixels = _pixels(ds, syntax, index, frames)
    if photometric == "PALETTE COLOR":
        return Frame(_palette(pixels, ds))
    if is_colour(photometric) or pixels.ndim == 3:
        return Frame(_as_rgb8(pixels, ds))
    frame = Frame(
        pixels=pixels,
        inverse=_inverse(ds, photometric),
        overlay=_overlay(ds, index),
    )
    _modality(frame, ds, index)
    _voi(frame, ds, index)
    frame.levels = pyramid(pixels)
    return frame


def full_range_window(values: np.ndarray) -> Window:
    """The LINEAR window that maps the lowest value to 0 and the highest to 255."""
    low, high = float(values.min()), float(values.max())
    return Window((low + high + 1) / 2, max(1.0, high - low + 1))


def _pixels(ds: Dataset, syntax: str, index: int, frames: int) -> np.ndarray:
    """The frame's samples, in native byte order: read straight from the Pixel Data when
    ``_native_frame`` can, else decoded by pydicom (only the frame asked for)."""
    pixels = _native_frame(ds, syntax, index)
    if pixels is None:
        options: dict[str, Any] = {"decoding_plugin": DECODERS.get(syntax, "")}
        if frames > 1:
            options["index"] = index
        try:
            pixels = pixel_array(ds, **options)
        except Exception:
            if syntax not in FALLBACKS:
                raise
            pixels = pixel_array(ds, **(options | {"decoding_plugin": FALLBACKS[syntax]}))
    if not pixels.dtype.isnative:
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    return pixels


def _native_frame(ds: Dataset, syntax: str, index: int) -> np.ndarray | None:
    """Frame ``index`` of little-endian native single-sample pixel data, as pydicom returns it.

    Parameters
    ----------
    ds : Dataset
        The whole object.
    syntax : str
        Its Transfer Syntax UID (0002,0010).
    index : int
        0-based frame number, already checked against Number of Frames (0028,0008).

    Returns
    -------
    numpy.ndarray or None
        A new (rows, columns) array equal to ``pixel_array(ds, index=index)``, dtype included;
        None when pydicom must decode the frame.

    Notes
    -----
    Native Pixel Data (7FE0,0010) is the frames one after another, each Rows x Columns samples
    of Bits Allocated bits, little-endian in Implicit and Explicit VR Little Endian (PS3.5 8.1.1,
    A.1, A.2), padded to an even length by one byte (PS3.5 8.1.1, 7.1.1). Reading it is one
    ``np.frombuffer``; pydicom's ``pixel_array`` spends ~0.2 ms of Python on options before the
    same read. Like pydicom (``correct_unused_bits``), the bits above Bits Stored (0028,0101) are
    not trusted (PS3.5 8.1.1): cleared for unsigned samples, a copy of the sign bit for signed.

    Everything else goes to pydicom, so that its output, warnings and errors stay the reference:
    Big Endian and Deflated syntaxes, colour (YBR_FULL_422 is subsampled), bit-packed (Bits
    Allocated 1), float pixel data, invalid or unusual module values, and a Pixel Data length
    other than exactly the frames (pydicom warns, trims padding or counts extra frames).
    """
    if syntax not in NATIVE_LITTLE_ENDIAN or PIXEL_DATA not in ds:
        return None
    layout = _native_layout(ds)
    element = ds.get_item(PIXEL_DATA)
    data = element.value if isinstance(element, RawDataElement) else ds.PixelData
    if layout is None or not isinstance(data, bytes):
        return None
    rows, columns, allocated, stored, signed, frames = layout
    count = rows * columns
    frame_bytes = count * allocated // 8
    expected = frame_bytes * frames
    if len(data) not in (expected, expected + expected % 2):
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}")
    samples = np.frombuffer(data, dtype, count, index * frame_bytes).reshape(rows, columns)
    unused = allocated - stored
    if not unused:
        return samples.copy()
    if not signed:
        return np.bitwise_and(samples, (1 << stored) - 1, dtype=dtype)
    out = np.left_shift(samples, unused)
    np.right_shift(out, unused, out=out)  # arithmetic: extends the sign bit
    return out


def _native_layout(ds: Dataset) -> tuple[int, int, int, int, bool, int] | None:
    """(rows, columns, bits allocated, bits stored, signed, frames) of single-sample integer
    pixel data (PS3.3 C.7.6.3), or None unless every value is one ``_native_frame`` reads as
    pydicom does (pydicom validates the rest and says what is wrong)."""
    if FLOAT_PIXEL_DATA in ds or DOUBLE_FLOAT_PIXEL_DATA in ds:
        return None
    photometric = _raw_code(ds, PHOTOMETRIC)
    if photometric is None:
        photometric = ds.get("PhotometricInterpretation")
    if photometric not in NATIVE_PHOTOMETRIC:
        return None
    values = [_unsigned_short(ds, tag) for tag in NATIVE_MODULE]
    frames = ds.get("NumberOfFrames", 1) if NUMBER_OF_FRAMES in ds else 1
    if not all(isinstance(value, int) for value in (*values, frames)):
        return None
    samples, rows, columns, allocated, stored, representation = values
    valid = (
        samples == 1
        and 0 < rows < 65536
        and 0 < columns < 65536
        and allocated in (8, 16, 32)
        and 1 <= stored <= allocated
        and representation in (0, 1)
        and frames >= 1
    )
    return (rows, columns, allocated, stored, representation == 1, frames) if valid else None


def _raw_unsigned_short(ds: Dataset, tag: int) -> int | None:
    """A one-valued little-endian US element's value read from its raw bytes; None when absent
    or anything else (pydicom's conversion then decides)."""
    element = ds.get_item(tag)
    if (
        isinstance(element, RawDataElement)
        and element.VR in ("US", None)  # None: Implicit VR, the dictionary's US
        and element.is_little_endian
        and isinstance(element.value, bytes)
        and len(element.value) == 2
    ):
        return int.from_bytes(element.value, "little")
    return None


def _raw_decimals(ds: Dataset, tag: int) -> list[float] | None:
    """The values of a DS element (PS3.5 6.2) read from its raw bytes, None when absent or when
    pydicom must convert it (another VR, an empty or unreadable value).

    pydicom's conversion (``multi_string`` then ``DSfloat``) strips trailing spaces and NULs,
    splits at backslashes and calls ``float`` on each part; this does the same for the values
    ``float`` reads, so the numbers are equal, without pydicom's ~10 µs per element of
    validation (a cold frame reads four of them).
    """
    element = ds.get_item(tag)
    if not isinstance(element, RawDataElement) or element.VR not in ("DS", None):
        return None
    raw = element.value
    if not isinstance(raw, bytes) or not raw.isascii():
        return None
    values = []
    for part in raw.decode("ascii").rstrip(" \x00").split("\\"):
        if not part.strip():
            return None  # pydicom keeps an empty value as ''
        try:
            values.append(float(part))
        except ValueError:
            return None
    return values


def _decimal(ds: Dataset, tag: int, keyword: str, default: float) -> float:
    """A one-valued DS element as ``float(ds.get(keyword) or default)`` gives it."""
    values = _raw_decimals(ds, tag)
    if values is not None and len(values) == 1:
        return values[0] or default
    return float(ds.get(keyword) or default)


def _decimals(ds: Dataset, tag: int, keyword: str) -> list[float]:
    """A DS element's values as ``_multi(ds.get(keyword))`` gives them."""
    values = _raw_decimals(ds, tag)
    return _multi(ds.get(keyword)) if values is None else values


def _text(ds: Dataset, tag: int, default: str) -> str:
    """``str(ds.get(keyword, default))`` of the element ``tag``, without pydicom raising and
    catching an AttributeError inside ``get`` when the element is absent."""
    return str(ds[tag].value) if tag in ds else default


def _raw_code(ds: Dataset, tag: int) -> str | None:
    """A one-valued CS element (PS3.5 6.2) as pydicom gives it, read from its raw bytes; None
    when absent or when pydicom must convert it (several values, NULs, non-ASCII)."""
    element = ds.get_item(tag)
    if not isinstance(element, RawDataElement) or element.VR not in ("CS", None):
        return None
    raw = element.value
    if not isinstance(raw, bytes) or not raw or not raw.isascii() or b"\\" in raw:
        return None
    if b"\x00" in raw:
        return None
    return raw.decode("ascii").rstrip(" ")


def _unsigned_short(ds: Dataset, tag: int) -> Any:
    """The value of a US element (PS3.5 6.2), None if absent.

    A raw little-endian US of one value is its two bytes, read here: pydicom's conversion of an
    element costs ~8 µs, most of the frame's own cost for these six. Anything else (another VR,
    more values) is left to pydicom's conversion.
    """
    value = _raw_unsigned_short(ds, tag)
    if value is not None:
        return value
    return ds[tag].value if tag in ds else None


def _palette(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    """PALETTE COLOR (C.7.6.3.1.5): look up, then keep the top 8 bits of each entry."""
    rgb = apply_color_lut(pixels, ds)
    if rgb.dtype != np.uint8:
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        rgb = (rgb >> max(0, bits - 8)).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def _as_rgb8(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    """pydicom converts YBR to RGB (``as_rgb``); deeper samples keep their top 8 bits."""
    if pixels.dtype != np.uint8:
        bits = int(ds.get("BitsStored") or 16)
        pixels = (pixels.astype(np.uint32) >> max(0, bits - 8)).clip(0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return np.ascontiguousarray(pixels)


def _inverse(ds: Dataset, photometric: str) -> bool:
    """MONOCHROME1 shows its minimum white (C.7.6.3.1.2). An INVERSE Presentation LUT Shape
    (2050,0020, C.11.6.1) inverts a MONOCHROME2 image; on MONOCHROME1 it is the shape the DX
    and mammography IODs require to say just that (C.8.11.6.1.1), not a second inversion."""
    shape = _text(ds, PRESENTATION_LUT_SHAPE, "").strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def _functional(ds: Dataset, index: int, group: str) -> Dataset | None:
    """A functional group item of an enhanced multi-frame object (C.7.6.16): the frame's own,
    else the shared one."""
    for tag, position in ((PER_FRAME_GROUPS, index), (SHARED_GROUPS, 0)):
        sequence = ds[tag].value if tag in ds else None
        if sequence and len(sequence) > position and group in sequence[position]:
            items = sequence[position][group].value
            if items:
                return items[0]
    return None


def _modality(frame: Frame, ds: Dataset, index: int) -> None:
    """Modality LUT (C.11.1): Rescale Slope/Intercept, or a Modality LUT Sequence."""
    source = _functional(ds, index, "PixelValueTransformationSequence") or ds
    if MODALITY_LUT_SEQUENCE in ds and RESCALE_SLOPE not in source:
        item = ds.ModalityLUTSequence[0]
        first = int(item.LUTDescriptor[1])
        frame.modality_lut = (first, _lut_data(item))
        return
    frame.slope = _decimal(source, RESCALE_SLOPE, "RescaleSlope", 1.0)
    frame.intercept = _decimal(source, RESCALE_INTERCEPT, "RescaleIntercept", 0.0)


def _lut_data(item: Dataset) -> np.ndarray:
    """LUT Data (0028,3006) as integers, whatever VR it was written with."""
    descriptor = item.LUTDescriptor
    bits = int(descriptor[2])
    raw = item.LUTData
    if isinstance(raw, bytes):
        dtype = np.uint8 if bits <= 8 and len(raw) == (descriptor[0] or 65536) else np.uint16
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(np.int64)
    return np.asarray(raw, dtype=np.int64)


def _voi(frame: Frame, ds: Dataset, index: int) -> None:
    """VOI attributes (C.11.2): windows (possibly per frame) and a VOI LUT Sequence."""
    source = _functional(ds, index, "FrameVOILUTSequence") or ds
    function = _text(source, VOI_LUT_FUNCTION, "LINEAR")
    function = function.strip().upper() or "LINEAR"
    centres = _decimals(source, WINDOW_CENTER, "WindowCenter")
    widths = _decimals(source, WINDOW_WIDTH, "WindowWidth")
    windows = []
    for centre, width in zip(centres, widths, strict=False):
        try:
            windows.append(Window(centre, width, function))
        except ValueError:
            continue  # an invalid stored window is ignored, as viewers do
    frame.windows = tuple(windows)
    if VOI_LUT_SEQUENCE in ds and ds.VOILUTSequence:
        item = ds.VOILUTSequence[0]
        frame.voi_lut = (int(item.LUTDescriptor[1]), _lut_data(item), int(item.LUTDescriptor[2]))


def _multi(value: Any) -> list[float]:
    if value is None:
        return []
    values = list(value) if isinstance(value, pydicom.multival.MultiValue | list) else [value]
    out = []
    for item in values:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            continue
    return out


def _overlay(full: Dataset, index: int) -> np.ndarray | None:
    """The union of the frame's graphic overlay planes (C.9.2) as a boolean mask, placed at
    Overlay Origin (60xx,0050); None when the object has none."""
    groups = [g for g in range(0x6000, 0x6020, 2) if (g << 16 | 0x3000) in full]  # Overlay Data
    if not groups:
        return None
    rows, columns = int(full.Rows), int(full.Columns)
    mask = np.zeros((rows, columns), dtype=bool)
    for group in groups:
        frames = int(full[group, 0x0015].value) if (group, 0x0015) in full else 1
        first = int(full[group, 0x0051].value) if (group, 0x0051) in full else 1
        if frames > 1 and not first - 1 <= index < first - 1 + frames:
            continue
        plane = np.asarray(full.overlay_array(group), dtype=bool)
        if plane.ndim == 3:
            plane = plane[index - (first - 1)]
        origin = full[group, 0x0050].value if (group, 0x0050) in full else [1, 1]
        top, left = int(origin[0]) - 1, int(origin[1]) - 1
        _paste(mask, plane, top, left)
    return mask


def _paste(mask: np.ndarray, plane: np.ndarray, top: int, left: int) -> None:
    """OR ``plane`` into ``mask`` at (top, left), clipped to the image."""
    rows, columns = mask.shape
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + plane.shape[0], rows), min(left + plane.shape[1], columns)
    if r0 < r1 and c0 < c1:
        mask[r0:r1, c0:c1] |= plane[r0 - top : r1 - top, c0 - left : c1 - left]


def pyramid(pixels: np.ndarray) -> list[np.ndarray]:
    """Reduced copies of a large greyscale frame, by integer factors 2, 3, 4, 6, 8, ... (block
    means, rounded, same dtype), largest first, down to about 512 pixels.

    Built once at decode time (Pillow's ``reduce``, ~30 ms for a 3000² frame). A 3000² CR drawn
    into a 1000-pixel viewport then windows the 1000² level (one look-up per displayed pixel, no
    resampling), and any other viewport starts from the smallest level still larger than it
    instead of all 9 million pixels.
    """
    if max(pixels.shape[:2]) <= PYRAMID_FROM or pixels.dtype.kind not in "iu":
        return []
    if pixels.dtype.itemsize > 2:
        return []  # 32-bit samples do not fit Pillow's 32-bit signed mode safely
    image = Image.fromarray(pixels.astype(np.int32))
    levels = []
    for factor in (2, 3, 4, 6, 8, 12, 16):
        if max(pixels.shape[:2]) // factor < 512:
            break
        levels.append(np.asarray(image.reduce(factor)).astype(pixels.dtype))
    return levels
