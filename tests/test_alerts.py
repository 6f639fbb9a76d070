"""Stuck-transaction alerts against the checker's verdicts: what is due by
the end of the run, and the saga tracker's blind spots (it hears of a
choreography only through the broker)."""

from __future__ import annotations

import math

import pytest

import sim
from sim.runner import AlertFacts, alert_figures
from sim.world.tracker import HIDDEN, TERMINAL_DEAD_LETTERED

from conftest import order_scenario

#: The summary's alert columns, in a fixed order for the assertions below.
ALERT_COLUMNS = [
    "alerts",
    "true_alerts",
    "false_alerts",
    "false_alerts_dead_lettered",
    "missed_alerts",
    "alerts_not_due",
    "alerts_hidden_dead_lettered",
]

ONE = {
    "workload.interarrival": {"dist": "constant", "value": 1.0},
    "workload.limit": 1,
    "run.duration": 2.0,
}

#: One order at t = 1.0 whose ship takes 3 s: still running when the run ends
#: at 2.5 s (no timeout, vote timeout or redelivery cuts it short).
STILL_RUNNING = {
    **ONE,
    "run.drain": 0.5,
    "participants.shipping.service_time": {"dist": "constant", "value": 3.0},
    "orchestrator.timeout": 10.0,
    "twopc.vote_timeout": 10.0,
    "broker.ack_timeout": 10.0,
    "run.protocols": ["orchestration", "2pc", "choreography"],
}


def figures(overrides: dict) -> dict[str, dict[str, int]]:
    """protocol -> the alert columns of its summary row."""
    out = sim.run(order_scenario(overrides), seed=1)
    assert set(out.transactions["outcome"]) <= {"stuck", "committed"}
    return {row["protocol"]: {c: int(row[c]) for c in ALERT_COLUMNS} for row in out.summary.to_dict("records")}


def counts(**nonzero: int) -> dict[str, int]:
    return {c: nonzero.get(c, 0) for c in ALERT_COLUMNS}


@pytest.mark.parametrize("stuck_after", [1.5, 5.0], ids=["due-at-the-very-end", "due-after-the-end"])
def test_an_alert_due_at_or_after_the_end_of_the_run_is_not_due_not_missed(stuck_after: float) -> None:
    # Started at 1.0, the run ends at 2.5: with stuck_after 1.5 the alert falls
    # due at the very end (1.0 + 1.5 == 2.5 exactly), when nothing runs any
    # more; with 5.0 long after. Either way nobody could have been alerted.
    # (The tracker counts from when it first heard of the order, 1.002.)
    result = figures({**STILL_RUNNING, "monitor.stuck_after": stuck_after})
    for protocol in ("orchestration", "2pc", "choreography"):
        assert result[protocol] == counts(alerts_not_due=1), protocol


def test_an_alert_due_just_before_the_end_is_raised() -> None:
    result = figures({**STILL_RUNNING, "monitor.stuck_after": 1.0})
    for protocol in ("orchestration", "2pc", "choreography"):
        assert result[protocol] == counts(alerts=1, true_alerts=1), protocol


#: The choreography of one order with a tracker that is down (0.5-1.95 s)
#: while every copy the broker sends it is delivered and dead-lettered
#: (3 deliveries, 0.1 s apart).
BLIND = {
    **ONE,
    "run.drain": 20.0,
    "run.protocols": ["choreography"],
    "broker.max_deliveries": 3,
    "broker.ack_timeout": 0.1,
    "monitor.stuck_after": 4.0,
}


def test_a_transaction_whose_copies_to_the_tracker_were_dead_lettered_is_hidden_from_it() -> None:
    # Shipping hangs on every attempt: the chain stops at reserve.done, the
    # order is stuck. The tracker's copies of start, charge.done and
    # reserve.done were all dead-lettered while it was down: it never heard
    # of the order, so it could not flag it. That is not a missed alert of a
    # monitor that knew; it is a blind spot, counted with its cause.
    out = sim.run(
        order_scenario(
            {
                **BLIND,
                "participants.shipping.hang": 1.0,
                "participants.shipping.hang_duration": {"dist": "constant", "value": 0.5},
                "faults": [{"kind": "crash", "target": "tracker", "at": 0.5, "duration": 1.45}],
            }
        ),
        seed=1,
        trace=True,
    )
    dead = out.events[out.events["kind"] == "dead-letter"]
    assert sorted(dead.loc[dead["detail"].str.startswith("to tracker"), "step"]) == [
        "charge.done",
        "reserve.done",
        "start",
    ]
    row = out.transactions.iloc[0]
    assert (row.outcome, math.isnan(row.flagged_at)) == ("stuck", True)
    summary = out.summary.iloc[0]
    assert {c: int(summary[c]) for c in ALERT_COLUMNS} == counts(alerts_hidden_dead_lettered=1)


def test_a_dead_lettered_terminal_event_raises_a_false_alert_counted_with_its_cause() -> None:
    # The tracker heard of the order (start at 1.002) and went down at 1.03;
    # its copy of ship.done, the terminal event, was dead-lettered at 1.337.
    # The order committed, but the tracker never saw it end and flags it.
    out = sim.run(
        order_scenario({**BLIND, "faults": [{"kind": "crash", "target": "tracker", "at": 1.03, "duration": 0.9}]}),
        seed=1,
        trace=True,
    )
    dead = out.events[out.events["kind"] == "dead-letter"]
    assert list(zip(dead["step"], dead["detail"], strict=True)) == [("ship.done", "to tracker after 3 deliveries")]
    row = out.transactions.iloc[0]
    assert (row.outcome, row.flagged_at) == ("committed", pytest.approx(5.002))
    summary = out.summary.iloc[0]
    assert {c: int(summary[c]) for c in ALERT_COLUMNS} == counts(alerts=1, false_alerts_dead_lettered=1)


def fact(outcome: str, flagged_at: float = math.nan, due: float = 5.0, blind: str = "") -> AlertFacts:
    return AlertFacts(outcome, flagged_at, last_progress=1.0, due=due, started_at=1.0, blind=blind)


def test_alert_figures_sort_every_transaction_into_one_kind() -> None:
    nan = math.nan
    facts = [
        fact("stuck", flagged_at=6.0),  # true, detected 5 s after its last progress
        fact("inconsistent", flagged_at=6.0),  # true
        fact("committed", flagged_at=6.0),  # false: only slow
        fact("aborted", flagged_at=6.0),  # false (2PC)
        fact("committed", flagged_at=6.0, blind=TERMINAL_DEAD_LETTERED),  # false, the tracker's blind spot
        fact("inconsistent", flagged_at=6.0, blind=TERMINAL_DEAD_LETTERED),  # true all the same: it needs a human
        fact("stuck", due=9.0),  # missed: due before the end (10)
        fact("stuck", due=10.0),  # not due: at the very end
        fact("stuck", due=11.0),  # not due
        fact("stuck", due=nan, blind=HIDDEN),  # hidden: the tracker never heard of it
        fact("stuck", due=nan),  # never heard of, nothing dead-lettered: missed (1.0 + 4 is before the end)
        fact("committed"),  # no alert, none needed
        fact("inconsistent"),  # finished: not a liveness problem, not missed
    ]
    got = alert_figures(facts, end=10.0, stuck_after=4.0)
    assert {c: got[c] for c in ALERT_COLUMNS} == counts(
        alerts=6,
        true_alerts=3,
        false_alerts=2,
        false_alerts_dead_lettered=1,
        missed_alerts=2,
        alerts_not_due=2,
        alerts_hidden_dead_lettered=1,
    )
    assert (got["detection_delay_mean"], got["detection_delay_max"]) == (5.0, 5.0)


def test_a_hidden_transaction_that_could_not_be_due_yet_is_not_due() -> None:
    # The tracker never heard of it; even had it heard at the start, the
    # alert would fall due after the end (1.0 + 12 > 10).
    got = alert_figures([fact("stuck", due=math.nan, blind=HIDDEN)], end=10.0, stuck_after=12.0)
    assert {c: got[c] for c in ALERT_COLUMNS} == counts(alerts_not_due=1)
