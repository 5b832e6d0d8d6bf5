"""The viewer reads uncompressed little-endian frames itself (``viewer.frames._native_frame``):
its samples must be pydicom's ``pixel_array(ds, index=i)``, the decoder it replaces on that path,
value for value, with the same dtype and shape.

Every native greyscale file pydicom ships (the corpus of tests/test_dcmtk_parity.py) is checked,
plus synthetic ones for what the corpus lacks: signed samples with unused high bits, garbage in
those bits, odd frame lengths, 8 and 32-bit samples, and frames of a multi-frame object.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from tests.test_dcmtk_parity import TEST_FILES, greyscale_test_files
from viewer import decode_frame
from viewer.frames import NATIVE_LITTLE_ENDIAN, _native_frame

# Native little-endian files the fast path leaves to pydicom, and why.
LEFT_TO_PYDICOM = {
    "MR_small_padded.dcm": "excess padding: pydicom warns and trims it",
    "MR_truncated.dcm": "shorter than its frames: pydicom refuses it",
    "badVR.dcm": 'Number of Frames "1A" is not a number',
    "liver_1frame.dcm": "bit-packed (Bits Allocated 1)",
}


def _native_corpus() -> list[Path]:
    """pydicom's greyscale and palette test files in a little-endian native transfer syntax."""
    paths = [*greyscale_test_files(), TEST_FILES / "examples_palette.dcm"]
    found = []
    for path in paths:
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        if meta.get("TransferSyntaxUID") in NATIVE_LITTLE_ENDIAN:
            found.append(path)
    return found


NATIVE = _native_corpus()


def _frames_to_check(ds: pydicom.Dataset) -> list[int]:
    """First, second and last frame."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an invalid value: assert_same_as_pydicom sees it
        value = ds.get("NumberOfFrames")
    frames = int(value) if isinstance(value, int) and value > 0 else 1
    return sorted({0, min(1, frames - 1), frames - 1})


def _reference(ds: pydicom.Dataset, index: int) -> tuple[np.ndarray | None, list[str]]:
    """pydicom's frame (None if it refuses the file) and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            expected = pixel_array(ds, index=index)
        except Exception:  # noqa: BLE001 - any refusal: the fast path must refuse too
            expected = None
    return expected, [str(w.message) for w in caught]


def assert_same_as_pydicom(data: bytes, index: int) -> bool:
    """The fast path's frame ``index`` of ``data`` equals pydicom's; whether it took it.

    When pydicom warns or refuses, the fast path must have left the file to it, so that the
    viewer still shows (or logs) exactly what pydicom says.
    """
    ds = pydicom.dcmread(io.BytesIO(data))
    expected, said = _reference(ds, index)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        copy = pydicom.dcmread(io.BytesIO(data))
        fast = _native_frame(copy, copy.file_meta.TransferSyntaxUID, index)
    assert {str(w.message) for w in caught} <= set(said)  # reading values warns as pydicom does
    if expected is None or said:
        assert fast is None, said or "pydicom refuses this file"
        return False
    if fast is None:
        return False
    assert fast.dtype == expected.dtype
    assert fast.shape == expected.shape
    assert np.array_equal(fast, expected)
    assert fast.flags.writeable and fast.flags.c_contiguous
    return True


def test_the_native_corpus_is_there():
    """Guard against an empty parametrisation."""
    assert len(NATIVE) >= 40
    assert set(LEFT_TO_PYDICOM) <= {p.name for p in NATIVE}


@pytest.mark.parametrize("path", NATIVE, ids=lambda p: p.name)
def test_pydicoms_native_files_decode_as_pydicom_does(path):
    data = path.read_bytes()
    indices = _frames_to_check(pydicom.dcmread(io.BytesIO(data)))
    taken = [assert_same_as_pydicom(data, index) for index in indices]
    assert not any(taken) if path.name in LEFT_TO_PYDICOM else all(taken)


# --- synthetic files ---------------------------------------------------------------------------


def _ct(rows: int = 64) -> pydicom.Dataset:
    [ds] = make_study(StudySpec("P", "A^B", "CT", "HEAD", rows=rows))
    return ds


def _raw(
    samples: np.ndarray, allocated: int, stored: int, signed: bool, frames: int = 1
) -> pydicom.Dataset:
    """A CT whose Pixel Data is exactly ``samples``' bytes (high bits included), unchecked."""
    ds = _ct()
    ds.Rows, ds.Columns = samples.shape[-2:]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, stored, stored - 1
    ds.PixelRepresentation = int(signed)
    if frames > 1:
        ds.NumberOfFrames = frames
    raw = samples.astype(samples.dtype.newbyteorder("<")).tobytes()
    ds.PixelData = raw + b"\0" * (len(raw) % 2)
    ds["PixelData"].VR = "OB" if allocated == 8 else "OW"
    return ds


def _implicit(ds: pydicom.Dataset) -> pydicom.Dataset:
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


RNG = np.random.default_rng(7)
SYNTHETIC = {
    "ct_unsigned_12_of_16": lambda: _ct(512),
    "ct_implicit_vr": lambda: _implicit(_ct()),
    "garbage_above_12_unsigned": lambda: _raw(RNG.integers(0, 65536, (64, 64), "u2"), 16, 12, 0),
    "garbage_above_12_signed": lambda: _raw(RNG.integers(0, 65536, (64, 64), "u2"), 16, 12, 1),
    "garbage_implicit_signed": lambda: _implicit(
        _raw(RNG.integers(0, 65536, (64, 64), "u2"), 16, 12, 1)
    ),
    "signed_16_of_16": lambda: _raw(RNG.integers(-32768, 32768, (64, 64), "i2"), 16, 16, 1),
    "unsigned_8": lambda: _raw(RNG.integers(0, 256, (64, 64), "u1"), 8, 8, 0),
    "signed_8_odd_length": lambda: _raw(RNG.integers(0, 256, (7, 5), "u1"), 8, 8, 1),
    "unsigned_6_of_8_odd": lambda: _raw(RNG.integers(0, 256, (7, 5), "u1"), 8, 6, 0),
    "signed_20_of_32": lambda: _raw(RNG.integers(0, 2**32, (16, 16), "u4"), 32, 20, 1),
    "unsigned_32": lambda: _raw(RNG.integers(0, 2**32, (16, 16), "u4"), 32, 32, 0),
    "multiframe_8_odd_frames": lambda: _raw(RNG.integers(0, 256, (3, 7, 5), "u1"), 8, 7, 1, 3),
    "multiframe_signed_12": lambda: _raw(RNG.integers(0, 65536, (5, 9, 11), "u2"), 16, 12, 1, 5),
}


def _signed_ct() -> pydicom.Dataset:
    """The signed CT of tests/test_dcmtk_parity.py: HU as int16, 12 bits stored."""
    ds = _ct(512)
    hu = ds.pixel_array.astype(np.int32) + int(ds.RescaleIntercept)
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "0"
    ds.set_pixel_data(hu.astype(np.int16), "MONOCHROME2", 12, generate_instance_uid=False)
    return ds


def _stack() -> pydicom.Dataset:
    """A 5-frame CT stack, 12 of 16 bits stored."""
    slices = make_study(StudySpec("P", "A^B", "CT", "HEAD", instances=5, rows=32))
    frames = np.stack([s.pixel_array for s in slices])
    stack = slices[0]
    stack.NumberOfFrames = 5
    stack.set_pixel_data(frames, "MONOCHROME2", 12, generate_instance_uid=False)
    return stack


SYNTHETIC["ct_signed_12_of_16"] = _signed_ct
SYNTHETIC["multiframe_ct"] = _stack


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_native_files_decode_as_pydicom_does(name):
    ds = SYNTHETIC[name]()
    data = dataset_bytes(ds)
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID in NATIVE_LITTLE_ENDIAN
    for index in _frames_to_check(ds):
        assert assert_same_as_pydicom(data, index)
        expected = pixel_array(pydicom.dcmread(io.BytesIO(data)), index=index)
        pixels = decode_frame(data, index).pixels
        assert pixels.dtype == expected.dtype and np.array_equal(pixels, expected)


def test_frames_outside_the_object_are_still_refused():
    with pytest.raises(IndexError):
        decode_frame(dataset_bytes(_stack()), 5)


def test_explicit_vr_is_what_the_synthetic_files_use():
    """The synthetic files exercise Explicit VR unless made implicit on purpose."""
    assert _ct().file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
