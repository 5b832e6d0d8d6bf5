"""Seconds each test module took in a whole ``make test`` run (setup, call and teardown of its
tests; measured at a load average of ~16 on the 2-core machine, so several times an idle run's
figures), longest first: the order tests/whole_modules.py hands modules to workers (the longest
start first, so that no long module starts near the end and leaves the other workers idle while
it finishes). Only the order matters, not the exact figures; a module missing here (a new one)
counts as :data:`UNKNOWN` seconds.

Refresh after a change that moves a module's time much::

    .venv/bin/python -m pytest -n 3 --dist worksteal --junitxml=build/junit.xml
    .venv/bin/python -m tests.module_seconds build/junit.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

UNKNOWN = 10.0

SECONDS: dict[str, float] = {
    "test_api_fuzzing.py": 389.9,
    "test_web_processes.py": 201.7,
    "test_reports.py": 153.6,
    "test_cli.py": 131.6,
    "test_dcmtk_parity.py": 110.4,
    "test_browser_raw_codes.py": 73.2,
    "test_hl7_results.py": 70.2,
    "test_login_limits.py": 64.3,
    "test_browser_accessibility.py": 61.9,
    "test_browser_editor_context.py": 53.3,
    "test_browser_reports.py": 52.3,
    "test_orthanc_supervision.py": 47.4,
    "test_browser_worklist_fit.py": 43.3,
    "test_audit.py": 43.3,
    "test_browser_reading_tools.py": 42.7,
    "test_uploads.py": 41.9,
    "test_ingest.py": 41.0,
    "test_malformed_files.py": 37.9,
    "test_browser_ohif.py": 35.0,
    "test_file_checks.py": 34.2,
    "test_peer_review_http.py": 33.4,
    "test_browser_viewer_pixels.py": 33.1,
    "test_browser_viewer_loading.py": 32.0,
    "test_authorisation_matrix.py": 31.5,
    "test_browser_critical_findings.py": 28.7,
    "test_private_caching.py": 28.6,
    "test_signing.py": 27.8,
    "test_viewer_errors.py": 24.4,
    "test_audit_anchor.py": 20.5,
    "test_browser_review.py": 18.9,
    "test_admin_api.py": 18.3,
    "test_browser_peer_review.py": 17.5,
    "test_browser_viewer.py": 17.4,
    "test_browser_upload.py": 17.3,
    "test_browser_key_images.py": 17.1,
    "test_reader_grades.py": 17.0,
    "test_report_priors.py": 16.8,
    "test_i18n.py": 16.7,
    "test_browser_admin.py": 15.4,
    "test_study_ownership.py": 15.2,
    "test_report_archival.py": 14.5,
    "test_turnaround_columns.py": 14.3,
    "test_consultation_requests.py": 13.1,
    "test_key_images.py": 12.9,
    "test_modality_worklist.py": 11.9,
    "test_openapi.py": 11.9,
    "test_viewer_pipeline.py": 11.3,
    "test_isolation.py": 11.1,
    "test_browser_claims.py": 11.0,
    "test_live_updates.py": 10.6,
    "test_claims.py": 10.4,
    "test_turnaround.py": 9.9,
    "test_dicom_port.py": 9.8,
    "test_report_review.py": 9.2,
    "test_fhir.py": 9.1,
    "test_viewer_http.py": 8.5,
    "test_report_print.py": 8.2,
    "test_browser_roster.py": 8.0,
    "test_saved_filters.py": 7.6,
    "test_synthetic.py": 6.8,
    "test_audit_atna.py": 6.8,
    "test_dicomweb_client.py": 6.3,
    "test_browser_dashboard.py": 6.3,
    "test_report_documents.py": 6.0,
    "test_report_dicom_conformance.py": 5.7,
    "test_dicom_send.py": 5.6,
    "test_browser_request.py": 5.5,
    "test_browser_bell.py": 5.5,
    "test_ohif.py": 5.5,
    "test_effects.py": 5.5,
    "test_browser_saved_filters.py": 5.4,
    "test_rendering.py": 5.4,
    "test_browser_stat_alerts.py": 5.3,
    "test_assignees.py": 4.7,
    "test_report_cosign.py": 4.7,
    "test_process_bus.py": 4.5,
    "test_chinese_names.py": 4.4,
    "test_session_cache.py": 4.4,
    "test_orthanc_private.py": 4.4,
    "test_key_image_figures.py": 4.0,
    "test_import_rules.py": 4.0,
    "test_orthanc_keepalive.py": 4.0,
    "test_atna_forwarding.py": 3.8,
    "test_id_ranges.py": 3.8,
    "test_auth.py": 3.8,
    "test_browser_reassign.py": 3.3,
    "test_managed_orthanc.py": 3.1,
    "test_browser_live.py": 3.1,
    "test_conversation.py": 3.1,
    "test_recognition_mark.py": 3.0,
    "test_walking_skeleton.py": 3.0,
    "test_orders_foundation.py": 2.9,
    "test_audit_group_commit.py": 2.8,
    "test_study_openings.py": 2.8,
    "test_sla_rules.py": 2.7,
    "test_viewer_http_batch.py": 2.6,
    "test_native_decode.py": 2.4,
    "test_settings.py": 2.3,
    "test_report_verify_cli.py": 2.1,
    "test_client_address.py": 2.1,
    "test_sql_home.py": 2.0,
    "test_worklist_page_api.py": 2.0,
    "test_cors.py": 2.0,
    "test_worklist_api.py": 2.0,
    "test_report_sr_review.py": 1.9,
    "test_escalation.py": 1.8,
    "test_roster_people.py": 1.8,
    "test_study_layouts.py": 1.6,
    "test_app_without_orthanc.py": 1.6,
    "test_roster_notifications.py": 1.5,
    "test_hl7_orders.py": 1.3,
    "test_api_tokens.py": 1.3,
    "test_peer_review_sampling.py": 1.2,
    "test_patient_merges.py": 1.2,
    "test_local_rendering.py": 1.1,
    "test_peer_review_qc.py": 1.1,
    "test_review_rules.py": 1.1,
    "test_recognition_list.py": 0.8,
    "test_raw_attributes.py": 0.8,
    "test_head_requests.py": 0.8,
    "test_caching.py": 0.7,
    "test_routing_rules.py": 0.6,
    "test_migrations_frozen.py": 0.5,
    "test_processes_left_behind.py": 0.4,
    "test_peer_review_rules.py": 0.4,
    "test_quality_http.py": 0.4,
    "test_dicom_files.py": 0.4,
    "test_charts.py": 0.2,
    "test_webhook.py": 0.2,
    "test_recognition_rules.py": 0.2,
    "test_render_bands.py": 0.2,
    "test_dicomweb_rules.py": 0.1,
    "test_audit_labels.py": 0.1,
    "test_periodic.py": 0.1,
    "test_worklist_rules.py": 0.1,
    "test_compose.py": 0.1,
    "test_notice_text.py": 0.1,
    "test_compression.py": 0.1,
    "test_claim_rules.py": 0.0,
    "test_report_canonical_review.py": 0.0,
    "test_qc_scores.py": 0.0,
    "test_whole_modules.py": 0.1,
}


def seconds(module: str) -> float:
    """The recorded time of ``module`` (a file name such as ``test_cli.py``)."""
    return SECONDS.get(module, UNKNOWN)


def from_junit(report: Path) -> dict[str, float]:
    """Per module, the sum of its tests' times (setup, call and teardown) in a JUnit XML report."""
    totals: Counter[str] = Counter()
    for case in ET.parse(report).iter("testcase"):
        module = case.get("classname", "").split(".")[1] + ".py"
        totals[module] += float(case.get("time", 0))
    return dict(totals)


def main(report: str) -> None:
    """Rewrite this file's :data:`SECONDS` from a JUnit XML report of a whole run."""
    totals = from_junit(Path(report))
    this = Path(__file__)
    text = this.read_text()
    head, rest = text.split("SECONDS: dict[str, float] = {\n", 1)
    tail = rest.split("\n}\n", 1)[1]
    body = "".join(
        f'    "{module}": {round(total, 1)},\n'
        for module, total in sorted(totals.items(), key=lambda item: -item[1])
    )
    this.write_text(f"{head}SECONDS: dict[str, float] = {{\n{body}}}\n{tail}")


if __name__ == "__main__":
    main(sys.argv[1])
