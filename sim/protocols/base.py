"""What the runner needs from a protocol."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from sim.world.node import Node

#: Idempotency keys are ``txn * KEY_STRIDE + step``; a transaction has at most this many steps.
KEY_STRIDE = 64


class CoordinatorView(NamedTuple):
    """What the coordinator believes about one transaction at the end of a run.

    Only liveness (``terminal``) and timing come from here; the checker decides
    the outcome from effects alone.
    """

    terminal: bool
    finished_at: float
    belief: str
    retries: int


class TransactionProtocol(Protocol):
    """A protocol as the runner drives it.

    Optional, for judging as the run goes (:mod:`sim.world.settle`):
    ``settles = True`` when every piece of work that can still change a
    transaction after its coordinator is done is counted by the engine, and
    ``forget(txn)`` to drop the records of a transaction already judged.
    A protocol whose participants keep state of their own that can still
    change a transaction (2PC's prepared records, locks and in-doubt timers)
    adds ``quiet(txn)``: whether none of it is left for ``txn``; the
    transaction is settled only when that is true too.
    Without them a protocol's transactions are judged at the end of the run.
    """

    name: str

    def start(self, txn: int) -> bool:
        """Begin transaction ``txn`` now; ``False`` if it could not be accepted."""
        ...

    def view(self, txn: int) -> CoordinatorView:
        """The coordinator's state for ``txn``."""
        ...

    def nodes(self) -> list[Node]:
        """The protocol's own nodes (faults may target them)."""
        ...

    def summary_extra(self) -> dict[str, Any]:
        """Protocol-specific columns of ``summary.parquet`` (counters of the run)."""
        ...
