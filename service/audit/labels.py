"""What the audit page calls each action and resource type, in the reader's language.

The audit trail stores stable codes ("report.view", "roster_entry"); people read words. Each code
some route records has a label here (``tests/test_audit_labels.py`` checks that none is missing),
marked with ``_`` so that babel extraction and the catalogue tests see them.
"""

from __future__ import annotations

from collections.abc import Callable

Gettext = Callable[[str], str]


def action_labels(_: Gettext) -> dict[str, str]:
    """Audit action code → label."""
    return {
        "audit.export": _("Audit trail exported"),
        "audit.search": _("Audit trail searched"),
        "auth.login": _("Logged in"),
        "auth.logout": _("Logged out"),
        "claim.assignees": _("Possible assignees listed"),
        "claim.reassign": _("Consultation reassigned"),
        "claim.release": _("Claim released"),
        "claim.take": _("Consultation claimed"),
        "consultation.preliminary": _("Preliminary answer given"),
        "consultation.request": _("Consultation requested"),
        "consultation.view": _("Consultation viewed"),
        "facility.create": _("Facility created"),
        "fhir.create": _("Order received by FHIR (ServiceRequest)"),
        "fhir.read": _("FHIR resource read"),
        "fhir.search": _("FHIR resources searched"),
        "fhir.update": _("Order changed by FHIR (ServiceRequest)"),
        "facility.update": _("Facility changed"),
        "hl7.cancel": _("Order cancelled by the hospital system (HL7)"),
        "hl7.order": _("Order received from the hospital system (HL7)"),
        "hl7.patient_merge": _("Patients merged by the hospital system (HL7)"),
        "hl7.patient_update": _("Patient details updated by the hospital system (HL7)"),
        "hl7.refused": _("HL7 message refused"),
        "hl7.outbox_view": _("HL7 results outbox viewed"),
        "hl7.result_failed": _("HL7 result not accepted by the HIS"),
        "hl7.result_sent": _("HL7 result sent to the HIS"),
        "hl7.retry": _("HL7 result sent again"),
        "login_failures.view": _("Failed logins viewed"),
        "message.post": _("Message sent"),
        "message.read": _("Messages read"),
        "notification.list": _("Notifications listed"),
        "notification.read": _("Notification marked read"),
        "patient.merge_reversed": _("Patient merge reversed"),
        "patient.merged": _("Patient merged"),
        "patient_merge.list": _("Patient merges listed"),
        "quarantine.view": _("Quarantined files viewed"),
        "report.acknowledge": _("Report acknowledged"),
        "report.correction": _("Report correction started"),
        "report.critical_acknowledge": _("Critical finding acknowledged"),
        "report.draft": _("Report draft saved"),
        "report.list": _("Reports listed"),
        "report.open": _("Report opened"),
        "report.print": _("Report PDF downloaded"),
        "report.priors": _("Prior reports listed"),
        "report.sign": _("Report signed"),
        "quality.recompute": _("QC scores and recognition list recomputed"),
        "report.verify": _("Report verified by code"),
        "report.verify_file": _("Report file verified"),
        "report.view": _("Report viewed"),
        "roster.add": _("Roster entry added"),
        "roster.delete": _("Roster entry removed"),
        "signing.import": _("Signing certificate imported"),
        "signing.revoke": _("Signing certificate revoked"),
        "study.query": _("Studies searched (QIDO)"),
        "study.retrieved": _("Study images retrieved (WADO)"),
        "study.stow": _("Study stored (STOW)"),
        "study.upload": _("Study uploaded"),
        "study.viewed": _("Images viewed"),
        "template.create": _("Report template created"),
        "template.delete": _("Report template deleted"),
        "template.update": _("Report template changed"),
        "token.create": _("API token created"),
        "token.revoke": _("API token revoked"),
        "turnaround.breaches": _("SLA breaches viewed"),
        "user.create": _("User created"),
        "user.disable": _("User disabled"),
        "user.enable": _("User enabled"),
        "user.password_change": _("Password changed"),
        "user.password_reset": _("Password reset"),
        "user.update": _("User changed"),
        "worklist.filter.delete": _("Saved filter deleted"),
        "worklist.filter.save": _("Filter saved"),
        "worklist.query": _("Worklist viewed"),
        "worklist.subscribe": _("Live worklist opened"),
    }


def resource_labels(_: Gettext) -> dict[str, str]:
    """Audit resource type → label."""
    return {
        "api_token": _("API token"),
        "audit": _("Audit trail"),
        "certificate": _("Certificate"),
        "consultation": _("Consultation"),
        "facility": _("Facility"),
        "hl7_message": _("HL7 message"),
        "notification": _("Notification"),
        "patient_merge": _("Patient merge"),
        "patient": _("Patient"),
        "quality": _("Quality control"),
        "quarantine": _("Quarantine"),
        "report": _("Report"),
        "report_template": _("Report template"),
        "roster_entry": _("Roster entry"),
        "saved_filter": _("Saved filter"),
        "security": _("Security"),
        "study": _("Study"),
        "user": _("User"),
        "worklist": _("Worklist"),
    }
