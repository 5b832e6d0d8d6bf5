"""Our PNG renders against dcmtk's, pixel for pixel (issue 5, "Exactness").

dcmtk (``dcm2pnm``, ``dcmj2pnm`` for JPEG, ``dcml2pnm`` for JPEG-LS; installed by
scripts/install-system-deps.sh --test) renders every greyscale file pydicom ships with pixel data
and synthetic ones (512² CT, a signed CT, a 3000² MONOCHROME1 CR, a DX with an INVERSE
Presentation LUT Shape, a multi-frame object, RLE and JPEG-LS copies) with an explicit window
(``+Ww C W``) and no overlays (``-O``). Our PNG must decode to exactly the same pixels when the
rescale is integral and the compression lossless, and within one grey level otherwise.

Files one side cannot read are listed in ``UNREADABLE`` with the reason, and a test proves the
reason still holds, so the list cannot silently hide a file we should render.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import JPEGLSLossless, RLELossless

from service.demo.synthetic import StudySpec, make_study
from viewer import RenderOptions, Window, decode_frame, default_window, render

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"

# Files one side cannot read; test_unreadable_files_really_are proves each reason.
UNREADABLE = {
    "693_J2KI.dcm": "dcmtk",  # JPEG 2000: not in the free dcmtk
    "J2K_pixelrep_mismatch.dcm": "dcmtk",
    "JPEG2000.dcm": "dcmtk",
    "MR_small_jp2klossless.dcm": "dcmtk",
    "JPEG2000-embedded-sequence-delimiter.dcm": "both",  # a malformed J2K codestream
    "MR_truncated.dcm": "ours",  # pixel data shorter than Rows x Columns
    "badVR.dcm": "ours",  # an IS value of "1A"
}
# Lossy JPEG: ISO 10918 lets IDCTs differ by one; dcmtk's IJG 6b and libjpeg do.
LOSSY = {"JPGExtended.dcm"}
# dcmtk 3.6.7 reads 32-bit big-endian samples differently from the same image written
# little-endian; these are compared with dcmtk's render of their little-endian twin instead.
BIG_ENDIAN_TWINS = {
    "rtdose_expb.dcm": "rtdose.dcm",
    "rtdose_expb_1frame.dcm": "rtdose_1frame.dcm",
}


@cache
def greyscale_test_files() -> tuple[Path, ...]:
    """Every pydicom test file (no download) with greyscale pixel data (read once)."""
    found = []
    for path in sorted(TEST_FILES.rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        greyscale = str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME")
        if greyscale and _has_pixel_data(path):
            found.append(path)
    return tuple(found)


def _has_pixel_data(path: Path) -> bool:
    try:
        return "PixelData" in pydicom.dcmread(path)
    except Exception:
        return True  # unreadable with pixels: UNREADABLE must account for it


def dcmtk(path: Path, window: Window, frame: int, tmp_path: Path) -> np.ndarray:
    """dcmtk's 8-bit render of ``frame`` (1-based) with the LINEAR ``window``."""
    syntax = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    tool = "dcm2pnm"
    if syntax.startswith("1.2.840.10008.1.2.4.8"):
        tool = "dcml2pnm"
    elif syntax.startswith(("1.2.840.10008.1.2.4.5", "1.2.840.10008.1.2.4.7")):
        tool = "dcmj2pnm"
    out = tmp_path / f"{path.name}.{frame}.pgm"
    command = [
        tool,
        *("+Ww", repr(window.center), repr(window.width)),
        "+on",
        "-O",
        *("+F", str(frame)),
        str(path),
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return np.asarray(Image.open(out))


def ours(path: Path, window: Window, frame: int) -> np.ndarray:
    """Our PNG of the same frame and window, decoded."""
    decoded = decode_frame(path.read_bytes(), frame - 1)
    png = render(decoded, RenderOptions(window=window, format="png"))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image)


def windows_for(path: Path, frame: int = 1) -> list[Window]:
    """The object's own window (or its full range), and a narrow one inside the data."""
    decoded = decode_frame(path.read_bytes(), frame - 1)
    first = default_window(decoded) or Window(128, 256)
    if decoded.windows:
        first = Window(decoded.windows[0].center, decoded.windows[0].width)
    if path.name in LOSSY:  # a narrow window would magnify the decoders' ±1 (see below)
        return [first]
    # Where the rescale is fractional, dcmtk and we may part by one modality unit at a rounding
    # edge; a window narrower than 256 would magnify that past one grey level.
    least = 2.0 if tolerance(path) == 0 else 256.0
    narrow = Window(round(first.center) + 0.5, max(least, round(first.width / 5)))
    return [first, narrow]


def tolerance(path: Path, name: str | None = None) -> int:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    integral = all(
        float(ds.get(attribute, default)).is_integer()
        for attribute, default in (("RescaleSlope", 1), ("RescaleIntercept", 0))
    )
    return 0 if integral and (name or path.name) not in LOSSY else 1


def assert_parity(path: Path, tmp_path: Path, frame: int = 1, reference: Path | None = None):
    for window in windows_for(path, frame):
        expected = dcmtk(reference or path, window, frame, tmp_path)
        actual = ours(path, window, frame)
        assert actual.shape == expected.shape
        difference = np.abs(actual.astype(int) - expected.astype(int))
        allowed = tolerance(path)
        assert difference.max() <= allowed, (
            f"{path.name} {window}: {int((difference > allowed).sum())} pixels differ by up to "
            f"{difference.max()}"
        )


GREYSCALE = [p for p in greyscale_test_files() if p.name not in UNREADABLE]


def test_the_pydicom_corpus_is_there_and_large():
    """Guard against an empty parametrisation: pydicom ships dozens of greyscale files."""
    assert shutil.which("dcm2pnm") and shutil.which("dcmj2pnm") and shutil.which("dcml2pnm")
    assert len(GREYSCALE) >= 45
    assert {p.name for p in greyscale_test_files()} >= set(UNREADABLE)


# MR_small_padded.dcm is padded on purpose; pydicom says so while decoding it.
@pytest.mark.filterwarnings("ignore:The pixel data is .* excess padding:UserWarning")
@pytest.mark.parametrize("path", GREYSCALE, ids=lambda p: p.name)
def test_png_equals_dcmtk_for_pydicoms_greyscale_files(path, tmp_path):
    reference = TEST_FILES / BIG_ENDIAN_TWINS[path.name] if path.name in BIG_ENDIAN_TWINS else None
    assert_parity(path, tmp_path, reference=reference)


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_files_really_are(name, tmp_path):
    """Each exclusion's reason holds: dcmtk fails on it, we fail on it, or both."""
    [path] = [p for p in greyscale_test_files() if p.name == name]
    who = UNREADABLE[name]
    if who in ("dcmtk", "both"):
        with pytest.raises(AssertionError):
            dcmtk(path, Window(128, 256), 1, tmp_path)
    if who in ("ours", "both"):
        with pytest.raises(Exception):  # noqa: B017 - any decoding failure
            decode_frame(path.read_bytes(), 0)
    else:
        assert decode_frame(path.read_bytes(), 0).pixels.size > 0


@pytest.mark.parametrize("name", sorted(LOSSY))
def test_lossy_jpeg_samples_are_within_one_of_dcmtks_decoder(name, tmp_path):
    """Why LOSSY has a tolerance: the decoded samples themselves differ by at most 1 from
    dcmtk's ``dcmdjpeg`` (ISO 10918-2 allows IDCT implementations to differ)."""
    path = TEST_FILES / name
    plain = tmp_path / "plain.dcm"
    subprocess.run(["dcmdjpeg", str(path), str(plain)], check=True, capture_output=True)
    theirs = pydicom.dcmread(plain).pixel_array.astype(int)
    mine = decode_frame(path.read_bytes(), 0).pixels.astype(int)
    assert np.abs(theirs - mine).max() <= 1


def test_big_endian_32_bit_samples_equal_their_little_endian_twin():
    """Why BIG_ENDIAN_TWINS is fair: we decode both files to the same values."""
    for big, little in BIG_ENDIAN_TWINS.items():
        a = decode_frame((TEST_FILES / big).read_bytes(), 0).pixels
        b = decode_frame((TEST_FILES / little).read_bytes(), 0).pixels
        assert np.array_equal(a, b)


# --- synthetic images --------------------------------------------------------------------------


def _save(ds: pydicom.Dataset, directory: Path, name: str) -> Path:
    path = directory / name
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("synthetic")
    files: dict[str, Path] = {}
    slices = make_study(StudySpec("P1", "TEST^CT", "CT", "HEAD", instances=5, rows=512))
    ct = slices[2]
    files["ct512"] = _save(ct, directory, "ct512.dcm")

    signed = pydicom.dcmread(files["ct512"])
    hu = signed.pixel_array.astype(np.int32) + int(signed.RescaleIntercept)
    signed.PixelRepresentation = 1
    signed.RescaleIntercept = "0"
    signed.set_pixel_data(hu.astype(np.int16), "MONOCHROME2", 12, generate_instance_uid=False)
    files["ct512_signed"] = _save(signed, directory, "ct512_signed.dcm")

    fractional = pydicom.dcmread(files["ct512"])
    fractional.RescaleSlope = "0.5"
    fractional.RescaleIntercept = "-1024.25"
    files["ct512_fractional_rescale"] = _save(fractional, directory, "ct512_fractional.dcm")

    [cr] = make_study(StudySpec("P2", "TEST^CR", "CR", "CHEST", rows=3000))
    files["cr3000_monochrome1"] = _save(cr, directory, "cr3000.dcm")
    [dx] = make_study(StudySpec("P3", "TEST^DX", "DX", "CHEST", rows=1024))
    files["dx_inverse_shape"] = _save(dx, directory, "dx.dcm")

    stack = pydicom.dcmread(files["ct512"])
    frames = np.stack([s.pixel_array for s in slices])
    stack.NumberOfFrames = len(slices)
    stack.set_pixel_data(frames, "MONOCHROME2", 12, generate_instance_uid=False)
    files["multiframe"] = _save(stack, directory, "multiframe.dcm")

    for name, syntax in (("ct512_rle", RLELossless), ("ct512_jpegls", JPEGLSLossless)):
        copy = pydicom.dcmread(files["ct512"])
        copy.compress(syntax, generate_instance_uid=False)
        files[name] = _save(copy, directory, f"{name}.dcm")
    return files


@pytest.mark.parametrize(
    "name",
    [
        "ct512",
        "ct512_signed",
        "ct512_fractional_rescale",
        "cr3000_monochrome1",
        "dx_inverse_shape",
        "ct512_rle",
        "ct512_jpegls",
    ],
)
def test_png_equals_dcmtk_for_synthetic_images(synthetic, name, tmp_path):
    assert_parity(synthetic[name], tmp_path)


@pytest.mark.parametrize("frame", [1, 3, 5])
def test_each_frame_of_a_multiframe_object_equals_dcmtk(synthetic, frame, tmp_path):
    assert_parity(synthetic["multiframe"], tmp_path, frame=frame)


def test_monochrome1_renders_dark_where_the_values_are_high(synthetic):
    """The inversion is really there: the direct exposure (highest values) is black."""
    path = synthetic["cr3000_monochrome1"]
    decoded = decode_frame(path.read_bytes(), 0)
    image = ours(path, Window(2048, 3600), 1)
    brightest_value = np.unravel_index(np.argmax(decoded.pixels), decoded.pixels.shape)
    darkest_value = np.unravel_index(np.argmin(decoded.pixels), decoded.pixels.shape)
    assert image[brightest_value] < 20 and image[darkest_value] > 200
