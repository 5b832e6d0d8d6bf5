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
