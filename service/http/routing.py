"""Collects every feature's route table."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .routes import (
    admin_routes,
    audit_routes,
    auth_routes,
    claim_routes,
    consultation_routes,
    conversation_routes,
    dashboard_pages,
    dicomweb_query_routes,
    dicomweb_retrieve_routes,
    dicomweb_routes,
    dictionary_routes,
    fhir_routes,
    health_routes,
    hl7_outbox_routes,
    key_image_routes,
    live_routes,
    notification_routes,
    ohif_routes,
    openapi,
    pages,
    patient_link_routes,
    patient_merge_routes,
    patient_record_routes,
    peer_review_pages,
    peer_review_routes,
    portal_routes,
    quality_routes,
    repeat_alert_routes,
    report_routes,
    review_routes,
    roster_routes,
    saved_filter_routes,
    signing_routes,
    token_routes,
    turnaround_routes,
    upload_routes,
    viewer_batch_routes,
    viewer_pages,
    viewer_routes,
    wado_uri_routes,
    worklist_routes,
)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def setup_routes(app: web.Application) -> None:
    for module in (
        auth_routes,
        live_routes,
        saved_filter_routes,
        worklist_routes,
        consultation_routes,
        repeat_alert_routes,
        claim_routes,
        peer_review_routes,
        peer_review_pages,
        conversation_routes,
        upload_routes,
        dicomweb_routes,
        dicomweb_query_routes,
        admin_routes,
        patient_merge_routes,
        patient_record_routes,
        patient_link_routes,
        audit_routes,
        health_routes,
        openapi,
        pages,
        token_routes,
        roster_routes,
        notification_routes,
        viewer_pages,
        viewer_routes,
        viewer_batch_routes,
        dicomweb_retrieve_routes,
        wado_uri_routes,
        ohif_routes,
        dictionary_routes,
        turnaround_routes,
        quality_routes,
        dashboard_pages,
        report_routes,
        key_image_routes,
        review_routes,
        portal_routes,
        signing_routes,
        fhir_routes,
        hl7_outbox_routes,
    ):
        app.router.add_routes(module.routes)
    viewer_pages.add_static(app)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
