"""A consultation's status: which half is still missing before reading, and what came after."""

from __future__ import annotations

from enum import StrEnum


class ConsultationStatus(StrEnum):
    AWAITING_IMAGES = "awaiting_images"
    """The request was filed; the study has not arrived (or is not yet stable)."""
    AWAITING_REQUEST = "awaiting_request"
    """Images arrived (e.g. straight from a modality); no clinical request yet."""
    READY = "ready"
    """Images and request are both there: ready to be read."""
    AWAITING_REVIEW = "awaiting_review"
    """The writer signed a report that needs review (two-level sign-off): on the reviewers'
    queue; nothing is issued yet (unless released as preliminary)."""
    SIGNED = "signed"
    """A report is signed and waits for the originating clinic to acknowledge it."""
    CLOSED = "closed"
    """The clinic acknowledged the latest signed report."""
    CANCELLED = "cancelled"
    """Withdrawn before a report was signed."""


FINISHED_STATUSES = frozenset(
    {ConsultationStatus.SIGNED, ConsultationStatus.CLOSED, ConsultationStatus.CANCELLED}
)
"""Off the reading worklist (partial indexes m009 cover the rest: the open items)."""


def intake_status(has_images: bool, has_request: bool) -> ConsultationStatus:
    """Status derived from what has arrived."""
    if not has_images and not has_request:
        raise ValueError("a consultation exists only once images or a request arrived")
    if not has_images:
        return ConsultationStatus.AWAITING_IMAGES
    if not has_request:
        return ConsultationStatus.AWAITING_REQUEST
    return ConsultationStatus.READY
