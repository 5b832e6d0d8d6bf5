"""JSON Schemas that no pydantic model describes, shared by the OpenAPI document's operations:
DICOM JSON (PS3.18 F.2) as the DICOMweb routes answer it, and the bodies that are files."""

from __future__ import annotations

from typing import Any

DICOM_JSON = "application/dicom+json"
"""PS3.18 8.7.3.5: exactly this media type, without parameters."""
DICOM_ATTRIBUTE = "#/components/schemas/DicomAttribute"
DICOM_DATASET = "#/components/schemas/DicomDataset"

COMPONENTS: dict[str, Any] = {
    "DicomAttribute": {
        "description": "One attribute in the DICOM JSON model (PS3.18 F.2.2)",
        "type": "object",
        "required": ["vr"],
        "properties": {
            "vr": {"type": "string", "pattern": "^[A-Z]{2}$"},
            "Value": {"type": "array"},
            "BulkDataURI": {"type": "string"},
            "InlineBinary": {"type": "string"},
        },
    },
    "DicomDataset": {
        "description": "A DICOM data set in the DICOM JSON model (PS3.18 F.2): attributes by"
        " tag (8 upper-case hex digits)",
        "type": "object",
        "propertyNames": {"pattern": "^[0-9A-F]{8}$"},
        "additionalProperties": {"$ref": DICOM_ATTRIBUTE},
    },
}


def dataset_schema() -> dict[str, Any]:
    """One data set (a STOW-RS answer)."""
    return {"$ref": DICOM_DATASET}


def datasets_schema() -> dict[str, Any]:
    """Data sets, one per instance (metadata) or per match (QIDO-RS)."""
    return {"type": "array", "items": {"$ref": DICOM_DATASET}}


def binary(media_type: str) -> dict[str, Any]:
    """A body that is a file of ``media_type``."""
    return {"type": "string", "format": "binary", "contentMediaType": media_type}


MULTIPART_RELATED = "multipart/related"
"""WADO-RS retrieve and frames (PS3.18 8.7.3.1): parts of ``type="application/dicom"`` or of
the frames' own media type, with a boundary."""


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


TEXT_KEY: dict[str, Any] = {"type": "string"}
QIDO_PARAMETERS: tuple[dict[str, Any], ...] = (
    _query("limit", {"type": "integer", "minimum": 1}, "At most this many matches"),
    _query("offset", {"type": "integer", "minimum": 0}, "Skip this many matches"),
    _query("includefield", TEXT_KEY, "Attributes to add to each match, or all"),
    _query("fuzzymatching", {"type": "boolean"}, "Match person names fuzzily"),
    _query("PatientID", TEXT_KEY, "Matching key; any attribute keyword or tag may be one"),
    _query("PatientName", TEXT_KEY, "With * and ? wildcards"),
    _query("StudyDate", TEXT_KEY, "YYYYMMDD, or a range YYYYMMDD-YYYYMMDD"),
    _query("AccessionNumber", TEXT_KEY, "Matching key"),
    _query("ModalitiesInStudy", TEXT_KEY, "Matching key"),
    _query("StudyInstanceUID", TEXT_KEY, "Matching key"),
)
"""QIDO-RS query parameters (PS3.18 8.3.4): the paging and matching keys teleread documents."""

QIDO: dict[str, Any] = {
    "response": datasets_schema(),
    "response_media_type": DICOM_JSON,
    "parameters": QIDO_PARAMETERS,
}
"""``@documented(summary, **QIDO)`` for a QIDO-RS search: DICOM JSON, one data set a match."""
