"""The decoder reads a few attributes from their raw bytes (``viewer.frames._raw_*``) instead
of through pydicom's conversion, which cost a cold frame about a tenth of a millisecond: Rows,
Columns, Samples per Pixel, Bits Allocated (US), Photometric Interpretation (CS), Rescale
Slope/Intercept and Window Center/Width (DS). Whenever a raw reader answers, its answer must
be pydicom's value; whenever the value is anything unusual, it must leave it to pydicom.

Checked on every element of those tags in pydicom's test files (top level and functional group
items), and on hand-made raw elements for what the corpus lacks.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from tests.test_dcmtk_parity import TEST_FILES
from viewer import frames

US_TAGS = (frames.ROWS, frames.COLUMNS, frames.SAMPLES, frames.BITS_ALLOCATED)
DS_TAGS = (
    frames.RESCALE_SLOPE,
    frames.RESCALE_INTERCEPT,
    frames.WINDOW_CENTER,
    frames.WINDOW_WIDTH,
)
CS_TAGS = (frames.PHOTOMETRIC,)


def _corpus() -> list[Path]:
    return [path for path in sorted(TEST_FILES.rglob("*.dcm")) if path.is_file()]


def _datasets(ds: Dataset) -> Iterator[Dataset]:
    """The dataset and the items of its functional group sequences (where _modality and _voi
    also read these attributes)."""
    yield ds
    for tag in (frames.SHARED_GROUPS, frames.PER_FRAME_GROUPS):
        if tag in ds:
            for item in ds[tag].value[:2]:
                for element in item:
                    if element.VR == "SQ":
                        yield from element.value


def _pydicom_value(ds: Dataset, tag: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ds[tag].value


def _as_list(value) -> list[float]:
    return [float(v) for v in value] if isinstance(value, pydicom.multival.MultiValue) else [value]


def _check(raw: Dataset, converted: Dataset) -> int:
    """Compare the raw readers on ``raw`` with pydicom's values in ``converted``; how many
    elements the raw readers answered."""
    answered = 0
    for tag in US_TAGS:
        value = frames._raw_unsigned_short(raw, tag)
        if value is not None:
            answered += 1
            assert value == _pydicom_value(converted, tag)
    for tag in CS_TAGS:
        value = frames._raw_code(raw, tag)
        if value is not None:
            answered += 1
            assert value == _pydicom_value(converted, tag)
    for tag in DS_TAGS:
        values = frames._raw_decimals(raw, tag)
        if values is not None:
            answered += 1
            assert values == _as_list(_pydicom_value(converted, tag))
    return answered


def test_raw_readers_agree_with_pydicom_on_its_corpus() -> None:
    answered = 0
    for path in _corpus():
        try:
            raw = pydicom.dcmread(path, force=True)
            converted = pydicom.dcmread(path, force=True)
        except Exception:  # noqa: BLE001 - files pydicom cannot read are not decoded at all
            continue
        for raw_ds, converted_ds in zip(_datasets(raw), _datasets(converted), strict=True):
            answered += _check(raw_ds, converted_ds)
    assert answered > 300  # the fast path is taken on most of the corpus


def _raw(tag: int, vr: str | None, value: bytes) -> Dataset:
    ds = Dataset()
    element = RawDataElement(tag, vr, len(value), value, 0, vr is None, True, True, False)
    ds._dict[tag] = element  # a file's element before pydicom converts it
    return ds


@pytest.mark.parametrize("vr", ["DS", None])
@pytest.mark.parametrize(
    "value",
    [b"1", b"1.5 ", b"-1024", b" 2.5", b"1e3", b"1E-3", b"+7", b"1\\2", b"40\\400 ", b"0"],
)
def test_decimal_strings_read_as_pydicom_reads_them(vr: str | None, value: bytes) -> None:
    raw, converted = _raw(frames.WINDOW_CENTER, vr, value), _raw(frames.WINDOW_CENTER, vr, value)
    assert frames._raw_decimals(raw, frames.WINDOW_CENTER) == _as_list(
        _pydicom_value(converted, frames.WINDOW_CENTER)
    )


@pytest.mark.parametrize(
    "vr, value",
    [
        ("DS", b""),  # empty: pydicom's '' decides
        ("DS", b"  "),
        ("DS", b"1\\"),  # an empty second value
        ("DS", b"abc"),
        ("DS", b"1\x00\x002"),
        ("DS", b"1,5"),
        ("DS", "１".encode()),  # not ASCII
        ("FD", b"\x00" * 8),  # another VR
        ("IS", b"1"),
    ],
)
def test_unusual_decimal_strings_are_left_to_pydicom(vr: str, value: bytes) -> None:
    assert frames._raw_decimals(_raw(frames.RESCALE_SLOPE, vr, value), frames.RESCALE_SLOPE) is None


def test_absent_attributes_are_left_to_pydicom() -> None:
    empty = Dataset()
    assert frames._raw_decimals(empty, frames.RESCALE_SLOPE) is None
    assert frames._raw_code(empty, frames.PHOTOMETRIC) is None
    assert frames._raw_unsigned_short(empty, frames.ROWS) is None
    assert frames._unsigned_short(empty, frames.ROWS) is None


@pytest.mark.parametrize("value", [b"MONOCHROME2", b"MONOCHROME1 ", b"RGB", b" MONOCHROME2"])
def test_code_strings_read_as_pydicom_reads_them(value: bytes) -> None:
    raw, converted = _raw(frames.PHOTOMETRIC, "CS", value), _raw(frames.PHOTOMETRIC, "CS", value)
    assert frames._raw_code(raw, frames.PHOTOMETRIC) == _pydicom_value(
        converted, frames.PHOTOMETRIC
    )


@pytest.mark.parametrize("value", [b"", b"A\\B", b"MONOCHROME2\x00", "É".encode("latin-1")])
def test_unusual_code_strings_are_left_to_pydicom(value: bytes) -> None:
    assert frames._raw_code(_raw(frames.PHOTOMETRIC, "CS", value), frames.PHOTOMETRIC) is None


@pytest.mark.parametrize("value", [b"\x00\x02", b"\x00\x02\x00\x01", b"\x02"])
def test_unsigned_shorts(value: bytes) -> None:
    raw, converted = _raw(frames.ROWS, "US", value), _raw(frames.ROWS, "US", value)
    answer = frames._raw_unsigned_short(raw, frames.ROWS)
    if len(value) == 2:
        assert answer == _pydicom_value(converted, frames.ROWS) == 512
    else:
        assert answer is None  # several values, or a broken one: pydicom's conversion decides
