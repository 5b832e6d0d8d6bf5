"""What the modality worklist shows: open requests whose images have not come yet.

A consultation is scheduled at a modality while it is ``awaiting_images`` (it has a request, no
image, and is neither signed, closed nor cancelled), names a modality, and its facility has an AE
title for the modality to ask with. Images arriving, a cancellation or anything that finishes it
changes the status, and the item goes (service/mwl/publisher.py).
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from worklists.status import ConsultationStatus


def scheduled_requests(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every scheduled request with its facility's AE title, time zone and character set and
    the requester's name, oldest first."""
    rows = db.execute(
        "SELECT c.*, f.aet AS facility_aet, f.timezone AS facility_timezone,"
        " f.character_set AS character_set, u.display_name AS requester_name,"
        " u.dicom_name AS requester_dicom_name"
        " FROM consultations c JOIN facilities f ON f.id = c.facility_id"
        " LEFT JOIN users u ON u.id = c.requested_by"
        " WHERE c.status = ? AND c.modality != '' AND f.aet != ''"
        " AND c.requested_at IS NOT NULL ORDER BY c.id",
        [ConsultationStatus.AWAITING_IMAGES.value],
    )
    return [dict(row) for row in rows]
