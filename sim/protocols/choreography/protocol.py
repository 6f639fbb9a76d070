"""The choreography saga: participants react to each other's events through
a message broker; nobody coordinates.

Topics (per transaction kind, numbered): ``start`` (the order was created),
and per step ``STEP.done`` (applied), ``STEP.failed`` (refused, or its
attempts exhausted: nothing applied) and ``COMPENSATION.done`` (undone).
Each participant's consumer group subscribes to the events it reacts to:

* ``start`` and ``STEP.done`` of step i trigger step i + 1 (forward);
* ``STEP.failed`` of step i, and ``COMPENSATION.done`` of step i, trigger the
  compensation of the nearest compensatable step before i: compensation runs
  back through the applied steps in reverse order.

*Terminal* events end the chain: the last step's ``done``; a ``failed`` or a
compensation's ``done`` with no compensatable step before it. A transaction is
terminal when the broker has stored one of its terminal events (the chain of
events reached its end); it finished then. The saga tracker (``tracker``)
follows every event and alerts on transactions with no terminal event after
``[monitor] stuck_after``.

A participant handling an event (one worker, one outcome draw per attempt, as
for orchestration commands):

* success: applies the effect and publishes the next event; refusal:
  publishes ``STEP.failed`` (a refusal is final, so a refused retriable step
  after the pivot publishes its ``failed`` too, a terminal event: the saga
  cannot complete and the checker judges it ``inconsistent``, as the
  orchestrator's); a transient error is retried
  locally with ``[choreography] retry`` (compensations with
  ``compensation_retry``), the pivot until it succeeds or is refused,
  retriable steps until they succeed; a compensatable step whose attempts are
  exhausted publishes ``STEP.failed`` (it knows nothing was applied); a
  compensation whose attempts are exhausted is given up: the chain moves on
  without its effect. A hang: no answer, no ack; the broker redelivers.
* ``idempotent = true``: an inbox of handled event ids, written in the same
  local transaction as the effect: a copy of an event already handled is
  acknowledged and not applied again (checked at arrival and again, inside
  the local transaction, at completion). Without it every copy is handled
  again.
* ``outbox = true``: the effect, the inbox entry and the event to publish are
  stored together; the incoming event is acknowledged at once, and a relay
  publishes the stored event until the broker confirms it, republishing
  after a restart. Without it (the dual write) the service publishes from
  memory after its local commit, retrying until the broker confirms, and
  acknowledges the incoming event only then; a crash in between loses the
  publish. With an inbox the redelivered event is then skipped: the chain is
  lost and the transaction stuck. Without an inbox it is applied again.

Outgoing event ids are derived from the transaction and the topic, so a
republished or reprocessed event has the same id as the first.

Every message goes through the network: publish, confirm, delivery, ack.
Those on *steady* links (no fault of the run's plan, no loss and no
duplication can touch them, neither end can crash or pause: see
:mod:`sim.world.network`) cost no event: a confirm, an ack, and the
tracker's copies and acks are accounted for when they are sent, as the
instant they arrive (their latency drawn from the link's stream and the
message counted as always), and what they do is done at that instant or
found then (:mod:`sim.world.broker`). Publishes, and deliveries to the
participants, are always events (on a steady link scheduled straight to
the receiving handler, as :meth:`Network.send` would with nothing to drop,
delay or duplicate). A participant on steady links writes no outbox rows:
it cannot crash, and only a restart reads them. ``ChoreographyProtocol.elide
= False`` takes the full path for every message.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from sim.protocols.base import CoordinatorView
from sim.protocols.retry import Backoff
from sim.world.broker import BROKER, INF, Broker
from sim.world.core import Due
from sim.world.effects import COMPENSATE, FORWARD
from sim.world.fates import Counter
from sim.world.messages import Ack, new_record
from sim.world.network import command_role, reply_role
from sim.world.node import Node
from sim.world.participant import FAIL, HANG, REFUSE, SUCCEED
from sim.world.records import REFUSE as REFUSE_PENDING
from sim.world.records import WAIT
from sim.world.timers import DeadlineQueue
from sim.world.trace import OUT
from sim.world.tracker import TRACKER, SagaTracker

#: The structured fields of a publish's trace event (its first try: resends are not traced).
_PUBLISH: dict[str, Any] = {"peer": BROKER, "message": "pub", "direction": OUT, "attempt": 1}

if TYPE_CHECKING:
    from sim.protocols.choreography.spec import BrokerSpec, ChoreographySpec
    from sim.runner import Model
    from sim.scenario import StepSpec, TransactionSpec
    from sim.world.core import World
    from sim.world.network import Network
    from sim.world.participant import Participant

CLIENT = "client"

#: Event ids are ``topic * TOPIC_STRIDE + txn``: the ids of one topic follow
#: the transactions, so an inbox (a dict keyed by event id) fills its hash
#: table in order and a look-up of a recent event touches recent memory
#: (``txn * 256 + topic`` sent the ids of a topic to 1 slot in 256 and
#: spread them over the whole table).
TOPIC_STRIDE = 1 << 32

START = 0


def done(step: int) -> int:
    return 1 + 3 * step


def failed(step: int) -> int:
    return 2 + 3 * step


def undone(step: int) -> int:
    return 3 + 3 * step


#: what :meth:`ChoreographyParticipant._records_forward` answers for a step its version file skips
_SKIPPED = -1
_OK = "ok"
_REFUSED = "refused"


#: ``Pending.conf`` of a publish with no confirm accounted for
_NEVER = Due(INF, 0)
#: ``timed`` of an entry whose timeout expired, its resend waiting for its back-off
_RESENDING = "resending"


class Job:
    """A participant's handling of one delivered event: the event, its
    attempt number, and the outcome and end of the attempt under way."""

    __slots__ = ("msg", "attempt", "outcome", "end")

    def __init__(self, msg: tuple[Any, ...]) -> None:
        self.msg = msg
        self.attempt = 1
        self.outcome = SUCCEED
        #: when the attempt under way ends
        self.end = 0.0


class PublishTimer(NamedTuple):
    """A publish's timeout: which publish of its event id it expires."""

    eid: int
    attempt: int
    deadline: float


class AckToken(NamedTuple):
    """An ack accounted for ahead, without an event (:meth:`Publisher.ack_at`)."""

    #: the broker's copy it acknowledges (``None``: no longer pending there)
    copy: Any
    #: when it reaches the broker
    arrives: float
    txn: int
    #: whether it was counted (sent before the run ends)
    counted: bool


class Pending:
    """A publish waiting for its confirm (an entry of :attr:`Publisher.pending`)."""

    __slots__ = ("txn", "topic", "started", "attempt", "ack", "conf", "deadline", "token", "timed")

    def __init__(
        self, txn: int, topic: int, started: float, ack: tuple[Any, ...] | None, deadline: float, timed: Any
    ) -> None:
        self.txn = txn
        self.topic = topic
        self.started = started
        #: publishes of it so far (resends included)
        self.attempt = 1
        #: the incoming event to acknowledge once confirmed (a dual write), or None
        self.ack = ack
        #: when its confirm, accounted for without an event, arrives (a Due), or _NEVER
        self.conf: Due = _NEVER
        #: when its timeout expires
        self.deadline = deadline
        #: the ack accounted for ahead with the confirm (:meth:`Publisher.ack_at`), or None
        self.token: AckToken | None = None
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

    When both links with the broker are steady (``direct``), the broker's
    confirm costs no event: at the store, the broker draws its latency and
    :meth:`conf_due`, if it will reach the pending publish before that publish's timeout,
    records the instant (``conf_at``) and tells the broker when the ack it
    triggers (dual write) arrives. From ``conf_at`` on the publish counts as
    confirmed. It is exactly what the confirm would do: it pops the entry
    pending for the event id when it arrives, whichever that is, so a
    publish of the same id before then takes the confirm over (and the ack
    goes with it), and a confirm sent the usual way that gets there first
    pops the entry, after which the recorded one is sent as a message after
    all. Anything else (no entry, one confirmed already, a confirm later
    than the timeout) is sent as a message, with the latency drawn.

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

    def __init__(self, node: Node, network: Network, spec: ChoreographySpec, protocol: ChoreographyProtocol) -> None:
        self.node = node
        self.name = node.name
        self.network = network
        self.world = node.world
        self.protocol = protocol
        self.backoff = Backoff(spec.publish_retry, self.world.streams.uniform(f"choreography.{node.name}.publish"))
        #: eid -> the publish of it waiting for its confirm
        self.pending: dict[int, Pending] = {}
        # A publish's timeout at the very instant of its confirm, or of another
        # publish of its event id, goes first (first=True), whichever path
        # the confirm took and whenever the queue was armed.
        self.deadlines = DeadlineQueue(
            self.world, spec.publish_timeout, self._live, self._expired, owner=node, first=True
        )
        self.confirmed: dict[int, None] | None = None  # an outbox's rows, removed when confirmed
        self.resends = 0
        self.dropped = 0
        self._publishes = Counter()
        self._unswept = SWEEP_EVERY
        # set by direct(): confirms and acks without events
        self.lazy = False
        self.broker: Broker | None = None
        self._down: Any = None
        self._up: Any = None
        self._receive: Any = None

    def direct(self, broker: Broker) -> None:
        """Confirms and acks without events (both links with ``broker`` are steady).

        An outbox keeps no rows from then on (``confirmed`` is dropped): its
        owner cannot crash (:meth:`Node.relies_on_fault_plan`), and a restart
        is the only reader of the rows, so writing them would change nothing.
        """
        name = self.name
        self.lazy = True
        self.confirmed = None
        self.broker = broker
        self._down = self.network.latency_of(broker.name, name)
        self._up = self.network.latency_of(name, broker.name)
        self._receive = self.network.receiver(name)
        self._store = broker._store
        broker.confirm_directly(name, self._down, self.conf_due)

    def publish(
        self,
        eid: int,
        txn: int,
        topic: int,
        started: float,
        ack: tuple[Any, ...] | None,
        once: bool = False,
        sent: int = 1,
    ) -> None:
        """Publish ``eid`` until the broker confirms it; ``ack`` is the
        incoming event to acknowledge once confirmed (dual write). ``once``:
        the caller publishes this event id once (apart from resends), so no
        other publish of it can be pending (see the class docstring).
        ``sent``: the messages to count for the transaction now, this publish
        and any the caller sent with it (an ack accounted for without an
        event)."""
        world = self.world
        now = world.env._now
        pending = self.pending
        old = None if once else pending.get(eid)  # (none pending for ``once``: see above)
        if self.lazy:  # _send, inlined for speed; the timeout only if it can expire
            delay = self.deadlines.delay
            deadline = now + delay
            entry = None
            if old is not None and old.conf is not _NEVER:
                entry = Pending(txn, topic, started, ack, deadline, False)
                self._replace(eid, old, entry)  # before the publish's draw: it may draw an ack's
            if world.tracer.on:
                world.tracer.emit(now, self.name, "publish", txn, self.protocol.labels[topic], **_PUBLISH)
            world.messages[txn] += sent
            up = self._up()
            if once and ack is None and up < delay:
                # No entry, unless the confirm is late: see conf_due().
                world.at(up, self._store, ("pub", self.name, txn, eid, topic, started, deadline))
                return
            if entry is None:
                entry = Pending(txn, topic, started, ack, deadline, False)
            pending[eid] = entry
            world.at(up, self._store, ("pub", self.name, txn, eid, topic, started, -INF))
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
            world.tracer.emit(now, self.name, "publish", txn, self.protocol.labels[topic], **_PUBLISH)
        if sent != 1:
            world.messages[txn] += sent - 1
        self._send(eid, entry)

    def _replace(self, eid: int, old: Pending, entry: Pending) -> None:
        """A new publish of ``eid`` while the confirm of the old one was
        accounted for without an event."""
        if self.world.passed(old.conf):
            self.settle(eid)
        else:  # the confirm on its way will pop this entry instead
            conf = entry.conf = old.conf
            if old.token is not None:
                self._retract(old.token)
            if entry.ack is not None:
                entry.token = self.ack_at(entry.ack, conf.at)

    def _send(self, eid: int, entry: Pending) -> None:
        msg = ("pub", self.name, entry.txn, eid, entry.topic, entry.started, -INF)
        if self.lazy:  # what Network.send does on a steady link
            world = self.world
            world.messages[entry.txn] += 1
            world.at(self._up(), self._store, msg)
        else:
            # The n-th publish of this event by this publisher, counted across
            # crashes and restarts (an outbox replay is a later publish, not a
            # first one again): what the n-th final answer is in an orchestration.
            attempt = self._publishes.next(entry.txn, entry.topic)
            self.network.send(self.name, BROKER, msg, self.protocol.publish_roles.get(entry.topic, -1), attempt)
        deadlines = self.deadlines
        entry.deadline = deadline = self.world.env._now + deadlines.delay
        entry.timed = True
        deadlines.add(PublishTimer(eid, entry.attempt, deadline))

    def settle(self, eid: int) -> None:
        """Forget the publish of ``eid`` if it was confirmed (without an event) by now."""
        entry = self.pending.get(eid)
        if entry is not None and self.world.passed(entry.conf):
            del self.pending[eid]  # (no outbox row on this path: see direct())

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
                entry.conf = world.due(latency)
                if entry.ack is not None:
                    entry.token = self.ack_at(entry.ack, at)
                return
            if not entry.timed:  # the confirm is late: now the timeout can expire
                entry.timed = True
                world.at_instant(deadline, self._timeout, PublishTimer(eid, entry.attempt, deadline), first=True)
        world.at(latency, self._receive, ("conf", BROKER, txn, eid))

    def ack_at(self, msg: tuple[Any, ...], at: float) -> AckToken:
        """Acknowledge the delivered copy ``msg`` at ``at`` without an event
        (counted if sent before the run ends); returns a token for :meth:`_retract`."""
        txn = msg[2]
        counted = self.world.count_sent(txn, at)
        arrives = at + self._up()
        return AckToken(self.broker.ack_at(msg[9], arrives), arrives, txn, counted)  # type: ignore[union-attr]

    def _retract(self, token: AckToken) -> None:
        copy, arrives, txn, counted = token
        if counted:
            self.world.messages[txn] -= 1
        if copy is not None:
            self.broker.retract(copy, arrives)  # type: ignore[union-attr]

    def ack(self, msg: tuple[Any, ...]) -> None:
        """Acknowledge the delivered copy ``msg`` now."""
        if self.lazy:  # ack_at, inlined for speed
            world = self.world
            world.messages[msg[2]] += 1
            self.broker.ack_at(msg[9], world.env._now + self._up())  # type: ignore[union-attr]
        else:
            self.network.send(self.name, BROKER, new_record(Ack, ("ack", self.name, msg[2], msg[7], msg[6])))

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
        pending = self.pending
        for eid in [eid for eid, entry in pending.items() if passed(entry.conf)]:
            del pending[eid]

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
                    self.world.now, self.name, "publish-gave-up", entry.txn, self.protocol.labels[entry.topic],
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
        self.protocol.retry(entry.txn)
        self._send(item.eid, entry)

    def confirm(self, eid: int) -> None:
        """A confirm message arrives."""
        entry = self.pending.pop(eid, None)
        if entry is None:
            return
        if self.confirmed is not None:
            self.confirmed.pop(eid, None)
        conf = entry.conf
        if conf is not _NEVER:
            if self.world.passed(conf):
                return  # confirmed already: this confirm finds nothing
            # This one got here first: the confirm recorded for later is a
            # message after all (in its own place in the queue), and its ack is not sent.
            if entry.token is not None:
                self._retract(entry.token)
            self.world.at_due(conf, self._receive, ("conf", BROKER, entry.txn, eid))
        if entry.ack is not None:
            self.ack(entry.ack)

    def on_crash(self) -> None:
        # (A crash never meets an entry confirmed without an event: that path
        # is taken only where the fault plan has no crash: Node.relies_on_fault_plan.)
        if self.confirmed is None:
            self.dropped += len(self.pending)
            if self.world.tracer.on:
                for entry in self.pending.values():
                    self.world.tracer.emit(
                        self.world.now, self.name, "publish-lost", entry.txn, self.protocol.labels[entry.topic],
                        peer=BROKER, message="pub", attempt=entry.attempt,
                    )  # fmt: skip
        self.pending.clear()
        self.deadlines.clear()


class Client(Node):
    """The order service that creates transactions: it publishes ``start``
    from its own outbox, until the broker confirms."""

    def __init__(self, world: World, network: Network, spec: ChoreographySpec, protocol: ChoreographyProtocol) -> None:
        super().__init__(world, CLIENT)
        self.publisher = Publisher(self, network, spec, protocol)

    def handle(self, msg: tuple[Any, ...]) -> None:
        self.publisher.confirm(msg[3])

    def relies_on_fault_plan(self) -> bool:
        return self.publisher.lazy

    def on_crash(self) -> None:
        self.publisher.on_crash()


class ChoreographyParticipant:
    """A participant's choreography side: its consumer, inbox and outbox."""

    def __init__(
        self,
        participant: Participant,
        network: Network,
        spec: ChoreographySpec,
        protocol: ChoreographyProtocol,
    ) -> None:
        self.p = participant
        self.world = participant.world
        self.network = network
        self.protocol = protocol
        self.routes = protocol.routes
        self.kinds = protocol.kinds
        self.idempotent = participant.spec.idempotent
        self.outbox_on = participant.spec.outbox
        streams = self.world.streams
        name = participant.name
        self.retry = Backoff(spec.retry, streams.uniform(f"choreography.{name}.retry"))
        self.comp_retry = Backoff(spec.compensation_retry, streams.uniform(f"choreography.{name}.compensation_retry"))
        self.publisher = Publisher(participant, network, spec, protocol)
        #: the topics this side publishes once per transaction: with an inbox
        #: it handles a step's forward event once, so it emits that step's
        #: ``done`` or ``failed`` once; a compensation's ``done`` can follow
        #: two different events (the ``failed`` and the ``done`` of the
        #: compensation after it, when a step without an inbox handles its
        #: event twice), so it is never taken as once
        self.once_topics: set[int] = set()
        if self.idempotent:
            for step, op in protocol.routes.values():
                if op == FORWARD and protocol.step_participants[step] == participant.name:
                    self.once_topics.update((done(step), failed(step)))
        #: the topics whose handling publishes ``failed`` at once on a refusal
        #: (every forward step: a refusal is final)
        self.refusal_topics = {topic for topic, (_, op) in protocol.routes.items() if op == FORWARD}
        # durable
        self.inbox: dict[int, str] = {}
        self.outbox: dict[int, tuple[int, int, float]] = {}
        if self.outbox_on:
            self.publisher.confirmed = self.outbox  # type: ignore[assignment]
        # counters
        self.dedups = 0
        self.gave_up = 0

    # ------------------------------------------------------------ consuming

    def handle(self, msg: tuple[Any, ...]) -> None:
        if msg[0] == "evt":
            self.consume(msg)
        else:  # "conf"
            self.publisher.confirm(msg[3])

    def consume(self, msg: tuple[Any, ...]) -> None:
        """A copy of an event arrives through the network."""
        if self.idempotent and msg[3] in self.inbox:
            self._dedup(msg)
            return
        self.p.pool.submit(Job(msg), self._start)  # (a job: see _start)

    def consume_direct(self, msg: tuple[Any, ...]) -> None:
        """A copy of an event arrives straight from the broker (a steady
        link; the copy itself is ``msg[9]``). A first delivery may have no ack
        timer (:meth:`Broker.arm`): it gets one now unless its ack is sure to
        be accounted for before its deadline at the end of this very attempt
        (a success, or a refusal that publishes the step's ``failed`` at once,
        on a step that is not retriable; with an outbox, acknowledged at
        once), else then, if that ack is late (:meth:`Broker.ack_at`)."""
        if self.idempotent and msg[3] in self.inbox:
            self._dedup(msg)  # (its ack accounted for now)
            return
        job = Job(msg)
        started = self.p.pool.submit(job, self._start)
        copy = msg[9]
        if (
            not started  # it waits for a worker
            or job.end >= copy.due
            or not self.outbox_on
            or (job.outcome != SUCCEED and (job.outcome != REFUSE or msg[4] not in self.refusal_topics))
        ):
            self.protocol.broker.arm(copy)

    def _dedup(self, msg: tuple[Any, ...]) -> None:
        self.dedups += 1
        if self.world.tracer.on:
            step, op = self.routes[msg[4]]
            self._trace(msg[2], step, op, "dedup", f"{self.inbox[msg[3]]}: nothing applied")
        self.publisher.ack(msg)

    def _start(self, job: Job) -> None:
        """Start an attempt of ``job``. If the participant crashes meanwhile, the work is lost and the
        event stays unacknowledged (:meth:`WorkerPool.serve`)."""
        p = self.p
        p.attempts += 1
        msg = job.msg
        job.outcome, duration = p.draw_attempt(msg[2], *self.routes[msg[4]])
        job.end = self.world.env._now + duration
        p.pool.serve(duration, self._finish, job)

    def _finish(self, job: Job) -> None:
        msg, outcome = job.msg, job.outcome
        p = self.p
        step, op = self.routes[msg[4]]
        if outcome == HANG:
            if self.world.tracer.on:
                self._trace(msg[2], step, op, "hang")
        elif self.idempotent and msg[3] in self.inbox:
            self._dedup(msg)  # a concurrent copy got there first
        elif op == FORWARD:
            if outcome == SUCCEED and self.world.records is not None:
                outcome = self._records_forward(job, step)
                if outcome == HANG:
                    p.pool.release()  # waiting for a pending record, without a worker
                    return
                if outcome == _SKIPPED:
                    self._skipped(msg, step)
                    p.pool.release()
                    return
            if outcome == SUCCEED:  # the success of _forward, inlined for speed
                txn = msg[2]
                if self.idempotent:
                    self.inbox[msg[3]] = _OK
                world = self.world
                world.effects.apply(world.env._now, txn, step, FORWARD, p.name)
                if world.tracer.on:
                    self._trace(txn, step, FORWARD, "effect", "forward")
                self._emit(msg, 1 + 3 * step)  # done(step)
            else:
                self._forward(job, step, outcome)
        else:
            self._compensate(job, step, outcome)
        p.pool.release()

    def _records_forward(self, job: Job, step: int) -> int:
        """A successful attempt meets its records (:mod:`sim.world.records`):
        SUCCEED, REFUSE (a pending record, a failed check or a re-read that
        found a change), HANG when it waits for a pending record (it
        resumes through :meth:`_finish`), or _SKIPPED (version file: its
        compensation came first)."""
        records = self.world.records
        assert records is not None
        txn = job.msg[2]
        if records.skips(txn, step):
            return _SKIPPED
        gate = records.gate(self.p, txn, step, self._finish, job)
        if gate == WAIT:
            return HANG
        if gate == REFUSE_PENDING or not records.forward(self.p.name, txn, step):
            job.outcome = REFUSE
            return REFUSE
        return SUCCEED

    def _skipped(self, msg: tuple[Any, ...], step: int) -> None:
        """A copy of a step's event delivered after its compensation (version
        file): not applied, and nothing published (the saga went on without
        it, as for a duplicate): only acknowledged."""
        self._trace(msg[2], step, FORWARD, "skip", "version file: compensated already, not applied")
        self.publisher.ack(msg)

    def _forward(self, job: Job, step: int, outcome: int) -> None:
        """A forward attempt that did not succeed (a success is handled in :meth:`_finish`)."""
        msg = job.msg
        txn = msg[2]
        kind = self.kinds[step]
        if outcome == REFUSE:
            self._trace(txn, step, FORWARD, "refuse", "final: the saga cannot complete" if kind == "retriable" else "")
        else:
            self._trace(txn, step, FORWARD, "error", "transient")
            if job.attempt < self.retry.limit or kind != "compensatable":
                self._retry(job, self.retry)
                return
            self._trace(txn, step, FORWARD, "exhausted", f"after {job.attempt} attempts")
        if self.idempotent:
            self.inbox[msg[3]] = _REFUSED
        self._emit(msg, failed(step))

    def _compensate(self, job: Job, step: int, outcome: int) -> None:
        msg = job.msg
        txn = msg[2]
        if outcome == FAIL:
            self._trace(txn, step, COMPENSATE, "error", "transient")
            if job.attempt < self.comp_retry.limit:
                self._retry(job, self.comp_retry)
                return
            self.gave_up += 1
            self.protocol.gave_up.add(txn)
            self._trace(txn, step, COMPENSATE, "give-up")
        else:
            if self.world.records is None or self.world.records.compensate(self.p.name, txn, step):
                self.world.effects.apply(self.world.env._now, txn, step, COMPENSATE, self.p.name)
                self._trace(txn, step, COMPENSATE, "effect", "compensation")
            else:  # version file: nothing applied to undo
                self._trace(txn, step, COMPENSATE, "null-compensation", "version file: nothing to undo")
        if self.idempotent:
            self.inbox[msg[3]] = _OK
        self._emit(msg, undone(step))

    def _retry(self, job: Job, backoff: Backoff) -> None:
        job.attempt += 1
        self.protocol.retry(job.msg[2])
        self.p.after(backoff.wait(job.attempt), self._again, job)

    def _again(self, job: Job) -> None:
        self.p.pool.submit(job, self._start)

    # ------------------------------------------------------------ publishing

    def _emit(self, incoming: tuple[Any, ...], topic: int) -> None:
        txn = incoming[2]
        eid = topic * TOPIC_STRIDE + txn
        started = incoming[5]
        if self.outbox_on:
            publisher = self.publisher
            if publisher.lazy:  # Publisher.ack, inlined for speed
                publisher.broker.ack_at(incoming[9], self.world.env._now + publisher._up())  # type: ignore[union-attr]
                # No outbox row: on steady links this side cannot crash, and
                # only a restart reads the rows (see Publisher.direct). The
                # ack is counted with the publish.
                publisher.publish(eid, txn, topic, started, None, topic in self.once_topics, 2)
                return
            publisher.ack(incoming)
            publisher.publish(eid, txn, topic, started, None, topic in self.once_topics)
            self.outbox[eid] = (txn, topic, started)  # the relay's row, until confirmed
        else:
            self.publisher.publish(eid, txn, topic, started, incoming, topic in self.once_topics)

    def _trace(self, txn: int, step: int, op: int, kind: str, detail: str = "") -> None:
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.p.name, kind, txn, self.protocol.op_labels[step][op], detail)

    # ------------------------------------------------------------ crashes

    def on_crash(self) -> None:
        self.publisher.on_crash()

    def relies_on_fault_plan(self) -> bool:
        return bool(self.publisher.lazy)

    def on_restart(self) -> None:
        for eid, (txn, topic, started) in list(self.outbox.items()):
            self.publisher.publish(eid, txn, topic, started, None)


def _topic_labels(steps: list[StepSpec]) -> dict[int, str]:
    """Every topic's name: ``start`` and each step's done, failed and undone event."""
    labels = {START: "start"}
    for i, s in enumerate(steps):
        labels[done(i)] = f"{s.name}.done"
        labels[failed(i)] = f"{s.name}.failed"
        labels[undone(i)] = f"{s.compensation or s.name}.done"
    return labels


def _routes(kinds: list[str]) -> dict[int, tuple[int, int]]:
    """Topic -> the (step, operation) that reacts to it; a topic absent is terminal."""
    n = len(kinds)
    routes: dict[int, tuple[int, int]] = {START: (0, FORWARD)}
    for i in range(n):
        if i + 1 < n:
            routes[done(i)] = (i + 1, FORWARD)
        earlier = [k for k in range(i) if kinds[k] == "compensatable"]
        if earlier and kinds[i] != "retriable":
            # (a retriable step's failed is terminal: past the pivot
            # nothing may be compensated)
            routes[failed(i)] = (earlier[-1], COMPENSATE)
            routes[undone(i)] = (earlier[-1], COMPENSATE)
    return routes


class ChoreographyProtocol:
    """The runner's handle on a choreography saga."""

    name = "choreography"

    #: Account for messages on steady links without events (see the module
    #: docstring); ``False`` sends every message through the network.
    elide = True

    def __init__(
        self,
        world: World,
        network: Network,
        broker_spec: BrokerSpec,
        spec: ChoreographySpec,
        transaction: TransactionSpec,
        participants: dict[str, Participant],
        stuck_after: float,
    ) -> None:
        self.world = world
        self.network = network
        self._direct_done = False
        steps = transaction.steps
        n = len(steps)
        self.n_steps = n
        self.kinds = [s.kind for s in steps]
        self.step_participants = [s.participant for s in steps]
        self.op_labels = [(s.name, s.compensation or "") for s in steps]
        labels = _topic_labels(steps)
        self.labels = labels
        #: topic -> (step, op) that reacts to it; topics absent here are terminal
        self.routes: dict[int, tuple[int, int]] = _routes(self.kinds)
        self.terminal_topics = {t for t in labels if t not in self.routes}
        #: the terminal failed events of retriable steps (a refusal there is final)
        self.cannot_complete_topics = {failed(i) for i in range(n) if self.kinds[i] == "retriable"}
        self.committed_topic = done(n - 1)
        self.broker = Broker(world, network, broker_spec, labels)
        self.broker.terminal_topics = self.terminal_topics
        network.attach(self.broker)
        self.tracker = SagaTracker(world, network, stuck_after, self.terminal_topics, labels)
        network.attach(self.tracker)
        self.client = Client(world, network, spec, self)
        network.attach(self.client)
        self.retries: dict[int, int] = {}
        self.gave_up: set[int] = set()
        self.sides: dict[str, ChoreographyParticipant] = {}
        for name in dict.fromkeys(s.participant for s in steps):
            side = ChoreographyParticipant(participants[name], network, spec, self)
            participants[name].side = side
            self.sides[name] = side
        self._subscribe()
        #: topic -> the role of publishing it: what a participant's reply
        #: about the step and operation that emits it is (the client's start has none)
        self.publish_roles = {done(i): reply_role(i, FORWARD) for i in range(n)}
        self.publish_roles.update({failed(i): reply_role(i, FORWARD) for i in range(n)})
        self.publish_roles.update({undone(i): reply_role(i, COMPENSATE) for i in range(n)})

    def _subscribe(self) -> None:
        """Each topic's reacting participant, and the tracker, subscribe to it."""
        for topic in self.labels:
            if topic in self.routes:
                participant = self.step_participants[self.routes[topic][0]]
                self.broker.subscribe(topic, participant, participant)
                # the delivery that asks a participant to run a step: what an
                # orchestrator's command for that step is (paired fates)
                self.broker.delivery_roles[(participant, topic)] = command_role(*self.routes[topic])
            self.broker.subscribe(topic, "tracker", "tracker")

    def retry(self, txn: int) -> None:
        self.retries[txn] = self.retries.get(txn, 0) + 1

    def _direct(self) -> None:
        """Take the event-free path for every steady pair of links with the
        broker. Done at the first transaction: the fault plan is known by then."""
        self._direct_done = True
        if not self.elide:
            return
        network = self.network

        def steady(name: str) -> bool:
            return network.steady(BROKER, name) and network.steady(name, BROKER)

        if steady(TRACKER):
            self.tracker.direct(self.broker)
        for name, publisher in ((CLIENT, self.client.publisher), *((n, s.publisher) for n, s in self.sides.items())):
            if steady(name):
                publisher.direct(self.broker)
        broker = self.broker
        for name, side in self.sides.items():
            if steady(name):
                broker.consume_directly(name, network.latency_of(BROKER, name), side.consume_direct)
        if all(group in broker.direct or group in broker.takers for group in broker.consumer):
            broker.unindex()

    def start(self, txn: int) -> bool:
        if not self._direct_done:
            self._direct()
        eid = START * TOPIC_STRIDE + txn
        self.client.publisher.publish(eid, txn, START, self.world.env._now, None, True)
        return True

    def view(self, txn: int) -> CoordinatorView:
        retries = self.retries.get(txn, 0) + self.broker.redelivered.get(txn, 0)
        end = self.broker.terminal.get(txn)
        if end is None:
            return CoordinatorView(False, math.nan, "running", retries)
        at, topic = end
        if topic == self.committed_topic:
            belief = "committed"
        elif txn in self.gave_up or topic in self.cannot_complete_topics:
            belief = "failed"  # a compensation given up, or a retriable step refused: the saga cannot complete
        else:
            belief = "compensated"
        return CoordinatorView(True, at, belief, retries)

    def flagged_at(self, txn: int) -> float:
        return self.tracker.flagged_at(txn)

    def alert_due(self, txn: int, started: float) -> float:
        """When the tracker's alert for ``txn`` falls due (``started`` is not
        used: the tracker counts from when it first heard of the transaction);
        NaN when it never heard of it."""
        return self.tracker.alert_due(txn)

    def blind_spots(self) -> dict[int, str]:
        """Transactions the saga tracker was blind to, by cause (see
        :meth:`sim.world.tracker.SagaTracker.blind_spots`)."""
        return self.tracker.blind_spots(self.broker.dead)

    def nodes(self) -> list[Node]:
        return [self.broker, self.tracker]

    def summary_extra(self) -> dict[str, Any]:
        broker = self.broker
        sides = self.sides.values()
        return {
            "events_stored": broker.stored,
            "deliveries": broker.deliveries,
            "redeliveries": broker.redeliveries,
            "dead_lettered": len(broker.dead),
            "publish_resends": self.client.publisher.resends + sum(s.publisher.resends for s in sides),
            "publishes_dropped": sum(s.publisher.dropped for s in sides) + self.client.publisher.dropped,
            "inbox_dedups": sum(s.dedups for s in sides),
            "gave_up": sum(s.gave_up for s in sides),
        }


def build(model: Model) -> ChoreographyProtocol:
    """The protocol on a run's model (see :mod:`sim.protocols.registry`)."""
    s = model.scenario
    return ChoreographyProtocol(
        model.world, model.network, s.broker, s.choreography, s.transaction, model.participants, s.monitor.stuck_after
    )
