"""The world: one SimPy environment with its streams, tracer, clock helpers
and the per-transaction ledgers (messages sent, effects applied).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any, NamedTuple

import simpy

from sim.world.effects import EffectLog
from sim.world.rng import Streams
from sim.world.settle import Settlement
from sim.world.trace import Tracer

if TYPE_CHECKING:
    from sim.world.records import Records

_URGENT = 0  # simpy.events.URGENT
_NORMAL = 1  # simpy.events.NORMAL


#: Events run between two checks of :attr:`World.max_events`: checked once
#: per chunk, the budget adds nothing measurable to the cost of an event.
_CHUNK = 1 << 16


class EventBudgetExceeded(Exception):
    """A run processed more events than :attr:`World.max_events`; the run is abandoned."""

    def __init__(self, events: int, now: float) -> None:
        super().__init__(f"more than {events} events by simulated time {now}")
        self.events = events
        self.now = now


class _Stopped(Exception):
    """Raised by the stop marker of :meth:`World.run`."""


def _stop(_arg: Any) -> None:
    raise _Stopped


def _scheduler(env: simpy.Environment) -> Callable[[float, Callable[[Any], None], Any], None]:
    """:meth:`World.at` for one environment, as a closure over its clock, queue
    and event-id counter: a call of it loads them from its cells, not from
    attributes (about a fifth less time per call than the method, measured
    on the choreography benchmark). The entry is SimPy's (time, priority,
    id, ...) with the call itself in place of an event object: see
    :meth:`World.run`."""
    queue = env._queue  # type: ignore[attr-defined]
    eid = env._eid  # type: ignore[attr-defined]

    def at(delay: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        heappush(queue, (env._now + delay, _NORMAL, next(eid), fn, arg))

    return at


class Due(NamedTuple):
    """When a message accounted for without an event arrives, and the event id
    its delivery would have had (:meth:`World.due`): its place in the
    queue's order, so that :meth:`World.passed` orders it against the events
    of the same instant exactly as its delivery event would be ordered."""

    at: float
    eid: int


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
        #: ``at(delay, fn, arg=None)``: call ``fn(arg)`` after ``delay``
        #: simulated seconds (fire and forget); see :func:`_scheduler`
        self.at = _scheduler(self.env)
        #: stop a run (EventBudgetExceeded) once it has run more events than this; None: no limit
        self.max_events: int | None = None
        #: events run so far (counted per chunk while running)
        self.events_run = 0
        #: pending work per transaction, counted only when a run judges as it
        #: goes (see :mod:`sim.world.settle`); ``None``: not counted
        self.settle: Settlement | None = None
        #: records with values (``[isolation]``, :mod:`sim.world.records`); ``None``: the scenario declares none
        self.records: Records | None = None
        #: when the run ends (set by the model): a message accounted for
        #: without an event is counted only if it is sent before then, as one
        #: sent through the network is (see :meth:`count_sent`)
        self.horizon = math.inf
        #: the id of the event being run (see :meth:`passed`)
        self.eid_now = 0
        #: ``reserve()``: the event id of a delivery accounted for without an
        #: event, taken when it is sent (see :meth:`due`). The id counter's own
        #: ``__next__``: a call of it runs no Python frame (it runs once per
        #: ack accounted for ahead).
        self.reserve: Callable[[], int] = self._eid.__next__

    @property
    def now(self) -> float:
        return self.env._now

    def next_event(self) -> float:
        """When the next event is due (``inf`` when none is)."""
        if not self._queue:
            return math.inf
        at, _priority, _eid, _fn, _arg = self._queue[0]  # (the heap's entries: see run)
        return at

    def at_instant(self, instant: float, fn: Callable[[Any], None], arg: Any = None, first: bool = False) -> None:
        """Call ``fn(arg)`` at the simulated time ``instant`` (not before now),
        exactly: ``at(instant - now)`` would add the difference back to now,
        which does not always give the same float. ``first``: before every
        normal event due at the same instant (a timeout of a
        :class:`~sim.world.timers.DeadlineQueue` with ``first``)."""
        heappush(self._queue, (instant, _URGENT if first else _NORMAL, next(self._eid), fn, arg))

    def due(self, delay: float) -> Due:
        """Account for a message that arrives ``delay`` from now without
        scheduling its delivery: it takes the event id its delivery event
        would take, so it keeps its place in the queue's order
        (:meth:`passed`, :meth:`at_due`)."""
        return Due(self.env._now + delay, next(self._eid))

    def passed(self, due: tuple[float, int]) -> bool:
        """Whether the delivery accounted for as ``due`` has happened before
        the event being run: due earlier, or at this very instant and ahead
        of it in the queue's order (time, then event id: both are normal
        priority). The one tie rule for messages accounted for without an
        event."""
        return due < (self.env._now, self.eid_now)

    def at_due(self, due: Due, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Deliver a message accounted for as ``due`` after all: call
        ``fn(arg)`` at ``due.at`` (not before now), in its reserved place."""
        heappush(self._queue, (due.at, _NORMAL, due.eid, fn, arg))

    def reroute(self, calls: dict[Callable[[Any], None], Callable[[Any], None]]) -> None:
        """Every call scheduled of a key of ``calls`` (directly or carried by
        the settlement, :meth:`Settlement.carry`) becomes a call of its value
        with the same argument, in the same place of the queue: for messages
        posted straight to their handler on steady links, which must reach
        their node's ``receive`` once a fault could touch the link
        (:meth:`sim.world.broker.Broker.undirect`). One pass over the queue,
        at a switch, never per message."""
        queue = self._queue
        carried = self.settle._received if self.settle is not None else None
        for index, entry in enumerate(queue):
            time, priority, eid, fn, arg = entry
            if fn in calls:
                queue[index] = (time, priority, eid, calls[fn], arg)
            elif carried is not None and fn == carried:
                receive, msg = arg  # (a message carried for judging as the run goes: Settlement.carry)
                if receive in calls:
                    queue[index] = (time, priority, eid, fn, (calls[receive], msg))

    def replace_at(self, calls: dict[int, tuple[Callable[[Any], None], Any]]) -> None:
        """The scheduled call whose event id is a key of ``calls`` becomes the
        call of its value, in the same place (one reserved place holds one
        event: :meth:`at_due`). One pass over the queue."""
        queue = self._queue
        for index, (time, priority, eid, _fn, _arg) in enumerate(queue):
            call = calls.get(eid)
            if call is not None:
                fn, arg = call
                queue[index] = (time, priority, eid, fn, arg)

    def count_sent(self, txn: int, at: float) -> bool:
        """Count a message of ``txn`` that is sent at ``at`` (now or later)
        without an event, if the run is still going then (the run's last
        instant runs nothing: its stop goes first). Returns whether it was
        counted."""
        if at < self.horizon:
            self.messages[txn] += 1
            return True
        return False

    def new_transaction(self) -> int:
        """Allocate the next transaction id (0, 1, 2, ...)."""
        txn = len(self.messages)
        self.messages.append(0)
        self.effects.open(txn)
        return txn

    def new_transaction_count(self) -> int:
        """Transaction ids allocated so far (arrivals, started or rejected)."""
        return len(self.messages)

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
        budget = self.max_events
        chunk = range(_CHUNK)
        done = 0
        try:
            while True:
                for done in chunk:  # noqa: B007 - `done` counts the events of a chunk cut short by the stop
                    env._now, _, self.eid_now, fn, arg = heappop(queue)
                    fn(arg)
                self.events_run += _CHUNK
                if budget is not None and self.events_run > budget:
                    raise EventBudgetExceeded(budget, env._now)
        except _Stopped:
            self.events_run += done
        finally:
            if enabled:
                gc.enable()
