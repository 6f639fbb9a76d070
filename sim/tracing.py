"""Tracing chosen transactions of a long run (``--trace-txn``, the
violations, a sample), in memory that grows with what is kept.

:class:`ChosenTracer` is a :class:`~sim.world.trace.Tracer` that is on for
every event but keeps only: the events of no transaction (crashes, restarts,
faults: what ``sagasim explain`` needs to tell a story), the events of the
transactions named up front, and the events of the transactions that the
streamed run (:mod:`sim.stream`) decides to keep when it judges them. Until a
transaction is judged its events wait in a buffer of their own, so the buffer
holds the transactions in flight, not the run. Kept events come out in the
order they were emitted.
"""

from __future__ import annotations

from sim.world.trace import TraceEvent, Tracer


class _Chooser(list):  # type: ignore[type-arg]
    """What a :class:`ChosenTracer` collects into while the run goes: the
    tracer appends every event here, as any tracer does, and this keeps or
    buffers it (so the one place an event is built stays ``Tracer.emit``)."""

    def __init__(self, tracer: ChosenTracer) -> None:
        super().__init__()
        self.tracer = tracer

    def append(self, event: TraceEvent) -> None:
        tracer = self.tracer
        tracer._seq += 1
        entry = (tracer._seq, event)
        txn_id = event.txn_id
        if txn_id is None or txn_id in tracer.txns:
            tracer._kept.append(entry)
        elif tracer.decide_on_judging:
            tracer._waiting.setdefault(txn_id, []).append(entry)


class ChosenTracer(Tracer):
    """A tracer that keeps the events of chosen transactions only."""

    def __init__(self, txns: frozenset[int] = frozenset(), decide_on_judging: bool = False) -> None:
        super().__init__(True)
        self.txns = txns
        #: buffer every transaction's events until it is judged (see :meth:`judged`)
        self.decide_on_judging = decide_on_judging
        self._kept: list[tuple[int, TraceEvent]] = []
        self._waiting: dict[int, list[tuple[int, TraceEvent]]] = {}
        self._seq = 0
        self.events = _Chooser(self)

    def judged(self, txn: int, keep: bool) -> None:
        """``txn`` was judged: keep its events or drop them."""
        waiting = self._waiting.pop(txn, None)
        if keep and waiting:
            self._kept.extend(waiting)

    def finish(self) -> None:
        """Put the kept events, in the order they were emitted, into ``events``."""
        for txn in list(self._waiting):
            self.judged(txn, False)
        self._kept.sort(key=lambda entry: entry[0])
        self.events = [event for _, event in self._kept]
        self._kept = []
