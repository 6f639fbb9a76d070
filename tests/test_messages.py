"""Named records for messages and entries (issue 16, point 5): every message
has the envelope the network reads by name, the fast builders build the
same records as the classes, the protocols put no positional tuple on the
wire, and the saga tracker's entry is read by name only."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pytest

from sim.protocols.paxos_commit.protocol import Nack, P1a, P1b, P2a, P2b
from sim.protocols.tcc.protocol import Command, CommandReply
from sim.protocols.twopc.protocol import Vote
from sim.runner import Model
from sim.world import messages
from sim.world.messages import (
    KIND,
    REP,
    REQ,
    SRC,
    TXN,
    Ack,
    BrokerMessage,
    Confirm,
    Delivery,
    Publish,
    Reply,
    Request,
    Signal,
    reply,
    request,
    signal,
)
from sim.world.tracker import TrackerEntry

from conftest import order_scenario

RECORDS: list[type[NamedTuple]] = [
    Request,
    Reply,
    Signal,
    Vote,
    P1a,
    P1b,
    P2a,
    P2b,
    Nack,
    Command,
    CommandReply,
]

#: The broker's messages: slotted classes (sim.world.messages.BrokerMessage).
BROKER_MESSAGES: list[BrokerMessage] = [
    Publish("payment", 7, 11, 4, 0.5, -math.inf),
    Confirm("broker", 7, 11),
    Delivery("broker", 7, 11, 4, 0.5, "shipping", 3, 2),
    Ack("shipping", 7, 3, "shipping"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_every_message_starts_with_the_envelope(record: type[NamedTuple]) -> None:
    fields = record._fields
    assert fields[KIND] == "kind" and fields[SRC] == "src" and fields[TXN] == "txn"


@pytest.mark.parametrize("msg", BROKER_MESSAGES, ids=lambda m: type(m).__name__)
def test_a_broker_message_has_the_envelope_by_name_and_no_positions(msg: BrokerMessage) -> None:
    fields = msg.fields()
    assert list(fields)[:3] == ["kind", "src", "txn"]
    assert (msg.kind, msg.src, msg.txn) == (fields["kind"], fields["src"], 7)
    assert msg.kind in ("pub", "conf", "evt", "ack")
    with pytest.raises(TypeError):
        msg[2]  # type: ignore[index]
    with pytest.raises(AttributeError):
        msg.extra = 1  # type: ignore[attr-defined]  # (slotted: no stray field)


def test_broker_messages_are_equal_by_their_fields_and_the_ack_names_its_copy() -> None:
    delivered = Delivery("broker", 7, 11, 4, 0.5, "shipping", 3, 2)
    assert delivered == Delivery("broker", 7, 11, 4, 0.5, "shipping", 3, 2)
    assert delivered != Delivery("broker", 7, 11, 4, 0.5, "shipping", 3, 1)
    assert Ack.of("shipping", delivered) == Ack("shipping", 7, 3, "shipping")
    assert "Delivery(kind='evt', src='broker', txn=7, eid=11" in repr(delivered)


def test_the_fast_builders_build_the_records_the_classes_do() -> None:
    req = request("orchestrator", 7, 2, 1, 702, 3)
    assert type(req) is Request
    assert req == Request(REQ, "orchestrator", 7, 2, 1, 702, 3)
    assert (req.txn, req.step, req.op, req.key, req.token) == (7, 2, 1, 702, 3)
    answer = reply("payment", req, "ok")
    assert type(answer) is Reply
    assert answer == Reply(REP, "payment", 7, 2, 1, "ok", 3)
    bare = signal("prep", "coordinator", 4)
    assert type(bare) is Signal and bare == Signal("prep", "coordinator", 4)
    yes = messages.new_record(Vote, ("vote", "payment", 4, True))
    assert type(yes) is Vote and yes.yes is True and yes.kind == "vote"


def test_a_record_is_the_tuple_of_its_fields() -> None:
    """A NamedTuple message equals and hashes as its plain tuple, and its
    envelope is its first three fields."""
    req = request("orchestrator", 7, 2, 1, None, 3)
    plain = ("req", "orchestrator", 7, 2, 1, None, 3)
    assert req == plain and hash(req) == hash(plain)
    assert (req[KIND], req[SRC], req[TXN]) == ("req", "orchestrator", 7)
    assert messages.new_record(Request, plain) == req


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("orchestration", {Request, Reply}),
        ("2pc", {Signal, Vote}),
        ("tcc", {Command, CommandReply}),
        ("paxos-commit", {Signal, P2a, P2b}),
        ("choreography", {Publish, Confirm, Delivery, Ack}),
    ],
)
def test_no_positional_tuple_goes_on_the_wire(
    protocol: str, expected: set[type], monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = order_scenario(
        {
            "workload.limit": 200,
            "network.loss": 0.05,
            "network.duplicate": 0.05,
            "participants.payment.business_failure": 0.2,
        }
    )
    model = Model(scenario, protocol, 1)
    seen: set[type] = set()
    send = model.network.send

    def spy(src: str, dst: str, msg: tuple[Any, ...], *args: Any, **keywords: Any) -> None:
        seen.add(type(msg))
        send(src, dst, msg, *args, **keywords)

    monkeypatch.setattr(model.network, "send", spy)
    model.run()
    assert tuple not in seen
    assert expected <= seen


def test_a_tracker_entry_is_read_by_name_only() -> None:
    entry = TrackerEntry(1.5)
    assert entry.first == 1.5 and math.isnan(entry.terminal) and entry.acked == 0.0 and entry.partition is None
    with pytest.raises(TypeError):
        entry[2]  # type: ignore[index]  # (no positional view: the broker reads the names too)
