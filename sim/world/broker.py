"""The message broker: topics, consumer groups, at-least-once delivery.

Publishers send a ``Publish`` (kind ``pub``, :mod:`sim.world.messages`) to
the node ``broker`` through the network. The broker stores the event
(durably), answers with a ``Confirm`` (``conf``) and delivers one copy to
every consumer group subscribed to the topic, a ``Delivery`` (``evt``). A
consumer acknowledges a copy with an ``Ack`` once it has handled it.

* **At least once.** A copy not acknowledged ``ack_timeout`` after its
  delivery (consumer slow, crashed, the event or the ack lost) is delivered
  again; duplicates are normal. An ack that arrives at the very instant of
  the timeout is late: the broker's timeouts go before anything else due at
  their instant, so the tie is decided the same way whichever path the ack
  took and whenever the timer's wake-up was scheduled. After ``max_deliveries`` deliveries without an
  ack the copy goes to the dead-letter topic (``dead``), is no longer
  delivered, and is reported.
* **Ordering.** ``per-key``: per group, one transaction's copies are delivered
  one at a time in the order they were stored (the next only after the
  previous is acknowledged or dead-lettered): Kafka-like per-key partitions
  without head-of-line blocking across keys. ``unordered``: every copy is
  delivered at once (a RabbitMQ-like queue with many consumers).
* **Publishes** travel the network and may be lost or duplicated; the broker
  stores every publish that arrives, so a duplicated publish or a publisher's
  retry after a lost confirm stores the event twice, unless ``deduplicate``
  (an idempotent producer: event ids already stored are only confirmed).
* **Crashes.** Stored events, pending copies and their delivery counts are
  durable; the ack timers are not. A restarted broker delivers every pending
  copy again (the heads of the partitions with ``per-key``). Publishes and
  acks that arrive while it is down are lost with it.

The broker also records, durably, the first time it stored one of a
transaction's *terminal* events (``terminal``): that is when the chain of
events of a choreography reached its end.

**Messages on steady links** (no fault of the run's plan, no loss and no
duplication can touch them, and neither end can crash or pause: see
:mod:`sim.world.network`) can be accounted for without an event each. The
protocol registers, for such consumers and publishers, a *taker* (``takers``:
group -> a function that receives a copy at its delivery and accounts for
its ack when it is sent), a *direct* consumer (``direct``, see
:meth:`Broker.consume_directly`: its copies are scheduled straight to its
handler, with the copy itself in the message so that its ack needs no
look-up) and a *confirmer* (``confirmers``, see
:meth:`Broker.confirm_directly`: publisher node -> the confirm's latency and
a function that accounts for it). Every such message is
still counted (the broker counts the confirm, and a taker's delivery and
ack), and its latency is the one the same message sent through the network
draws: a delivery's is keyed by (store number, delivery number), its ack's
by the copy it acknowledges, a confirm's by the broker's count of confirms to its publisher
(:meth:`sim.world.network.Network.lane`). An ack accounted
for this way is a due time (:meth:`Broker.ack_at`), taken when the ack is
sent, never ahead (so it has the place among the events of the instant it
arrives that its message would have): the copy counts as
acknowledged from that instant on. Whatever an ack does when it arrives is
done then or found later: the redelivery check compares times, and with
``per-key`` ordering the next copy of the partition is delivered at that
instant (one event, only when a copy is waiting). The run is the same as if
the ack had been a message.

In a run open to faults applied while it goes, a steady link stops being
steady when a runtime fault could touch it; the broker then turns this
accounting off for that node's links, from that instant, as if they had
taken the full path from the start (:meth:`Broker.undirect`).

The cheapest case, for the saga tracker (:meth:`Broker.lean`): a taker's copy
whose ack arrives before its ack timeout can never be redelivered, so it is
not stored at all (no :class:`Copy`, no ack timer); only the instant its ack
arrives is kept, for per-key ordering. When every group is consumed on a
steady link, ``pending`` is not kept either (:meth:`Broker.unindex`): nothing
looks a copy up by its number, and the broker cannot crash.

The next cheapest, for a direct consumer with per-key ordering: a first
delivery that nothing waits for has no partition and no ack timer. The
broker keeps the copy in ``flights`` (txn -> copy, per group) until a sweep
every ``SWEEP_EVERY`` stores finds it acknowledged; a copy stored meanwhile
for the same transaction and group waits behind it in a partition, as
usual. Its consumer gives it its ack timer (:meth:`Broker.arm`) as soon as
the ack may come at or after the deadline (the attempt hangs, fails, waits
for a worker, or the ack waits for a confirm), in the place among the other
timers that it would have had from the delivery on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import partial
from itertools import islice, takewhile
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from sim.world.core import Due
from sim.world.messages import ACK, Ack, Confirm, Delivery, Publish
from sim.world.network import Lane
from sim.world.node import Node
from sim.world.timers import DeadlineQueue
from sim.world.trace import IN, OUT

if TYPE_CHECKING:
    from sim.world.core import World
    from sim.world.network import Network
    from sim.world.publisher import Publisher
    from sim.world.tracker import SagaTracker, TrackerEntry

BROKER = "broker"

INF = math.inf

#: Stores between two sweeps of what the broker keeps of first deliveries to
#: direct consumers (:meth:`Broker._sweep`).
SWEEP_EVERY = 256


class BrokerSettings(Protocol):
    """What the broker reads of its configuration (the scenario's ``[broker]``
    table, whose spec belongs to the protocol that runs a broker)."""

    ordering: str
    ack_timeout: float
    deduplicate: bool

    @property
    def delivery_limit(self) -> float: ...


class Copy:
    """One stored event for one consumer group (durable)."""

    __slots__ = (
        "seq", "txn", "eid", "topic", "started", "group",
        "deliveries", "done", "acked", "ack_eid", "settling", "due", "order", "waited",
    )  # fmt: skip

    def __init__(self, seq: int, txn: int, eid: int, topic: int, started: float, group: str) -> None:
        self.seq = seq
        self.txn = txn
        self.eid = eid
        self.topic = topic
        self.started = started
        self.group = group
        self.deliveries = 0
        self.done = False  # acknowledged or dead-lettered
        #: when the first ack accounted for without an event arrives (``inf``: none yet)
        self.acked = INF
        #: the event id that ack's delivery would have had (its place among the
        #: events of its instant: :meth:`World.passed`)
        self.ack_eid = 0
        #: the ``ack_eid`` of the ack whose arrival is scheduled to settle
        #: the copy (:meth:`Broker._settle_at_ack`), 0: none
        self.settling = 0
        #: the ack deadline of a first delivery that has no ack timer (yet):
        #: see :meth:`Broker.arm`; ``inf`` for every other copy
        self.due = INF
        #: with ``due``: where its timer goes among the others (:meth:`Broker.arm`)
        self.order = 0
        #: copies have waited behind this one, the head of its partition (per-key)
        self.waited = False


class DirectConsumer(NamedTuple):
    """A consumer group on a steady link (:meth:`Broker.consume_directly`)."""

    #: the keyed latencies of its deliveries (``Broker.delivery_lanes``)
    latency: Lane
    #: receives each copy (the copy itself in the message: ``Delivery.copy``)
    handler: Callable[[Delivery], None]
    #: txn -> its first delivery that nothing waited for, or _PARTED
    flights: dict[int, Copy]


class AckTimer(NamedTuple):
    """An ack timer of a copy's delivery (an item of ``Broker.deadlines``)."""

    copy: Copy
    #: the delivery it times: the copy's count of deliveries then
    deliveries: int
    #: the broker's epoch then (a crash loses the timers)
    epoch: int
    #: the broker's count of deliveries then: the order of the timers added at one instant
    order: int


_ORDER = attrgetter("order")


class Confirmer(NamedTuple):
    """A publisher on a steady link (:meth:`Broker.confirm_directly`)."""

    #: the keyed latencies of its confirms (by the broker's count of them: ``lane.sent``)
    lane: Lane
    conf_due: Callable[..., None]


_ACKED = attrgetter("acked")

#: In a direct group's ``flights``: the transaction's copies are in a partition.
_PARTED = Copy(0, -1, 0, 0, 0.0, "")


class Broker(Node):
    """The broker node (its name is ``broker``)."""

    def __init__(self, world: World, network: Network, spec: BrokerSettings, labels: dict[int, str]) -> None:
        super().__init__(world, BROKER)
        self.network = network
        #: ``post(delay, handler, msg)``: a delivery to a direct consumer (:meth:`consume_directly`)
        self._post: Callable[[float, Callable[[Delivery], None], Delivery], None] = world.at
        self.spec = spec
        self.labels = labels
        self.ordered = spec.ordering == "per-key"
        self.deduplicate = spec.deduplicate
        self.limit = spec.delivery_limit
        #: topic -> [(group, consumer node)]
        self.subscribers: dict[int, list[tuple[str, str]]] = {}
        self.groups: dict[int, list[str]] = {}
        self.terminal_topics: set[int] = set()
        #: (group, topic) -> the role of delivering the topic to the group
        #: (:func:`sim.world.network.command_role`); pairs absent have none
        self.delivery_roles: dict[tuple[str, int], int] = {}
        # durable
        #: (group, seq) -> copy not yet acknowledged or dead-lettered; kept only
        #: while ``indexed`` (see :meth:`unindex`)
        self.pending: dict[tuple[str, int], Copy] = {}
        self.indexed = True
        self.partitions: dict[tuple[str, int], list[Copy]] = {}
        self.consumer: dict[str, str] = {}
        self.seen: set[int] = set()
        self.terminal: dict[int, tuple[float, int]] = {}
        self.dead: list[Copy] = []
        # counters
        #: events stored; also the number of the last store (see _store)
        self.stored = 0
        #: deliveries; the count at a delivery also places its ack timer
        #: among the others (every timer is added right after its delivery)
        self.deliveries = 0
        self.redeliveries = 0
        self.redelivered: dict[int, int] = {}
        #: group -> the keyed latencies of its deliveries, by (store number, delivery number)
        self.delivery_lanes: dict[str, Lane] = {}
        #: publisher node -> the keyed latencies of its confirms
        self._confirm_lanes: dict[str, Lane] = {}
        # An ack that arrives at the very instant of its deadline is late: the
        # timeout goes first (first=True), whichever path the ack took.
        self.deadlines = DeadlineQueue(world, spec.ack_timeout, self._unacked, self._redeliver, owner=self, first=True)
        #: group -> takes a delivered copy on a steady link (no event per delivery and ack)
        self.takers: dict[str, Callable[[Copy], None]] = {}
        #: publisher node -> (confirm latencies, conf_due) of a publisher on a
        #: steady link (see :meth:`confirm_directly`)
        self.confirmers: dict[str, Confirmer] = {}
        #: group -> (delivery latencies, handler, flights) of a consumer on a
        #: steady link (see :meth:`consume_directly`)
        self.direct: dict[str, DirectConsumer] = {}
        #: node -> its publishers whose links with the broker are accounted
        #: for without events, in a run open to runtime faults (see :meth:`undirect`)
        self._switchable: dict[str, list[Publisher]] = {}
        # the group whose copies are taken without a stored copy (see lean())
        self._lean: str | None = None
        self._lean_take: Any = None
        self._lean_late: Any = None
        self._lean_table: dict[int, TrackerEntry] = {}

    def unindex(self) -> None:
        """Stop keeping ``pending``: every group is consumed on a steady link
        (nothing looks a copy up by its number: acks name the copy itself)
        and the broker cannot crash (nothing redelivers from the index)."""
        self.indexed = False
        self.pending.clear()

    def lean(
        self,
        group: str,
        take: Callable[[int, int, int, float, float, Any], float],
        late: Callable[[Copy], None],
        table: dict[int, TrackerEntry],
    ) -> None:
        """Take the copies of ``group`` (a taker) without storing a copy each.

        ``take(seq, txn, topic, now, deadline, entry)`` receives a copy (store
        number ``seq``) at its delivery and
        returns when its ack arrives; when that is before ``deadline`` (the
        copy will never be redelivered) it records the instant in
        ``table[txn].acked``, and nothing else is kept: with per-key ordering
        the next copy of the partition waits until then (the partition
        ``(group, txn)`` is created only for a copy that waits, and for a
        copy whose ack is late, which is stored and tracked as usual: the
        broker hands it to ``late(copy)``, which accounts for its ack when it
        is sent, :meth:`ack_at`). The broker counts the copy's delivery;
        ``take`` counts its ack, which the taker sends when the copy reaches
        it (:meth:`World.count_sent`).
        ``entry`` is ``table.get(txn)``, and the broker keeps the
        partition it creates in ``table[txn].partition`` (the list itself, empty
        once the partition is gone), so that a copy with none to wait for
        costs no partition look-up.
        """
        self._lean = group
        self._lean_take = take
        self._lean_late = late
        self._lean_table = table

    def elide(
        self,
        tracker: SagaTracker,
        publishers: Iterable[Publisher],
        consumers: dict[str, Callable[[Delivery], None]],
    ) -> None:
        """Account for the messages on every steady pair of links with the
        broker (both ways: see :meth:`Network.steady`) without an event each:
        the tracker's copies and acks (:meth:`lean`), a publisher's confirms
        and acks (:meth:`Publisher.direct`), and the deliveries to a consumer
        group (``consumers``: group -> the handler the network delivers its
        copies to; :meth:`consume_directly`). Call it once the fault plan is
        known and before the first publish.

        In a run open to faults applied while it goes (:attr:`Network.open`)
        a steady link may stop being steady: the network then calls
        :meth:`undirect` for its node, which takes the full path from that
        instant. There the broker keeps what that needs: every copy in
        ``pending``, and the tracker takes the full path from the start (its
        accounting records a copy's arrival ahead, which a crash of the
        tracker could not take back)."""
        network = self.network
        switchable = network.open

        def steady(name: str) -> bool:
            return network.steady(BROKER, name) and network.steady(name, BROKER)

        if steady(tracker.name) and not switchable:
            tracker.direct(self)
        accounted: dict[str, list[Publisher]] = {}
        for publisher in publishers:
            if steady(publisher.name):
                publisher.direct(self)
                accounted.setdefault(publisher.name, []).append(publisher)
        for group, handler in consumers.items():
            name = self.consumer[group]
            if steady(name):
                self.consume_directly(group, handler)
                accounted.setdefault(name, [])
        if switchable:
            self._switchable = accounted
            for name in accounted:
                off = partial(self.undirect, name)
                network.watch(BROKER, name, off)
                network.watch(name, BROKER, off)
        elif all(group in self.direct or group in self.takers for group in self.consumer):
            self.unindex()

    def undirect(self, name: str) -> None:
        """The links between the broker and the node ``name`` are no longer
        steady (a runtime fault could touch them: :meth:`Network.watch`):
        every message on them takes the full path from this instant, and
        what was accounted for ahead becomes what the full path would hold
        now. Its publishers take the full path (:meth:`Publisher.undirect`);
        so does its consumer group (:meth:`_undirect_group`). Called at an
        instant at which nothing has run yet (before the fault is applied)."""
        publishers = self._switchable.pop(name, None)
        if publishers is None:
            return  # (called once per link: both ways)
        for publisher in publishers:
            del self.confirmers[publisher.name]
            publisher.undirect()
        for group, consumer in self.consumer.items():
            if consumer == name and group in self.direct:
                self._undirect_group(group)

    def _undirect_group(self, group: str) -> None:
        """The copies of ``group`` take the full path from now on, as if they
        always had: deliveries in flight reach its node's ``receive``; a
        first delivery still unacknowledged gets the partition and the ack
        timer it went without; its copies are indexed, for acks that name
        them by number. An ack accounted for ahead that was sent is in
        flight on the full path too: it stays accounted for, unless the
        broker itself may now crash or pause (it would be dropped or held
        with it): then it becomes a message in its reserved place, and one
        that has arrived already settles its copy now."""
        direct = self.direct.pop(group)
        consumer = self.consumer[group]
        self.world.reroute({direct.handler: self.network.receiver(consumer)})
        now = self.world.env._now
        for txn, copy in direct.flights.items():
            if copy is _PARTED or copy.done or copy.acked < now:
                continue  # (in its partition already; or acknowledged: nothing waits for it)
            self.partitions[(group, txn)] = [copy]
            self.arm(copy)
        direct.flights.clear()
        pending = self.pending
        for (of, _), queue in self.partitions.items():
            if of == group:
                for copy in queue:
                    pending[(group, copy.seq)] = copy
        if self.network.at_risk(BROKER):
            self._acks_as_messages([copy for copy in pending.values() if copy.group == group], consumer, now)

    def _acks_as_messages(self, copies: list[Copy], consumer: str, now: float) -> None:
        """Acks accounted for ahead of ``copies`` (sent by ``consumer``)
        become messages to the broker in their reserved places; a copy
        acknowledged by now is settled (:meth:`_undirect_group`)."""
        placed: dict[int, tuple[Callable[[Any], None], Any]] = {}
        for copy in copies:
            if copy.acked == INF:
                continue
            # (the earliest ack only: one sent later finds the copy settled, on either path: Broker.ack_at)
            due = Due(copy.acked, copy.ack_eid)
            copy.acked, copy.ack_eid = INF, 0
            if due.at < now:
                self._settle(copy)
                continue
            ack = Ack(consumer, copy.txn, copy.seq, copy.group)
            if due.eid == copy.settling:  # its place holds the settling event: the ack takes it over
                placed[due.eid] = (self.receive, ack)
            else:
                self.world.at_due(due, self.receive, ack)
        if placed:
            self.world.replace_at(placed)

    def consume_directly(self, group: str, handler: Callable[[Delivery], None]) -> None:
        """Schedule the copies of ``group`` straight to ``handler`` (its
        consumer's links with the broker are steady), drawing each delivery's
        latency from its lane (as the full path does); the copy itself goes
        in the message (``Delivery.copy``), so that its ack (:meth:`ack_at`)
        needs no look-up.

        With per-key ordering, a first delivery that nothing waits for has no
        partition: ``flights`` (txn -> the copy) is all the broker keeps of
        it, enough to see, at the next store of the transaction for the group,
        whether it is still unacknowledged (the new copy then waits in a
        partition headed by it, and ``flights`` says ``_PARTED``). Nor does it
        have an ack timer while its ack can come in time (:meth:`arm`).
        """
        settle = self.world.settle
        if settle is not None:
            # A run judged as it goes counts a delivery in flight as pending
            # work until its consumer has it, as the network counts its own.
            self._post = partial(settle.carry, self.world.at)
        self.direct[group] = DirectConsumer(self.delivery_lanes[group], handler, {})

    def confirm_directly(self, publisher: str, conf_due: Callable[[int, int, int, float, float, float], None]) -> None:
        """Account for the confirms to ``publisher`` (its links with the
        broker are steady) without an event each: at a store of its publish,
        the broker counts the confirm, draws its latency from its lane and
        calls ``conf_due(txn, eid, topic, started, latency, quiet)``, unless the
        confirm reaches the publisher before the publish's ``quiet``: then it
        needs nothing from it (a publish that went without an entry: see
        :class:`sim.world.publisher.Publisher`)."""
        self.confirmers[publisher] = Confirmer(self._confirm_lane(publisher), conf_due)

    def _confirm_lane(self, publisher: str) -> Lane:
        """The keyed latencies of the confirms to ``publisher``, numbered by
        its ``sent``: the n-th confirm to it, a store's or a deduplicated
        publish's (stores are events on both paths, so both number them alike)."""
        lane = self._confirm_lanes.get(publisher)
        if lane is None:
            lane = self._confirm_lanes[publisher] = self.network.lane(BROKER, publisher, "conf")
        return lane

    def subscribe(self, topic: int, group: str, consumer: str) -> None:
        """Deliver ``topic`` to ``group``, whose consumer is the node ``consumer``."""
        self.subscribers.setdefault(topic, []).append((group, consumer))
        self.groups.setdefault(topic, []).append(group)
        self.consumer[group] = consumer
        self.delivery_lanes[group] = self.network.lane(BROKER, consumer, "evt")

    # ------------------------------------------------------------ messages

    def handle(self, msg: Publish | Ack) -> None:
        if msg.kind == ACK:
            self._ack(msg)
        else:
            self._store(msg)

    def _store(self, msg: Publish) -> None:
        src, txn, eid, topic, started = msg.src, msg.txn, msg.eid, msg.topic, msg.started
        world = self.world
        tracer = world.tracer
        if self.deduplicate:
            if eid in self.seen:
                self._again_published(msg)
                return
            self.seen.add(eid)
        # one number per store: a copy is known by its group and this number
        self.stored = seq = self.stored + 1
        now = world.env._now
        if tracer.on:
            tracer.emit(
                now, self.name, "store", txn, self.labels[topic], f"from {src}", peer=src, message="pub", direction=IN
            )
        if topic in self.terminal_topics and txn not in self.terminal:
            self.terminal[txn] = (now, topic)
        # the messages accounted for here without an event, counted at the end
        count = self._confirm(msg)
        if not self.ordered:
            self.world.messages[txn] += count
            self._store_unordered(seq, txn, eid, topic, started, now)
            return
        if not seq % SWEEP_EVERY:
            self._sweep(now)
        lean = self._lean
        deadline = now + self.deadlines.delay  # of a copy's first delivery, delivered now
        for group in self.groups.get(topic, ()):
            if group == lean:
                entry = self._lean_table.get(txn)
                if entry is None or (entry.acked <= now and not entry.partition):
                    self._take(seq, txn, eid, topic, started, group, now, entry)
                    count += 1
                else:
                    count += self._lean_wait(seq, txn, eid, topic, started, group, now, entry)
                continue
            direct = self.direct.get(group)
            if direct is not None:
                flights = direct.flights
                head = flights.get(txn)
                if (
                    head is None
                    or (head is not _PARTED and (head.done or world.passed((head.acked, head.ack_eid))))
                    or not self._behind(head, flights, seq, txn, eid, topic, started, group, now)
                ):
                    self._fly(direct, seq, txn, eid, topic, started, group, now, deadline)
                    count += 1
                continue
            self._store_through_network(seq, txn, eid, topic, started, group, now)
        world.messages[txn] += count

    def _fly(
        self,
        direct: DirectConsumer,
        seq: int,
        txn: int,
        eid: int,
        topic: int,
        started: float,
        group: str,
        now: float,
        deadline: float,
    ) -> None:
        """A first delivery to a direct consumer with nothing to wait for:
        straight to its handler, with no partition (kept in ``flights``), and
        no ack timer while its ack can come in time (see :meth:`arm`). The
        caller counts the message."""
        copy = Copy(seq, txn, eid, topic, started, group)
        copy.deliveries = 1
        direct.flights[txn] = copy
        self.deliveries += 1
        if self.world.tracer.on:
            self.world.tracer.emit(
                now, self.name, "deliver", txn, self.labels[topic], f"to {group} (delivery 1)", **_delivery(group, 1)
            )
        latency = direct.latency.at(seq)
        self._post(latency, direct.handler, Delivery(BROKER, txn, eid, topic, started, group, seq, 1, copy))
        if now + latency < deadline:
            copy.due = deadline  # no ack timer unless its consumer asks: see arm()
            copy.order = self.deliveries
        else:
            self.deadlines.add(AckTimer(copy, 1, self.epoch, self.deliveries))

    def _again_published(self, msg: Publish) -> None:
        """A publish of an event already stored (deduplication): confirmed again, not stored."""
        src, txn, topic = msg.src, msg.txn, msg.topic
        if self.world.tracer.on:
            self.world.tracer.emit(
                self.world.now, self.name, "dedup", txn, self.labels[topic], f"from {src}",
                peer=src, message="pub", direction=IN,
            )  # fmt: skip
        # (counted after the call: the confirm's accounting may count messages of its own)
        accounted = self._confirm(msg)
        self.world.messages[txn] += accounted

    def _store_unordered(self, seq: int, txn: int, eid: int, topic: int, started: float, now: float) -> None:
        """Deliver a stored event to each group, without per-transaction order."""
        count = 0
        lean = self._lean
        for group in self.groups.get(topic, ()):
            if group == lean:
                self._take(seq, txn, eid, topic, started, group, now, self._lean_table.get(txn))
                count += 1
            else:
                copy = Copy(seq, txn, eid, topic, started, group)
                if self.indexed:
                    self.pending[(group, seq)] = copy
                self._deliver(copy)
        self.world.messages[txn] += count

    def _store_through_network(
        self, seq: int, txn: int, eid: int, topic: int, started: float, group: str, now: float
    ) -> None:
        """A copy for a consumer reached through the network (the full path)."""
        key = (group, txn)
        queue = self._queue_of(key, now)
        copy = Copy(seq, txn, eid, topic, started, group)
        if self.indexed:
            self.pending[(group, seq)] = copy
        if queue is None:
            self.partitions[key] = [copy]
            self._deliver(copy)
        else:
            self._wait(queue, copy, now)

    def _take(
        self, seq: int, txn: int, eid: int, topic: int, started: float, group: str, now: float, entry: Any
    ) -> None:
        """Deliver a copy to the lean group (its first delivery); store it
        only if its ack is late (one at the very instant of its deadline is
        late: the timeout goes first). ``entry`` is the group's table entry
        of ``txn`` (see :meth:`lean`). The caller counts the delivery, the taker the ack."""
        self.deliveries += 1
        if self.world.tracer.on:
            self.world.tracer.emit(
                now, self.name, "deliver", txn, self.labels[topic], f"to {group} (delivery 1)", **_delivery(group, 1)
            )
        deadline = now + self.deadlines.delay
        acked = self._lean_take(seq, txn, topic, now, deadline, entry)
        if acked >= deadline:
            self._late(seq, txn, eid, topic, started, group)

    def _behind(
        self,
        head: Copy,
        flights: dict[int, Copy],
        seq: int,
        txn: int,
        eid: int,
        topic: int,
        started: float,
        group: str,
        now: float,
    ) -> bool:
        """A copy for a direct group while one of the transaction's is
        unacknowledged: ``head``, its first delivery in flight (which becomes
        the head of a partition), or ``_PARTED``. Queues the copy and returns
        ``True``, or returns ``False`` if the partition is gone after all."""
        key = (group, txn)
        if head is _PARTED:
            queue = self._queue_of(key, now)
            if queue is None:
                return False
        else:
            queue = self.partitions[key] = [head]
            flights[txn] = _PARTED
        self._wait(queue, Copy(seq, txn, eid, topic, started, group), now)
        return True

    def _wait(self, queue: list[Copy], copy: Copy, now: float) -> None:
        """Queue ``copy`` in the partition ``queue``, behind its head: if the
        head's ack is known already, the next copy goes at that instant."""
        queue.append(copy)
        if len(queue) == 2:
            head = queue[0]
            head.waited = True
            if head.acked != INF:
                self._settle_at_ack(head)

    def _sweep(self, now: float) -> None:
        """Forget the oldest first deliveries of direct groups, up to the
        first not yet acknowledged (or a ``_PARTED``): the next store of such
        a transaction for the group finds nothing in ``flights``, and does
        what it does when it finds an acknowledged copy. (A copy that is
        never acknowledged holds its group's sweep up until it is
        dead-lettered: what is kept grows meanwhile, and nothing else changes.)
        And let the ack timers of acknowledged copies go, before their
        deadlines."""
        self.deadlines.prune()
        for _, _, flights in self.direct.values():
            # The oldest run whose acks have arrived, counted without a Python
            # step per copy (a sweep sees every first delivery once) ...
            # (an ack due at this very instant is kept: it may come after
            # the event being run, and the next store must see the copy)
            settled = len(list(takewhile(now.__gt__, map(_ACKED, flights.values()))))
            for copy in islice(flights.values(), settled, None):  # ... then any dead-lettered
                if copy.done or copy.acked < now:
                    settled += 1
                else:
                    break
            if settled:
                # keep the rest (the copies of the last few milliseconds)
                rest = list(islice(flights.items(), settled, None))
                flights.clear()
                flights.update(rest)

    def _queue_of(self, key: tuple[str, int], now: float) -> list[Copy] | None:
        """The partition ``key`` (``None`` if there is none), once its head is
        settled if its ack has arrived by ``now``."""
        queue = self.partitions.get(key)
        if queue is not None and self.world.passed((queue[0].acked, queue[0].ack_eid)):
            self._settle(queue[0])
            queue = self.partitions.get(key)
        return queue

    def _lean_wait(
        self, seq: int, txn: int, eid: int, topic: int, started: float, group: str, now: float, entry: list[Any]
    ) -> int:
        """A copy for the lean group while another of the transaction's is in
        flight (its ack not arrived) or stored (a partition, ``entry.partition``).
        Returns the messages accounted for: 1 (the delivery) if it is taken at once."""
        key = (group, txn)
        queue = self._queue_of(key, now)
        if queue is not None and queue[0].deliveries == 0 and entry.acked <= now:
            self._deliver(queue[0])  # a lean copy's ack arrived already: the next one goes
        if queue is None and entry.acked <= now:
            self._take(seq, txn, eid, topic, started, group, now, entry)
            return 1
        copy = Copy(seq, txn, eid, topic, started, group)
        if self.indexed:
            self.pending[(group, seq)] = copy
        if queue is None:  # wait for the ack of the lean copy in flight
            self.partitions[key] = entry.partition = [copy]
            self.world.at(entry.acked - now, self._release, copy)
        else:
            self._wait(queue, copy, now)
        return 0

    def _late(self, seq: int, txn: int, eid: int, topic: int, started: float, group: str) -> None:
        """The lean group's copy just delivered will be acknowledged after its
        ack timeout: store and track it. Its taker accounts for its ack when
        it sends it, when the copy arrives (see :meth:`lean`)."""
        copy = Copy(seq, txn, eid, topic, started, group)
        copy.deliveries = 1
        self._lean_late(copy)  # (in the place of its delivery, as the full path sends it: before its timer)
        if self.indexed:
            self.pending[(group, copy.seq)] = copy
        if self.ordered:
            self.partitions[(group, txn)] = self._lean_table[txn].partition = [copy]
        self.deadlines.add(AckTimer(copy, 1, self.epoch, self.deliveries))

    def _release(self, copy: Copy) -> None:
        """The ack of the lean copy before ``copy`` arrives: deliver ``copy``."""
        if copy.deliveries == 0:
            self._deliver(copy)

    def _confirm(self, msg: Publish) -> int:
        """Confirm the publish ``msg`` to its publisher. Returns the messages
        accounted for without an event, for the caller to count: 1 for a
        confirmer's (:meth:`confirm_directly`), 0 for a confirm sent through
        the network."""
        src = msg.src
        confirmer = self.confirmers.get(src)
        lane = self._confirm_lane(src) if confirmer is None else confirmer.lane
        lane.sent = number = lane.sent + 1
        latency = lane.at(number)  # (a confirm has one attempt)
        if confirmer is None:
            self.network.send(self.name, src, Confirm(self.name, msg.txn, msg.eid), delay=latency)
            return 0
        quiet = msg.quiet
        if self.world.env._now + latency >= quiet:  # else the publisher needs nothing from it
            confirmer.conf_due(msg.txn, msg.eid, msg.topic, msg.started, latency, quiet)
        return 1

    def _deliver(self, copy: Copy) -> None:
        copy.deliveries += 1
        self.deliveries += 1
        if copy.deliveries > 1:
            self.redeliveries += 1
            self.redelivered[copy.txn] = self.redelivered.get(copy.txn, 0) + 1
        if self.world.tracer.on:
            self.world.tracer.emit(
                self.world.now, self.name, "deliver", copy.txn, self.labels[copy.topic],
                f"to {copy.group} (delivery {copy.deliveries})", **_delivery(copy.group, copy.deliveries),
            )  # fmt: skip
        direct = self.direct.get(copy.group)
        if direct is not None:  # what Network.send does on a steady link
            world = self.world
            world.messages[copy.txn] += 1
            self._post(
                direct.latency.at(copy.seq, copy.deliveries),
                direct.handler,
                Delivery(
                    BROKER, copy.txn, copy.eid, copy.topic, copy.started,
                    copy.group, copy.seq, copy.deliveries, copy,
                ),
            )  # fmt: skip
        else:
            take = self.takers.get(copy.group)
            if take is None:
                self.network.send(
                    self.name,
                    self.consumer[copy.group],
                    Delivery(
                        self.name, copy.txn, copy.eid, copy.topic, copy.started,
                        copy.group, copy.seq, copy.deliveries,
                    ),
                    self.delivery_roles.get((copy.group, copy.topic), -1),
                    copy.deliveries,
                    self.delivery_lanes[copy.group].at(copy.seq, copy.deliveries),
                )  # fmt: skip
            else:
                take(copy)
        self.deadlines.add(AckTimer(copy, copy.deliveries, self.epoch, self.deliveries))

    def _unacked(self, item: AckTimer) -> bool:
        copy, deliveries, epoch, _ = item
        if copy.done:
            return False
        if copy.acked < self.world.env._now:  # its ack arrived already (one at this instant is late)
            self._settle(copy)
            return False
        return copy.deliveries == deliveries and epoch == self.epoch

    def _redeliver(self, item: AckTimer) -> None:
        copy = item.copy
        if copy.deliveries >= self.limit:
            self._dead_letter(copy)
        else:
            self._deliver(copy)

    def _dead_letter(self, copy: Copy) -> None:
        copy.done = True
        if self.indexed:
            self.pending.pop((copy.group, copy.seq), None)  # (a direct group's copies are not indexed)
        self.dead.append(copy)
        if self.world.tracer.on:
            self.world.tracer.emit(
                self.world.now, self.name, "dead-letter", copy.txn, self.labels[copy.topic],
                f"to {copy.group} after {copy.deliveries} deliveries", peer=copy.group, message="evt",
                attempt=copy.deliveries,
            )  # fmt: skip
        self._next(copy)

    def _ack(self, msg: Ack) -> None:
        copy = self.pending.pop((msg.group, msg.seq), None)
        if copy is None:
            return  # a duplicate ack, or one for a dead-lettered copy
        copy.done = True
        self._next(copy)

    def ack_at(self, copy: Copy, latency: float) -> None:
        """An ack of ``copy`` sent now, which arrives ``latency`` later,
        accounted for without an event of its own.

        The one rule for acks accounted for without events: an ack is
        accounted for when it is sent, during the event that sends it, never
        ahead of it. It then takes the event id its delivery would take
        (:meth:`World.reserve`), and so the place among the events of the
        instant it arrives that the full path gives it (whose ack is
        scheduled by the event that sends it: event ids grow in the order
        events run). An ack whose sending has no event of its own gets one:
        the tracker's (sent when a copy taken at its delivery arrives) is
        sent by an event in the place of that copy's delivery
        (:meth:`SagaTracker.take`), and the confirm of a dual write, whose
        arrival sends its ack, is a message (:meth:`Publisher.conf_due`)."""
        if copy.done:
            return  # no longer pending: the ack will find nothing
        at = self.world.env._now + latency
        if at >= copy.due:
            self.arm(copy)  # the ack will be late: the timer it went without
        if at >= copy.acked:
            return  # an ack sent earlier arrives first (or at the same instant, ahead of this one)
        copy.acked = at
        copy.ack_eid = self.world.reserve()  # (its place among the events of its instant)
        if copy.waited:  # (nothing to do if no copy waits)
            self._due(copy)

    def arm(self, copy: Copy) -> None:
        """Give ``copy`` the ack timer its first delivery went without, if it
        has none. A first delivery to a direct consumer that arrives before
        its deadline has no timer (``copy.due`` holds the deadline): the
        consumer calls this, before the deadline, as soon as the copy's ack
        may arrive at or after it (:meth:`ack_at` does too).
        The timer takes the place it would have had if added at the delivery
        (``copy.order``: the broker's count of deliveries then, which orders
        every timer, each added right after its delivery): copies due at the
        same instant expire in the same order."""
        due = copy.due
        if due != INF:
            copy.due = INF
            self.deadlines.insert(due, AckTimer(copy, 1, self.epoch, copy.order), _ORDER)

    def _due(self, copy: Copy) -> None:
        """With per-key ordering, deliver the next copy of the partition when
        ``copy``'s ack arrives, if one is waiting."""
        if self.ordered and copy.acked != INF:
            queue = self.partitions.get((copy.group, copy.txn))
            if queue is not None and len(queue) > 1 and queue[0] is copy:
                self._settle_at_ack(copy)

    def _settle_at_ack(self, copy: Copy) -> None:
        """Settle ``copy`` when its first ack accounted for arrives, in that
        ack's place among the events of its instant (scheduled once per ack:
        one reserved place holds one event)."""
        if copy.settling != copy.ack_eid:
            copy.settling = copy.ack_eid
            self.world.at_due(Due(copy.acked, copy.ack_eid), self._acked, (copy, copy.acked))

    def _acked(self, item: tuple[Copy, float]) -> None:
        copy, at = item
        if not copy.done and copy.acked == at:
            self._settle(copy)

    def _settle(self, copy: Copy) -> None:
        """``copy``'s ack (accounted for without an event) has arrived."""
        copy.done = True
        if self.indexed:
            self.pending.pop((copy.group, copy.seq), None)  # (a direct group's copies are not indexed)
        self._next(copy)

    def _next(self, copy: Copy) -> None:
        if not self.ordered:
            return
        key = (copy.group, copy.txn)
        queue = self.partitions.get(key)
        if queue is None or queue[0] is not copy:
            return  # a direct group's first delivery that nothing waited for: no partition
        del queue[0]
        if queue:
            if len(queue) > 1:
                queue[0].waited = True
            self._deliver(queue[0])
        else:
            del self.partitions[key]
            direct = self.direct.get(copy.group)
            if direct is not None:
                direct.flights.pop(copy.txn, None)  # its _PARTED: the next copy has nothing to wait for

    # ------------------------------------------------------------ judging as the run goes

    def quiet(self, txn: int) -> bool:
        """Whether the broker holds nothing of ``txn`` that can still change
        it (with per-key ordering; judging as the run goes:
        :mod:`sim.world.settle`): no copy waiting in a partition or
        unacknowledged at its head, no first delivery to a direct consumer
        unacknowledged by now (its ack accounted for without an event counts
        once it has arrived: :meth:`World.passed`). Deliveries in flight to a
        direct consumer are counted as pending work (:meth:`consume_directly`)."""
        partitions = self.partitions
        for group in self.consumer:
            if (group, txn) in partitions:
                return False
        passed = self.world.passed
        for direct in self.direct.values():
            head = direct.flights.get(txn)
            if head is not None and not (head.done or passed((head.acked, head.ack_eid))):
                return False  # (a _PARTED head is never done: its partition is still there)
        return True

    def forget(self, txn: int, eids: list[int]) -> None:
        """Drop what is kept of a settled transaction (judged already), whose
        event ids are ``eids``."""
        self.terminal.pop(txn, None)
        self.redelivered.pop(txn, None)
        self.seen.difference_update(eids)
        for direct in self.direct.values():
            direct.flights.pop(txn, None)

    # ------------------------------------------------------------ crashes

    def relies_on_fault_plan(self) -> bool:
        return bool(self.takers or self.confirmers or self.direct)

    def on_crash(self) -> None:
        self.deadlines.clear()

    def on_restart(self) -> None:
        if self.ordered:
            for queue in list(self.partitions.values()):
                self._deliver(queue[0])
        else:
            for copy in list(self.pending.values()):
                self._deliver(copy)


def _delivery(group: str, number: int) -> dict[str, Any]:
    """The structured fields of a delivery's trace event: the copy to ``group``, its ``number``-th."""
    return {"peer": group, "message": "evt", "direction": OUT, "attempt": number}
