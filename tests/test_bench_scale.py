"""bench/scale.py runs end to end at a tiny size, on SQLite and on three PostgreSQL replicas
(one replica is the same code), so that it does not rot.

The figures are not looked at (a benchmark's figures are printed, never asserted); only that
every set-up answered, that the claims, the dashboard and the arrivals worked on both engines,
and that the table is printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def scale():
    sys.path.insert(0, str(BENCH))
    try:
        import scale

        yield scale
    finally:
        sys.path.remove(str(BENCH))


def test_the_scale_benchmark_prints_its_table_at_a_tiny_size(scale, capsys):
    argv = ["--consultations", "500", "--facilities", "6", "--readers", "4", "--senders", "2",
            "--managers", "1", "--open", "40", "--seconds", "1", "--poll", "0.3",
            "--claim-every", "0.5", "--send-every", "0.5", "--dashboard-every", "0.3",
            "--in-process", "--setups", "sqlite,pg3"]  # fmt: skip
    assert scale.main(argv) == 0
    out = capsys.readouterr().out
    assert "SQLite, 1 process" in out and "PG, 3 replicas" in out
    rows = {line[:34].strip(): line[34:].split() for line in out.splitlines() if line[:34].strip()}
    assert len(rows["worklist p95 (ms)"]) == 2
    for kind in ("worklist", "claim", "dashboard"):
        for cell in rows[f"{kind}: answered/refused"]:
            answered, refused = map(int, cell.split("/"))
            assert answered > 0 and refused == 0, (kind, out)
    for cell in rows["studies listed/later (1)"]:  # "later" is the machine's load, not a fault
        assert int(cell.split("/")[0]) > 0, out
