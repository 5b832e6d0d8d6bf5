"""Exporting audit records: CSV for people (Excel), ATNA XML for audit repositories.

Both are produced as a stream of text chunks from batches of stored rows, so the HTTP handlers
and the CLI can export millions of records without holding them.

CSV: UTF-8 with a byte-order mark (Excel in a Chinese locale otherwise reads UTF-8 as GBK and
garbles names), a header row, one row per record with ``prev_hash`` and ``hash``. Cells that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage
return) are prefixed with ``'``: a failed login's attempted username is attacker-chosen text.

ATNA: one ``<AuditMessage>`` document (PS3.15 A.5.1) per record, one per line (UTF-8, LF) and
nothing else: the schema's root is the message itself, so a wrapper element would make the file
invalid; a shipper forwards it line by line, a reader parses each line as a document.

Both carry the chain's anchor as of the export (:mod:`.anchor`: the head record's id and hash),
so a kept export can later show that the trail was cut: the HTTP exports in a
``Teleread-Audit-Anchor`` header, the command line in ``FILE.anchor.json``.
"""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Iterable
from typing import BinaryIO

import sqlite_utils

from ..storage.audit_search import EVERYONE, AuditFilter, audit_batch, names_for
from .atna import AuditSource, Names, audit_message, to_xml

CSV_COLUMNS = (
    "id",
    "at",
    "user_id",
    "username",
    "role",
    "facility_id",
    "action",
    "resource_type",
    "resource_id",
    "patient_id",
    "study_instance_uid",
    "client_ip",
    "outcome",
    "detail",
    "prev_hash",
    "hash",
)
BOM = "\ufeff"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def csv_header() -> str:
    """The byte-order mark and the header row."""
    return BOM + csv_rows([dict(zip(CSV_COLUMNS, CSV_COLUMNS, strict=True))], escape=False)


def csv_rows(rows: Iterable[dict], escape: bool = True) -> str:
    """Stored rows as CSV lines (CRLF, as RFC 4180 and Excel expect)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([_cell(row[c]) if escape else row[c] for c in CSV_COLUMNS])
    return buffer.getvalue()


def atna_messages(rows: Iterable[dict], source: AuditSource, names: Names) -> str:
    """One ``AuditMessage`` document per row, one per line."""
    return "".join(to_xml(audit_message(row, source, names)) + "\n" for row in rows)


ANCHOR_HEADER = "Teleread-Audit-Anchor"


def default_source_id(host: str | None = None) -> str:
    """``teleread@<host>``: the public host name when configured, else this machine's name."""
    return f"teleread@{host or socket.gethostname()}"


def encode(chunk: str) -> bytes:
    """UTF-8, with anything unencodable (an unpaired surrogate) replaced rather than fatal."""
    return chunk.encode("utf-8", "replace")


def write_export(
    db: sqlite_utils.Database,
    out: BinaryIO,
    export_format: str,
    flt: AuditFilter,
    source: AuditSource | None = None,
    batch: int = 1000,
) -> int:
    """Write every matching record (chain order, every facility) to ``out``; the count.

    For the command line, which runs with file access to the database and so with no scope.
    """
    source = source or AuditSource(default_source_id())
    csv_format = export_format == "csv"
    if csv_format:
        out.write(encode(csv_header()))
    count, after_id = 0, 0
    while rows := audit_batch(db, flt, EVERYONE, after_id, batch):
        if csv_format:
            out.write(encode(csv_rows(rows)))
        else:
            out.write(encode(atna_messages(rows, source, names_for(db, rows, EVERYONE))))
        count, after_id = count + len(rows), rows[-1]["id"]
    return count
