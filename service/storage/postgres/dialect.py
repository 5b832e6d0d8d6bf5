"""SQLite's SQL, as the storage functions write it, said the way PostgreSQL reads it.

The storage functions are written once, in the SQL both engines share; what differs is small and
mechanical, so it is translated here rather than forked per function:

- placeholders: ``?`` and ``:name`` become psycopg's ``%s`` and ``%(name)s``, never inside a
  quoted string, identifier or comment; every ``%``, quoted or not, becomes ``%%`` (psycopg reads
  each as a placeholder: statements always go with parameters, even none);
- ``INSERT OR IGNORE`` becomes ``INSERT ... ON CONFLICT DO NOTHING``;
- a blob literal ``x'00'`` (a bit string to PostgreSQL) becomes ``'\\x00'::bytea``;
- ``x IS ?`` (SQLite's equality that holds for two NULLs) becomes ``IS NOT DISTINCT FROM``;
- ``CAST(... AS REAL)``: SQLite's REAL is 8 bytes, PostgreSQL's 4, so it becomes DOUBLE PRECISION;
- an ``INSERT`` into a table whose key is an ``id`` identity gets ``RETURNING id``, so the cursor
  can answer ``lastrowid`` as sqlite3's does (:mod:`.connection`).

SQLite's functions that PostgreSQL lacks (``julianday``, ``instr``, ``round`` of a double,
``group_concat``) are defined in the schema instead (:mod:`.schema`), and the few queries whose
JSON functions differ ask :func:`service.storage.dialects.is_postgres` and say it both ways.
Translations are cached: the same few hundred statements come back all day.
"""

from __future__ import annotations

import re
from functools import lru_cache

_TOKEN = re.compile(
    r"""('(?:[^']|'')*')"""  # a string literal
    r"""|("(?:[^"]|"")*")"""  # a quoted identifier
    r"|(--[^\n]*)"  # a comment to the end of the line
    r"|(\?)"  # a positional placeholder
    r"|(?<![:\w]):([A-Za-z_]\w*)"  # a named placeholder (not ::type, not a:b)
    r"|(%)",  # a literal percent sign
)
_BLOB_LITERAL = re.compile(r"(?<![\w'])[xX]'([0-9A-Fa-f]*)'")
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+\"?(\w+)\"?", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_ON_CONFLICT = re.compile(r"\bON\s+CONFLICT\b", re.IGNORECASE)
_AS_REAL = re.compile(r"\bAS\s+REAL\s*\)", re.IGNORECASE)
_IS_NOT_VALUE = re.compile(r"\bIS\s+NOT\s+(?=%s|%\()", re.IGNORECASE)
_IS_VALUE = re.compile(r"\bIS\s+(?=%s|%\()", re.IGNORECASE)


@lru_cache(maxsize=4096)
def translate(sql: str, identity_tables: frozenset[str]) -> tuple[str, bool]:
    """``sql`` for psycopg, and whether it returns the new row's ``id`` (``lastrowid``)."""
    text = _placeholders(_BLOB_LITERAL.sub(r"'\\x\1'::bytea", sql))
    text = _AS_REAL.sub("AS DOUBLE PRECISION)", text)
    text = _IS_NOT_VALUE.sub("IS DISTINCT FROM ", text)
    text = _IS_VALUE.sub("IS NOT DISTINCT FROM ", text)
    ignore = _INSERT_OR_IGNORE.match(text)
    if ignore:
        text = "INSERT INTO" + text[ignore.end() :]
    insert = _INSERT_INTO.match(text)
    if insert is None:
        return text, False
    body = text.rstrip().rstrip(";")
    returning = _RETURNING.search(body)
    tail = ""
    if returning:
        body, tail = body[: returning.start()].rstrip(), " " + body[returning.start() :]
    if ignore and not _ON_CONFLICT.search(body):
        body += " ON CONFLICT DO NOTHING"
    if not tail and insert.group(1).lower() in identity_tables:
        return body + " RETURNING id", True
    return body + tail, False


def _placeholders(sql: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(4):
            return "%s"
        if match.group(5):
            return f"%({match.group(5)})s"
        if match.group(6):
            return "%%"
        if match.group(1):  # psycopg reads every % as a placeholder, quoted or not
            return match.group(1).replace("%", "%%")
        return match.group(0)

    return _TOKEN.sub(replace, sql)


def script_statements(script: str) -> list[str]:
    """A script's statements (``executescript``), split on semicolons outside quotes, comments
    and dollar-quoted bodies."""
    statements, current, i = [], [], 0
    pattern = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\$\$.*?\$\$|;", re.DOTALL)
    for match in pattern.finditer(script):
        current.append(script[i : match.start()])
        if match.group(0) == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(match.group(0))
        i = match.end()
    current.append(script[i:])
    statements.append("".join(current).strip())
    return [statement for statement in statements if statement]
