"""The world: one SimPy environment with its streams, tracer, clock helpers
and the per-transaction ledgers (messages sent, effects applied).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from heapq import heappush
from typing import Any

import simpy

from sim.world.effects import EffectLog
from sim.world.rng import Streams
from sim.world.trace import Tracer

_NORMAL = 1  # simpy.events.NORMAL


class _Call:
    """A bare SimPy event that calls ``fn(arg)`` when it fires.

    Cheaper than ``env.timeout(d)`` plus a callback: no ``Event.__init__``, no
    closure, and the heap push is inlined. SimPy's step loop only reads
    ``callbacks`` and ``_ok`` of an event, which is all this class has.
    """

    __slots__ = ("callbacks", "fn", "arg")
    _ok = True


def _fire(event: _Call) -> None:
    event.fn(event.arg)


# SimPy iterates an event's callbacks once and then sets them to None; nothing
# appends to these events, so one shared tuple serves them all (no list per event).
_CALLBACKS = (_fire,)


class World:
    """Everything one run shares: clock, random streams, tracer, ledgers."""

    def __init__(self, seed: int, trace: bool = False) -> None:
        self.env = simpy.Environment()
        self.streams = Streams(seed)
        self.tracer = Tracer(trace)
        self.effects = EffectLog()
        #: messages sent per transaction id, retries and duplicates included
        self.messages: list[int] = []
        self._queue = self.env._queue
        self._eid = self.env._eid

    @property
    def now(self) -> float:
        return self.env._now

    def at(self, delay: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Call ``fn(arg)`` after ``delay`` simulated seconds (fire and forget)."""
        call = _Call()
        call.callbacks = _CALLBACKS
        call.fn = fn
        call.arg = arg
        # Inlined env.schedule() for speed: this is the hottest line of a run.
        heappush(self._queue, (self.env._now + delay, _NORMAL, next(self._eid), call))

    def new_transaction(self) -> int:
        """Allocate the next transaction id (0, 1, 2, ...)."""
        txn = len(self.messages)
        self.messages.append(0)
        self.effects.open(txn)
        return txn

    def run(self, until: float) -> None:
        # The event loop creates no reference cycles (everything it allocates
        # is freed by reference counting), but it keeps every transaction's
        # records alive, and the cyclic collector would rescan them all over
        # again as they accumulate. Pause it for the run.
        enabled = gc.isenabled()
        gc.disable()
        try:
            self.env.run(until=until)
        finally:
            if enabled:
                gc.enable()
