"""Uploaded files are checked to be complete DICOM Part-10 objects before reaching Orthanc."""

from __future__ import annotations

import pytest

from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.dicom.files import RejectedFile, add_missing_preamble, inspect_dicom


@pytest.fixture(scope="module")
def ct_bytes() -> bytes:
    return dataset_bytes(make_study(StudySpec("P1", "WANG^FANG", "CT", "HEAD"))[0])


def test_complete_file_gives_its_uids(tmp_path, ct_bytes):
    """A whole file passes and names its study and instance."""
    path = tmp_path / "ok.dcm"
    path.write_bytes(ct_bytes)
    summary = inspect_dicom(path)
    assert summary.study_instance_uid and summary.sop_instance_uid
    assert summary.patient_id == "P1"


@pytest.mark.parametrize(
    ("fraction", "reason"),
    [(0.5, "pixel data"), (0.002, "image without pixel data")],
)
def test_files_cut_short_are_rejected_as_truncated(tmp_path, ct_bytes, fraction, reason):
    """A file cut in its pixel data, or in its header before the pixels, is truncated."""
    path = tmp_path / "cut.dcm"
    path.write_bytes(ct_bytes[: max(int(len(ct_bytes) * fraction), 1000)])
    with pytest.raises(RejectedFile, match=f"truncated.*{reason}"):
        inspect_dicom(path)


def test_non_dicom_is_rejected(tmp_path):
    """Text, images and other files say so."""
    path = tmp_path / "notes.txt"
    path.write_text("not an image" * 100)
    with pytest.raises(RejectedFile, match="not a DICOM file"):
        inspect_dicom(path)


def _written(ds, **kwargs) -> bytes:
    """What ``pydicom.dcmwrite`` writes of a data set, as dicomweb-client's STOW-RS sends it."""
    from io import BytesIO

    from pydicom import dcmwrite

    buffer = BytesIO()
    dcmwrite(buffer, ds, **kwargs)
    return buffer.getvalue()


def test_a_part10_stream_without_its_preamble_is_given_one_and_passes(tmp_path):
    """File Meta Information first, no 128-byte preamble or DICM (dicomweb-client writes a data
    set without a preamble so): checked and stored as the Part-10 file it is but for them."""
    [ds] = make_study(StudySpec("P2", "LI^NA", "CT", "HEAD"))
    assert getattr(ds, "preamble", None) is None
    stream = tmp_path / "stow-part"
    stream.write_bytes(_written(ds))
    assert stream.read_bytes()[:2] == b"\x02\x00"
    part10 = tmp_path / "part10.dcm"
    assert add_missing_preamble(stream, part10)
    assert part10.read_bytes() == b"\0" * 128 + b"DICM" + stream.read_bytes()
    assert inspect_dicom(part10).sop_instance_uid == ds.SOPInstanceUID
    with pytest.raises(RejectedFile, match="not a DICOM file"):
        inspect_dicom(stream)  # as sent: stored only as the Part-10 file


def _bare(ds, implicit: bool) -> bytes:
    del ds.file_meta
    return _written(ds, implicit_vr=implicit, little_endian=True)


def _meta_without_transfer_syntax(ds) -> bytes:
    del ds.file_meta.TransferSyntaxUID
    return _written(ds, implicit_vr=False, little_endian=True)


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(lambda ds: _bare(ds, implicit=True), id="implicit-VR data set, no meta"),
        pytest.param(lambda ds: _bare(ds, implicit=False), id="explicit-VR data set, no meta"),
        pytest.param(_meta_without_transfer_syntax, id="meta without transfer syntax"),
        pytest.param(lambda ds: b"\x02\x00\x02\x00UI" + b"\xff" * 300, id="a broken group 0002"),
    ],
)
def test_a_stream_without_file_meta_stays_refused(tmp_path, stream):
    """A bare data set does not say its transfer syntax: no preamble is added and the upload is
    refused as before, as is a group 0002 that does not name it or cannot be read."""
    [ds] = make_study(StudySpec("P3", "LI^NA", "CT", "HEAD"))
    path = tmp_path / "bare"
    path.write_bytes(stream(ds))
    target = tmp_path / "part10.dcm"
    assert not add_missing_preamble(path, target)
    assert not target.exists()
    with pytest.raises(RejectedFile, match="not a DICOM file"):
        inspect_dicom(path)
