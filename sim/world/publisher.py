"""A publisher: what a service uses to put events on the broker and to
acknowledge the events the broker delivers to it.

It publishes each event until the broker confirms it, resending after a
timeout with a back-off, and acknowledges a delivered copy now (``ack``) or,
for a dual write, once the publish it triggered is confirmed. With an outbox
(``outbox=True``) the events it is told to keep (``durable``) are rows that
outlive a crash, removed when confirmed and republished by
:meth:`Publisher.republish` after a restart.

Protocol code sees only that: :meth:`Publisher.publish`, :meth:`Publisher.ack`,
:meth:`Publisher.confirm` (a confirm message arrived), :meth:`Publisher.republish`
and :meth:`Publisher.on_crash`. Whether its confirms and acks are messages or
are accounted for without events (both links with the broker steady:
:meth:`Publisher.direct`) is the engine's business, decided here and in
:mod:`sim.world.broker`, with the one tie rule of :meth:`World.passed`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from sim.world.broker import BROKER, INF
from sim.world.core import Due
from sim.world.fates import Counter
from sim.world.messages import Ack, Confirm, Delivery, Publish
from sim.world.timers import DeadlineQueue
from sim.world.trace import OUT

if TYPE_CHECKING:
    from sim.world.broker import Broker
    from sim.world.network import Lane, Network
    from sim.world.node import Node

#: The structured fields of a publish's trace event (its first try: resends are not traced).
_PUBLISH: dict[str, Any] = {"peer": BROKER, "message": "pub", "direction": OUT, "attempt": 1}


class RetryPolicy(Protocol):
    """The back-off of a publisher's resends (:class:`sim.protocols.retry.Backoff`)."""

    #: publishes of one event at most (resends included)
    limit: float

    def wait(self, attempt: int) -> float:
        """The pause before publish number ``attempt`` (2 for the first resend)."""
        ...


class PublishTopics(Protocol):
    """What a publisher reads of the protocol it publishes for."""

    #: topic -> its name (for the trace)
    labels: dict[int, str]
    #: topic -> the role of publishing it (a network fault's paired fate: :meth:`Network.send`)
    publish_roles: dict[int, int]

    def retry(self, txn: int) -> None:
        """A resend of one of ``txn``'s events (counted as a retry of ``txn``)."""
        ...


#: ``Pending.conf`` of a publish with no confirm accounted for
_NEVER = Due(INF, 0)
#: ``timed`` of an entry whose timeout expired, its resend waiting for its back-off
_RESENDING = "resending"


class PublishTimer(NamedTuple):
    """A publish's timeout: which publish of its event id it expires."""

    eid: int
    attempt: int
    deadline: float


class Pending:
    """A publish waiting for its confirm (an entry of :attr:`Publisher.pending`)."""

    __slots__ = ("txn", "topic", "started", "attempt", "ack", "conf", "deadline", "timed")

    def __init__(self, txn: int, topic: int, started: float, ack: Delivery | None, deadline: float, timed: Any) -> None:
        self.txn = txn
        self.topic = topic
        self.started = started
        #: publishes of it so far (resends included)
        self.attempt = 1
        #: the incoming event to acknowledge once confirmed (a dual write), or None
        self.ack = ack
        #: when its confirm, accounted for without an event, arrives (a Due),
        #: or _NEVER (never for a dual write: see :meth:`Publisher.conf_due`)
        self.conf: Due = _NEVER
        #: when its timeout expires
        self.deadline = deadline
        #: whether it has a timeout (True, False, or _RESENDING while its resend waits)
        self.timed = timed


#: Publishes with an entry (not those of an id published once: see
#: :class:`Publisher`) between two sweeps of the confirmed entries of a
#: publisher on steady links (see :meth:`Publisher._sweep`). Each entry is swept once
#: whatever the period; a short one keeps ``pending`` small (4,096 cost 1.5%
#: more instructions per order than 64, under callgrind).
SWEEP_EVERY = 64


class Publisher:
    """Publishes events to the broker, resending each until it is confirmed.

    ``pending`` is volatile: a crash of the owner abandons every unconfirmed
    publish (an outbox keeps its own durable rows and republishes them).

    When both links with the broker are steady (``direct``, until a runtime
    fault could touch them: :meth:`undirect`), the broker's confirm costs no
    event: at the store, the broker draws its latency and :meth:`conf_due`,
    if it will reach the pending publish before that publish's timeout,
    records the instant (``conf_at``). From ``conf_at`` on the publish counts as
    confirmed. It is exactly what the confirm would do: it pops the entry
    pending for the event id when it arrives, whichever that is, so a
    publish of the same id before then takes the confirm over, and a
    confirm sent the usual way that gets there first pops the entry, after
    which the recorded one is sent as a message after all. Anything else
    (no entry, one confirmed already, a confirm later than the timeout, the
    confirm of a dual write, whose arrival sends the ack: an ack is
    accounted for when it is sent, :meth:`Broker.ack_at`) is sent as a
    message, with the latency drawn. Acks are accounted for without events
    (:meth:`ack`).

    On that path a first publish has a timeout only if it can expire: set at
    the publish when the publish reaches the broker at or after it, else at
    the store when the confirm will be late (``timed`` in the entry). The
    entry of a publish confirmed in time stays in ``pending`` (it counts as
    absent: every look-up compares ``conf_at`` with now) until a sweep every
    ``SWEEP_EVERY`` publishes, or a later publish of its event id, forgets
    it. Without a timer each, publishes cost no timeout to check.

    A publish of an event id published once (``once``: the client's
    ``start``, a ``done`` or ``failed`` of a participant with an inbox) with
    no ack to send (not a dual write) does not even have an entry: nothing
    could look it up in ``pending`` before its store (no other publish of
    the id). Its deadline travels with the publish message (``quiet``); the
    broker tells the publisher nothing of a confirm that arrives before it
    (:meth:`Broker.confirm_directly`), and a late one reaches
    :meth:`conf_due`, which makes the entry, pending from the store on, as
    above. (On this path an outbox keeps no rows: see :meth:`direct`.)
    Such a late confirm's timeout is an event of its own at the deadline,
    scheduled at the store: if the confirm arrives exactly at the deadline
    (constant latencies that add up to the publish timeout) the timeout goes
    first, where the full path orders the tie by when its timer queue was
    last armed; the two paths can differ at such ties.
    """

    def __init__(
        self,
        node: Node,
        network: Network,
        timeout: float,
        backoff: RetryPolicy,
        topics: PublishTopics,
        outbox: bool = False,
    ) -> None:
        self.node = node
        self.name = node.name
        self.network = network
        self.world = node.world
        self.topics = topics
        self.backoff = backoff
        #: eid -> the publish of it waiting for its confirm
        self.pending: dict[int, Pending] = {}
        # A publish's timeout at the very instant of its confirm, or of another
        # publish of its event id, goes first (first=True), whichever path
        # the confirm took and whenever the queue was armed.
        self.deadlines = DeadlineQueue(self.world, timeout, self._live, self._expired, owner=node, first=True)
        #: the outbox's rows (durable), eid -> (txn, topic, started), until
        #: confirmed; ``None``: no outbox (or none kept: see :meth:`direct`)
        self.rows: dict[int, tuple[int, int, float]] | None = {} if outbox else None
        self.resends = 0
        self.dropped = 0
        self._publishes = Counter()
        # Keyed latencies (Network.lane): a publish's by (txn, its n-th publish
        # of the topic), one lane per topic; an ack's by the copy it
        # acknowledges (the broker's store number, the delivery's number).
        self._publish_lanes: dict[int, Lane] = {}
        self._acks = network.lane(self.name, BROKER, "ack")
        self._unswept = SWEEP_EVERY
        # set by direct(): confirms and acks without events
        self.lazy = False
        #: in a run open to runtime faults: kept so that :meth:`undirect` can
        #: take the full path (every publish has an entry, an outbox its rows)
        self.switchable = False
        self.broker: Broker | None = None
        self._receive: Any = None
        #: ``post(delay, store, msg)``: a publish on its way to the broker on steady links
        self._post: Callable[[float, Callable[[Publish], None], Publish], None] = self.world.at

    def direct(self, broker: Broker) -> None:
        """Confirms and acks without events (both links with ``broker`` are steady).

        An outbox keeps no rows from then on (``rows`` is dropped): its
        owner cannot crash (:meth:`Node.relies_on_fault_plan`), and a restart
        is the only reader of the rows, so writing them would change nothing.
        In a run open to runtime faults (:attr:`Network.open`), where a fault
        may make it take the full path after all (:meth:`undirect`), it
        keeps them (each removed once its confirm has arrived, as on the full
        path), and every publish has an entry.
        """
        name = self.name
        self.lazy = True
        self.switchable = self.network.open
        if not self.switchable:
            self.rows = None
        self.broker = broker
        self._receive = self.network.receiver(name)
        self._store = broker._store
        settle = self.world.settle
        if settle is not None:
            # A run judged as it goes counts a publish in flight as pending
            # work until its store, as the network counts its own messages.
            self._post = partial(settle.carry, self.world.at)
        broker.confirm_directly(name, self.conf_due)

    def publish(
        self,
        eid: int,
        txn: int,
        topic: int,
        started: float,
        ack: Delivery | None,
        once: bool = False,
        durable: bool = False,
    ) -> None:
        """Publish ``eid`` until the broker confirms it; ``ack`` is the
        incoming event to acknowledge once confirmed (dual write). ``once``:
        the caller publishes this event id once (apart from resends), so no
        other publish of it can be pending (see the class docstring).
        ``durable``: keep it in the outbox until confirmed (republished after
        a restart), if this publisher has one."""
        world = self.world
        now = world.env._now
        pending = self.pending
        if self.switchable:
            once = False  # (an entry each: see direct())
        old = None if once else pending.get(eid)  # (none pending for ``once``: see above)
        if durable and self.rows is not None:
            self.rows[eid] = (txn, topic, started)  # the relay's row, until confirmed
        if self.lazy:  # (_send on steady links: a timeout only if it can expire; no outbox row, see direct())
            delay = self.deadlines.delay
            deadline = now + delay
            entry = None
            if old is not None and old.conf is not _NEVER:
                entry = Pending(txn, topic, started, ack, deadline, False)
                self._replace(eid, old, entry)  # before the publish's draw: it may draw an ack's
            if world.tracer.on:
                world.tracer.emit(now, self.name, "publish", txn, self.topics.labels[topic], **_PUBLISH)
            world.messages[txn] += 1
            lane = self._publish_lanes.get(topic) or self._publish_lane(topic)
            up = lane.at(txn, self._publishes.next(txn, topic))
            if once and ack is None and up < delay:
                # No entry, unless the confirm is late: see conf_due().
                self._post(up, self._store, Publish(self.name, txn, eid, topic, started, deadline))
                return
            if entry is None:
                entry = Pending(txn, topic, started, ack, deadline, False)
            pending[eid] = entry
            self._post(up, self._store, Publish(self.name, txn, eid, topic, started, -INF))
            if up >= delay:  # stored at or after its timeout
                entry.timed = True
                self.deadlines.add(PublishTimer(eid, 1, deadline))
            self._unswept -= 1
            if not self._unswept:
                self._sweep()
            return
        entry = Pending(txn, topic, started, ack, 0.0, True)
        if old is not None and old.conf is not _NEVER:
            self._replace(eid, old, entry)
        pending[eid] = entry
        if world.tracer.on:
            world.tracer.emit(now, self.name, "publish", txn, self.topics.labels[topic], **_PUBLISH)
        self._send(eid, entry)

    def _replace(self, eid: int, old: Pending, entry: Pending) -> None:
        """A new publish of ``eid`` while the confirm of the old one was
        accounted for without an event."""
        if self.world.passed(old.conf):
            self.settle(eid)
        elif entry.ack is None:  # the confirm on its way will pop this entry instead
            entry.conf = old.conf
        else:  # ... and send its ack: so it is a message after all (see conf_due), in its own place
            self.world.at_due(old.conf, self._receive, Confirm(BROKER, entry.txn, eid))

    def _publish_lane(self, topic: int) -> Lane:
        """The keyed latencies of this publisher's publishes of ``topic``."""
        lane = self._publish_lanes.get(topic)
        if lane is None:
            lane = self._publish_lanes[topic] = self.network.lane(self.name, BROKER, f"pub.topic{topic}")
        return lane

    def _send(self, eid: int, entry: Pending) -> None:
        txn, topic = entry.txn, entry.topic
        msg = Publish(self.name, txn, eid, topic, entry.started, -INF)
        # The n-th publish of this event by this publisher, counted across
        # crashes and restarts (an outbox replay is a later publish, not a
        # first one again): what the n-th final answer is in an orchestration,
        # and what keys its latency on both paths.
        attempt = self._publishes.next(txn, topic)
        latency = self._publish_lane(topic).at(txn, attempt)
        if self.lazy:  # what Network.send does on a steady link
            world = self.world
            world.messages[txn] += 1
            self._post(latency, self._store, msg)
        else:
            self.network.send(self.name, BROKER, msg, self.topics.publish_roles.get(topic, -1), attempt, latency)
        deadlines = self.deadlines
        entry.deadline = deadline = self.world.env._now + deadlines.delay
        entry.timed = True
        deadlines.add(PublishTimer(eid, entry.attempt, deadline))

    def undirect(self) -> None:
        """Take the full path from now on (a runtime fault may now touch a
        link with the broker: :meth:`Broker.undirect`), as if it had been
        taken from the start: publishes in flight reach the broker's
        ``receive`` (dropped if it is down, held if paused); a confirm
        accounted for ahead that has not arrived becomes a message in its
        reserved place (:meth:`World.at_due`); a publish still on its way to its store
        gets the timeout the full path armed when it was sent.

        Called at an instant at which nothing has run yet (the run stopped
        just before it: :meth:`sim.world.faults.Faults.start`), so a confirm
        due now has not arrived."""
        if not self.lazy:
            return
        world = self.world
        now = world.env._now
        self.lazy = False
        self._post = world.at
        world.reroute({self._store: self.network.receiver(BROKER)})
        pending, rows = self.pending, self.rows
        for eid, entry in list(pending.items()):
            conf = entry.conf
            if conf is _NEVER:
                if not entry.timed:  # stored later, before its deadline: its timeout, as the full path's
                    entry.timed = True
                    timer = PublishTimer(eid, entry.attempt, entry.deadline)
                    world.at_instant(entry.deadline, self._timeout, timer, first=True)
            elif conf.at < now:  # confirmed already
                del pending[eid]
                if rows is not None:
                    rows.pop(eid, None)
            else:
                entry.conf = _NEVER  # (never a dual write's: its confirm is a message already, conf_due)
                world.at_due(conf, self._receive, Confirm(BROKER, entry.txn, eid))

    def settle(self, eid: int) -> None:
        """Forget the publish of ``eid`` if it was confirmed (without an event) by now."""
        entry = self.pending.get(eid)
        if entry is not None and self.world.passed(entry.conf):
            del self.pending[eid]
            if self.rows is not None:  # (kept on this path only in a run open to runtime faults)
                self.rows.pop(eid, None)

    def conf_due(self, txn: int, eid: int, topic: int, started: float, latency: float, quiet: float) -> None:
        """The broker confirms ``eid`` now (it stored a publish of it; the
        broker counts the message and draws its ``latency``). ``quiet`` is
        the deadline of a publish that went without an entry (``-inf`` for
        the others): the broker calls this for such a publish only when its
        confirm is late (:meth:`Broker.confirm_directly`)."""
        world = self.world
        at = world.env._now + latency
        if quiet != -INF:
            # A publish without an entry, confirmed late: pending from now
            # on, until the confirm message pops it (nothing for a sweep to do).
            self.pending[eid] = Pending(txn, topic, started, None, quiet, False)
        entry = self.pending.get(eid)
        if entry is not None and entry.conf is _NEVER:
            deadline = entry.deadline
            if at < deadline:
                # A dual write's confirm sends its ack when it arrives: it is
                # a message, so that the ack is accounted for when it is sent
                # (the rule of Broker.ack_at); any other is accounted for now.
                if entry.ack is None:
                    entry.conf = world.due(latency)
                    return
            elif not entry.timed:  # the confirm is late: now the timeout can expire
                entry.timed = True
                world.at_instant(deadline, self._timeout, PublishTimer(eid, entry.attempt, deadline), first=True)
        world.at(latency, self._receive, Confirm(BROKER, txn, eid))

    def ack(self, msg: Delivery) -> None:
        """Acknowledge the delivered copy ``msg`` now."""
        if self.lazy:  # accounted for as it is sent (counted now)
            self.world.messages[msg.txn] += 1
            self.broker.ack_at(msg.copy, self._acks.at(msg.seq, msg.delivery))  # type: ignore[union-attr]
        else:
            self.network.send(self.name, BROKER, Ack.of(self.name, msg), delay=self._acks.at(msg.seq, msg.delivery))

    def delivered(self, msg: Delivery, acked_by: float) -> None:
        """The copy ``msg`` was delivered to this publisher's owner, which
        acknowledges it by ``acked_by`` for sure (``inf``: not for sure).
        Straight from the broker (steady links), a first delivery may have
        no ack timer (:meth:`Broker.arm`): it gets one now unless its ack is
        accounted for before its deadline (:meth:`ack` arms it then if the ack
        is late)."""
        if self.lazy:
            copy = msg.copy
            if not acked_by < copy.due:
                self.broker.arm(copy)  # type: ignore[union-attr]

    def _live(self, item: PublishTimer) -> bool:
        """Whether the timeout ``item`` expires the publish pending for its
        event id: that very publish (the same attempt, and the same deadline:
        a later publish of the same id has its own timeout), not confirmed.
        (A crash clears the timeouts and drops the resends: see
        :meth:`on_crash` and :meth:`Node.after`.)"""
        eid = item.eid
        entry = self.pending.get(eid)
        if entry is None:
            return False
        if self.world.passed(entry.conf):  # confirmed: forget it (settle())
            del self.pending[eid]
            if self.rows is not None:
                self.rows.pop(eid, None)
            return False
        return entry.attempt == item.attempt and entry.deadline == item.deadline

    def _timeout(self, item: PublishTimer) -> None:
        """A timeout set at the store of a publish whose confirm is late (on
        steady links: see :meth:`conf_due`)."""
        if self.node.paused:
            self.node.hold(self._timeout, item)
        elif self._live(item):
            self._expired(item)

    def _sweep(self) -> None:
        """Forget the publishes confirmed by now (on steady links, where a
        publish confirmed in time has no timeout to forget it)."""
        self._unswept = SWEEP_EVERY
        passed = self.world.passed
        pending, rows = self.pending, self.rows
        for eid in [eid for eid, entry in pending.items() if passed(entry.conf)]:
            del pending[eid]
            if rows is not None:
                rows.pop(eid, None)

    def _expired(self, item: PublishTimer) -> None:
        eid = item.eid
        entry = self.pending[eid]
        if entry.timed is _RESENDING:
            # A second timeout of this very publish: two publishes of the id
            # at one instant, the second replacing the first's entry, left two
            # equal timeouts. The publish is resent once (and one back-off drawn).
            return
        if entry.attempt >= self.backoff.limit:
            del self.pending[eid]
            self.dropped += 1
            if self.world.tracer.on:
                self.world.tracer.emit(
                    self.world.now, self.name, "publish-gave-up", entry.txn, self.topics.labels[entry.topic],
                    peer=BROKER, message="pub", attempt=entry.attempt,
                )  # fmt: skip
            return
        entry.timed = _RESENDING  # (until the resend: _send sets it back)
        self.node.after(self.backoff.wait(entry.attempt + 1), self._resend, item)

    def _resend(self, item: PublishTimer) -> None:
        if not self._live(item):
            return
        entry = self.pending[item.eid]
        entry.attempt += 1
        self.resends += 1
        self.topics.retry(entry.txn)
        self._send(item.eid, entry)

    def confirm(self, eid: int) -> None:
        """A confirm message arrives."""
        entry = self.pending.pop(eid, None)
        if entry is None:
            return
        if self.rows is not None:
            self.rows.pop(eid, None)
        conf = entry.conf
        if conf is not _NEVER:
            if self.world.passed(conf):
                return  # confirmed already: this confirm finds nothing
            # This one got here first: the confirm recorded for later is a
            # message after all (in its own place in the queue).
            self.world.at_due(conf, self._receive, Confirm(BROKER, entry.txn, eid))
        if entry.ack is not None:
            self.ack(entry.ack)

    def on_crash(self) -> None:
        # (A crash never meets an entry confirmed without an event: that path
        # is taken only where the fault plan has no crash: Node.relies_on_fault_plan.)
        if self.rows is None:  # (with an outbox, its rows are republished after the restart)
            self.dropped += len(self.pending)
            if self.world.tracer.on:
                for entry in self.pending.values():
                    self.world.tracer.emit(
                        self.world.now, self.name, "publish-lost", entry.txn, self.topics.labels[entry.topic],
                        peer=BROKER, message="pub", attempt=entry.attempt,
                    )  # fmt: skip
        self.pending.clear()
        self.deadlines.clear()

    def quiet(self, eids: list[int]) -> bool:
        """Whether none of ``eids`` (one transaction's event ids) is still
        publishing: none pending unconfirmed by now (a publish's confirm
        accounted for without an event counts once it has arrived:
        :meth:`World.passed`), none in the outbox. (Judging as the run goes:
        :mod:`sim.world.settle`; a publish in flight is counted there.)"""
        pending, rows, passed = self.pending, self.rows, self.world.passed
        for eid in eids:
            entry = pending.get(eid)
            if entry is not None and not passed(entry.conf):
                return False
            if rows and eid in rows:
                return False
        return True

    def forget(self, eids: list[int]) -> None:
        """Drop what is kept of ``eids`` (a settled transaction's, judged already)."""
        for eid in eids:
            self.pending.pop(eid, None)

    def republish(self) -> None:
        """After a restart: publish every row of the outbox again."""
        for eid, (txn, topic, started) in list((self.rows or {}).items()):
            self.publish(eid, txn, topic, started, None)

    def relies_on_fault_plan(self) -> bool:
        """Whether it accounts for confirms and acks without events (its owner
        must then never crash or pause: :meth:`Node.relies_on_fault_plan`)."""
        return self.lazy
