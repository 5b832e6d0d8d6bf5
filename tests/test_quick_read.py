"""The viewer reads uncompressed little-endian files without their file meta group
(``viewer.quick_read``, ``viewer.frames._quick_native``): the frame it decodes must be the one
``dcmread`` of the whole file gives (``viewer.frames._decode_file``), every field of it, and a
file it is not sure of must go to ``dcmread``.

Checked on every file of pydicom's test corpus (first, second and last frame), on synthetic CT
slices as the ingest stores them, and on file meta groups laid out in the ways the quick reader
refuses.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from service.demo.synthetic import StudySpec, make_study
from tests.test_dcmtk_parity import TEST_FILES
from viewer import decode_frame
from viewer.frames import Frame, _decode_file, _quick_native
from viewer.quick_read import quick_dataset, transfer_syntax


def _readable_quickly(path: Path) -> bool:
    """Files the quick reader reads at all (for the others decode_frame is _decode_file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return quick_dataset(path.read_bytes()) is not None
        except Exception:  # noqa: BLE001 - read_dataset's refusal: _quick_native returns None
            return True


CORPUS = sorted(
    path for path in TEST_FILES.rglob("*") if path.is_file() and _readable_quickly(path)
)


def _same(left: Frame, right: Frame) -> None:
    assert left.pixels.dtype == right.pixels.dtype
    np.testing.assert_array_equal(left.pixels, right.pixels)
    assert (left.slope, left.intercept, left.windows, left.inverse, left.full_range) == (
        right.slope,
        right.intercept,
        right.windows,
        right.inverse,
        right.full_range,
    )
    for a, b in ((left.modality_lut, right.modality_lut), (left.voi_lut, right.voi_lut)):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert a[0] == b[0] and a[2:] == b[2:]
            np.testing.assert_array_equal(a[1], b[1])
    assert (left.overlay is None) == (right.overlay is None)
    assert len(left.levels) == len(right.levels)
    for a, b in zip(left.levels, right.levels, strict=True):
        np.testing.assert_array_equal(a, b)


def _frames(data: bytes) -> list[int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).get("NumberOfFrames")
    except Exception:  # noqa: BLE001 - unreadable: frame 0 only, both paths must refuse
        return [0]
    frames = int(value) if isinstance(value, int) and value > 0 else 1
    return sorted({0, min(1, frames - 1), frames - 1})


def _full(data: bytes, index: int) -> Frame | Exception:
    try:
        return _decode_file(data, index)
    except Exception as exc:  # noqa: BLE001 - compared with decode_frame's own refusal
        return exc


@pytest.mark.parametrize("path", CORPUS, ids=lambda path: path.name)
def test_same_frame_as_dcmread_on_pydicoms_corpus(path: Path) -> None:
    data = path.read_bytes()
    for index in _frames(data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = _full(data, index)
            try:
                got: Frame | Exception = decode_frame(data, index)
            except Exception as exc:  # noqa: BLE001
                got = exc
        if isinstance(expected, Exception):
            assert type(got) is type(expected) and str(got) == str(expected)
        else:
            assert isinstance(got, Frame)
            _same(got, expected)


def test_the_corpus_exercises_the_quick_path() -> None:
    """Enough of the corpus takes the quick path for the test above to mean something."""
    taken = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in CORPUS:
            taken += _quick_native(path.read_bytes(), 0) is not None
    assert taken >= 10


def _slice_bytes(index: int = 0) -> bytes:
    dataset = make_study(StudySpec("QR1", "QUICK^READ", "CT", "HEAD", 2, rows=64))[index]
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_synthetic_ct_slice_takes_the_quick_path_with_the_same_frame() -> None:
    data = _slice_bytes()
    quick = _quick_native(data, 0)
    assert quick is not None
    _same(quick, _decode_file(data, 0))
    found = quick_dataset(data)
    assert found is not None
    dataset, syntax = found
    full = pydicom.dcmread(io.BytesIO(data))
    assert syntax == full.file_meta.TransferSyntaxUID
    assert dataset == full  # every element, raw bytes and all


def _with_meta_element(data: bytes, element: bytes) -> bytes:
    """``data`` with ``element`` appended to its file meta group (group length updated)."""
    (length,) = struct.unpack_from("<I", data, 140)
    end = 144 + length
    return (
        data[:140] + struct.pack("<I", length + len(element)) + data[144:end] + element + data[end:]
    )


def test_file_meta_layouts_it_does_not_trust_go_to_dcmread() -> None:
    data = _slice_bytes()
    assert transfer_syntax(data) is not None
    no_preamble = data[128:]
    wrong_length = data[:140] + struct.pack("<I", struct.unpack_from("<I", data, 140)[0] + 2)
    wrong_length += data[144:]
    long_element = _with_meta_element(data, b"\x02\x00\x02\x01OB\x00\x00\x02\x00\x00\x00ab")
    big_endian = data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.2\x00", 1)
    assert transfer_syntax(no_preamble) is None
    assert transfer_syntax(wrong_length) is None
    assert transfer_syntax(long_element) is not None  # a long-VR element is walked over
    assert quick_dataset(big_endian) is None
    for variant in (no_preamble, wrong_length, big_endian):
        assert _quick_native(variant, 0) is None
    _same(decode_frame(long_element, 0), _decode_file(data, 0))


def test_a_frame_number_beyond_the_object_is_refused_as_before() -> None:
    data = _slice_bytes()
    assert _quick_native(data, 1) is None
    with pytest.raises(IndexError):
        decode_frame(data, 1)
