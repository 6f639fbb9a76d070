"""The workload generator: transactions arriving while the workload runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.protocols.base import TransactionProtocol
    from sim.scenario import WorkloadSpec
    from sim.world.core import World


class Workload:
    """Starts a transaction at each arrival in ``[0, duration)``.

    An arrival the protocol cannot accept (its coordinator is down) is
    counted in ``rejected`` and is not a transaction: nothing was started.
    """

    def __init__(self, world: World, spec: WorkloadSpec, duration: float, protocol: TransactionProtocol) -> None:
        self.world = world
        self.protocol = protocol
        self.duration = duration
        self.limit = spec.limit if spec.limit is not None else -1
        self._gap = world.streams.sampler("workload.interarrival", spec.interarrival.built)
        self.started: list[tuple[int, float]] = []
        self.rejected = 0
        self._schedule_next()

    def _schedule_next(self) -> None:
        gap = self._gap()
        if self.world.env._now + gap < self.duration:
            self.world.at(gap, self._arrive)

    def _arrive(self, _arg: Any = None) -> None:
        world = self.world
        txn = world.new_transaction()
        if self.protocol.start(txn):
            self.started.append((txn, world.env._now))
        else:
            self.rejected += 1
            if world.tracer.on:
                world.tracer.emit(world.now, "client", "rejected", txn)
        if len(self.started) + self.rejected != self.limit:
            self._schedule_next()
