"""The tracer: a flat list of event records, free when switched off.

Hot paths test ``tracer.on`` before building a record, so a run without
``--trace`` pays one attribute read per site and nothing else.
"""

from __future__ import annotations

from typing import NamedTuple


class TraceEvent(NamedTuple):
    """One row of ``events.parquet``."""

    time: float
    node: str
    kind: str
    txn_id: int
    step: str
    detail: str


class Tracer:
    """Collects :class:`TraceEvent` records when ``on``."""

    __slots__ = ("on", "events")

    def __init__(self, on: bool = False) -> None:
        self.on = on
        self.events: list[TraceEvent] = []

    def emit(self, time: float, node: str, kind: str, txn_id: int = -1, step: str = "", detail: str = "") -> None:
        self.events.append(TraceEvent(time, node, kind, txn_id, step, detail))
