"""The swimlane pairs a message's two ends from the trace's structured
fields (peer, message, direction), never from the text of ``detail``."""

from __future__ import annotations

import pandas as pd
import pytest

import sim
from sim.swimlane import pair_messages
from sim.world.trace import IN, OUT

from conftest import order_scenario

SHORT = {"run.duration": 5.0, "run.drain": 5.0}


def _ends(events: pd.DataFrame) -> list[tuple[str, str, str, float, float]]:
    return [(m.src, m.dst, m.how, m.sent, m.received) for m in pair_messages(events)]


@pytest.mark.parametrize("protocol", ["orchestration", "2pc", "choreography"])
def test_pairs_do_not_depend_on_detail(protocol: str) -> None:
    events = sim.run(order_scenario(SHORT), protocol=protocol, seed=1, trace=True).events
    txn = events[events["txn_id"] == 0]
    blank = txn.assign(detail="")
    paired = _ends(txn)
    assert paired and _ends(blank) == paired
    # every traced pair joins an out end and an in end of the same message
    traced = [m for m in pair_messages(txn) if m.how == "traced"]
    assert traced
    for m in traced:
        out = txn[(txn["node"] == m.src) & (txn["peer"] == m.dst) & (txn["direction"] == OUT) & (txn["time"] == m.sent)]
        got = txn[
            (txn["node"] == m.dst) & (txn["peer"] == m.src) & (txn["direction"] == IN) & (txn["time"] == m.received)
        ]
        assert len(out) and len(got)
        assert set(out["message"]) & set(got["message"])


def test_a_lost_message_and_a_duplicate_come_from_the_fields() -> None:
    rows = [
        (1.0, "orchestrator", "command", 7, "charge", "", "payment", "req", OUT, 1),
        (1.0, "orchestrator", "drop", 7, None, "", "payment", "req", OUT, 1),
        (2.0, "orchestrator", "command", 7, "charge", "", "payment", "req", OUT, 2),
        (2.0, "orchestrator", "duplicate", 7, None, "", "payment", "req", OUT, 2),
        (2.1, "payment", "receive", 7, "charge", "", "orchestrator", "req", IN, None),
        (2.2, "payment", "receive", 7, "charge", "", "orchestrator", "req", IN, None),
        (2.3, "payment", "respond", 7, "charge", "ok", "orchestrator", "rep", OUT, None),
        (2.4, "orchestrator", "drop", 7, None, "", "payment", "rep", IN, None),
    ]
    from sim.metrics import events_frame

    messages = pair_messages(events_frame(rows))
    assert [(m.src, m.dst, m.label, m.how, m.copies, m.received) for m in messages] == [
        ("orchestrator", "payment", "charge", "lost", 1, pytest.approx(float("nan"), nan_ok=True)),
        ("orchestrator", "payment", "charge #2", "traced", 2, 2.1),
        ("payment", "orchestrator", "charge ok", "lost", 1, 2.4),  # reached the orchestrator while it was down
    ]


def test_every_effect_says_what_was_applied_in_one_word_the_swimlane_marks() -> None:
    # The swimlane marks an effect by its detail, a word of EFFECT_WORDS; an
    # effect whose detail said more ("expired after 0.03 s") went unmarked.
    from sim.swimlane import _MARKS, EFFECT_WORDS

    overrides = {
        **SHORT,
        "participants.inventory.business_failure": 0.3,  # compensations and releases
        # a payment reserved before shipping's 50 ms try expires before its confirm
        "tcc.reservation_ttl": 0.03,
        "participants.shipping.service_time": {"dist": "constant", "value": 0.05},
    }
    result = sim.run(order_scenario(overrides), protocol=["orchestration", "2pc", "choreography", "tcc"], trace=True)
    events = result.events
    details = set(events.loc[events["kind"] == "effect", "detail"])
    assert details == set(EFFECT_WORDS)
    assert all(f"effect:{word}" in _MARKS for word in details)
