"""The tracer: a flat list of event records, free when switched off.

Hot paths test ``tracer.on`` before building a record, so a run without
``--trace`` pays one attribute read per site and nothing else.

A message's ends carry structured fields, so readers (the swimlane, the
explanation, exports) never parse ``detail``, which stays human text:
``peer`` is the other node (the destination of a send, the source of a
receipt), ``message`` the kind of message on the wire (``req``, ``rep``,
``prepare``, ``vote``, ``commit``, ``abort``, ``query``, ``ack``, ``pub``,
``evt``...), ``direction`` says which end this is (``out``: sent, dropped or
duplicated by the sender's side; ``in``: received, or dropped at a down
receiver), and ``attempt`` the sender's attempt number where the emitting
node knows it (a command's attempt, a delivery's number, a publish's try).
Events of no transaction have ``txn_id`` None; events of no step, ``step``
None.
"""

from __future__ import annotations

from typing import NamedTuple

#: ``direction`` of a message's sending end, and of its receiving end.
OUT, IN = "out", "in"


class TraceEvent(NamedTuple):
    """One row of ``events.parquet``."""

    time: float
    node: str
    kind: str
    txn_id: int | None
    step: str | None
    detail: str
    peer: str | None = None
    message: str | None = None
    direction: str | None = None
    attempt: int | None = None


class Tracer:
    """Collects :class:`TraceEvent` records when ``on``."""

    __slots__ = ("on", "events")

    def __init__(self, on: bool = False) -> None:
        self.on = on
        self.events: list[TraceEvent] = []

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
        self.events.append(
            TraceEvent(time, node, kind, txn_id, step or None, detail, peer, message, direction, attempt)
        )
