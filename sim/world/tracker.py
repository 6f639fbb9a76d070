"""Stuck-transaction alerts, alike for every protocol (``[monitor] stuck_after``).

* :class:`SagaTracker`: the choreography's monitoring node ``tracker``. There
  is no coordinator to ask, so it subscribes (group ``tracker``) to every
  topic of the broker and follows each transaction's chain of events. It
  raises an alert for a transaction that has no terminal event
  ``stuck_after`` seconds after the tracker first heard of it. Its table
  (first seen, terminal seen, flagged) is durable; its alarm timers are not:
  a restarted tracker re-arms them (overdue ones fire at once). It acks each
  event as soon as it has recorded it. When both links between the broker
  and the tracker are steady (:mod:`sim.world.network`; never in a run open
  to runtime faults: see :meth:`sim.world.broker.Broker.elide`), the broker hands it
  each copy at delivery (:meth:`SagaTracker.take_lean`): the tracker records
  the instant the copy would arrive and when its ack would arrive, drawing
  both latencies and counting both messages, with no event for either, if
  that is before the broker's ack timeout (the copy is then not even stored
  by the broker). A copy the broker stores (its ack is late, or it waited
  in its partition, or it is delivered again: :meth:`SagaTracker.take`)
  costs one event, at its arrival, where its ack is accounted for as it is
  sent (:meth:`Broker.ack_at`: an ack accounted for ahead of its sending
  could not know its place among the events of the instant it arrives).
  Its alarm then wakes ``stuck_after`` after the delivery, a little early,
  and re-checks at the exact instant if it is still pending.
* :class:`Watchdog`: the same alert for a protocol with a coordinator
  (orchestration, 2PC): ``stuck_after`` seconds after a transaction started,
  it checks the coordinator's durable log and flags it if it is not in a
  terminal state. It is a cron job beside the coordinator, reading its log:
  it runs while the coordinator is down too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from sim.world.messages import Ack, Delivery
from sim.world.node import Node
from sim.world.timers import DeadlineQueue
from sim.world.trace import IN

#: A terminal event's copy, as the tracker receives it.
_FROM_BROKER: dict[str, Any] = {"peer": "broker", "message": "evt", "direction": IN}

if TYPE_CHECKING:
    from sim.world.broker import Broker, Copy
    from sim.world.core import World
    from sim.world.network import Network

TRACKER = "tracker"


class Sending(NamedTuple):
    """The ack of a copy the tracker took at its delivery, sent when the
    copy arrives (:meth:`SagaTracker.take`, :meth:`SagaTracker.late`)."""

    copy: Copy
    #: the ack's latency, drawn when the copy was taken
    latency: float


class TrackerEntry:
    """The saga tracker's durable record of one transaction.

    ``first``: when the tracker first heard of it (a copy's arrival);
    ``terminal``: when its terminal event arrived (NaN: not yet);
    ``acked``: when the ack of the broker's lean copy in flight arrives (see
    :meth:`SagaTracker.take_lean`; 0.0: none); ``partition``: the broker's
    partition of the transaction's copies for the tracker, if any (a list,
    empty once gone: see :meth:`sim.world.broker.Broker.lean`)."""

    __slots__ = ("first", "terminal", "acked", "partition")

    def __init__(self, first: float) -> None:
        self.first = first
        self.terminal = math.nan
        self.acked = 0.0
        self.partition: list[Any] | None = None


#: Blind spots of the saga tracker, which hears of transactions only through
#: the broker (see :meth:`SagaTracker.blind_spots`): every copy of the
#: transaction's events sent to it (its ``start`` first) was dead-lettered, so
#: it never heard of the transaction and cannot flag it ...
HIDDEN = "hidden"
#: ... or its copy of the transaction's terminal event was dead-lettered, so it
#: never saw the transaction end and flags it although it ended.
TERMINAL_DEAD_LETTERED = "terminal dead-lettered"


class Watchdog:
    """Flags transactions not terminal ``stuck_after`` seconds after they start."""

    def __init__(self, world: World, stuck_after: float, terminal: Callable[[int], bool]) -> None:
        self.world = world
        self.terminal = terminal
        self.flagged: dict[int, float] = {}
        self.deadlines = DeadlineQueue(world, stuck_after, self._pending, self._flag)

    def watch(self, txn: int) -> None:
        self.deadlines.add(txn)

    def _pending(self, txn: int) -> bool:
        return not self.terminal(txn)

    def _flag(self, txn: int) -> None:
        self.flagged[txn] = self.world.env._now
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, "monitor", "alert", txn, None, "no terminal state")

    def flagged_at(self, txn: int) -> float:
        return self.flagged.get(txn, math.nan)

    def alert_due(self, txn: int, started: float) -> float:
        """When the alert for ``txn``, started at ``started``, falls due."""
        return started + self.deadlines.delay  # as DeadlineQueue.add computes it, to the bit

    def blind_spots(self) -> dict[int, str]:
        """None: the watchdog reads the coordinator's log, it misses no event."""
        return {}


class SagaTracker(Node):
    """The choreography's saga tracker node (its name is ``tracker``)."""

    def __init__(
        self, world: World, network: Network, stuck_after: float, terminal_topics: set[int], labels: dict[int, str]
    ) -> None:
        super().__init__(world, TRACKER)
        self.network = network
        self.stuck_after = stuck_after
        self.terminal_topics = terminal_topics
        self.labels = labels
        # durable: txn -> its entry
        self.table: dict[int, TrackerEntry] = {}
        self.flagged: dict[int, float] = {}
        self.deadlines = DeadlineQueue(world, stuck_after, self._pending, self._flag, owner=self)
        # set by direct(): copies taken from the broker without events
        self.broker: Broker | None = None
        # Keyed latencies (Network.lane) of its copies and acks, by the
        # copy's store number and delivery number, on both paths.
        self._down = network.lane("broker", TRACKER, "evt")
        self._up = network.lane(TRACKER, "broker", "ack")

    def direct(self, broker: Broker) -> None:
        """Take copies from ``broker`` without events (both links are steady)."""
        self.broker = broker
        broker.takers[self.name] = self.take
        broker.lean(self.name, self.take_lean, self.late, self.table)

    def handle(self, msg: Delivery) -> None:
        """A copy of an event delivered through the network: recorded, and acknowledged."""
        self._record(msg.txn, msg.topic, self.world.env._now)
        self.network.send(self.name, msg.src, Ack.of(self.name, msg), delay=self._up.at(msg.seq, msg.delivery))

    def take_lean(
        self, seq: int, txn: int, topic: int, now: float, deadline: float, entry: TrackerEntry | None
    ) -> float:
        """The broker delivers a copy (store ``seq``) of ``txn``'s event on ``topic`` now,
        without storing it (:meth:`Broker.lean`): returns when its ack
        arrives, recorded as the entry's ``acked`` if that is before ``deadline``
        (read with per-key ordering only). ``entry`` is ``table.get(txn)``,
        looked up by the broker already. The broker counts the delivery;
        the ack is counted here, sent when the copy arrives. A late ack
        (at or after ``deadline``) is the broker's to store: it calls
        :meth:`late`."""
        seen = now + self._down.at(seq)
        self.world.count_sent(txn, seen)
        if entry is None or seen < entry.first or topic in self.terminal_topics:
            entry = self._record(txn, topic, seen)  # (else a later copy: nothing to record)
        acked = seen + self._up.at(seq)
        if acked < deadline:
            entry.acked = acked
        return acked

    def late(self, copy: Copy) -> None:
        """The copy just taken (:meth:`take_lean`, in this same event) is
        acknowledged late: the broker stores it as ``copy``. Its ack is
        accounted for when it is sent (:meth:`Broker.ack_at`), by an event
        at the copy's arrival. The arrival and the ack's latency are the
        keyed draws of the copy's first delivery, read again here rather
        than handed over from :meth:`take_lean`."""
        seen = self.world.env._now + self._down.at(copy.seq)
        self.world.at_instant(seen, self._send_ack, Sending(copy, self._up.at(copy.seq)))

    def take(self, copy: Copy) -> None:
        """The broker delivers ``copy`` now: it arrives one latency later, and
        its ack one more latency after that. The ack is accounted for when it
        is sent (:meth:`Broker.ack_at`): by an event at the copy's arrival,
        in the place the copy's delivery event would have."""
        world = self.world
        txn = copy.txn
        world.messages[txn] += 1  # the delivery
        seq, delivery = copy.seq, copy.deliveries
        arrival = world.due(self._down.at(seq, delivery))
        world.count_sent(txn, arrival.at)  # the ack, sent when the copy arrives
        self._record(txn, copy.topic, arrival.at)
        world.at_due(arrival, self._send_ack, Sending(copy, self._up.at(seq, delivery)))

    def _send_ack(self, sending: Sending) -> None:
        """A copy taken at its delivery arrives: its ack is sent now."""
        self.broker.ack_at(sending.copy, sending.latency)  # type: ignore[union-attr]

    def _record(self, txn: int, topic: int, seen: float) -> TrackerEntry:
        """A copy of ``txn``'s event on ``topic`` arrives at ``seen`` (now, or later)."""
        now = self.world.env._now
        entry = self.table.get(txn)
        if entry is None:
            entry = self.table[txn] = TrackerEntry(seen)
            self._watch(txn)
        elif seen < entry.first:  # a later copy that overtook an earlier one
            entry.first = seen
            due = seen + self.stuck_after
            self.world.at(due - now, self._due, (txn, self.epoch, due))
        if topic in self.terminal_topics and not entry.terminal <= seen:
            entry.terminal = seen
            if self.world.tracer.on:
                if seen == now:
                    self.world.tracer.emit(now, self.name, "terminal", txn, self.labels[topic], **_FROM_BROKER)
                else:
                    self.world.at(seen - now, self._trace_terminal, (txn, topic, seen))
        return entry

    def _watch(self, txn: int) -> None:
        """Arm ``txn``'s alert; first, if the oldest alarm is moot (terminal,
        or judged and forgotten), drop the moot ones at the head now: what
        they hold is freed while it is in cache, not a timeout later."""
        deadlines = self.deadlines
        head = deadlines.oldest()
        if head is not None:
            oldest = self.table.get(head)
            if oldest is None or oldest.terminal <= self.world.env._now:
                deadlines.prune()
        deadlines.add(txn)

    def _trace_terminal(self, item: tuple[int, int, float]) -> None:
        txn, topic, seen = item
        entry = self.table.get(txn)  # (None: judged and forgotten, see quiet())
        if entry is not None and entry.terminal == seen:
            self.world.tracer.emit(seen, self.name, "terminal", txn, self.labels[topic], **_FROM_BROKER)

    def _pending(self, txn: int) -> bool:
        # not seen a terminal event yet (nan: none at all; a time: seen then);
        # a transaction judged and forgotten (see quiet()) is not
        entry = self.table.get(txn)
        return entry is not None and not entry.terminal <= self.world.env._now and txn not in self.flagged

    def _flag(self, txn: int) -> None:
        now = self.world.env._now
        due = self.table[txn].first + self.stuck_after
        if due > now:  # first seen after the delivery (a copy taken at delivery)
            self.world.at(due - now, self._due, (txn, self.epoch, due))
            return
        self._alert(txn, now)

    def _due(self, item: tuple[int, int, float]) -> None:
        txn, epoch, due = item
        entry = self.table.get(txn)
        if (
            entry is not None  # (None: judged and forgotten, see quiet())
            and epoch == self.epoch
            and entry.first + self.stuck_after == due
            and not entry.terminal <= due
            and txn not in self.flagged
        ):
            self._alert(txn, due)

    def _alert(self, txn: int, now: float) -> None:
        self.flagged[txn] = now
        if self.world.tracer.on:
            self.world.tracer.emit(now, self.name, "alert", txn, None, "no terminal event")

    def _check(self, txn: int) -> None:
        if self._pending(txn):
            self._alert(txn, self.world.env._now)

    def flagged_at(self, txn: int) -> float:
        return self.flagged.get(txn, math.nan)

    def alert_due(self, txn: int) -> float:
        """When the alert for ``txn`` falls due: ``stuck_after`` after the
        tracker first heard of it; NaN if it never did."""
        entry = self.table.get(txn)
        return entry.first + self.stuck_after if entry is not None else math.nan

    def quiet(self, txn: int) -> bool:
        """Whether what the tracker says of ``txn`` is final (judging as the
        run goes: :mod:`sim.world.settle`): it saw its terminal event before
        now, and its alert either cannot come (the terminal event came by
        the time it fell due) or came. A transaction it never heard of, or
        never saw end, is judged at the end of the run."""
        entry = self.table.get(txn)
        if entry is None or not entry.terminal < self.world.env._now:
            return False
        return entry.terminal <= entry.first + self.stuck_after or txn in self.flagged

    def forget(self, txn: int) -> None:
        """Drop what is kept of a settled transaction (judged already)."""
        self.table.pop(txn, None)
        self.flagged.pop(txn, None)

    def blind_spots(self, dead: Iterable[Copy]) -> dict[int, str]:
        """The transactions the tracker was blind to, and why (:data:`HIDDEN`,
        :data:`TERMINAL_DEAD_LETTERED`), from the broker's dead-lettered copies
        ``dead``: only its own copies count (a participant's dead-lettered copy
        stops the chain, which the tracker does see as a missing terminal event)."""
        causes: dict[int, str] = {}
        for copy in dead:
            if copy.group != TRACKER:
                continue
            entry = self.table.get(copy.txn)
            if entry is None:
                causes[copy.txn] = HIDDEN
            elif copy.topic in self.terminal_topics and entry.terminal != entry.terminal:  # none seen (NaN)
                causes[copy.txn] = TERMINAL_DEAD_LETTERED
        return causes

    def relies_on_fault_plan(self) -> bool:
        return self.broker is not None

    def on_crash(self) -> None:
        self.deadlines.clear()

    def on_restart(self) -> None:
        now = self.world.env._now
        for txn, entry in self.table.items():
            if self._pending(txn):
                self.after(max(0.0, entry.first + self.stuck_after - now), self._check, txn)
