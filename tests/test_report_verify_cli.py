"""``teleread verify`` on a DICOM SR names the signer and the signing time, offline.

The SR's detached CMS signature carries no signing-time attribute; the time comes from the
canonical form that signature covers, printed like the paper and the public page print it (the
zone named, with its UTC offset). The report is not in this service's database, so the zone is
UTC; tests/test_reports.py checks the facility's zone for a report the service signed.
"""

from __future__ import annotations

from service.cli.main import main
from service.demo.synthetic import dataset_bytes
from service.reports.dicom_objects import report_sr
from tests.test_report_dicom_conformance import signed
from tests.test_report_documents import reference, sample


def test_teleread_verify_prints_who_signed_an_sr_and_when(tmp_path, monkeypatch, capsys):
    """VALID, "signed by Dr Li at 2026-11-23 22:54 (UTC, UTC+00:00)", exit 0."""
    data_dir = tmp_path / "var"
    monkeypatch.setenv("TELEREAD_DATA_DIR", str(data_dir))
    doc = sample(signer_name="Dr Li")
    report = signed(doc, data_dir)  # signed under the data directory's consortium CA
    path = tmp_path / "report-sr.dcm"
    path.write_bytes(dataset_bytes(report_sr(doc, report.canonical, report.signature, reference())))
    assert main(["verify", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"VALID: {path}",
        "signed by Dr Li at 2026-11-23 22:54 (UTC, UTC+00:00)",
    ]
