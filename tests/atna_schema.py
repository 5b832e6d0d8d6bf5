"""The DICOM Audit Message Schema (PS3.15 A.5.1.1) as an lxml validator, for the ATNA tests.

The standard publishes the schema in RELAX NG Compact syntax (tests/data/dicom-audit-message.rnc,
transcribed unchanged); lxml reads only the XML syntax, so it is converted here with rnc2rng.
One adjustment first: the standard writes its value documentation as ``## ...`` after each value,
where the compact grammar allows ``##`` documentation only before a pattern. Those lines are
documentation, not constraints, so they become plain ``#`` comments.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import rnc2rng
from lxml import etree

SCHEMA_RNC = Path(__file__).parent / "data" / "dicom-audit-message.rnc"


@functools.cache
def audit_schema() -> etree.RelaxNG:
    compact = re.sub("##", "#", SCHEMA_RNC.read_text(encoding="utf-8"))
    xml = rnc2rng.dumps(rnc2rng.loads(compact))
    return etree.RelaxNG(etree.fromstring(xml.encode("utf-8")))


def schema_errors(document: str | bytes) -> list[str]:
    """Why one serialised message is not valid against the schema (empty when it is)."""
    data = document.encode("utf-8") if isinstance(document, str) else document
    schema = audit_schema()
    if schema.validate(etree.fromstring(data)):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def assert_schema_valid(document: str | bytes) -> None:
    errors = schema_errors(document)
    assert not errors, "\n".join(errors)
