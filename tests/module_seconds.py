"""Seconds each test module took in a whole ``make test`` run (setup, call and teardown of its
tests; a whole make test run on the 2-core machine, session 15), longest first:
the order tests/whole_modules.py hands modules to workers (the longest start first, so that no
long module starts near the end and leaves the other workers idle while it finishes). Only the
order matters, not the exact figures; a module missing here (a new one)
counts as :data:`UNKNOWN` seconds.

Refresh after a change that moves a module's time much::

    .venv/bin/python -m pytest -n 4 --dist worksteal --junitxml=build/junit.xml
    .venv/bin/python -m tests.module_seconds build/junit.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

UNKNOWN = 10.0

SECONDS: dict[str, float] = {
    "test_reports.py": 73.4,
    "test_api_fuzzing.py": 60.4,
    "test_web_processes.py": 59.8,
    "test_cli.py": 54.0,
    "test_ingest.py": 37.1,
    "test_browser_accessibility.py": 32.2,
    "test_hl7_results.py": 29.8,
    "test_browser_raw_codes.py": 26.2,
    "test_malformed_files.py": 21.0,
    "test_browser_ohif.py": 19.6,
    "test_failover.py": 19.2,
    "test_viewer_errors.py": 18.5,
    "test_browser_critical_findings.py": 18.2,
    "test_peer_review_http.py": 17.8,
    "test_orthanc_postgresql.py": 17.7,
    "test_study_ownership.py": 17.5,
    "test_report_review.py": 17.3,
    "test_browser_viewer_pixels.py": 16.9,
    "test_orthanc_supervision.py": 16.9,
    "test_browser_reports.py": 16.7,
    "test_authorisation_matrix.py": 16.0,
    "test_audit.py": 15.7,
    "test_private_caching.py": 14.7,
    "test_browser_editor_context.py": 14.4,
    "test_key_images.py": 14.2,
    "test_browser_viewer_loading.py": 14.0,
    "test_browser_worklist_fit.py": 13.8,
    "test_linked_priors.py": 13.3,
    "test_uploads.py": 13.1,
    "test_browser_admin.py": 11.8,
    "test_audit_anchor.py": 11.8,
    "test_browser_reading_tools.py": 11.8,
    "test_consultation_requests.py": 11.7,
    "test_browser_key_images.py": 11.2,
    "test_browser_review.py": 11.1,
    "test_patient_identity_capture.py": 11.0,
    "test_browser_viewer.py": 10.6,
    "test_dcmtk_parity.py": 10.3,
    "test_browser_peer_review.py": 10.2,
    "test_admin_api.py": 9.1,
    "test_atna_forwarding.py": 8.5,
    "test_postgres_leadership.py": 8.2,
    "test_dicom_port.py": 7.8,
    "test_login_limits.py": 7.7,
    "test_isolation.py": 7.6,
    "test_file_checks.py": 7.6,
    "test_bench_scale.py": 7.5,
    "test_browser_upload.py": 7.3,
    "test_report_priors.py": 6.8,
    "test_dicomweb_client.py": 6.8,
    "test_viewer_http.py": 6.1,
    "test_browser_repeat_exams.py": 6.0,
    "test_browser_patient_links.py": 5.6,
    "test_modality_worklist.py": 5.6,
    "test_live_updates.py": 5.5,
    "test_signing.py": 5.3,
    "test_synthetic.py": 5.3,
    "test_report_documents.py": 5.2,
    "test_leader_fencing.py": 4.9,
    "test_browser_claims.py": 4.8,
    "test_turnaround_columns.py": 4.8,
    "test_audit_atna.py": 4.4,
    "test_patient_record.py": 4.2,
    "test_browser_roster.py": 4.1,
    "test_fhir.py": 4.1,
    "test_browser_viewer_packed.py": 3.8,
    "test_orthanc_keepalive.py": 3.8,
    "test_dicom_send.py": 3.6,
    "test_browser_request.py": 3.4,
    "test_browser_bell.py": 3.2,
    "test_report_archival.py": 3.1,
    "test_peer_review_sampling.py": 3.0,
    "test_browser_stat_alerts.py": 2.9,
    "test_audit_group_commit.py": 2.8,
    "test_claims.py": 2.8,
    "test_session_cache.py": 2.8,
    "test_rendering.py": 2.6,
    "test_ca_first_start.py": 2.5,
    "test_both_backends.py": 2.5,
    "test_chinese_names.py": 2.5,
    "test_viewer_http_batch.py": 2.4,
    "test_walking_skeleton.py": 2.3,
    "test_report_cosign.py": 2.3,
    "test_report_print.py": 2.2,
    "test_i18n.py": 2.1,
    "test_browser_live.py": 2.0,
    "test_reader_grades.py": 1.9,
    "test_patient_link_admin.py": 1.8,
    "test_viewer_pipeline.py": 1.7,
    "test_hl7_orders.py": 1.7,
    "test_recognition_list.py": 1.7,
    "test_openapi.py": 1.7,
    "test_saved_filters.py": 1.5,
    "test_browser_reassign.py": 1.5,
    "test_report_dicom_conformance.py": 1.5,
    "test_study_layouts.py": 1.5,
    "test_turnaround.py": 1.5,
    "test_process_bus.py": 1.5,
    "test_browser_dashboard.py": 1.4,
    "test_study_openings.py": 1.4,
    "test_roster_people.py": 1.4,
    "test_ohif.py": 1.4,
    "test_recognition_mark.py": 1.3,
    "test_effects.py": 1.3,
    "test_report_sr_review.py": 1.3,
    "test_browser_saved_filters.py": 1.3,
    "test_conversation.py": 1.2,
    "test_worklist_rules.py": 1.2,
    "test_postgres_replicas.py": 1.2,
    "test_periodic.py": 1.2,
    "test_api_tokens.py": 1.1,
    "test_repeat_exams.py": 1.1,
    "test_managed_orthanc.py": 1.0,
    "test_key_image_figures.py": 1.0,
    "test_escalation.py": 0.9,
    "test_worklist_api.py": 0.9,
    "test_stored_files.py": 0.9,
    "test_orders_foundation.py": 0.9,
    "test_notice_text.py": 0.8,
    "test_quality_http.py": 0.8,
    "test_report_verify_cli.py": 0.8,
    "test_webhook.py": 0.8,
    "test_orthanc_private.py": 0.7,
    "test_sql_home.py": 0.7,
    "test_same_person_linked.py": 0.7,
    "test_import_rules.py": 0.7,
    "test_roster_notifications.py": 0.7,
    "test_auth.py": 0.6,
    "test_id_ranges.py": 0.6,
    "test_postgres_schema.py": 0.6,
    "test_patient_merges.py": 0.6,
    "test_patient_index_core.py": 0.5,
    "test_local_rendering.py": 0.5,
    "test_worklist_page_api.py": 0.5,
    "test_client_address.py": 0.5,
    "test_quick_read.py": 0.5,
    "test_assignees.py": 0.4,
    "test_peer_review_qc.py": 0.4,
    "test_native_decode.py": 0.3,
    "test_app_without_orthanc.py": 0.3,
    "test_migrations_frozen.py": 0.3,
    "test_processes_left_behind.py": 0.3,
    "test_audit_labels.py": 0.2,
    "test_cors.py": 0.2,
    "test_head_requests.py": 0.2,
    "test_raw_attributes.py": 0.2,
    "test_routing_rules.py": 0.1,
    "test_compose_orthanc_pair.py": 0.1,
    "test_peer_review_rules.py": 0.1,
    "test_dicom_files.py": 0.1,
    "test_compose.py": 0.1,
    "test_caching.py": 0.1,
    "test_charts.py": 0.1,
    "test_sla_rules.py": 0.1,
    "test_compression.py": 0.1,
    "test_dicomweb_rules.py": 0.0,
    "test_render_bands.py": 0.0,
    "test_recognition_rules.py": 0.0,
    "test_settings.py": 0.0,
    "test_patient_names.py": 0.0,
    "test_qc_scores.py": 0.0,
    "test_claim_rules.py": 0.0,
    "test_review_rules.py": 0.0,
    "test_change_window.py": 0.0,
    "test_report_canonical_review.py": 0.0,
    "test_demo_rules.py": 0.0,
    "test_whole_modules.py": 0.0,
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
