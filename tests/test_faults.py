"""Crashes and partitions on the timeline, healed when the workload ends."""

from __future__ import annotations

import json

import pandas as pd
import pytest

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
    assert (charging["reasons"].map(tuple) == ("charge never compensated (refund missing)",)).all()


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


# ------------------------------------------------------------------ fault kinds


def one_order(faults: list[dict], **extra: object) -> sim.Result:
    """One order arriving at t = 1.0 with constant 1 ms hops and 10 ms services."""
    overrides = {
        "workload.interarrival": {"dist": "constant", "value": 1.0},
        "workload.limit": 1,
        "run.duration": 5.0,
        "run.drain": 20.0,
        "faults": faults,
        **extra,
    }
    return sim.run(order_scenario(overrides), seed=1, trace=True)


def test_a_pause_holds_work_and_loses_nothing() -> None:
    # Payment freezes from 1.005 to 1.5: the charge it is serving completes
    # only when it resumes; the orchestrator's 1 s timeout has not expired.
    result = one_order([{"kind": "pause", "target": "payment", "at": 1.005, "duration": 0.495}])
    events = result.events
    charge = events.query("node == 'payment' and kind == 'effect'")
    assert charge["time"].round(6).tolist() == [1.5]
    row = result.transactions.iloc[0]
    assert (row.outcome, row.retries, round(row.latency, 6)) == ("committed", 0, 0.525)


def test_a_paused_orchestrator_holds_replies_and_timers() -> None:
    # The orchestrator freezes for 3 s while the charge reply is in flight:
    # the reply and the charge's timeout (due at 2.0) are both held. On resume
    # they run in the order they came: the reply first, so no retry happens.
    result = one_order([{"kind": "pause", "target": "orchestrator", "at": 1.005, "duration": 3.0}])
    row = result.transactions.iloc[0]
    assert (row.outcome, row.retries) == ("committed", 0)
    assert round(row.latency, 6) == 3.029
    kinds = result.events.query("node == 'orchestrator'")["kind"].tolist()
    assert "timeout" not in kinds
    assert kinds.index("pause") < kinds.index("resume")


def test_loss_on_chosen_links_for_a_window() -> None:
    lost_reply = [
        {
            "kind": "loss",
            "probability": 1.0,
            "groups": [["payment"], ["orchestrator"]],
            "one_way": True,
            "at": 1.0,
            "duration": 0.5,
        }
    ]
    result = one_order(lost_reply)
    drops = result.events.query("kind == 'drop'")
    assert drops[["time", "node", "detail"]].values.tolist() == [[1.011, "payment", "lost: rep to orchestrator"]]
    row = result.transactions.iloc[0]
    assert (row.outcome, row.retries) == ("committed", 1)  # the retry found the charge applied


def test_duplicate_and_delay_faults() -> None:
    dup = one_order([{"kind": "duplicate", "probability": 1.0, "at": 0.5, "duration": 2.0}])
    row = dup.transactions.iloc[0]
    # Every command goes twice; both copies are served (the second is a
    # no-op) and each of the two replies goes twice: 2 + 4 messages per step.
    assert row.messages == 18
    assert row.outcome == "committed"  # idempotent participants absorb the copies
    assert dup.summary.iloc[0]["network_duplicated"] == 9
    slow_net = one_order(
        [
            {
                "kind": "delay",
                "extra": {"dist": "constant", "value": 0.1},
                "target": "shipping",
                "at": 0.5,
                "duration": 2.0,
            }
        ]
    )
    # ship's command and reply each take 100 ms more
    assert round(slow_net.transactions.iloc[0].latency, 6) == 0.236


def test_slow_is_a_gray_failure_that_times_out_applied_steps() -> None:
    # shipping 100x slower (1 s) with a 1 s timeout: the ship lands at 2.025,
    # but the orchestrator timed out at 2.024 and asks again; the retry is
    # served at normal speed (the fault is over) and finds the ship done.
    result = one_order([{"kind": "slow", "target": "shipping", "factor": 100.0, "at": 0.5, "duration": 1.0}])
    events = result.events
    assert events.query("kind == 'timeout'")["step"].tolist() == ["ship"]
    assert events.query("node == 'shipping' and kind == 'effect'")["time"].round(6).tolist() == [2.025]
    assert events.query("node == 'shipping' and kind == 'dedup'")["time"].round(6).tolist() == [2.135]
    assert result.transactions.iloc[0].outcome == "committed"


def test_failure_rate_is_a_bad_deploy_for_a_window() -> None:
    bad = [{"kind": "failure_rate", "target": "inventory", "business_failure": 1.0, "at": 0.5, "duration": 1.0}]
    refused = one_order(bad)
    assert refused.transactions.iloc[0].outcome == "compensated"
    later = one_order([{**bad[0], "at": 2.0}])
    assert later.transactions.iloc[0].outcome == "committed"


def test_the_records_say_what_happened() -> None:
    result = one_order(
        [
            {"kind": "slow", "target": ["payment", "shipping"], "factor": 2.0, "at": 0.5, "duration": 1.0},
            {"kind": "loss", "probability": 0.5, "target": "payment", "at": 3.0},
        ]
    )
    faults = result.faults
    assert faults[["kind", "target", "start", "end", "source"]].values.tolist() == [
        ["slow", "payment", 0.5, 1.5, "faults[0]"],
        ["slow", "shipping", 0.5, 1.5, "faults[0]"],
        ["loss", "payment", 3.0, 5.0, "faults[1]"],
    ]
    assert json.loads(faults.iloc[0]["settings"]) == {"factor": 2.0}


# ------------------------------------------------------------------ the nemesis

NEMESIS = {
    "run.duration": 60.0,
    "nemesis": {
        "crash": {
            "target": ["orchestrator", "payment"],
            "mtbf": 10.0,
            "duration": {"dist": "exponential", "mean": 1.0},
        },
        "loss": {"target": "inventory", "probability": 0.3, "mtbf": 15.0},
        "slow": {"target": "*", "factor": 5.0, "mtbf": 20.0},
    },
}


def test_the_nemesis_schedule_depends_on_scenario_and_seed_only() -> None:
    robust = sim.run(order_scenario(NEMESIS), seed=3)
    naive = sim.run(
        order_scenario({**NEMESIS, "orchestrator.recovery": False, "orchestrator.idempotency_keys": False}), seed=3
    )
    pd.testing.assert_frame_equal(robust.faults.drop(columns="run_id"), naive.faults.drop(columns="run_id"))
    other_seed = sim.run(order_scenario(NEMESIS), seed=4)
    assert not robust.faults["start"].equals(other_seed.faults["start"])


def test_the_nemesis_strikes_at_its_rate_only_while_transactions_arrive() -> None:
    result = sim.run(order_scenario({**NEMESIS, "run.duration": 2000.0}), seed=5)
    faults = result.faults
    assert (faults["end"] <= 2000.0).all() and (faults["start"] < faults["end"]).all()
    crashes = faults[(faults["kind"] == "crash") & (faults["target"] == "payment")]
    # Each cycle is an exponential gap (mean 10 s) plus an exponential crash
    # (mean 1 s): ~2000/11 = 182 crashes, Poisson-like sd ~ 13.5; 5 sd bounds.
    assert abs(len(crashes) - 2000 / 11) < 5 * (2000 / 11) ** 0.5
    assert set(faults["kind"]) == {"crash", "loss", "slow"}
    assert set(faults[faults["kind"] == "slow"]["target"]) == {"payment", "inventory", "shipping"}
    summary = result.summary.iloc[0]
    assert summary["inconsistent"] == 0 and summary["stuck"] == 0


def test_swarm_mode_draws_a_different_mix_per_seed() -> None:
    swarm = {**NEMESIS, "nemesis": {**NEMESIS["nemesis"], "swarm": True}}
    mixes = {tuple(sorted(set(sim.run(order_scenario(swarm), seed=s).faults["kind"]))) for s in range(8)}
    # 7 possible non-empty mixes of 3 kinds; 8 seeds see several of them.
    assert len(mixes) >= 3
    assert all(mix for mix in mixes)


def test_gray_failures_are_in_the_trace() -> None:
    result = one_order(
        [
            {"kind": "slow", "target": "shipping", "factor": 3.0, "at": 0.5, "duration": 1.0},
            {"kind": "failure_rate", "target": "payment", "transient_failure": 0.5, "at": 2.0, "duration": 1.0},
        ]
    )
    events = result.events.query("kind in ('slow', 'slow-end', 'failure-rate', 'failure-rate-end')")
    assert events[["time", "node", "kind", "detail"]].values.tolist() == [
        [0.5, "shipping", "slow", "service times x3"],
        [1.5, "shipping", "slow-end", "service times x1"],
        [2.0, "payment", "failure-rate", "business 0, transient 0.5"],
        [3.0, "payment", "failure-rate-end", "business 0, transient 0"],
    ]


def test_messages_to_a_crashed_node_are_counted() -> None:
    # Payment is down from 1.005: the charge command is already there (lost
    # in the crash); its retry at 2.1 arrives while payment is still down.
    result = one_order([{"kind": "crash", "target": "payment", "at": 1.005, "duration": 2.0}])
    summary = result.summary.iloc[0]
    assert summary["lost_in_crashes"] == 1
    drops = result.events.query("kind == 'drop' and node == 'payment'")
    assert summary["dropped_at_down_nodes"] == len(drops) >= 1


# ------------------------------------------------------------------ paused nodes replay in order

# Every service takes 0.45 s of a 0.5 s timeout and there is one attempt: no
# reply is ever late, so a pause of the central node must not turn a single
# transaction into a timeout, an abort or a compensation.
TIGHT = {
    "run.duration": 20.0,
    "run.drain": 10.0,
    "workload.interarrival": {"dist": "exponential", "mean": 0.05},
    "network.latency": {"dist": "constant", "value": 0.001},
    "participants.payment.service_time": {"dist": "constant", "value": 0.45},
    "participants.inventory.service_time": {"dist": "constant", "value": 0.45},
    "participants.shipping.service_time": {"dist": "constant", "value": 0.45},
    "participants.payment.workers": 100,
    "participants.inventory.workers": 100,
    "participants.shipping.workers": 100,
    "orchestrator.timeout": 0.5,
    "orchestrator.retry.attempts": 1,
    "twopc.vote_timeout": 0.5,
}


def test_a_paused_orchestrator_handles_replies_that_came_before_their_deadlines() -> None:
    paused = sim.run(
        order_scenario({**TIGHT, "faults": [{"kind": "pause", "target": "orchestrator", "at": 10.0, "duration": 2.0}]}),
        seed=1,
    )
    summary = paused.summary.iloc[0]
    assert summary["timeouts"] == 0
    outcomes = paused.transactions["outcome"].value_counts().to_dict()
    assert outcomes == {"committed": len(paused.transactions)}


def test_a_paused_2pc_coordinator_does_not_abort_votes_that_came_in_time() -> None:
    scenario = order_scenario(
        {
            **TIGHT,
            "run.protocols": ["2pc"],
            "faults": [{"kind": "pause", "target": "coordinator", "at": 10.0, "duration": 2.0}],
        }
    )
    txns = sim.run(scenario, protocol="2pc", seed=1).transactions
    assert (txns["outcome"] == "committed").all(), txns["outcome"].value_counts().to_dict()


def test_a_deadline_inside_a_pause_waits_for_the_work_held_before_it() -> None:
    # The reply arrives at 1.0215 (inside the pause), its deadline is at
    # 1.0305 and another command's deadline at 1.01: the replay runs the early
    # deadline, then the reply, and the later deadline finds it answered.
    from sim.world.core import World
    from sim.world.node import Node
    from sim.world.timers import DeadlineQueue

    world = World(seed=1)
    log: list[tuple[str, float]] = []

    class Owner(Node):
        def handle(self, msg: tuple) -> None:
            log.append((f"reply {msg[2]}", world.now))
            answered.add(msg[2])

    owner = Owner(world, "owner")
    answered: set[int] = set()
    queue = DeadlineQueue(
        world, 0.01, lambda txn: txn not in answered, lambda txn: log.append((f"timeout {txn}", world.now)), owner=owner
    )
    world.at(1.0, lambda _: queue.add(0))
    world.at(1.0205, lambda _: queue.add(1))
    world.at(1.005, owner.pause)
    world.at(1.0215, owner.receive, ("rep", "x", 1))
    world.at(1.0225, owner.receive, ("rep", "x", 0))
    world.at(2.0, owner.resume)
    world.run(3.0)
    assert log == [("timeout 0", 2.0), ("reply 1", 2.0), ("reply 0", 2.0)]


def test_a_paused_broker_takes_the_acks_that_came_before_their_deadlines() -> None:
    # The broker's ack timeouts go first at their instant (urgent timers):
    # replayed, they still wait for the acks that arrived before them. Before
    # the replay kept the instants, 28 events were redelivered here.
    overrides = {
        **TIGHT,
        "run.protocols": ["choreography"],
        "broker.ack_timeout": 0.5,
        "faults": [{"kind": "pause", "target": "broker", "at": 10.0, "duration": 1.0}],
    }
    result = sim.run(order_scenario(overrides), protocol="choreography", seed=3)
    row = result.summary.iloc[0]
    assert row["redeliveries"] == 0
    # the publishers' confirms were held too, for longer than their 1 s
    # timeout at times: resending those is right, and changes no outcome
    assert (result.transactions["outcome"] == "committed").all()


# ------------------------------------------------------------------ overlapping faults compose


def test_a_crash_inside_a_crash_keeps_the_node_down_to_the_end_of_the_outer_one() -> None:
    faults = [
        {"kind": "crash", "target": "orchestrator", "at": 10.0, "duration": 10.0},
        {"kind": "crash", "target": "orchestrator", "at": 12.0, "duration": 2.0},
    ]
    result = sim.run(order_scenario({"run.duration": 30.0, "faults": faults}), seed=1, trace=True)
    started = result.transactions["started_at"]
    assert not ((started >= 10.0) & (started < 20.0)).any()
    assert started[started >= 20.0].min() < 20.2
    summary = result.summary.iloc[0]
    assert summary["crashes"] == 2
    restarts = result.events.query("node == 'orchestrator' and kind == 'restart'")["time"].tolist()
    assert restarts == [20.0]


def test_a_pause_that_outlasts_a_crash_keeps_the_restarted_node_paused() -> None:
    # Crash 10-12 and pause 11-14: up again at 12, but frozen until 14 (no
    # arrival accepted), then it resumes the sagas it recovered.
    faults = [
        {"kind": "crash", "target": "orchestrator", "at": 10.0, "duration": 2.0},
        {"kind": "pause", "target": "orchestrator", "at": 11.0, "duration": 3.0},
    ]
    result = sim.run(order_scenario({"run.duration": 30.0, "faults": faults}), seed=1, trace=True)
    started = result.transactions["started_at"]
    assert not ((started >= 10.0) & (started < 14.0)).any()
    assert started[started >= 14.0].min() < 14.2
    kinds = result.events.query(
        "node == 'orchestrator' and time >= 10 and time <= 14.0 and txn_id.isna()", engine="python"
    )
    assert kinds[["time", "kind"]].values.tolist() == [
        [10.0, "crash"],
        [11.0, "pause"],
        [12.0, "restart"],
        [12.0, "pause"],
        [14.0, "resume"],
    ]
    assert result.summary.iloc[0]["stuck"] == 0


def test_a_pause_inside_a_pause_ends_with_the_outer_one() -> None:
    faults = [
        {"kind": "pause", "target": "orchestrator", "at": 10.0, "duration": 4.0},
        {"kind": "pause", "target": "orchestrator", "at": 11.0, "duration": 1.0},
    ]
    result = sim.run(order_scenario({"run.duration": 30.0, "faults": faults}), seed=1)
    started = result.transactions["started_at"]
    assert not ((started >= 10.0) & (started < 14.0)).any()
    assert started[started >= 14.0].min() < 14.2


def test_the_timeline_and_the_nemesis_compose_on_one_node() -> None:
    # The nemesis crashes the orchestrator often; a timeline crash over it
    # keeps it down for its whole window whatever the nemesis does inside.
    overrides = {
        "run.duration": 40.0,
        "faults": [{"kind": "crash", "target": "orchestrator", "at": 10.0, "duration": 10.0}],
        "nemesis": {"crash": {"target": "orchestrator", "mtbf": 2.0, "duration": {"dist": "constant", "value": 1.0}}},
    }
    result = sim.run(order_scenario(overrides), seed=4, trace=True)
    crashes = result.faults.query("kind == 'crash'")
    inside = crashes[(crashes.source != "faults[0]") & (crashes.start > 10.0) & (crashes.start < 19.0)]
    assert len(inside) >= 1  # the nemesis struck inside the window (seed 4: once)
    started = result.transactions["started_at"]
    assert not ((started >= 10.0) & (started < 20.0)).any()
    assert result.summary.iloc[0]["crashes"] == len(crashes)
    down = result.events.query("node == 'orchestrator' and kind in ['crash', 'restart'] and detail == ''")
    # every real transition alternates, and none falls inside the window
    assert down["kind"].tolist()[::2] == ["crash"] * ((len(down) + 1) // 2)
    assert not ((down.time > 10.0) & (down.time < 20.0)).any()


# ------------------------------------------------------------------ utilization counts work done


def test_utilization_counts_only_the_work_done_within_the_run() -> None:
    # One worker, 5 s per attempt, a crash every 2 s: most attempts are cut
    # short by a crash, and the last ones run past the end of the run. Booked
    # in full at their start, the figure reached 2.62.
    overrides = {
        "run.duration": 20.0,
        "run.drain": 10.0,
        "workload.interarrival": {"dist": "constant", "value": 0.5},
        "participants.payment.workers": 1,
        "participants.payment.service_time": {"dist": "constant", "value": 5.0},
        "faults": [{"kind": "crash", "target": "payment", "at": 2.0 * k + 1.0, "duration": 0.1} for k in range(9)],
    }
    summary = sim.run(order_scenario(overrides), seed=1).summary.iloc[0]
    assert 0.0 < summary["utilization_payment"] <= 1.0


def test_utilization_of_one_attempt_is_its_service_time() -> None:
    # One order at 0.5 s, steps of 0.01 s on 4 workers, run + drain = 40 s.
    overrides = {"run.duration": 1.0, "workload.interarrival": {"dist": "constant", "value": 0.6}}
    summary = sim.run(order_scenario(overrides), seed=1).summary.iloc[0]
    assert summary["transactions"] == 1
    assert summary["utilization_payment"] == pytest.approx(0.01 / (4 * 31.0))


def test_work_past_the_end_of_the_run_is_not_booked() -> None:
    # The charge starts at about 0.6 s and takes 100 s; the run ends at 31 s.
    overrides = {
        "run.duration": 1.0,
        "workload.interarrival": {"dist": "constant", "value": 0.6},
        "participants.payment.service_time": {"dist": "constant", "value": 100.0},
        "participants.payment.workers": 1,
        "orchestrator.timeout": 1000.0,
    }
    result = sim.run(order_scenario(overrides), seed=1)
    started = result.transactions.iloc[0]["started_at"]
    expected = (31.0 - started - 0.001) / 31.0  # from its arrival at payment to the end
    assert result.summary.iloc[0]["utilization_payment"] == pytest.approx(expected)


def test_an_urgent_deadline_at_the_resume_instant_goes_before_a_reply_held_then() -> None:
    # The broker's rule (a timeout goes first at its instant) holds in the
    # replay too: the deadline of 2.0, re-armed while replaying the wake-up of
    # 1.5, expires before the reply that arrived at 2.0 itself.
    from sim.world.core import World
    from sim.world.node import Node
    from sim.world.timers import DeadlineQueue

    world = World(seed=1)
    log: list[tuple[str, int, float | None]] = []
    answered: set[int] = set()

    class Owner(Node):
        def handle(self, msg: tuple) -> None:
            log.append(("reply", msg[2], self.replaying_at))
            answered.add(msg[2])

    owner = Owner(world, "owner")
    queue = DeadlineQueue(
        world, 0.5, lambda t: t not in answered, lambda t: log.append(("timeout", t, owner.replaying_at)),
        owner=owner, first=True,
    )  # fmt: skip
    world.at(2.0, owner.receive, ("rep", "x", 1))
    world.at(1.0, lambda _: queue.add(0))
    world.at(1.5, lambda _: queue.add(1))
    world.at(1.2, owner.pause)
    world.at(2.0, owner.resume)
    world.run(3.0)
    assert log == [("timeout", 0, 1.5), ("timeout", 1, 2.0), ("reply", 1, 2.0)]


def test_a_pause_that_lasts_to_the_end_of_the_workload_is_healed() -> None:
    # No duration: paused until the workload ends, then the drain resumes it.
    faults = [{"kind": "pause", "target": "payment", "at": 8.0}]
    txns = sim.run(order_scenario({"run.duration": 10.0, "faults": faults}), seed=1).transactions
    assert (txns["outcome"] == "committed").all()


def test_a_node_down_and_paused_at_the_end_of_the_workload_comes_back_running() -> None:
    faults = [
        {"kind": "crash", "target": "payment", "at": 8.0},
        {"kind": "pause", "target": "payment", "at": 8.5},
    ]
    result = sim.run(order_scenario({"run.duration": 10.0, "faults": faults}), seed=1, trace=True)
    assert (result.transactions["outcome"] != "stuck").all()
    kinds = result.events.query("node == 'payment' and txn_id.isna()", engine="python")[
        ["time", "kind"]
    ].values.tolist()
    assert kinds == [[8.0, "crash"], [8.5, "pause"], [10.0, "restart"]]
