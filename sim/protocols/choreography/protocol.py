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
This module has one path for each: it publishes, acknowledges and is told
of confirms through its :class:`~sim.world.publisher.Publisher`, and
consumes what the broker delivers. On *steady* links (no fault of the run's
plan, no loss and no duplication can touch them, neither end can crash or
pause: see :mod:`sim.world.network`) the engine accounts for confirms, acks
and the tracker's copies without an event each (:meth:`Broker.elide`,
:mod:`sim.world.publisher`, :mod:`sim.world.broker`); nothing here depends
on it, apart from telling the publisher when an attempt surely acknowledges
its copy (:meth:`ChoreographyParticipant.consume`). In a run open to faults
applied while it goes, the engine switches that accounting off for the
links a runtime fault could touch, at its start (:meth:`Broker.undirect`).
``ChoreographyProtocol.elide = False`` takes the full path for every message.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sim.protocols.base import CoordinatorView
from sim.protocols.retry import Backoff
from sim.world.broker import Broker
from sim.world.effects import COMPENSATE, FORWARD
from sim.world.messages import EVT, Confirm, Delivery
from sim.world.network import command_role, reply_role
from sim.world.node import Node
from sim.world.participant import FAIL, HANG, REFUSE, SUCCEED
from sim.world.publisher import Publisher
from sim.world.records import REFUSE as REFUSE_PENDING
from sim.world.records import WAIT
from sim.world.tracker import SagaTracker

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


class Job:
    """A participant's handling of one delivered event: the event, its
    attempt number, and the outcome and end of the attempt under way."""

    __slots__ = ("msg", "attempt", "outcome", "end")

    def __init__(self, msg: Delivery) -> None:
        self.msg = msg
        self.attempt = 1
        self.outcome = SUCCEED
        #: when the attempt under way ends
        self.end = 0.0


class Client(Node):
    """The order service that creates transactions: it publishes ``start``
    from its own outbox, until the broker confirms."""

    def __init__(self, world: World, network: Network, spec: ChoreographySpec, protocol: ChoreographyProtocol) -> None:
        super().__init__(world, CLIENT)
        backoff = Backoff(spec.publish_retry, world.streams.uniform(f"choreography.{CLIENT}.publish"))
        self.publisher = Publisher(self, network, spec.publish_timeout, backoff, protocol)

    def handle(self, msg: Confirm) -> None:
        self.publisher.confirm(msg.eid)

    def relies_on_fault_plan(self) -> bool:
        return self.publisher.relies_on_fault_plan()

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
        backoff = Backoff(spec.publish_retry, streams.uniform(f"choreography.{name}.publish"))
        self.publisher = Publisher(participant, network, spec.publish_timeout, backoff, protocol, self.outbox_on)
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
        # counters
        self.dedups = 0
        self.gave_up = 0

    # ------------------------------------------------------------ consuming

    def handle(self, msg: Delivery | Confirm) -> None:
        if msg.kind == EVT:
            self.consume(msg)  # type: ignore[arg-type]
        else:  # a Confirm
            self.publisher.confirm(msg.eid)

    def consume(self, msg: Delivery) -> None:
        """A copy of an event arrives: start a job for it (it may wait for a
        worker), and tell the publisher when this very attempt acknowledges
        the copy, if it surely does: with an outbox, at its end if it
        succeeds, or if it refuses a step that is not retriable (its
        ``failed`` is published at once). The publisher needs to know
        (:meth:`Publisher.delivered`)."""
        if self.idempotent and msg.eid in self.inbox:
            self._dedup(msg)  # (its ack sent now)
            return
        job = Job(msg)
        acked_by = math.inf
        settle = self.world.settle
        if settle is not None:  # a job is pending work until it ends or is lost (sim.world.settle)
            settle.hold(msg.txn)
            started = self.p.pool.submit(job, self._start, lost=self._lost)
        else:
            started = self.p.pool.submit(job, self._start)
        if started and self.outbox_on:
            outcome = job.outcome
            if outcome == SUCCEED or (outcome == REFUSE and msg.topic in self.refusal_topics):
                acked_by = job.end
        self.publisher.delivered(msg, acked_by)

    def _dedup(self, msg: Delivery) -> None:
        self.dedups += 1
        if self.world.tracer.on:
            step, op = self.routes[msg.topic]
            self._trace(msg.txn, step, op, "dedup", f"{self.inbox[msg.eid]}: nothing applied")
        self.publisher.ack(msg)

    def _start(self, job: Job) -> None:
        """Start an attempt of ``job``. If the participant crashes meanwhile, the work is lost and the
        event stays unacknowledged (:meth:`WorkerPool.serve`)."""
        p = self.p
        p.attempts += 1
        msg = job.msg
        job.outcome, duration = p.draw_attempt(msg.txn, *self.routes[msg.topic])
        job.end = self.world.env._now + duration
        p.pool.serve(duration, self._finish, job, self._lost if self.world.settle is not None else None)

    def _lost(self, job: Job) -> None:
        """A job lost in a crash (waiting for a worker, in service or waiting
        to retry): no longer pending (judging as the run goes)."""
        self.world.settle.release(job.msg.txn)  # type: ignore[union-attr]

    def _finish(self, job: Job) -> None:
        msg, outcome = job.msg, job.outcome
        p = self.p
        step, op = self.routes[msg.topic]
        if outcome == HANG:
            if self.world.tracer.on:
                self._trace(msg.txn, step, op, "hang")
        elif self.idempotent and msg.eid in self.inbox:
            self._dedup(msg)  # a concurrent copy got there first
        elif op == FORWARD:
            if outcome == SUCCEED and self.world.records is not None:
                outcome = self._records_forward(job, step)
                if outcome == HANG:
                    p.pool.release()  # waiting for a pending record, without a worker
                    return
            if outcome == _SKIPPED:
                self._skipped(msg, step)
            else:
                self._forward(job, step, outcome)
        else:
            self._compensate(job, step, outcome)
        p.pool.release()
        settle = self.world.settle
        if settle is not None:  # the attempt ended (a retry is pending work of its own: _retry)
            settle.release(msg.txn)

    def _records_forward(self, job: Job, step: int) -> int:
        """A successful attempt meets its records (:mod:`sim.world.records`):
        SUCCEED, REFUSE (a pending record, a failed check or a re-read that
        found a change), HANG when it waits for a pending record (it
        resumes through :meth:`_finish`), or _SKIPPED (version file: its
        compensation came first)."""
        records = self.world.records
        assert records is not None
        txn = job.msg.txn
        if records.skips(txn, step):
            return _SKIPPED
        gate = records.gate(self.p, txn, step, self._finish, job)
        if gate == WAIT:
            return HANG
        if gate == REFUSE_PENDING or not records.forward(self.p.name, txn, step):
            job.outcome = REFUSE
            return REFUSE
        return SUCCEED

    def _skipped(self, msg: Delivery, step: int) -> None:
        """A copy of a step's event delivered after its compensation (version
        file): not applied, and nothing published (the saga went on without
        it, as for a duplicate): only acknowledged."""
        self._trace(msg.txn, step, FORWARD, "skip", "version file: compensated already, not applied")
        self.publisher.ack(msg)

    def _forward(self, job: Job, step: int, outcome: int) -> None:
        """The end of a forward attempt: its effect and ``done``, or its refusal or error."""
        msg = job.msg
        txn = msg.txn
        if outcome == SUCCEED:
            if self.idempotent:
                self.inbox[msg.eid] = _OK
            world = self.world
            world.effects.apply(world.env._now, txn, step, FORWARD, self.p.name)
            if world.tracer.on:
                self._trace(txn, step, FORWARD, "effect", "forward")
            self._emit(msg, self.protocol.done_topics[step])
            return
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
            self.inbox[msg.eid] = _REFUSED
        self._emit(msg, failed(step))

    def _compensate(self, job: Job, step: int, outcome: int) -> None:
        msg = job.msg
        txn = msg.txn
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
            self.inbox[msg.eid] = _OK
        self._emit(msg, undone(step))

    def _retry(self, job: Job, backoff: Backoff) -> None:
        job.attempt += 1
        self.protocol.retry(job.msg.txn)
        settle = self.world.settle
        if settle is not None:  # pending until its next attempt ends (this one's ends now)
            settle.hold(job.msg.txn)
        self.p.after(backoff.wait(job.attempt), self._again, job, self._lost if settle is not None else None)

    def _again(self, job: Job) -> None:
        self.p.pool.submit(job, self._start, lost=self._lost if self.world.settle is not None else None)

    # ------------------------------------------------------------ publishing

    def _emit(self, incoming: Delivery, topic: int) -> None:
        txn = incoming.txn
        eid = topic * TOPIC_STRIDE + txn
        started = incoming.started
        once = topic in self.once_topics
        if self.outbox_on:
            # The event is stored with the effect, the incoming event
            # acknowledged at once; a relay publishes the row until confirmed.
            self.publisher.ack(incoming)
            self.publisher.publish(eid, txn, topic, started, None, once, durable=True)
        else:  # the dual write: acknowledged once its publish is confirmed
            self.publisher.publish(eid, txn, topic, started, incoming, once)

    def _trace(self, txn: int, step: int, op: int, kind: str, detail: str = "") -> None:
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.p.name, kind, txn, self.protocol.op_labels[step][op], detail)

    # ------------------------------------------------------------ crashes

    def on_crash(self) -> None:
        self.publisher.on_crash()

    def relies_on_fault_plan(self) -> bool:
        return self.publisher.relies_on_fault_plan()

    def on_restart(self) -> None:
        self.publisher.republish()


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
        #: each step's ``done`` topic, by step
        self.done_topics = [done(i) for i in range(n)]
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
                step, op = self.routes[topic]
                participant = self.step_participants[step]
                self.broker.subscribe(topic, participant, participant)
                # the delivery that asks a participant to run a step: what an
                # orchestrator's command for that step is (paired fates)
                self.broker.delivery_roles[(participant, topic)] = command_role(step, op)
            self.broker.subscribe(topic, "tracker", "tracker")

    def retry(self, txn: int) -> None:
        self.retries[txn] = self.retries.get(txn, 0) + 1

    def _direct(self) -> None:
        """Let the broker account for the messages on steady links without
        events (:meth:`Broker.elide`). Done at the first transaction: the
        fault plan is known by then."""
        self._direct_done = True
        if self.elide:
            publishers = [self.client.publisher, *(side.publisher for side in self.sides.values())]
            self.broker.elide(self.tracker, publishers, {name: side.consume for name, side in self.sides.items()})

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

    @property
    def settles(self) -> bool:
        """Whether a run judges its transactions as it goes (:mod:`sim.world.settle`):
        with per-key ordering, where the broker can tell a transaction's
        copies apart (:meth:`Broker.quiet`)."""
        return self.broker.ordered

    @property
    def judged_at_end_because(self) -> str:
        """Why a run is judged at the end, when it is (see :attr:`settles`)."""
        if self.broker.ordered:
            return ""
        return 'broker.ordering = "unordered": the broker keeps no copy of a transaction where it can be found'

    def _eids(self, txn: int) -> list[int]:
        return [topic * TOPIC_STRIDE + txn for topic in self.labels]

    def quiet(self, txn: int) -> bool:
        """Whether nothing the engine keeps can still change ``txn``; asked
        once it is terminal and no work for it is counted pending (jobs,
        messages, publishes and deliveries in flight): the tracker's word on
        it is final, the broker holds no copy of it unacknowledged, and no
        publisher is still publishing one of its events."""
        if not (self.tracker.quiet(txn) and self.broker.quiet(txn)):
            return False
        eids = self._eids(txn)
        return self.client.publisher.quiet(eids) and all(side.publisher.quiet(eids) for side in self.sides.values())

    def forget(self, txn: int) -> None:
        """Drop what the protocol and the engine keep of a settled transaction (judged already)."""
        eids = self._eids(txn)
        self.broker.forget(txn, eids)
        self.tracker.forget(txn)
        self.client.publisher.forget(eids)
        for side in self.sides.values():
            side.publisher.forget(eids)
            for eid in eids:
                side.inbox.pop(eid, None)
        self.retries.pop(txn, None)
        self.gave_up.discard(txn)

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
