"""Exact timelines of one transaction: every command, reply, effect and
compensation in order, with its simulated time (SimPy's own testing habit)."""

from __future__ import annotations

import sim

from conftest import order_scenario, trace_rows

BASE = {
    "workload.interarrival": {"dist": "constant", "value": 1.0},
    "workload.limit": 1,
    "run.duration": 2.0,
    "run.drain": 20.0,
}


def timeline(overrides: dict, seed: int = 1, world_events: bool = False) -> list[tuple[float, str, str, str, str]]:
    """Trace of a single transaction arriving at t = 1.0, with constant delays."""
    return trace_rows({**BASE, **overrides}, seed=seed, world_events=world_events)


def test_committed_order_sends_command_reply_per_step() -> None:
    # latency 1 ms each way, service 10 ms: each step takes 12 ms.
    assert timeline({}) == [
        (1.0, "orchestrator", "begin", "", ""),
        (1.0, "orchestrator", "command", "charge", "attempt 1 to payment"),
        (1.011, "payment", "effect", "charge", "forward"),
        (1.011, "payment", "respond", "charge", "ok"),
        (1.012, "orchestrator", "reply", "charge", "ok"),
        (1.012, "orchestrator", "command", "reserve", "attempt 1 to inventory"),
        (1.023, "inventory", "effect", "reserve", "forward"),
        (1.023, "inventory", "respond", "reserve", "ok"),
        (1.024, "orchestrator", "reply", "reserve", "ok"),
        (1.024, "orchestrator", "command", "ship", "attempt 1 to shipping"),
        (1.035, "shipping", "effect", "ship", "forward"),
        (1.035, "shipping", "respond", "ship", "ok"),
        (1.036, "orchestrator", "reply", "ship", "ok"),
        (1.036, "orchestrator", "end", "", "committed"),
    ]


def test_refused_reservation_refunds_the_charge() -> None:
    assert timeline({"participants.inventory.business_failure": 1.0}) == [
        (1.0, "orchestrator", "begin", "", ""),
        (1.0, "orchestrator", "command", "charge", "attempt 1 to payment"),
        (1.011, "payment", "effect", "charge", "forward"),
        (1.011, "payment", "respond", "charge", "ok"),
        (1.012, "orchestrator", "reply", "charge", "ok"),
        (1.012, "orchestrator", "command", "reserve", "attempt 1 to inventory"),
        (1.023, "inventory", "refuse", "reserve", ""),
        (1.023, "inventory", "respond", "reserve", "refused"),
        (1.024, "orchestrator", "reply", "reserve", "refused"),
        (1.024, "orchestrator", "compensate", "reserve", "plan: refund"),
        (1.024, "orchestrator", "command", "refund", "attempt 1 to payment"),
        (1.035, "payment", "effect", "refund", "compensation"),
        (1.035, "payment", "respond", "refund", "ok"),
        (1.036, "orchestrator", "reply", "refund", "ok"),
        (1.036, "orchestrator", "end", "", "compensated"),
    ]


def test_refused_pivot_compensates_in_reverse_order() -> None:
    events = timeline({"participants.shipping.business_failure": 1.0})
    commands = [(e[3]) for e in events if e[2] == "command"]
    assert commands == ["charge", "reserve", "ship", "release", "refund"]
    assert events[-1] == (1.06, "orchestrator", "end", "", "compensated")


# The reply from shipping to the orchestrator is cut during [1, 2): the
# ship effect lands, but the orchestrator only sees a timeout.
LOST_SHIP_REPLY = {
    "faults": [
        {"kind": "partition", "groups": [["shipping"], ["orchestrator"]], "one_way": True, "at": 1.0, "duration": 1.0}
    ]
}


def test_a_timed_out_step_was_applied_and_the_retry_is_deduplicated() -> None:
    events = timeline(LOST_SHIP_REPLY, world_events=True)
    tail = [e for e in events if e[0] >= 1.024]
    assert tail == [
        (1.024, "orchestrator", "reply", "reserve", "ok"),
        (1.024, "orchestrator", "command", "ship", "attempt 1 to shipping"),
        (1.035, "shipping", "effect", "ship", "forward"),
        (1.035, "shipping", "respond", "ship", "ok"),
        (1.035, "shipping", "drop", "", "partition: rep to orchestrator"),
        (2.0, "faults", "heal-all", "", "workload over"),
        (2.024, "orchestrator", "timeout", "ship", "attempt 1"),
        # back-off 0.1 s, then the same idempotency key again
        (2.124, "orchestrator", "command", "ship", "attempt 2 to shipping"),
        (2.135, "shipping", "dedup", "ship", "ok: nothing applied"),
        (2.135, "shipping", "respond", "ship", "ok"),
        (2.136, "orchestrator", "reply", "ship", "ok"),
        (2.136, "orchestrator", "end", "", "committed"),
    ]
    result = sim.run(order_scenario({**BASE, **LOST_SHIP_REPLY}), seed=1)
    row = result.transactions.iloc[0]
    assert (row.outcome, row.retries, row.messages) == ("committed", 1, 8)


def test_without_idempotency_the_retry_ships_twice() -> None:
    events = timeline({**LOST_SHIP_REPLY, "participants.shipping.idempotent": False})
    effects = [(e[0], e[3]) for e in events if e[2] == "effect"]
    assert effects == [(1.011, "charge"), (1.023, "reserve"), (1.035, "ship"), (2.135, "ship")]
    result = sim.run(order_scenario({**BASE, **LOST_SHIP_REPLY, "participants.shipping.idempotent": False}), seed=1)
    row = result.transactions.iloc[0]
    assert (row.outcome, row.reasons, row.anomalies) == ("inconsistent", ["ship applied 2 times"], ["applied_twice"])
    assert row.coordinator == "committed"  # the orchestrator believes all is well


def test_a_lost_command_is_compensated_as_uncertain_with_a_null_compensation() -> None:
    # The reserve command is lost; with one attempt allowed the orchestrator
    # cannot know whether it landed, so it compensates reserve and charge.
    # Inventory has nothing to undo: a null compensation, not an effect.
    events = timeline(
        {
            "orchestrator.retry.attempts": 1,
            "faults": [
                {
                    "kind": "partition",
                    "groups": [["orchestrator"], ["inventory"]],
                    "one_way": True,
                    "at": 1.0,
                    "duration": 1.0,
                }
            ],
        },
        world_events=True,
    )
    tail = [e for e in events if e[0] >= 1.012]
    assert tail == [
        (1.012, "orchestrator", "reply", "charge", "ok"),
        (1.012, "orchestrator", "command", "reserve", "attempt 1 to inventory"),
        (1.012, "orchestrator", "drop", "", "partition: req to inventory"),
        (2.0, "faults", "heal-all", "", "workload over"),
        (2.012, "orchestrator", "timeout", "reserve", "attempt 1"),
        (2.012, "orchestrator", "compensate", "reserve", "plan: release, refund"),
        (2.012, "orchestrator", "command", "release", "attempt 1 to inventory"),
        (2.023, "inventory", "null-compensation", "release", "nothing to undo"),
        (2.023, "inventory", "respond", "release", "ok"),
        (2.024, "orchestrator", "reply", "release", "ok"),
        (2.024, "orchestrator", "command", "refund", "attempt 1 to payment"),
        (2.035, "payment", "effect", "refund", "compensation"),
        (2.035, "payment", "respond", "refund", "ok"),
        (2.036, "orchestrator", "reply", "refund", "ok"),
        (2.036, "orchestrator", "end", "", "compensated"),
    ]


def test_a_step_slower_than_the_timeout_never_finishes() -> None:
    # One worker, 1.5 s per attempt, 1 s timeout: every attempt of the pivot
    # times out, so its outcome never becomes known and it is retried for
    # ever, each retry queueing behind the last (a retry storm in miniature).
    events = timeline(
        {
            "participants.shipping.service_time": {"dist": "constant", "value": 1.5},
            "participants.shipping.workers": 1,
        }
    )
    ship = [e for e in events if e[3] == "ship"]
    assert [e[2] for e in ship[:3]] == ["command", "timeout", "command"]
    assert sum(e[2] == "effect" for e in ship) == 1
    assert sum(e[2] == "dedup" for e in ship) >= 5
    assert not any(e[2] == "end" for e in events)
    result = sim.run(
        order_scenario(
            {
                **BASE,
                "participants.shipping.service_time": {"dist": "constant", "value": 1.5},
                "participants.shipping.workers": 1,
            }
        ),
        seed=1,
    )
    row = result.transactions.iloc[0]
    assert (row.outcome, row.consistent, row.coordinator) == ("stuck", True, "running")
