"""The world: one SimPy environment with its streams, tracer, clock helpers
and the per-transaction ledgers (messages sent, effects applied).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy

from sim.world.effects import EffectLog
from sim.world.rng import Streams
from sim.world.trace import Tracer

_URGENT = 0  # simpy.events.URGENT
_NORMAL = 1  # simpy.events.NORMAL


class _Stopped(Exception):
    """Raised by the stop marker of :meth:`World.run`."""


def _stop(_arg: Any) -> None:
    raise _Stopped


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
        # Inlined env.schedule() for speed: this is the hottest line of a run.
        # The entry is SimPy's (time, priority, id, ...) with the call itself
        # in place of an event object: see run().
        heappush(self._queue, (self.env._now + delay, _NORMAL, next(self._eid), fn, arg))

    def new_transaction(self) -> int:
        """Allocate the next transaction id (0, 1, 2, ...)."""
        txn = len(self.messages)
        self.messages.append(0)
        self.effects.open(txn)
        return txn

    def run(self, until: float) -> None:
        """Process every event up to simulated time ``until`` (later than now).

        The world drives SimPy's event queue itself. Every event of a run is
        scheduled by :meth:`at`, whose heap entry is SimPy's ``(time,
        priority, id, ...)`` with the function and its argument in place of
        an event object, so firing it is one call: no event object, no
        callback list, no ``Environment.step``. The order is SimPy's: time,
        then priority, then scheduling order; the stop marker is scheduled as
        ``Environment.run(until)`` schedules its ``until`` event (urgent, so
        nothing due at ``until`` itself runs), and the clock is left at
        ``until``. SimPy's own events (``env.timeout``, processes) are not
        used and cannot be mixed in.
        """
        env = self.env
        if not until > env._now:
            raise ValueError(f"until ({until}) must be greater than the current simulation time")
        queue = self._queue
        heappush(queue, (float(until), _URGENT, next(self._eid), _stop, None))
        # The event loop creates no reference cycles (everything it allocates
        # is freed by reference counting), but it keeps every transaction's
        # records alive, and the cyclic collector would rescan them all over
        # again as they accumulate. Pause it for the run.
        enabled = gc.isenabled()
        gc.disable()
        try:
            while True:
                env._now, _, _, fn, arg = heappop(queue)
                fn(arg)
        except _Stopped:
            pass
        finally:
            if enabled:
                gc.enable()
