"""Crashes and partitions on the timeline, healed when the workload ends."""

from __future__ import annotations

import sim
from sim.metrics import wilson

from conftest import order_scenario

# Orchestrator crashes in steady traffic: 20 orders/s; shipping takes 0.5 s
# on 16 workers (62% busy), so about ten sagas are in flight at any moment.
CRASH = {
    "run.duration": 20.0,
    "workload.interarrival": {"dist": "exponential", "mean": 0.05},
    "participants.shipping.service_time": {"dist": "constant", "value": 0.5},
    "participants.shipping.workers": 16,
    "faults": [
        {"kind": "crash", "target": "orchestrator", "at": 5.0, "duration": 2.0},
        {"kind": "crash", "target": "orchestrator", "at": 12.0, "duration": 1.0},
    ],
}


def test_recovery_resumes_every_saga_in_flight() -> None:
    result = sim.run(order_scenario(CRASH), seed=2)
    summary = result.summary.iloc[0]
    assert summary["recovered"] > 0
    assert summary["stuck"] == 0 and summary["inconsistent"] == 0
    # arrivals during the 3 s of downtime were turned away, not started
    assert summary["rejected"] > 0
    started = result.transactions["started_at"]
    assert not ((started >= 5.0) & (started < 7.0)).any()


def test_without_recovery_the_sagas_in_flight_are_stuck_forever() -> None:
    result = sim.run(order_scenario({**CRASH, "orchestrator.recovery": False}), seed=2)
    txns = result.transactions
    stuck = txns[txns["outcome"] == "stuck"]
    assert len(stuck) > 0
    assert result.summary.iloc[0]["recovered"] == 0
    # exactly the sagas that had started and not finished before a crash
    in_flight = ((stuck.started_at < 5.0) & (stuck.started_at > 4.0)) | (
        (stuck.started_at < 12.0) & (stuck.started_at > 11.0)
    )
    assert in_flight.all()
    assert (stuck["coordinator"] == "running").all()
    # Nobody drives them any more, but the command in flight still lands:
    # shipping is the slow step, so the forgotten sagas ship and look committed.
    assert (stuck["steps_applied"] == 3).all() and stuck["consistent"].all()


def test_without_recovery_a_saga_forgotten_mid_way_stays_half_done() -> None:
    slow_payment = {
        **CRASH,
        "participants.shipping.service_time": {"dist": "constant", "value": 0.01},
        "participants.payment.service_time": {"dist": "constant", "value": 0.5},
        "participants.payment.workers": 16,
        "orchestrator.recovery": False,
    }
    txns = sim.run(order_scenario(slow_payment), seed=2).transactions
    stuck = txns[txns["outcome"] == "stuck"]
    assert (stuck["consistent"] == (stuck["steps_applied"] == 3)).all()
    # A saga that arrived less than one charge (0.5 s + 1 ms) before a crash
    # was charging when the orchestrator died: the charge lands, nothing else.
    charging = stuck[((stuck.started_at > 4.5) & (stuck.started_at < 5.0)) | (stuck.started_at > 11.5)]
    assert len(charging) >= 20
    assert (charging["steps_applied"] == 1).all()
    assert (charging["reasons"] == "charge never compensated (refund missing)").all()


def test_a_participant_crash_loses_its_work_and_retries_finish_it() -> None:
    scenario = order_scenario(
        {
            "run.duration": 10.0,
            "participants.inventory.service_time": {"dist": "constant", "value": 0.1},
            "faults": [{"kind": "crash", "target": "inventory", "at": 4.0, "duration": 0.5}],
        }
    )
    result = sim.run(scenario, seed=1, trace=True)
    events = result.events
    assert events.query("node == 'inventory' and kind in ('crash', 'restart')")["time"].tolist() == [4.0, 4.5]
    assert (events.query("kind == 'timeout'")["time"] > 4.0).all()
    assert len(events.query("kind == 'timeout'")) > 0
    summary = result.summary.iloc[0]
    assert summary["inconsistent"] == 0 and summary["stuck"] == 0


def test_a_partition_cuts_both_ways_and_heals_on_time() -> None:
    scenario = order_scenario(
        {
            "run.duration": 10.0,
            "faults": [{"kind": "partition", "groups": [["orchestrator"], ["payment"]], "at": 2.0, "duration": 1.0}],
        }
    )
    result = sim.run(scenario, seed=4, trace=True)
    drops = result.events.query("kind == 'drop'")
    assert len(drops) > 0
    assert drops["time"].between(2.0, 3.0).all()
    assert set(drops["node"]) <= {"orchestrator", "payment"}
    faults = result.faults
    assert faults[["kind", "target", "start", "end"]].values.tolist() == [
        ["partition", "orchestrator | payment", 2.0, 3.0]
    ]
    summary = result.summary.iloc[0]
    assert summary["inconsistent"] == 0 and summary["stuck"] == 0


def test_faults_end_with_the_workload_and_nodes_restart() -> None:
    scenario = order_scenario(
        {"run.duration": 10.0, "faults": [{"kind": "crash", "target": ["payment", "shipping"], "at": 8.0}]}
    )
    result = sim.run(scenario, seed=1, trace=True)
    restarts = result.events.query("kind == 'restart'")
    assert sorted(restarts["node"]) == ["payment", "shipping"]
    assert (restarts["time"] == 10.0).all()
    assert result.faults["end"].tolist() == [10.0, 10.0]
    summary = result.summary.iloc[0]
    assert summary["stuck"] == 0 and summary["inconsistent"] == 0


def test_wilson_interval_known_values() -> None:
    # Reference values from the closed form (Wilson 1927), z = 1.96.
    low, high = wilson(0, 100)
    assert low == 0.0 and abs(high - 0.036994) < 1e-5
    low, high = wilson(50, 100)
    assert abs(low - 0.403832) < 1e-5 and abs(high - 0.596168) < 1e-5
