"""The workload generator: transactions arriving while the workload runs."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sim.scenario import KeysSpec, WorkloadSpec
    from sim.world.core import World


class Starter(Protocol):
    """What the workload starts transactions with (a protocol, or the runner's wrapper of one)."""

    def start(self, txn: int) -> bool:
        """Start transaction ``txn``; False if it was turned away."""


class TxnKeys:
    """The keys each transaction touches (``[workload.keys]``).

    ``of(txn)[step]`` is the tuple of keys step ``step`` touches at its
    participant (each participant has its own key space). Drawn at every
    arrival, rejected ones included, from the stream ``workload.keys``, so
    every protocol meets the same keys for a seed. Without ``[workload.keys]``
    nothing is drawn and every transaction touches no key.
    """

    def __init__(self, world: World, spec: KeysSpec | None, steps: int) -> None:
        self.spec = spec
        self.steps = steps
        self.by_txn: dict[int, tuple[tuple[int, ...], ...]] = {}
        if spec is None:
            return
        self._uniform = world.streams.uniform("workload.keys")
        self.population = spec.population
        self._cdf: list[float] | None = None
        if spec.skew > 0.0:
            weights = [1.0 / (k + 1) ** spec.skew for k in range(spec.population)]
            total = sum(weights)
            self._cdf = [w / total for w in accumulate(weights)]

    def _key(self) -> int:
        u = self._uniform()
        if self._cdf is None:
            return int(u * self.population)
        return min(bisect_right(self._cdf, u), self.population - 1)

    def draw(self, txn: int) -> None:
        spec = self.spec
        if spec is None:
            return
        per = spec.per_step
        self.by_txn[txn] = tuple(tuple(self._key() for _ in range(per)) for _ in range(self.steps))

    def forget(self, txn: int) -> None:
        """Free ``txn``'s keys: it was judged in a run judged as it goes, and
        no step of it can come any more."""
        self.by_txn.pop(txn, None)

    def of(self, txn: int) -> tuple[tuple[int, ...], ...]:
        """The keys of ``txn`` per step (empty without ``[workload.keys]``)."""
        return self.by_txn.get(txn, ())


class Workload:
    """Starts a transaction at each arrival in ``[0, duration)``.

    An arrival the protocol cannot accept (its coordinator is down) is
    counted in ``rejected`` and is not a transaction: nothing was started.
    """

    def __init__(
        self,
        world: World,
        spec: WorkloadSpec,
        duration: float,
        protocol: Starter,
        keys: TxnKeys | None = None,
    ) -> None:
        self.world = world
        self.keys = keys
        self.protocol = protocol
        self.duration = duration
        self.limit = spec.limit if spec.limit is not None else -1
        self._gap = world.streams.sampler("workload.interarrival", spec.interarrival.built)
        #: (transaction id, start) of the transactions started (and not yet
        #: taken by a streamed run, :mod:`sim.stream`)
        self.started: list[tuple[int, float]] = []
        self.rejected = 0
        self._schedule_next()

    def _schedule_next(self) -> None:
        gap = self._gap()
        if self.world.env._now + gap < self.duration:
            self.world.at(gap, self._arrive)

    def _arrive(self, _arg: Any = None) -> None:
        txn = self.start_one()
        # Every arrival takes the next id, started or rejected (a streamed
        # run empties ``started`` as it goes: sim.stream).
        if txn + 1 != self.limit:
            self._schedule_next()

    def start_one(self) -> int:
        """One arrival now, apart from the arrival process (a live run starts
        transactions on demand this way): its transaction id, started or
        rejected (see :attr:`started` and :attr:`rejected`)."""
        world = self.world
        txn = world.new_transaction()
        if self.keys is not None:
            self.keys.draw(txn)
        if self.protocol.start(txn):
            self.started.append((txn, world.env._now))
        else:
            self.rejected += 1
            if world.tracer.on:
                world.tracer.emit(world.now, "client", "rejected", txn)
        return txn
