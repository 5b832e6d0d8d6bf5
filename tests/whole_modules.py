"""Scheduling that never splits a test module between pytest-xdist workers, longest first.

``make test`` runs ``--dist worksteal``. xdist's own scheduler first cuts the collection into
contiguous blocks, one per worker, and an idle worker later takes the second half of the busiest
worker's queue. Both cuts fell anywhere, also inside a module: a module whose tests share one
world (one Orthanc, one app: tests/module_app.py) then built it twice, and a module whose tests
tell one story in order (sign, then review, then approve...) failed on the worker that got only
its end. The blocks were also cut by the number of tests, not their time, in alphabetical order:
one worker got every ``test_browser_*`` module, and the suite waited for it.

Here a worker is handed one whole module at a time, when it is about to run out of work, and the
modules go out longest first by their recorded time (tests/module_seconds.py): the long ones
start at once and the short ones fill the gaps at the end. A worker that finds nothing left to
hand out takes a whole not-yet-started module from the end of another's queue, if there is one.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from xdist.scheduler.worksteal import MIN_PENDING, NodePending, WorkStealingScheduling

from .module_seconds import seconds


class WholeModuleWorkStealing(WorkStealingScheduling):
    def _module(self, index: int) -> str:
        assert self.collection is not None
        return self.collection[index].split("::", 1)[0]

    def schedule(self) -> None:
        """xdist's schedule, with the queue ordered longest module first (a stable sort: each
        module's tests keep their order)."""
        assert self.collection_is_completed
        if self.collection is not None:
            self.check_schedule()
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = next(iter(self.node2collection.values()))
        self.pending[:] = range(len(self.collection))
        if not self.collection:
            return
        self._order()
        self.check_schedule()

    def _order(self) -> None:
        weight: dict[str, float] = {}
        for index in self.pending:
            module = self._module(index)
            if module not in weight:
                weight[module] = seconds(PurePosixPath(module).name)
        # The name after the time: modules of equal time (or unknown) stay apart, and a module
        # whose tests pytest moved apart (it groups tests by a parametrised session fixture such
        # as Playwright's browser) comes back together.
        self.pending.sort(key=lambda index: (-weight[self._module(index)], self._module(index)))

    def _send_tests(self, node, num: int) -> None:  # type: ignore[no-untyped-def]
        """Whole modules from the front of the queue, until ``node`` has the two tests a worker
        needs queued to run one (``num`` is ignored: it counted tests, not modules)."""
        queued = self.node2pending[node]
        while self.pending and len(queued) < MIN_PENDING:
            end = 1
            module = self._module(self.pending[0])
            while end < len(self.pending) and self._module(self.pending[end]) == module:
                end += 1
            super()._send_tests(node, end)

    def _whole_module_tail(self, queue: list[int], wanted: int) -> int:
        """How many of ``queue``'s last tests to steal: at most ``wanted``, starting a module."""
        start = len(queue) - wanted
        while 0 < start < len(queue) and self._module(queue[start]) == self._module(
            queue[start - 1]
        ):
            start += 1
        return len(queue) - start

    def check_schedule(self) -> None:
        """xdist's check_schedule, handing out whole modules, and with the stolen tail cut at a
        module's start."""
        nodes_up = [
            NodePending(node, pending)
            for node, pending in self.node2pending.items()
            if not node.shutting_down
        ]

        def idle() -> list:
            return [node for node, pending in nodes_up if len(pending) < MIN_PENDING]

        idle_nodes = idle()
        if not idle_nodes:
            return
        if self.pending:
            for node in idle_nodes:
                self._send_tests(node, 0)
            idle_nodes = idle()
            if not idle_nodes or self.pending:
                return
        if self.steal_requested_from_node is not None:
            return
        steal_from = max(nodes_up, key=lambda n: len(n.pending), default=None)
        num_steal = 0
        if steal_from is not None:
            wanted = max(0, len(steal_from.pending) - MIN_PENDING)
            if wanted:
                num_steal = self._whole_module_tail(steal_from.pending, wanted)
        if num_steal == 0:
            for node in idle_nodes:
                node.shutdown()
            return
        assert steal_from is not None
        steal_from.node.send_steal(steal_from.pending[-num_steal:])
        self.steal_requested_from_node = steal_from.node
