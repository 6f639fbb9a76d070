"""Named records for messages and entries (issue 16, point 5): every message
starts with the envelope the network reads at named positions, the fast
builders build the same records as the classes, the protocols put no
positional tuple on the wire, and the saga tracker's entry is read by name
only."""

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
    Publish,
    Confirm,
    Delivery,
    Ack,
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_every_message_starts_with_the_envelope(record: type[NamedTuple]) -> None:
    fields = record._fields
    assert fields[KIND] == "kind" and fields[SRC] == "src" and fields[TXN] == "txn"


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
    """So a reader that still takes plain tuples (the broker's code) reads a
    record alike, and a record equals and hashes as its plain tuple."""
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

    def spy(src: str, dst: str, msg: tuple[Any, ...], *args: Any) -> None:
        seen.add(type(msg))
        send(src, dst, msg, *args)

    monkeypatch.setattr(model.network, "send", spy)
    model.run()
    assert tuple not in seen
    assert expected <= seen


def test_a_tracker_entry_is_read_by_name_only() -> None:
    entry = TrackerEntry(1.5)
    assert entry.first == 1.5 and math.isnan(entry.terminal) and entry.acked == 0.0 and entry.partition is None
    with pytest.raises(TypeError):
        entry[2]  # type: ignore[index]  # (no positional view: the broker reads the names too)
