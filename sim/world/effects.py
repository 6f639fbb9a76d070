"""Ground truth: every effect a participant applied to its durable state.

The checker reads this and nothing a coordinator believes. An effect is
``(time, step_index, op, participant)`` with ``op`` 0 for the forward
operation and 1 for its compensation. No-ops (a duplicate suppressed by an
idempotency table, a compensation with nothing to undo) are not effects.

Two-phase commit records its participants' durable decisions here too: a
participant forcing its prepared record (``PREPARED``, it voted yes and is in
doubt), committing (``FORWARD``: the step's effect applied) and aborting
(``ABORT``: the step's work discarded, a durable abort record). The checker
judges atomic commit and termination from these alone.
"""

from __future__ import annotations

from typing import NamedTuple

FORWARD = 0
COMPENSATE = 1
ABORT = 2
PREPARED = 3


class Effect(NamedTuple):
    time: float
    step: int
    op: int
    participant: str


class EffectLog:
    """Effects per transaction id, in the order they were applied."""

    __slots__ = ("by_txn",)

    def __init__(self) -> None:
        self.by_txn: list[list[tuple[float, int, int, str]]] = []

    def open(self, txn: int) -> None:
        self.by_txn.append([])

    def apply(self, time: float, txn: int, step: int, op: int, participant: str) -> None:
        # A plain tuple, not an Effect: building it is cheaper, and the cyclic
        # GC stops tracking exact tuples of atoms, so a long run's effects
        # cost nothing in later collections.
        self.by_txn[txn].append((time, step, op, participant))

    def of(self, txn: int) -> list[Effect]:
        return list(map(Effect._make, self.by_txn[txn]))
