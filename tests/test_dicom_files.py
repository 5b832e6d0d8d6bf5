"""Uploaded files are checked to be complete DICOM Part-10 objects before reaching Orthanc."""

from __future__ import annotations

import pytest

from service.demo.synthetic import StudySpec, dataset_bytes, make_study
from service.dicom.files import RejectedFile, inspect_dicom


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
