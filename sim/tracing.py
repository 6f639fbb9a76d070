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

    def emit(
        self,
        time: float,
        node: str,
        kind: str,
        txn_id: int | None = None,
        step: str | None = None,
        detail: str = "",
        *,
        peer: str | None = None,
        message: str | None = None,
        direction: str | None = None,
        attempt: int | None = None,
    ) -> None:
        self._seq += 1
        event = TraceEvent(time, node, kind, txn_id, step or None, detail, peer, message, direction, attempt)
        entry = (self._seq, event)
        if txn_id is None or txn_id in self.txns:
            self._kept.append(entry)
        elif self.decide_on_judging:
            self._waiting.setdefault(txn_id, []).append(entry)

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
