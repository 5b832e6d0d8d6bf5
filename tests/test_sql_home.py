"""Every SQL statement lives in ``service/storage/``: domain and web code call named storage
functions, never a database cursor.

One home for SQL keeps facility scoping, transactions and a future PostgreSQL backend in one
place (docs/architecture.md). The rule is checked on the syntax tree, so it names the file and
line of a stray statement rather than trusting a grep: a call of ``.execute(``,
``.executescript(``, ``.executemany(`` or ``.query(``, or a string literal that begins (after
whitespace) with a SQL keyword, anywhere in ``service/`` outside ``service/storage/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1] / "service"
ROOT = SERVICE.parent
STORAGE = SERVICE / "storage"
CURSOR_CALLS = {"execute", "executescript", "executemany", "query"}
# A keyword with more after it: a bare "DELETE" is the HTTP method sent to Orthanc, not SQL.
SQL_START = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|WITH|REPLACE)\s+\S")


def sql_text(node: ast.AST) -> str | None:
    """The literal text a string node starts with (an f-string's leading constant part)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        return sql_text(node.values[0])
    return None


def sql_sites(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line what`` for each cursor call or SQL string literal in one source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(root)
    inside_fstrings = {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    sites = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CURSOR_CALLS
        ):
            sites.append((node.lineno, f"call of .{node.func.attr}("))
        elif isinstance(node, ast.JoinedStr | ast.Constant) and id(node) not in inside_fstrings:
            text = sql_text(node)
            if text is not None and SQL_START.match(text):
                sites.append((node.lineno, f"SQL literal {text.strip()[:40]!r}"))
    return [f"{where}:{line} {what}" for line, what in sorted(sites)]


def domain_sources() -> list[Path]:
    return sorted(p for p in SERVICE.rglob("*.py") if STORAGE not in p.parents)


def test_no_sql_outside_service_storage():
    """No module of service/ outside storage/ runs or spells a SQL statement."""
    sites = [site for path in domain_sources() for site in sql_sites(path)]
    assert not sites, "SQL outside service/storage/ (move it into a storage function):\n" + (
        "\n".join(sites)
    )


def test_the_check_names_a_cursor_call_and_a_sql_literal_by_line(tmp_path):
    """The walker bites: a planted statement is named with its line; a plain word is not."""
    probe = tmp_path / "service" / "probe.py"
    probe.parent.mkdir()
    probe.write_text(
        "def f(db):\n"
        "    note = 'Select a study'\n"
        "    verb = 'DELETE'\n"
        "    return db.execute(\n"
        '        f"  SELECT id FROM {note}"\n'
        "    )\n",
        encoding="utf-8",
    )
    assert sql_sites(probe, root=tmp_path) == [
        "service/probe.py:4 call of .execute(",
        "service/probe.py:5 SQL literal 'SELECT id FROM'",
    ]
