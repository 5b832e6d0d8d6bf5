"""The modules ``make test`` runs on both engines (tests/backends.py) open their databases on the
engine under test: a fixture or test that opened a SQLite database of its own would run on
SQLite twice, and hide what fails on PostgreSQL only (ATNA forwarding on PostgreSQL stopped after
one record, and the test that would have shown it opened a SQLite file)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from .backends import BOTH_BACKENDS, BOTH_BACKENDS_CASES, BOTH_BACKENDS_TESTS

#: Opening a SQLite database directly: ``Database(...)`` (not ``PostgresDatabase``), a
#: ``sqlite_utils.Database`` or a ``sqlite3`` connection.
OWN_SQLITE = re.compile(r"(?<![\w.])Database\(|sqlite_utils\.Database\(|sqlite3\.connect\(")


def own_sqlite_openings(source: str) -> list[str]:
    """The functions of a module's source (fixtures, tests, helpers, methods) that open a SQLite
    database directly, except those marked ``sqlite_file`` (they check the file itself)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if any("sqlite_file" in ast.unparse(d) for d in node.decorator_list):
            continue
        body = "\n".join(ast.unparse(statement) for statement in node.body)
        if OWN_SQLITE.search(body):
            found.append(node.name)
    return found


@pytest.mark.parametrize("module", sorted(BOTH_BACKENDS))
def test_a_both_engines_module_opens_no_sqlite_database_of_its_own(module):
    source = (Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8")
    assert own_sqlite_openings(source) == [], "use backends.database_at or connection_at"


def test_the_check_finds_a_fixture_that_opens_a_file_and_spares_a_marked_test():
    source = (
        "@pytest.fixture\n"
        "def database(tmp_path):\n"
        "    return Database(tmp_path / 't.db')\n"
        "@pytest.mark.sqlite_file\n"
        "def test_the_file(tmp_path):\n"
        "    sqlite3.connect(tmp_path / 't.db')\n"
        "def test_elsewhere(tmp_path):\n"
        "    return database_at(tmp_path / 't.db'), PostgresDatabase(url, tmp_path)\n"
    )
    assert own_sqlite_openings(source) == ["database"]


@pytest.mark.parametrize("test", sorted(BOTH_BACKENDS_CASES))
def test_the_cases_chosen_for_postgresql_are_cases_of_a_chosen_test(test):
    """A renamed case or test would leave the PostgreSQL share silently smaller: each name in
    ``BOTH_BACKENDS_CASES`` is a case of a test of ``BOTH_BACKENDS_TESTS``."""
    assert test in BOTH_BACKENDS_TESTS
    module, function = test.split("::")
    marks = getattr(importlib.import_module(f"tests.{module}"), function).pytestmark
    [values] = [mark.args[1] for mark in marks if mark.name == "parametrize"]
    assert BOTH_BACKENDS_CASES[test] <= {str(value) for value in values}
