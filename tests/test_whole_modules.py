"""The suite's xdist scheduler (tests/whole_modules.py): whole modules, longest first."""

from __future__ import annotations

from tests import module_seconds
from tests.whole_modules import WholeModuleWorkStealing


class Node:
    """A stand-in for an xdist worker: records the tests it was sent."""

    shutting_down = False

    def __init__(self) -> None:
        self.sent: list[int] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)


def scheduler(collection: list[str], nodes: list[Node]) -> WholeModuleWorkStealing:
    """The scheduler with its collection in place (xdist's start-up handshake skipped)."""
    scheduling = object.__new__(WholeModuleWorkStealing)
    scheduling.collection = collection
    scheduling.pending = list(range(len(collection)))
    scheduling.node2pending = {node: [] for node in nodes}
    scheduling.steal_requested_from_node = None
    return scheduling


def test_modules_go_out_whole_and_longest_first(monkeypatch):
    monkeypatch.setattr(
        module_seconds, "SECONDS", {"test_long.py": 90.0, "test_mid.py": 20.0, "test_a.py": 5.0}
    )
    # pytest moved test_a's browser test away from its plain ones; test_b is unknown (10 s),
    # as is test_c: equal times must not interleave them.
    collection = [
        "tests/test_a.py::one",
        "tests/test_b.py::one",
        "tests/test_c.py::one",
        "tests/test_b.py::two",
        "tests/test_c.py::two",
        "tests/test_long.py::one",
        "tests/test_long.py::two",
        "tests/test_mid.py::one",
        "tests/test_mid.py::two",
        "tests/test_a.py::browser",
    ]
    first, second = Node(), Node()
    scheduling = scheduler(collection, [first, second])
    scheduling._order()
    scheduling.check_schedule()
    named = [collection[i] for i in first.sent], [collection[i] for i in second.sent]
    assert named == (
        ["tests/test_long.py::one", "tests/test_long.py::two"],
        ["tests/test_mid.py::one", "tests/test_mid.py::two"],
    )
    # The first worker is on its module's last test: it gets the next module, whole.
    scheduling.node2pending[first].remove(first.sent[0])
    scheduling.check_schedule()
    assert [collection[i] for i in first.sent[2:]] == [
        "tests/test_b.py::one",
        "tests/test_b.py::two",
    ]
    scheduling.node2pending[second].remove(second.sent[0])
    scheduling.check_schedule()
    assert [collection[i] for i in second.sent[2:]] == [
        "tests/test_c.py::one",
        "tests/test_c.py::two",
    ]
    remaining = [collection[i] for i in scheduling.pending]
    assert remaining == ["tests/test_a.py::one", "tests/test_a.py::browser"]
