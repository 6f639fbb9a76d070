"""The messages the world's nodes exchange, as named records.

Every message has the same three fields, its *envelope*: ``kind`` (``req``,
``rep``, ``prep``...: what the trace calls ``message``), ``src`` (the
sending node) and ``txn`` (the transaction it is about). The network counts
and keys a message by its transaction, and a node that drops one traces its
kind and sender, without knowing anything else about it: they read the
envelope by name (``msg.txn``), whatever the message.

Most messages are :class:`typing.NamedTuple` classes, whose envelope is
their first three fields. Building one with its class (``Request(...)``)
goes through the generated Python ``__new__``, about eight times the cost
of a tuple literal; the builders below (:func:`request`, :func:`reply`)
call ``tuple.__new__`` directly, which costs about half as much again as
the literal plus a call (see ``docs/architecture.md``, "Messages and
records", for the figures). The broker's messages, the most numerous, are
slotted classes (:class:`BrokerMessage`: why is said there).

:class:`Request` and :class:`Reply` are the world's own messages: the saga
command a participant serves (:mod:`sim.world.participant`) and its answer;
:class:`Signal` is any message with nothing but its envelope, which several
protocols send. A protocol's other messages are defined in its package.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, Protocol

#: The kinds of the world's messages.
REQ, REP = "req", "rep"


class Message(Protocol):
    """Any message: what the network and a node's receipt read of it (its envelope)."""

    @property
    def kind(self) -> str: ...

    @property
    def src(self) -> str: ...

    @property
    def txn(self) -> int: ...


#: Positions of the envelope's fields in every NamedTuple message.
KIND, SRC, TXN = 0, 1, 2

#: ``tuple.__new__``: builds a record from a tuple of its fields without the
#: generated ``__new__`` (a Python call) in between.
new_record = tuple.__new__


class Request(NamedTuple):
    """A command to a participant: run ``op`` (forward or compensation) of
    ``step`` of ``txn``. ``key`` is the idempotency key (``None``: none),
    ``token`` the sender's attempt token, echoed in the reply so that the
    sender matches it to the attempt that waits for it."""

    kind: str
    src: str
    txn: int
    step: int
    op: int
    key: int | None
    token: int


class Reply(NamedTuple):
    """A participant's answer to a :class:`Request`: ``status`` (``ok``,
    ``refused``, ``error``), with the request's step, operation and token."""

    kind: str
    src: str
    txn: int
    step: int
    op: int
    status: str
    token: int


def request(src: str, txn: int, step: int, op: int, key: int | None, token: int) -> Request:
    """A :class:`Request` from ``src`` (the fast builder)."""
    return new_record(Request, (REQ, src, txn, step, op, key, token))  # type: ignore[no-any-return]


def reply(src: str, req: Request, status: str) -> Reply:
    """The :class:`Reply` of ``src`` to ``req`` (the fast builder)."""
    return new_record(Reply, (REP, src, req.txn, req.step, req.op, status, req.token))  # type: ignore[no-any-return]


class Signal(NamedTuple):
    """A message that carries nothing but its envelope: ``kind`` says it all
    (an atomic commit's ``prep``, ``commit``, ``abort``, ``ack``, ``query``,
    Paxos Commit's ``suspect``)."""

    kind: str
    src: str
    txn: int


def signal(kind: str, src: str, txn: int) -> Signal:
    """A :class:`Signal` (the fast builder)."""
    return new_record(Signal, (kind, src, txn))  # type: ignore[no-any-return]


# The broker's messages (sim.world.broker, sim.world.publisher).
#
# They are slotted classes, not NamedTuples: a choreography sends or accounts
# for about seven of them per transaction, and on CPython 3.11 a NamedTuple
# costs more to build (``tuple.__new__`` on a subclass allocates twice) and
# to read (its fields are descriptors the interpreter does not specialise)
# than a slotted class, whose fields read as fast as a tuple's items. Their
# ``kind`` is a class attribute; like every message they have the envelope's
# ``kind``, ``src`` and ``txn`` by name.

#: The kinds of the broker's messages.
PUB, CONF, EVT, ACK = "pub", "conf", "evt", "ack"


class BrokerMessage:
    """What the broker's messages share: the envelope by name, and a ``repr``."""

    __slots__ = ("src", "txn")
    kind: ClassVar[str]
    src: str
    txn: int

    def fields(self) -> dict[str, Any]:
        """The message's fields by name, the envelope first."""
        names = ["kind", *(name for cls in reversed(type(self).__mro__) for name in getattr(cls, "__slots__", ()))]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.fields().items())
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.fields() == self.fields()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]


class Publish(BrokerMessage):
    """A publisher's event to the broker (kind ``pub``): event ``eid`` on
    ``topic`` of a transaction ``started`` then; ``quiet``: ``-inf``, or on a
    steady link the instant before which the confirm needs nothing from the
    publisher (:meth:`sim.world.broker.Broker.confirm_directly`)."""

    __slots__ = ("eid", "topic", "started", "quiet")
    kind = PUB

    def __init__(self, src: str, txn: int, eid: int, topic: int, started: float, quiet: float) -> None:
        self.src = src
        self.txn = txn
        self.eid = eid
        self.topic = topic
        self.started = started
        self.quiet = quiet


class Confirm(BrokerMessage):
    """The broker's confirm of a stored event (kind ``conf``)."""

    __slots__ = ("eid",)
    kind = CONF

    def __init__(self, src: str, txn: int, eid: int) -> None:
        self.src = src
        self.txn = txn
        self.eid = eid


class Delivery(BrokerMessage):
    """A copy of an event delivered to a consumer group (kind ``evt``):
    ``seq`` is the copy's number at the broker, ``delivery`` how many times it
    was delivered; ``copy`` the broker's own copy on a delivery straight to
    its consumer (:meth:`sim.world.broker.Broker.consume_directly`), so that
    its ack needs no look-up; ``None`` through the network."""

    __slots__ = ("eid", "topic", "started", "group", "seq", "delivery", "copy")
    kind = EVT

    def __init__(
        self,
        src: str,
        txn: int,
        eid: int,
        topic: int,
        started: float,
        group: str,
        seq: int,
        delivery: int,
        copy: Any = None,
    ) -> None:
        self.src = src
        self.txn = txn
        self.eid = eid
        self.topic = topic
        self.started = started
        self.group = group
        self.seq = seq
        self.delivery = delivery
        self.copy = copy


class Ack(BrokerMessage):
    """A consumer's acknowledgement of the copy ``seq`` for ``group`` (kind ``ack``)."""

    __slots__ = ("seq", "group")
    kind = ACK

    def __init__(self, src: str, txn: int, seq: int, group: str) -> None:
        self.src = src
        self.txn = txn
        self.seq = seq
        self.group = group

    @classmethod
    def of(cls, src: str, delivered: Delivery) -> Ack:
        """The ack of ``src`` for the copy ``delivered``."""
        return cls(src, delivered.txn, delivered.seq, delivered.group)
