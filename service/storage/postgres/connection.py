"""A PostgreSQL connection that answers the storage functions as a ``sqlite_utils.Database`` does.

The storage functions use a small surface: ``db.execute(sql, params)`` (a cursor with
``fetchone``, ``fetchall``, ``rowcount``, ``lastrowid``, iteration), ``db.query(sql, params)``
(dicts), ``db.executescript(sql)``, and on ``db.conn`` ``execute``, ``executemany``, ``cursor()``,
``in_transaction`` and ``total_changes``. Rows behave as ``sqlite3.Row``: by position, by column
name, ``keys()``, unpacking. Keeping that surface means one storage function, two engines.

``dialect`` is ``"postgresql"`` (``sqlite_utils.Database`` has none: see
:func:`service.storage.dialects.is_postgres`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import TransactionStatus

from .dialect import script_statements, translate

Params = Sequence[Any] | Mapping[str, Any] | None


class Row(tuple):
    """A result row read by position or by column name, like ``sqlite3.Row``."""

    __slots__ = ()
    _index: dict[str, int] = {}
    _names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


_ROW_CLASSES: dict[tuple[str, ...], type[Row]] = {}


def _row_class(names: tuple[str, ...]) -> type[Row]:
    cls = _ROW_CLASSES.get(names)
    if cls is None:
        index = {name: i for i, name in reversed(list(enumerate(names)))}
        cls = type("Row", (Row,), {"__slots__": (), "_index": index, "_names": names})
        _ROW_CLASSES[names] = cls
    return cls


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    description = cursor.description
    if description is None:
        return tuple
    cls = _row_class(tuple(column.name for column in description))
    return cls


class BoolAsInteger(Dumper):
    """Python booleans as 0 and 1: the schema keeps SQLite's integer flags (``disabled = ?``)."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class NumericAsNumber(Loader):
    """NUMERIC as SQLite answers it: an integer when whole (``sum`` of integers), else a float
    (``avg``, ``round``), never a ``Decimal`` that JSON and arithmetic with floats refuse."""

    def load(self, data: Any) -> int | float:
        text = bytes(data)
        return float(text) if b"." in text or b"e" in text.lower() else int(text)


class Cursor:
    """The answer to one statement: sqlite3's cursor surface over psycopg's."""

    def __init__(self, cursor: psycopg.Cursor[Any], returns_id: bool) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid: int | None = None
        self._held: list[Any] | None = None
        if returns_id:
            rows = cursor.fetchall()
            self._held = []
            if rows:
                self.lastrowid = int(rows[-1][0])

    def fetchone(self) -> Any:
        if self._held is not None:
            return self._held.pop(0) if self._held else None
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        if self._held is not None:
            rows, self._held = self._held, []
            return rows
        return self._cursor.fetchall() if self._cursor.description else []

    def fetchmany(self, size: int) -> list[Any]:
        if self._held is not None:
            rows, self._held = self._held[:size], self._held[size:]
            return rows
        return self._cursor.fetchmany(size) if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        while (row := self.fetchone()) is not None:
            yield row

    @property
    def description(self) -> Any:
        return self._cursor.description


class RawCursor:
    """``db.conn.cursor()``: executes, then reads the last statement's rows (sqlite3's way)."""

    row_factory: Any = None  # sqlite3 code sets it to None for plain tuples: rows are tuples

    def __init__(self, owner: PostgresConnection) -> None:
        self._owner = owner
        self._last: Cursor | None = None

    def execute(self, sql: str, params: Params = None) -> RawCursor:
        self._last = self._owner.execute(sql, params)
        return self

    def executemany(self, sql: str, rows: Iterable[Any]) -> RawCursor:
        self._last = self._owner.executemany(sql, rows)
        return self

    def fetchone(self) -> Any:
        return self._last.fetchone() if self._last else None

    def fetchall(self) -> list[Any]:
        return self._last.fetchall() if self._last else []

    def fetchmany(self, size: int) -> list[Any]:
        return self._last.fetchmany(size) if self._last else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self._last) if self._last else iter(())

    @property
    def rowcount(self) -> int:
        return self._last.rowcount if self._last else -1


class RawConnection:
    """``db.conn``: the handful of ``sqlite3.Connection`` methods the storage functions use."""

    def __init__(self, owner: PostgresConnection) -> None:
        self._owner = owner

    def execute(self, sql: str, params: Params = None) -> Cursor:
        return self._owner.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Any]) -> Cursor:
        return self._owner.executemany(sql, rows)

    def cursor(self) -> RawCursor:
        return RawCursor(self._owner)

    @property
    def in_transaction(self) -> bool:
        return self._owner.pg.info.transaction_status != TransactionStatus.IDLE

    @property
    def total_changes(self) -> int:
        return self._owner.total_changes

    def close(self) -> None:
        self._owner.close()


class PostgresConnection:
    """One psycopg connection (autocommit: transactions are begun and ended explicitly, as on
    SQLite) with the sqlite-utils surface of the storage functions."""

    dialect = "postgresql"

    def __init__(self, url: str, identity_tables: frozenset[str] | None = None) -> None:
        self.pg = psycopg.connect(url, autocommit=True, row_factory=_row_factory)
        self.pg.adapters.register_dumper(bool, BoolAsInteger)
        self.pg.adapters.register_loader("numeric", NumericAsNumber)
        self.total_changes = 0
        self.conn = RawConnection(self)
        self.identity_tables = identity_tables or frozenset()

    def execute(self, sql: str, params: Params = None) -> Cursor:
        text, returns_id = translate(sql, self.identity_tables)
        cursor = self.pg.cursor()
        try:
            cursor.execute(text, _params(params), prepare=False)
        except psycopg.Error as exc:
            exc.add_note(f"in: {text}")  # the statement, never its parameters (patient data)
            raise
        if cursor.rowcount > 0 and _changes(text):
            self.total_changes += cursor.rowcount
        return Cursor(cursor, returns_id)

    def executemany(self, sql: str, rows: Iterable[Any]) -> Cursor:
        text, _ = translate(sql, frozenset())
        cursor = self.pg.cursor()
        rows = list(rows)
        if rows:
            cursor.executemany(text, [_params(row) for row in rows])
            self.total_changes += max(cursor.rowcount, len(rows))
        return Cursor(cursor, False)

    def query(self, sql: str, params: Params = None) -> Iterator[dict[str, Any]]:
        cursor = self.execute(sql, params)
        for row in cursor.fetchall():
            yield dict(zip(row.keys(), row, strict=True))

    def executescript(self, script: str) -> None:
        """Each statement as it is (DDL: no placeholders, no translation)."""
        for statement in script_statements(script):
            self.pg.execute(statement.encode(), prepare=False)

    def close(self) -> None:
        self.pg.close()


def _params(params: Params) -> Sequence[Any] | Mapping[str, Any]:
    """PostgreSQL's text cannot hold NUL (SQLite's can): a NUL is dropped from text given to
    it (a DICOM value's padding, a fuzzer's query), rather than failing the statement."""
    if params is None:
        return ()
    if isinstance(params, Mapping):
        return {key: _storable(value) for key, value in params.items()}
    return tuple(_storable(value) for value in params)


def _storable(value: Any) -> Any:
    if isinstance(value, str) and "\0" in value:
        return value.replace("\0", "")
    return value


def _changes(sql: str) -> bool:
    head = sql.lstrip()[:7].upper()
    return head.startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))
