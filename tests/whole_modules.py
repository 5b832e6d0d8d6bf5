"""Work stealing that never splits a test module between pytest-xdist workers.

``make test`` runs ``--dist worksteal``: the collection is first cut into contiguous blocks, one
per worker, and an idle worker later takes the second half of the busiest worker's queue. Both
cuts fell anywhere, also inside a module. A module whose tests share one world (one Orthanc,
one app: tests/module_app.py) then built it twice, and a module whose tests tell one story in
order (sign, then review, then approve...) failed on the worker that got only its end. Here
every cut falls on a module boundary; the rest is xdist's own scheduler.
"""

from __future__ import annotations

from xdist.scheduler.worksteal import MIN_PENDING, NodePending, WorkStealingScheduling


class WholeModuleWorkStealing(WorkStealingScheduling):
    def _module(self, index: int) -> str:
        assert self.collection is not None
        return self.collection[index].split("::", 1)[0]

    def _send_tests(self, node, num: int) -> None:  # type: ignore[no-untyped-def]
        """A block handed out ends where a module ends."""
        pending = self.pending
        while 0 < num < len(pending) and self._module(pending[num]) == self._module(
            pending[num - 1]
        ):
            num += 1
        super()._send_tests(node, num)

    def _whole_module_tail(self, queue: list[int], wanted: int) -> int:
        """How many of ``queue``'s last tests to steal: at most ``wanted``, starting a module."""
        start = len(queue) - wanted
        while 0 < start < len(queue) and self._module(queue[start]) == self._module(
            queue[start - 1]
        ):
            start += 1
        return len(queue) - start

    def check_schedule(self) -> None:
        """xdist's check_schedule, with the stolen tail cut at a module's start."""
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
            for i, node in enumerate(idle_nodes):
                self._send_tests(node, len(self.pending) // (len(idle_nodes) - i))
            idle_nodes = idle()
            if not idle_nodes:
                return
        if self.steal_requested_from_node is not None:
            return
        steal_from = max(nodes_up, key=lambda n: len(n.pending), default=None)
        num_steal = 0
        if steal_from is not None:
            wanted = min(
                len(steal_from.pending) // 2, max(0, len(steal_from.pending) - MIN_PENDING)
            )
            if wanted:
                num_steal = self._whole_module_tail(steal_from.pending, wanted)
        if num_steal == 0:
            for node in idle_nodes:
                node.shutdown()
            return
        assert steal_from is not None
        steal_from.node.send_steal(steal_from.pending[-num_steal:])
        self.steal_requested_from_node = steal_from.node
