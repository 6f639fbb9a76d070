"""The messages the world's nodes exchange, as named records.

Every message on the wire is a tuple that starts with the same three fields,
its *envelope*: ``kind`` (``req``, ``rep``, ``prep``...: what the trace calls
``message``), ``src`` (the sending node) and ``txn`` (the transaction it is
about). The network counts and keys a message by its transaction, and a node
that drops one traces its kind and sender, without knowing anything else
about it.

The records are :class:`typing.NamedTuple` classes: a message stays a tuple
(equal to, and hashed as, the plain tuple of its fields), so code that still
builds or reads plain tuples with the same field order (the broker's
``pub``/``evt``/``ack`` today) works beside them. Readers that may meet
either (the network, a node's receipt) read the envelope at its named
positions, ``msg[TXN]`` (:data:`KIND`, :data:`SRC`, :data:`TXN`);
everything else reads fields by name.

Building a record with its class (``Request(...)``) goes through the
generated Python ``__new__``, about eight times the cost of a tuple literal;
the builders below (:func:`request`, :func:`reply`) call ``tuple.__new__``
directly, which costs about half as much again as the literal plus a call:
messages are built on the hottest path of every run (see
``docs/architecture.md``, "Messages and records", for the figures).

:class:`Request` and :class:`Reply` are the world's own messages: the saga
command a participant serves (:mod:`sim.world.participant`) and its answer;
:class:`Signal` is any message with nothing but its envelope, which several
protocols send. A protocol's other messages are defined in its package.
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: The kinds of the world's messages.
REQ, REP = "req", "rep"

#: Positions of the envelope's fields in every message (see the module's docstring).
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


# The broker's messages (sim.world.broker), with the field order of the plain
# tuples the broker and the choreography build today, so either side can move
# to them alone. The saga tracker sends Ack records already.


class Publish(NamedTuple):
    """A publisher's event to the broker (kind ``pub``): event ``eid`` on
    ``topic`` of a transaction ``started`` then; ``quiet``: ``-inf``, or on a
    steady link the instant before which the confirm needs nothing from the
    publisher."""

    kind: str
    src: str
    txn: int
    eid: int
    topic: int
    started: float
    quiet: float


class Confirm(NamedTuple):
    """The broker's confirm of a stored event (kind ``conf``)."""

    kind: str
    src: str
    txn: int
    eid: int


class Delivery(NamedTuple):
    """A copy of an event delivered to a consumer group (kind ``evt``):
    ``seq`` is the copy's number at the broker, ``delivery`` how many times it
    was delivered; ``copy`` the broker's own copy on a direct delivery."""

    kind: str
    src: str
    txn: int
    eid: int
    topic: int
    started: float
    group: str
    seq: int
    delivery: int
    copy: Any = None


class Ack(NamedTuple):
    """A consumer's acknowledgement of the copy ``seq`` for ``group`` (kind ``ack``)."""

    kind: str
    src: str
    txn: int
    seq: int
    group: str
