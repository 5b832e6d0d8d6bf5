"""Every storage function that speaks SQL runs on both engines in ``make test``.

The whole suite runs on SQLite and, in ``make test``, a share of it on PostgreSQL too (the modules
of ``tests.backends.BOTH_BACKENDS`` and the tests of ``BOTH_BACKENDS_TESTS``, beside the tests of
PostgreSQL itself): the whole suite twice would not fit its minutes. This gate says whether that
share is enough: while the suite runs, each SQL statement is traced back to the function of
``service/storage/`` that issued it (the innermost frame in a storage module), per engine; at
the end, every function whose body calls ``execute``, ``executemany``, ``query`` or
``executescript`` must have run on each engine, or the run fails naming the functions that did
not. So a new storage function, or a module moved off PostgreSQL, cannot leave SQL that no test
ran on one of the engines.

``make test`` turns it on (``TELEREAD_STORAGE_GATE=1``); a run of a few tests does not check.
``TELEREAD_STORAGE_GATE_REPORT=path`` also writes, per function, the tests that ran it on each
engine (what choosing the PostgreSQL share is made from).
"""

from __future__ import annotations

import ast
import json
import os
import sqlite3
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import service.storage

STORAGE = Path(service.storage.__file__).parent
#: Modules of service/storage/ that are the engines' plumbing, not storage functions: their SQL
#: is run by every test of either engine (database.py, the migrations), or belongs to one engine
#: by nature (PostgreSQL's leases and LISTEN/NOTIFY channel, which have tests of their own).
PLUMBING = frozenset(
    {"database.py", "schema.py", "opening.py", "leases.py", "replica_channel.py", "dialects.py"}
)
SQL_CALLS = frozenset({"execute", "executemany", "query", "executescript"})
#: Functions only ``teleread`` commands run, in child processes the tracer does not reach (each
#: is run there by the test named).
CHILD_PROCESS_ONLY: dict[str, str] = {
    "audit.py:append_only_triggers_present": "teleread audit verify (test_audit_anchor, both)",
    "users.py:set_grade": "teleread user grade (test_reader_grades)",
    "users.py:count_users": "teleread serve --demo, teleread demo (test_cli)",
    "consultations.py:received_by_accession": "teleread serve --demo (test_cli)",
}

ENABLED = "TELEREAD_STORAGE_GATE"
DIRECTORY = "TELEREAD_STORAGE_GATE_DIR"
REPORT = "TELEREAD_STORAGE_GATE_REPORT"


def sql_functions() -> set[str]:
    """``file:qualname`` of every function in service/storage/*.py whose own body calls one
    of :data:`SQL_CALLS` (read from the source: what must have run)."""
    found: set[str] = set()
    for path in sorted(STORAGE.glob("*.py")):
        if path.name in PLUMBING or path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text("utf-8"))
        _collect(tree, path.name, [], found)
    return found


def _collect(node: ast.AST, file: str, scope: list[str], found: set[str]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            inner = [*scope, child.name]
            if _calls_sql(child):
                found.add(f"{file}:{'.'.join(inner)}")
            _collect(child, file, [*inner, "<locals>"], found)
        elif isinstance(child, ast.ClassDef):
            _collect(child, file, [*scope, child.name], found)
        else:
            _collect(child, file, scope, found)


def _calls_sql(function: ast.AST) -> bool:
    """Whether the function's own statements (not those of functions inside it) call SQL."""
    pending = list(ast.iter_child_nodes(function))
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_CALLS
        ):
            return True
        pending.extend(ast.iter_child_nodes(node))
    return False


class Tracer:
    """Notes, per engine, which storage function issued each statement, and (for the report)
    in which test (``PYTEST_CURRENT_TEST``). Cheap, as it runs for every statement of the
    suite: what each code object is (a storage function's key, or not one) is worked out once."""

    def __init__(self, by_test: bool = False) -> None:
        self.seen: dict[str, dict[str, set[str]]] = {
            "sqlite": defaultdict(set),
            "postgresql": defaultdict(set),
        }
        self.by_test = by_test
        self._lock = threading.Lock()
        self._prefix = str(STORAGE) + os.sep
        self._keys: dict[Any, str | None] = {}

    def _key(self, code: Any) -> str | None:
        filename = code.co_filename
        if not filename.startswith(self._prefix):
            return None
        name = filename[len(self._prefix) :]
        if os.sep in name or name in PLUMBING:
            return None
        return f"{name}:{_function_of(code.co_qualname)}"

    def note(self, engine: str) -> None:
        frame = sys._getframe(2)
        depth = 0
        keys = self._keys
        while frame is not None and depth < 40:
            code = frame.f_code
            try:
                key = keys[code]
            except KeyError:
                key = keys[code] = self._key(code)
            if key is not None:
                seen = self.seen[engine][key]
                if self.by_test:
                    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
                    with self._lock:
                        seen.add(test)
                elif not seen:
                    seen.add("")
                return
            frame = frame.f_back
            depth += 1

    def install(self) -> None:
        """Trace every SQLite connection the service opens and every PostgreSQL statement."""
        global _active
        _active = self
        from service.storage import database
        from service.storage.postgres import connection

        connect, translate = database.connect, connection.translate

        def traced_connect(path: Path) -> Any:
            db = connect(path)
            traced(db.conn)
            return db

        def traced_translate(sql: str, *args: Any) -> Any:
            self.note("postgresql")
            return translate(sql, *args)

        database.connect = traced_connect  # type: ignore[assignment]
        connection.translate = traced_translate  # type: ignore[assignment]

    def dump(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {e: {k: sorted(v) for k, v in seen.items()} for e, seen in self.seen.items()}
            )
        )


_active: Tracer | None = None
_COMPREHENSIONS = (".<locals>.<listcomp>", ".<locals>.<genexpr>", ".<locals>.<dictcomp>",
                   ".<locals>.<setcomp>")  # fmt: skip


def _function_of(qualname: str) -> str:
    """The function a comprehension's frame belongs to (its own code object in Python 3.11)."""
    while qualname.endswith(_COMPREHENSIONS):
        qualname = qualname[: qualname.rindex(".<locals>.")]
    return qualname


def traced(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Trace a SQLite connection a test opened itself (tests/backends.connection_at), when
    the gate is on in this process."""
    if _active is not None:
        tracer = _active
        conn.set_trace_callback(lambda _sql: tracer.note("sqlite"))
    return conn


def merged(directory: Path) -> dict[str, dict[str, set[str]]]:
    result: dict[str, dict[str, set[str]]] = {
        "sqlite": defaultdict(set),
        "postgresql": defaultdict(set),
    }
    for part in directory.glob("*.json"):
        for engine, seen in json.loads(part.read_text()).items():
            for key, tests in seen.items():
                result[engine][key].update(tests)
    return result


def verdict(directory: Path) -> tuple[dict[str, list[str]], dict[str, dict[str, set[str]]]]:
    """Per engine, the SQL-speaking storage functions no test ran on it; and what ran where."""
    ran = merged(directory)
    wanted = sql_functions() - set(CHILD_PROCESS_ONLY)
    missing = {engine: sorted(wanted - set(seen)) for engine, seen in ran.items()}
    return missing, ran
