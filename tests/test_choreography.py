"""The choreography saga over the simulated broker: exact timelines, message
counts, determinism, saga probabilities, safety under faults with an outbox
and an inbox, the dual write and redelivery without them, and stuck alerts."""

from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_theory import (
    FAST_RETRY,
    K,
    assert_mean_close,
    assert_multinomial,
    batch_means,
    failure_categories,
    saga_scenario,
    saga_theory,
)

import sim
import sim.world.publisher
from sim.protocols.choreography.spec import ChoreographySpec
from sim.runner import Model, run_once
from sim.specs import RetrySpec
from sim.world.broker import Copy
from sim.world.core import World
from sim.world.network import Network

from conftest import ORDER_STEPS, order_scenario, trace_rows

ONE = {
    "workload.interarrival": {"dist": "constant", "value": 1.0},
    "workload.limit": 1,
    "run.duration": 2.0,
    "run.drain": 20.0,
    "run.protocols": ["choreography"],
}


CUT = {"faults": [{"kind": "partition", "groups": [["inventory"], ["broker"]], "one_way": True, "at": 1.0}]}


def timeline(overrides: dict) -> list[tuple[float, str, str, str, str]]:
    """Trace of one choreography transaction arriving at t = 1.0 (latency 1 ms, service 10 ms)."""
    return trace_rows({**ONE, **overrides})


def one(overrides: dict) -> pd.Series:
    return sim.run(order_scenario({**ONE, **overrides}), seed=1).transactions.iloc[0]


# ------------------------------------------------------------------ timelines


def test_committed_order_is_a_chain_of_events() -> None:
    # Each hop through the broker is two network delays (publish, delivery);
    # the tracker gets a copy of every event.
    assert timeline({}) == [
        (1.0, "client", "publish", "start", ""),
        (1.001, "broker", "store", "start", "from client"),
        (1.001, "broker", "deliver", "start", "to payment (delivery 1)"),
        (1.001, "broker", "deliver", "start", "to tracker (delivery 1)"),
        (1.012, "payment", "effect", "charge", "forward"),
        (1.012, "payment", "publish", "charge.done", ""),
        (1.013, "broker", "store", "charge.done", "from payment"),
        (1.013, "broker", "deliver", "charge.done", "to inventory (delivery 1)"),
        (1.013, "broker", "deliver", "charge.done", "to tracker (delivery 1)"),
        (1.024, "inventory", "effect", "reserve", "forward"),
        (1.024, "inventory", "publish", "reserve.done", ""),
        (1.025, "broker", "store", "reserve.done", "from inventory"),
        (1.025, "broker", "deliver", "reserve.done", "to shipping (delivery 1)"),
        (1.025, "broker", "deliver", "reserve.done", "to tracker (delivery 1)"),
        (1.036, "shipping", "effect", "ship", "forward"),
        (1.036, "shipping", "publish", "ship.done", ""),
        (1.037, "broker", "store", "ship.done", "from shipping"),
        (1.037, "broker", "deliver", "ship.done", "to tracker (delivery 1)"),
        (1.038, "tracker", "terminal", "ship.done", ""),
    ]
    row = one({})
    # 4 events: publish + confirm + (delivery + ack) per subscribed group.
    assert (row.outcome, row.coordinator, row.messages, round(row.finished_at, 6)) == (
        "committed",
        "committed",
        22,
        1.037,
    )


def test_refused_reservation_sends_a_failure_event_back_to_payment() -> None:
    assert timeline({"participants.inventory.business_failure": 1.0}) == [
        (1.0, "client", "publish", "start", ""),
        (1.001, "broker", "store", "start", "from client"),
        (1.001, "broker", "deliver", "start", "to payment (delivery 1)"),
        (1.001, "broker", "deliver", "start", "to tracker (delivery 1)"),
        (1.012, "payment", "effect", "charge", "forward"),
        (1.012, "payment", "publish", "charge.done", ""),
        (1.013, "broker", "store", "charge.done", "from payment"),
        (1.013, "broker", "deliver", "charge.done", "to inventory (delivery 1)"),
        (1.013, "broker", "deliver", "charge.done", "to tracker (delivery 1)"),
        (1.024, "inventory", "refuse", "reserve", ""),
        (1.024, "inventory", "publish", "reserve.failed", ""),
        (1.025, "broker", "store", "reserve.failed", "from inventory"),
        (1.025, "broker", "deliver", "reserve.failed", "to payment (delivery 1)"),
        (1.025, "broker", "deliver", "reserve.failed", "to tracker (delivery 1)"),
        (1.036, "payment", "effect", "refund", "compensation"),
        (1.036, "payment", "publish", "refund.done", ""),
        (1.037, "broker", "store", "refund.done", "from payment"),
        (1.037, "broker", "deliver", "refund.done", "to tracker (delivery 1)"),
        (1.038, "tracker", "terminal", "refund.done", ""),
    ]
    row = one({"participants.inventory.business_failure": 1.0})
    assert (row.outcome, row.coordinator, row.messages, row.compensations_applied) == (
        "compensated",
        "compensated",
        22,
        1,
    )


def test_refused_pivot_compensates_in_reverse_order() -> None:
    events = timeline({"participants.shipping.business_failure": 1.0})
    effects = [e[3] for e in events if e[2] == "effect"]
    assert effects == ["charge", "reserve", "release", "refund"]
    assert events[-1] == (1.062, "tracker", "terminal", "refund.done", "")


def test_a_lost_ack_is_redelivered_and_deduplicated_by_the_inbox() -> None:
    # Inventory's messages to the broker are cut until the workload ends
    # (t = 2): its ack of charge.done and its publish of reserve.done are lost.
    # The outbox relay resends the publish after the cut heals; the broker
    # redelivers charge.done after ack_timeout (5 s), and the inbox says it
    # was handled, so nothing is applied again.
    events = [e for e in timeline(CUT) if e[0] >= 1.024]
    assert events == [
        (1.024, "inventory", "effect", "reserve", "forward"),
        (1.024, "inventory", "drop", "", "partition: ack to broker"),
        (1.024, "inventory", "publish", "reserve.done", ""),
        (1.024, "inventory", "drop", "", "partition: pub to broker"),
        (2.03961, "broker", "store", "reserve.done", "from inventory"),
        (2.03961, "broker", "deliver", "reserve.done", "to shipping (delivery 1)"),
        (2.03961, "broker", "deliver", "reserve.done", "to tracker (delivery 1)"),
        (2.05061, "shipping", "effect", "ship", "forward"),
        (2.05061, "shipping", "publish", "ship.done", ""),
        (2.05161, "broker", "store", "ship.done", "from shipping"),
        (2.05161, "broker", "deliver", "ship.done", "to tracker (delivery 1)"),
        (2.05261, "tracker", "terminal", "ship.done", ""),
        (6.013, "broker", "deliver", "charge.done", "to inventory (delivery 2)"),
        (6.014, "inventory", "dedup", "reserve", "ok: nothing applied"),
    ]
    row = one(CUT)
    assert (row.outcome, row.steps_applied, row.retries) == ("committed", 3, 2)  # a resend, a redelivery


def test_without_an_inbox_a_redelivered_event_is_applied_again() -> None:
    # The same cut; inventory handles the redelivered charge.done again and
    # republishes reserve.done (the same event id), which shipping's inbox skips.
    row = one({**CUT, "participants.inventory.idempotent": False})
    assert (row.outcome, row.anomalies, row.reasons) == ("inconsistent", ["applied_twice"], ["reserve applied 2 times"])


# ------------------------------------------------------------------ counts, determinism


@pytest.mark.parametrize("seed", [11, 12])
def test_message_counts_exact(seed: int) -> None:
    """No loss, duplication or redelivery: a saga refused at step k (1-based)
    publishes 2k events (start, k-1 done, 1 failed, k-1 compensations); each
    non-terminal event costs 6 messages (publish, confirm, delivery and ack to
    its consumer and to the tracker), the terminal one 4: 12k - 2. A committed
    saga: 4 events, 22 messages."""
    zero = (0.0, 0.0, 0.0)
    scenario = saga_scenario(ORDER_STEPS, (0.2, 0.2, 0.2), zero, zero, duration=2.0)
    out = run_once(scenario, "choreography", seed)
    cols = out.transactions
    shapes = set()
    for outcome, applied, messages in zip(cols["outcome"], cols["steps_applied"], cols["messages"], strict=True):
        expected = 22 if outcome == "committed" else 12 * (applied + 1) - 2
        assert messages == expected
        shapes.add((outcome, applied))
    assert shapes == {("compensated", 0), ("compensated", 1), ("compensated", 2), ("committed", 3)}
    assert sum(cols["messages"]) == out.summary["network_messages"]
    assert out.summary["redeliveries"] == 0 and out.summary["publish_resends"] == 0


def test_same_seed_same_tables_and_trace() -> None:
    scenario = order_scenario(
        {
            "run.protocols": ["choreography"],
            "run.duration": 5.0,
            "network.loss": 0.02,
            "network.duplicate": 0.02,
            "participants.payment.business_failure": 0.1,
            "participants.shipping.hang": 0.05,
            "participants.shipping.hang_duration": {"dist": "constant", "value": 6.0},
            "broker.ordering": "unordered",
            "faults": [
                {"kind": "crash", "target": "broker", "at": 2.0, "duration": 0.5},
                {"kind": "crash", "target": "inventory", "at": 3.0, "duration": 0.5},
            ],
        }
    )
    a = sim.run(scenario, seed=7, trace=True)
    b = sim.run(scenario, seed=7, trace=True)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    pd.testing.assert_frame_equal(a.summary.drop(columns="wall_time"), b.summary.drop(columns="wall_time"))
    pd.testing.assert_frame_equal(a.events, b.events)
    assert a.summary["redeliveries"].iloc[0] > 0


# ------------------------------------------------------------------ theory


def choreo(scenario, attempts: int = 3):  # type: ignore[no-untyped-def]
    """The theory scenario with the same local retry policy for the choreography."""
    return scenario.model_copy(
        update={
            "choreography": ChoreographySpec(
                retry=RetrySpec(attempts=attempts, **FAST_RETRY),
                compensation_retry=RetrySpec(attempts="unlimited", **FAST_RETRY),
            )
        }
    )


def test_saga_probabilities_hold_for_choreography() -> None:
    """Business, transient and compensation failures, no faults.

    Choreography's failure semantics match the robust orchestrator's where
    ``saga_theory`` looks: a participant retries a transient failure locally
    (``choreography.retry``, the same 3 attempts), the pivot until it succeeds
    or is refused; a refusal or exhausted attempts publish ``STEP.failed`` and
    the compensatable steps before it are compensated, failing compensations
    retried without limit. So P(committed), the failing step's law and the
    compensations per transaction are the same. One difference: a
    participant knows that an exhausted step was not applied, so there is no
    null compensation, and no retry for one: the expected retries are
    ``saga_theory``'s minus ``sum_i R_i X_i c_i / (1 - c_i)``. Without faults
    nothing is redelivered or resent (asserted), so ``retries`` counts local
    retries only. Bounds as in ``test_theory``: 4 SE, chi-square p > 1e-4.
    """
    business = (0.05, 0.08, 0.1)
    transient = (0.2, 0.1, 0.15)
    comp_failure = (0.3, 0.2, 0.0)
    theory = saga_theory(ORDER_STEPS, business, transient, comp_failure, 3)
    null_retries = 0.0
    reach = 1.0
    for i, (b, q) in enumerate(zip(business, transient, strict=True)):
        kind = ORDER_STEPS[i].get("kind", "compensatable")
        if kind == "compensatable":
            null_retries += reach * q**3 * comp_failure[i] / (1 - comp_failure[i])
            reach *= (1 - b - q) * sum(q**j for j in range(3))
        else:
            reach *= (1 - b - q) / (1 - q)
    scenario = choreo(saga_scenario(ORDER_STEPS, business, transient, comp_failure, duration=20.0))
    out = run_once(scenario, "choreography", 4)
    s, cols = out.summary, out.transactions
    assert s["inconsistent"] == 0 and s["stuck"] == 0 and s["redeliveries"] == 0 and s["publish_resends"] == 0
    assert cols["coordinator"] == cols["outcome"]
    n = s["transactions"]
    assert n > 8000
    p = theory["p_commit"]
    assert abs(s["committed_rate"] - p) < K * math.sqrt(p * (1 - p) / n)
    assert_multinomial(failure_categories(out, 3), [*theory["fail_at"], p], "failing step")
    assert_mean_close(np.asarray(cols["compensations_applied"], dtype=float), theory["compensations"], "compensations")
    assert_mean_close(np.asarray(cols["retries"], dtype=float), theory["retries"] - null_retries, "retries")


# ------------------------------------------------------------------ safety under faults


@settings(derandomize=True, database=None, deadline=None, max_examples=12)
@given(
    business=st.floats(0.0, 0.3),
    transient=st.floats(0.0, 0.3),
    comp_failure=st.floats(0.0, 0.5),
    hang=st.floats(0.0, 0.05),
    loss=st.floats(0.0, 0.05),
    duplicate=st.floats(0.0, 0.05),
    ordering=st.sampled_from(["per-key", "unordered"]),
    crashes=st.lists(
        st.tuples(
            st.sampled_from(["payment", "inventory", "shipping", "broker", "tracker"]),
            st.floats(0.0, 4.5),
            st.floats(0.01, 1.0),
        ),
        max_size=4,
    ),
    seed=st.integers(0, 1000),
)
def test_outbox_and_inbox_keep_every_transaction_consistent(
    business: float,
    transient: float,
    comp_failure: float,
    hang: float,
    loss: float,
    duplicate: float,
    ordering: str,
    crashes: list[tuple[str, float, float]],
    seed: int,
) -> None:
    """With an outbox and an inbox everywhere and unlimited deliveries, any
    mix of failures, lost and duplicated messages, redeliveries and crashes
    (participants, broker, tracker) ends, after the drain, with every
    transaction committed or compensated."""
    overrides: dict = {
        "run.protocols": ["choreography"],
        "run.duration": 5.0,
        "run.drain": 60.0,
        "network.loss": loss,
        "network.duplicate": duplicate,
        "broker.ordering": ordering,
        "broker.ack_timeout": 1.0,
        "broker.max_deliveries": "unlimited",
        "faults": [{"kind": "crash", "target": t, "at": at, "duration": d} for t, at, d in crashes],
    }
    for name in ("payment", "inventory", "shipping"):
        overrides[f"participants.{name}.business_failure"] = business
        overrides[f"participants.{name}.transient_failure"] = transient
        overrides[f"participants.{name}.compensation_failure"] = comp_failure
        overrides[f"participants.{name}.hang"] = hang
        overrides[f"participants.{name}.hang_duration"] = {"dist": "constant", "value": 2.0}
    out = run_once(order_scenario(overrides), "choreography", seed)
    txns = pd.DataFrame(out.transactions)
    bad = txns[~txns["outcome"].isin(["committed", "compensated"])]
    assert bad.empty, bad[["txn_id", "outcome", "reasons"]].head().to_string()


def test_dual_write_without_an_outbox_loses_events() -> None:
    """No outbox, an inbox everywhere, participants crashing every ~2 s for
    0.5 s and 5% of messages lost. A crash abandons the unconfirmed publishes
    of the service; each lost first publish (5%) waits 0.2 s for its resend,
    so per event the chance to be lost is about 0.05 * 0.2 / 2.5 = 0.4%; over
    ~3 events per order and ~1000 orders, about a dozen chains are expected
    to break (the chance of none is e^-12). The redelivered event is then
    skipped by the inbox: the transaction is stuck, and its effects tell
    which step was left undone."""
    overrides: dict = {
        "run.protocols": ["choreography"],
        "run.duration": 50.0,
        "run.drain": 30.0,
        "network.loss": 0.05,
        "choreography.publish_timeout": 0.2,
        "nemesis": {
            "crash": {
                "target": ["payment", "inventory", "shipping"],
                "mtbf": 2.0,
                "duration": {"dist": "constant", "value": 0.5},
            }
        },
    }
    for name in ("payment", "inventory", "shipping"):
        overrides[f"participants.{name}.outbox"] = False
    out = sim.run(order_scenario(overrides), seed=1)
    s = out.summary.iloc[0]
    assert s["publishes_dropped"] > 0
    stuck = out.transactions[out.transactions["outcome"] == "stuck"]
    assert len(stuck) > 0
    assert s["inconsistent"] == 0  # the inbox prevents double effects
    assert (~stuck["consistent"]).any()
    assert stuck["reasons"].map("; ".join).str.contains("never compensated|never applied although the pivot").any()
    assert stuck["flagged_at"].notna().all()  # the tracker saw every one
    # the same faults with an outbox: nothing is lost
    for name in ("payment", "inventory", "shipping"):
        overrides[f"participants.{name}.outbox"] = True
    out = sim.run(order_scenario(overrides), seed=1)
    assert set(out.transactions["outcome"]) <= {"committed", "compensated"}


def test_without_an_inbox_duplicates_are_applied_twice() -> None:
    """Outbox on, no inbox, 5% of messages duplicated by the network: each
    duplicated delivery (5% of ~3 deliveries per order, and duplicated
    publishes store the event twice) is handled again. Over ~1000 orders some
    hundred duplicates are expected; each applies a step again."""
    overrides: dict = {"run.protocols": ["choreography"], "run.duration": 50.0, "network.duplicate": 0.05}
    for name in ("payment", "inventory", "shipping"):
        overrides[f"participants.{name}.idempotent"] = False
    out = sim.run(order_scenario(overrides), seed=1)
    bad = out.transactions[out.transactions["outcome"] == "inconsistent"]
    assert len(bad) > 20
    assert bad["anomalies"].map(lambda codes: "applied_twice" in codes).all()
    assert out.summary["anomaly_applied_twice"].iloc[0] == len(bad)


# ------------------------------------------------------------------ alerts


def test_tracker_flags_a_stuck_choreography() -> None:
    # Shipping hangs on every attempt: reserve.done is never acknowledged and
    # goes to the dead-letter topic after 3 deliveries; nothing terminal.
    row_over = {
        "participants.shipping.hang": 1.0,
        "participants.shipping.hang_duration": {"dist": "constant", "value": 0.5},
        "broker.max_deliveries": 3,
        "broker.ack_timeout": 1.0,
        "monitor.stuck_after": 4.0,
    }
    events = timeline(row_over)
    assert [e for e in events if e[2] in ("dead-letter", "alert")] == [
        (4.025, "broker", "dead-letter", "reserve.done", "to shipping after 3 deliveries"),
        (5.002, "tracker", "alert", "", "no terminal event"),
    ]
    out = sim.run(order_scenario({**ONE, **row_over}), seed=1)
    row = out.transactions.iloc[0]
    s = out.summary.iloc[0]
    # the tracker first heard of it at 1.002, when the start event reached it
    assert (row.outcome, row.consistent, row.flagged_at) == ("stuck", False, 5.002)
    assert (s["dead_lettered"], s["alerts"], s["true_alerts"], s["false_alerts"], s["missed_alerts"]) == (1, 1, 1, 0, 0)
    # last progress: reserve applied at 1.024
    assert s["detection_delay_mean"] == pytest.approx(5.002 - 1.024)


def test_a_slow_transaction_is_a_false_alert() -> None:
    out = sim.run(
        order_scenario(
            {
                **ONE,
                "participants.shipping.service_time": {"dist": "constant", "value": 3.0},
                "broker.ack_timeout": 10.0,
                "monitor.stuck_after": 2.0,
            }
        ),
        seed=1,
    )
    row = out.transactions.iloc[0]
    s = out.summary.iloc[0]
    assert row.outcome == "committed" and row.flagged_at == pytest.approx(3.002)
    assert (s["alerts"], s["true_alerts"], s["false_alerts"]) == (1, 0, 1)
    assert math.isnan(s["detection_delay_mean"])


def test_orchestrator_and_2pc_get_the_same_alert() -> None:
    # The step slower than the timeout of test_timeline: the saga never ends.
    slow = {
        "participants.shipping.service_time": {"dist": "constant", "value": 1.5},
        "participants.shipping.workers": 1,
        "monitor.stuck_after": 5.0,
    }
    out = sim.run(order_scenario({**ONE, **slow, "run.protocols": ["orchestration"]}), seed=1)
    row = out.transactions.iloc[0]
    assert (row.outcome, row.flagged_at) == ("stuck", 6.0)
    assert out.summary["true_alerts"].iloc[0] == 1
    fine = sim.run(order_scenario({**ONE, "run.protocols": ["orchestration", "2pc", "choreography"]}), seed=1)
    assert fine.transactions["flagged_at"].isna().all()
    assert set(fine.summary["alerts"]) == {0}


def test_tracker_crash_rearms_its_alarms() -> None:
    model = Model(
        order_scenario(
            {
                **ONE,
                "participants.shipping.hang": 1.0,
                "participants.shipping.hang_duration": {"dist": "constant", "value": 0.5},
                "broker.max_deliveries": 2,
                "monitor.stuck_after": 3.0,
                "faults": [{"kind": "crash", "target": "tracker", "at": 1.5, "duration": 0.4}],
            }
        ),
        "choreography",
        1,
    )
    out = model.run()
    # the tracker was down at 1.5-1.9; on restart its alarm for txn 0 is re-armed for 1.002 + 3
    assert out.transactions["flagged_at"][0] == pytest.approx(4.002)


# ------------------------------------------------------------------ messages without events


def _run(overrides: dict, seed: int, elide: bool, trace: bool = True) -> tuple[sim.runner.RunOutput, Model]:
    model = Model(order_scenario(overrides), "choreography", seed, trace=trace)
    model.protocol.elide = elide  # type: ignore[attr-defined]
    return model.run(), model


BUSY: dict = {
    "run.protocols": ["choreography"],
    "run.duration": 5.0,
    "run.drain": 30.0,
    "workload.interarrival": {"dist": "exponential", "mean": 0.02},
}
for _name in ("payment", "inventory", "shipping"):
    BUSY[f"participants.{_name}.business_failure"] = 0.1
    BUSY[f"participants.{_name}.transient_failure"] = 0.1
    BUSY[f"participants.{_name}.hang"] = 0.05
    BUSY[f"participants.{_name}.hang_duration"] = {"dist": "constant", "value": 2.0}
    BUSY[f"participants.{_name}.service_time"] = {"dist": "exponential", "mean": 0.01}
_NAMES = ("payment", "inventory", "shipping")


#: Choreographies whose messages on steady links take every path of the
#: engine's accounting without events (tests/test_stream.py judges them as
#: they go too), by name.
VARIANTS: dict[str, dict] = {
    "per-key": {},
    "unordered": {"broker.ordering": "unordered"},
    # dual write, no inbox: confirms that trigger acks, events handled twice
    "dual-write-no-inbox": {
        **{f"participants.{n}.outbox": False for n in _NAMES},
        **{f"participants.{n}.idempotent": False for n in _NAMES},
    },
    # confirms slower than the publish timeout (resends), acks slower than the
    # ack timeout (redeliveries, dead letters), an idempotent producer
    "slow-confirms-and-acks": {
        "broker.deduplicate": True,
        "broker.ack_timeout": 0.05,
        "broker.max_deliveries": 3,
        "choreography.publish_timeout": 0.0015,
    },
    # every ack later than the ack timeout: the tracker's copies too are
    # stored, redelivered and dead-lettered
    "late-acks": {"broker.ack_timeout": 0.0015, "broker.max_deliveries": 2},
    # faults on some links and nodes only: their messages take the full path
    "loss-at-payment": {
        "faults": [{"kind": "loss", "target": "payment", "probability": 0.2, "at": 0.5, "duration": 3.0}]
    },
    "crash-and-dup": {
        "faults": [
            {"kind": "crash", "target": "shipping", "at": 1.0, "duration": 0.3},
            {"kind": "duplicate", "groups": [["inventory"], ["broker"]], "probability": 0.3, "at": 0.0},
        ]
    },
    # a slow link to the tracker: its copies of a transaction queue three
    # deep, and a copy that becomes the head of its partition with copies
    # behind it releases the next one at its ack (Copy.waited)
    "slow-tracker-link": {
        "network.links": [{"src": "broker", "dst": "tracker", "latency": {"dist": "constant", "value": 0.01}}],
        "broker.ack_timeout": 1.0,
    },
    # the tracker's acks later than the ack timeout and one delivery
    # allowed: each of its copies is dead-lettered before its ack arrives,
    # and the next copy of the transaction goes at once, not at that ack
    "tracker-copies-dead-lettered": {
        "network.latency": {"dist": "constant", "value": 1 / 2048},
        "network.links": [{"src": "broker", "dst": "tracker", "latency": {"dist": "constant", "value": 1 / 512}}],
        "broker.ack_timeout": 3 / 1024,
        "broker.max_deliveries": 1,
        **{f"participants.{n}.service_time": {"dist": "constant", "value": 1 / 8192} for n in _NAMES},
    },
}


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_messages_without_events_change_nothing_but_the_event_count(variant: dict) -> None:
    """Confirms, acks and the tracker's copies on steady links cost no event,
    and the run is the same as with every message an event: with a constant
    latency (so that drawing an ack's latency earlier draws the same value)
    the transactions, the summary and the trace are identical, under
    failures, hangs, redeliveries, resends, dead letters and faults on other
    links and nodes. (No confirm here arrives at the very instant of its
    publish's timeout: the paths may order such a tie differently, see
    ``Publisher``.)"""
    overrides = {**BUSY, **variant}
    fast, fast_model = _run(overrides, 1, elide=True)
    full, full_model = _run(overrides, 1, elide=False)
    pd.testing.assert_frame_equal(pd.DataFrame(fast.transactions), pd.DataFrame(full.transactions))
    pd.testing.assert_frame_equal(
        pd.DataFrame([fast.summary]).drop(columns="wall_time"), pd.DataFrame([full.summary]).drop(columns="wall_time")
    )
    # the same records; only the order of records at one instant may differ
    pd.testing.assert_frame_equal(
        pd.DataFrame(fast.events).sort_values(list(pd.DataFrame(fast.events).columns)).reset_index(drop=True),
        pd.DataFrame(full.events).sort_values(list(pd.DataFrame(full.events).columns)).reset_index(drop=True),
    )
    assert next(fast_model.world.env._eid) < next(full_model.world.env._eid)  # type: ignore[attr-defined]
    assert not full_model.protocol.broker.takers and not full_model.protocol.broker.confirmers  # type: ignore[attr-defined]


def test_an_ack_timer_set_late_keeps_its_place_among_the_others() -> None:
    """A first delivery to a participant on a steady link has no ack timer
    until its consumer finds that its ack may be late (it hangs, fails or
    waits for a worker here), and the timer then takes the place it would
    have had from the delivery on. The tracker crashing makes its copies take
    the full path, with their timers from the start: a copy of an event to a
    participant and the tracker's copy of it are due at the same instant,
    and both are redelivered in the order of the full path, where every copy
    has its timer from the start: the traces are the same, in order."""
    overrides = {**BUSY, "faults": [{"kind": "crash", "target": "tracker", "at": 1.0, "duration": 0.3}]}
    fast, fast_model = _run(overrides, 3, elide=True)
    full, _ = _run(overrides, 3, elide=False)
    assert fast_model.protocol.broker.direct and not fast_model.protocol.broker.takers  # type: ignore[attr-defined]
    redelivered = [e for e in fast.events if e.kind == "deliver" and "delivery 1)" not in e.detail]
    assert len(redelivered) > 50
    at_once = collections.Counter(e.time for e in redelivered)
    assert any(n > 1 for n in at_once.values())  # redeliveries at one instant: the order matters
    assert [tuple(e) for e in fast.events] == [tuple(e) for e in full.events]


def test_an_ack_due_at_the_very_end_of_its_attempt_is_late_on_both_paths() -> None:
    """A first delivery whose ack deadline falls at the very instant its
    attempt ends (everything on a 1/1024 s grid: arrivals, latency, service,
    and an ack timeout of one latency and one service time). The ack is late:
    the timer, urgent, redelivers before the attempt's end runs. On steady
    links the consumer arms that timer at the delivery unless its ack surely
    comes before the deadline (``Publisher.delivered``: ``<``, not ``<=``);
    the traces of both paths are the same, in order."""
    grid = 1 / 1024
    overrides = {
        "run.protocols": ["choreography"],
        "run.duration": 2.0,
        "run.drain": 5.0,
        "workload.interarrival": {"dist": "constant", "value": 32 * grid},
        "network.latency": {"dist": "constant", "value": grid},
        "broker.ack_timeout": 5 * grid,
        **{f"participants.{n}.service_time": {"dist": "constant", "value": 4 * grid} for n in _NAMES},
    }
    fast, _ = _run(overrides, 1, elide=True)
    full, _ = _run(overrides, 1, elide=False)
    redelivered = [e for e in fast.events if e.kind == "deliver" and "delivery 1)" not in e.detail]
    assert len(redelivered) > 10  # every step's copy is redelivered once at its deadline
    assert [tuple(e) for e in fast.events] == [tuple(e) for e in full.events]


def test_an_ack_timeout_goes_first_at_its_instant_on_both_paths() -> None:
    """A deadline that falls on another event: starts stored every 1/64 s
    (constant interarrival and client latency), an ack timeout of four
    interarrivals, payment hanging often and reached with a random latency.
    A redelivery to payment and a new start's delivery to payment then fall
    at one instant and draw from the same stream, so their order changes the
    run. The broker's timeouts go first at their instant, whenever their
    wake-up was scheduled (a late-set timer's wake-up is scheduled after the
    store it ties with): the fast path's trace is the full path's, in order.
    (A reviewer's reproduction: before the rule the two runs differed.)"""
    constant = {"dist": "constant", "value": 1 / 64}
    overrides = {
        "run.protocols": ["choreography"],
        "run.duration": 2.0,
        "run.drain": 10.0,
        "workload.interarrival": constant,
        "network.latency": {"dist": "constant", "value": 1 / 32},
        "network.links": [
            *({"src": "broker", "dst": n, "latency": {"dist": "constant", "value": 1 / 1024}} for n in _NAMES[1:]),
            {"src": "broker", "dst": "tracker", "latency": {"dist": "constant", "value": 1 / 1024}},
            {"src": "payment", "dst": "broker", "both_ways": False, "latency": {"dist": "constant", "value": 1 / 1024}},
            {
                "src": "broker",
                "dst": "payment",
                "both_ways": False,
                "latency": {"dist": "uniform", "low": 0.033, "high": 0.06},
            },
        ],
        "broker.ack_timeout": 1 / 16,
        "participants.payment.hang": 0.3,
        "participants.payment.hang_duration": {"dist": "constant", "value": 1.0},
        **{f"participants.{n}.service_time": {"dist": "constant", "value": 1 / 128} for n in _NAMES},
    }
    fast, _ = _run(overrides, 3, elide=True)
    full, _ = _run(overrides, 3, elide=False)
    stores = {e.time for e in fast.events if e.kind == "store"}
    ties = [e for e in fast.events if e.kind == "deliver" and "delivery 1)" not in e.detail and e.time in stores]
    assert len(ties) > 10  # redeliveries at the instant of a store
    assert [tuple(e) for e in fast.events] == [tuple(e) for e in full.events]
    pd.testing.assert_frame_equal(pd.DataFrame(fast.transactions), pd.DataFrame(full.transactions))


def test_messages_without_events_keep_the_laws_with_random_latencies() -> None:
    """With random latencies an ack's latency is drawn earlier than its send,
    so the two paths draw different values: the runs differ in detail but not
    in law. Acks slower than the ack timeout and confirms slower than the
    publish timeout happen often here (latency mean 2 ms)."""
    overrides = {
        **BUSY,
        "run.duration": 20.0,
        "workload.interarrival": {"dist": "exponential", "mean": 0.01},
        "network.latency": {"dist": "exponential", "mean": 0.002},
        "broker.ack_timeout": 0.03,
        "choreography.publish_timeout": 0.008,
        **{f"participants.{n}.hang": 0.0 for n in _NAMES},
    }
    outs = [_run(overrides, 3, elide, trace=False)[0] for elide in (True, False)]
    runs = [pd.DataFrame(out.transactions) for out in outs]
    n = len(runs[0])
    assert n == len(runs[1]) and n > 1800
    assert all(out.summary["redeliveries"] > 100 and out.summary["publish_resends"] > 10 for out in outs)
    assert all(set(r["outcome"]) == {"committed", "compensated"} for r in runs)
    # What each check can see (4 SE relative to the mean, measured on this run):
    # messages 3.5%, latency 7.5%, retries 22% (bursty: they come with redeliveries).
    sharp = {"messages": 0.05, "latency": 0.10, "retries": 0.30}
    for column in ("messages", "retries", "latency"):
        # Neighbouring transactions share queues and redeliveries, so the
        # standard error is by batch means (as in test_theory), not var/n; the
        # two runs draw apart (see above), so their errors add as independent.
        (ma, sa), (mb, sb) = (batch_means(np.asarray(r[column], dtype=float)) for r in runs)
        assert abs(ma - mb) < K * math.hypot(sa, sb), column
        assert K * math.hypot(sa, sb) < sharp[column] * max(abs(ma), abs(mb)), column
    p, q = ((r["outcome"] == "committed").mean() for r in runs)
    assert abs(p - q) < K * math.sqrt(p * (1 - p) * 2 / n)


def test_only_steady_links_go_without_events() -> None:
    """The fault plan decides: a node that can crash or pause, a link with
    loss or duplication, or one a planned fault can touch, keeps every
    message an event."""
    model = Model(
        order_scenario(
            {
                **ONE,
                "network.links": [{"src": "broker", "dst": "shipping", "loss": 0.01}],
                "faults": [
                    {"kind": "crash", "target": "tracker", "at": 1.5},
                    {
                        "kind": "delay",
                        "groups": [["payment"], ["broker"]],
                        "one_way": True,
                        "at": 1.0,
                        "extra": {"dist": "constant", "value": 0.01},
                    },
                ],
            }
        ),
        "choreography",
        1,
    )
    model.run()
    broker = model.protocol.broker  # type: ignore[attr-defined]
    assert set(broker.confirmers) == {"client", "inventory"}
    assert broker.takers == {}
    network = model.network
    assert network.steady("broker", "inventory") and network.steady("inventory", "broker")
    assert not network.steady("payment", "broker") and network.steady("broker", "payment")
    assert not network.steady("broker", "shipping") and not network.steady("broker", "tracker")
    # a fault outside the plan on a link taken to be steady is refused
    with pytest.raises(RuntimeError, match="fault plan"):
        network.cut([["inventory"], ["broker"]])
    # and so is a crash or a pause of a node taken never to fail
    for node in (model.participants["inventory"], broker):
        for fault in (node.pause, node.crash):
            with pytest.raises(RuntimeError, match="outside the run's fault plan"):
                fault()
    # no plan (a network used on its own): nothing is steady
    assert not Network(World(1), model.scenario.network).steady("broker", "inventory")


def test_a_republished_event_times_out_on_its_own_deadline() -> None:
    """A second publish of an event id (an event handled again) is timed from
    its own publish: the timer of the first, due earlier, finds another
    publish pending for the id and leaves it alone. Nothing is confirmed
    here (inventory cannot reach the broker), and retries wait exactly 10 ms."""
    model = Model(
        order_scenario(
            {
                **ONE,
                "faults": [{"kind": "partition", "groups": [["inventory"], ["broker"]], "one_way": True, "at": 0.0}],
                "choreography.publish_timeout": 0.2,
                "choreography.publish_retry": {"attempts": "unlimited", "initial": 0.01, "jitter": False},
            }
        ),
        "choreography",
        1,
    )
    world = model.world
    publisher = model.protocol.sides["inventory"].publisher  # type: ignore[attr-defined]
    txn = world.new_transaction()
    eid = 4 * sim.protocols.choreography.TOPIC_STRIDE + txn
    for at in (0.1, 0.2):  # timeouts due at 0.3 and 0.4
        world.at(at, lambda _: publisher.publish(eid, txn, 4, 0.0, None))
    world.run(until=0.35)
    assert publisher.resends == 0 and publisher.pending[eid].attempt == 1
    world.run(until=0.45)  # its own timeout at 0.4, the resend at 0.41
    assert publisher.resends == 1 and publisher.pending[eid].attempt == 2


def test_publishes_confirmed_in_time_are_swept_from_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    """On steady links a publish confirmed in time has no timeout to forget
    it: a sweep every ``SWEEP_EVERY`` publishes does; the run is the same
    with and without sweeps. (Participants without an inbox: they may publish
    an event id again.) Their outboxes keep no rows on steady links: nothing
    can crash to read them."""
    overrides = {
        **ONE,
        "run.duration": 5.0,
        "workload.interarrival": {"dist": "constant", "value": 0.1},
        "workload.limit": 40,
        **{f"participants.{n}.idempotent": False for n in _NAMES},
    }
    runs = []
    for every in (5, 10_000):
        monkeypatch.setattr(sim.world.publisher, "SWEEP_EVERY", every)
        out, model = _run(overrides, 1, elide=True, trace=False)
        protocol = model.protocol
        assert out.summary["committed"] > 30 and protocol.client.publisher.lazy  # type: ignore[attr-defined]
        assert not protocol.client.publisher.pending  # type: ignore[attr-defined]  # see the next test
        sides = protocol.sides.values()  # type: ignore[attr-defined]
        for side in sides:
            assert side.publisher.rows is None and not side.once_topics
        runs.append(([len(side.publisher.pending) for side in sides], pd.DataFrame(out.transactions)))
    # about 40 publishes per participant, all confirmed by the end
    assert max(runs[0][0]) < 5 and min(runs[1][0]) > 30
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1])


def test_a_publish_of_an_id_published_once_is_never_pending_when_confirmed_in_time() -> None:
    """The client, and participants with an inbox, publish each event id once
    (apart from resends): on steady links such a publish has no entry (only
    its deadline travels with the message), and one confirmed in time never
    enters ``pending`` (nor an outbox row: none is written on steady links).
    One whose confirm is late (here: all of them, the publish timeout being
    shorter than two latencies) is pending from the store on, and resent at
    its timeout."""
    overrides = {
        **ONE,
        "run.duration": 5.0,
        "workload.interarrival": {"dist": "constant", "value": 0.1},
        "workload.limit": 40,
    }
    out, model = _run(overrides, 1, elide=True, trace=False)
    protocol = model.protocol
    publishers = [protocol.client.publisher, *(s.publisher for s in protocol.sides.values())]  # type: ignore[attr-defined]
    assert out.summary["committed"] > 30 and all(p.lazy for p in publishers)
    assert not any(p.pending for p in publishers) and not any(p.rows for p in publishers)
    slow = {
        **overrides,
        "choreography.publish_timeout": 0.0015,  # the confirm comes at 2 ms, the resend at 1.6
        "choreography.publish_retry": {"attempts": 3, "initial": 0.0001, "jitter": False},
    }
    late, _ = _run(slow, 1, elide=True, trace=False)
    full, _ = _run(slow, 1, elide=False, trace=False)
    assert late.summary["publish_resends"] > 100
    pd.testing.assert_frame_equal(
        pd.DataFrame([late.summary]).drop(columns="wall_time"), pd.DataFrame([full.summary]).drop(columns="wall_time")
    )


def test_a_confirm_at_the_instant_of_its_publish_timeout_is_late() -> None:
    """Constant latencies that add up exactly to the publish timeout: every
    confirm reaches its publisher at the instant the publish times out. The
    timeout goes first, so with one attempt allowed every publish is given
    up (the broker stored it all the same, so every order commits). On
    steady links the broker decides this at the store, for a publish that
    went without an entry: a confirm that arrives at the deadline itself is
    late. The full path gives the same run here."""
    latency = {"dist": "constant", "value": 1 / 1024}
    overrides = {
        "run.protocols": ["choreography"],
        "run.duration": 2.0,
        "run.drain": 10.0,
        "workload.interarrival": {"dist": "constant", "value": 1 / 64},
        "network.latency": latency,
        "choreography.publish_timeout": 2 / 1024,
        "choreography.publish_retry": {"attempts": 1, "initial": 1 / 1024, "jitter": False},
        **{f"participants.{n}.service_time": {"dist": "constant", "value": 1 / 128} for n in _NAMES},
    }
    fast, _ = _run(overrides, 1, elide=True)
    full, _ = _run(overrides, 1, elide=False)
    publishes = sum(1 for e in fast.events if e.kind == "publish")
    assert fast.summary["committed"] == fast.summary["transactions"] > 100
    assert publishes == 4 * fast.summary["transactions"]
    assert fast.summary["publishes_dropped"] == publishes
    pd.testing.assert_frame_equal(
        pd.DataFrame([fast.summary]).drop(columns="wall_time"), pd.DataFrame([full.summary]).drop(columns="wall_time")
    )


def test_a_compensation_event_published_twice_is_not_taken_as_published_once() -> None:
    """A participant with an inbox handles an event once, but its
    compensation's ``done`` can follow two events (here inventory publishes
    ``reserve.failed`` and then ``release.done`` for the same transaction,
    0.5 ms apart): the second publish takes over the first's confirm, so only
    the second copy is acknowledged (dual write) and the broker redelivers
    the first, which the inbox skips. The fast path must do the same as the
    full path."""
    overrides = {
        **ONE,
        "broker.ordering": "unordered",
        "participants.payment.outbox": False,
    }
    results = []
    for elide in (True, False):
        model = Model(order_scenario(overrides), "choreography", 1, trace=True)
        model.protocol.elide = elide  # type: ignore[attr-defined]
        world = model.world
        inventory = model.protocol.sides["inventory"].publisher  # type: ignore[attr-defined]
        choreo = sim.protocols.choreography
        for topic, at in ((choreo.failed(1), 1.5), (choreo.undone(1), 1.5005)):
            eid = topic * choreo.TOPIC_STRIDE + 0  # transaction 0's event on that topic
            world.at(at, lambda _, e=eid, t=topic, p=inventory: p.publish(e, 0, t, 1.0, None))
        out = model.run()
        results.append({k: out.summary[k] for k in ("redeliveries", "inbox_dedups", "network_messages")})
    assert results[0] == results[1] and results[0]["redeliveries"] == 1 and results[0]["inbox_dedups"] == 1


def test_settled_copies_and_moot_alarms_are_let_go_promptly() -> None:
    """On steady links the broker drops its acknowledged copies, and the
    tracker its alarms for transactions already ended, at the next delivery
    or first copy, not at their timeout: at any instant the queues hold what
    is in flight (a dozen transactions here), not the ack timeout's 5 seconds
    (about 3,000 copies) or the alarm's 30 (1,000 alarms)."""
    overrides = {
        **ONE,
        "run.duration": 20.0,
        "workload.interarrival": {"dist": "exponential", "mean": 0.005},
        "workload.limit": 2_000,
    }
    model = Model(order_scenario(overrides), "choreography", 1, trace=False)
    protocol = model.protocol
    sizes: list[tuple[int, int]] = []

    def look(_: object) -> None:
        sizes.append((len(protocol.broker.deadlines._queue), len(protocol.tracker.deadlines._queue)))  # type: ignore[attr-defined]

    for at in (2.0, 4.0, 6.0, 8.0):
        model.world.at(at, look)
    out = model.run()
    assert out.summary["committed"] > 1_800
    assert len(sizes) == 4 and max(max(pair) for pair in sizes) < 50


def test_a_committed_order_costs_eleven_events() -> None:
    """Arrival, four publishes, three deliveries, three services: the 15
    confirms, acks and tracker copies of the 22 messages cost no event, and
    neither do the timeouts of the four publishes, confirmed in time, nor
    the ack timeouts of the three deliveries, acknowledged in time."""
    counts = []
    for elide in (True, False):
        out, model = _run(ONE, 1, elide, trace=False)
        assert out.transactions["messages"] == [22] and out.transactions["outcome"] == ["committed"]
        counts.append(model.world.events_run)
    # Events run: the 11 and the end of the fault plan (the tracker's stuck
    # check is due after the run ends); the full path adds a wake-up per
    # publisher and one of the broker's ack timeouts.
    assert counts[0] == 11 + 1
    assert counts[1] - counts[0] == 15 + 4 + 1


def _generated(duration: float) -> dict[str, Any]:
    """A choreography the one-path probe generated (``tests/one_path/probe.py``):
    constant latencies on a dyadic grid, no inbox, a dual write, a slow
    single-worker payment, a shipping service that refuses, fails and hangs."""
    grid = 1 / 1024
    overrides: dict[str, Any] = {
        "run.protocols": ["choreography"],
        "run.duration": duration,
        "run.drain": 10.0,
        "workload.interarrival": {"dist": "exponential", "mean": 0.005},
        "network.latency": {"dist": "constant", "value": 3 * grid},
        "network.links": [
            {
                "src": "broker",
                "dst": "inventory",
                "latency": {"dist": "constant", "value": 4 * grid},
                "both_ways": False,
            },
            {
                "src": "broker",
                "dst": "shipping",
                "latency": {"dist": "constant", "value": 6 * grid},
                "both_ways": False,
            },
        ],
        "broker.ack_timeout": 10 * grid,
        "broker.ordering": "unordered",
        "choreography.publish_timeout": 7 * grid,
        "participants.payment.service_time": {"dist": "constant", "value": 8 * grid},
        "participants.payment.workers": 1,
        "participants.inventory.service_time": {"dist": "constant", "value": grid},
        "participants.inventory.workers": 1,
        "participants.shipping.service_time": {"dist": "constant", "value": grid},
        "participants.shipping.workers": 8,
        "participants.shipping.business_failure": 0.1,
        "participants.shipping.transient_failure": 0.2,
        "participants.shipping.hang": 0.05,
        "participants.shipping.hang_duration": {"dist": "constant", "value": 9 * grid},
    }
    for name in _NAMES:
        overrides[f"participants.{name}.idempotent"] = False
        overrides[f"participants.{name}.outbox"] = False
    return overrides


def test_two_publishes_of_one_event_at_one_instant_are_resent_once_on_both_paths() -> None:
    """A step without an inbox handles two copies of an event at one instant
    and publishes its result twice (a dual write), the second publish taking
    the first's entry; both confirms are late. The full path then holds two
    equal timeouts for the one pending publish: it resends once and draws
    one back-off, as the path without events does (found by a generated
    choreography on a dyadic grid: the second back-off draw moved every
    later resend of the publisher)."""
    overrides = _generated(0.05)
    fast, fast_model = _run(overrides, 1, elide=True, trace=False)
    full, _ = _run(overrides, 1, elide=False, trace=False)
    assert fast_model.protocol.broker.confirmers  # type: ignore[attr-defined]  (the path without events was taken)
    assert fast.summary["publish_resends"] > 0
    pd.testing.assert_frame_equal(pd.DataFrame(fast.transactions), pd.DataFrame(full.transactions))


def test_a_message_accounted_ahead_counts_only_if_sent_before_the_run_ends() -> None:
    """The tracker's ack is sent when its copy arrives, a participant's dual-write
    ack when its confirm arrives: accounted for ahead (without an event),
    each is counted only if that instant is before the end of the run, as
    the network counts a message when it is sent (the run's last instant
    runs nothing). Here a transaction's last store falls within a latency of
    the end (a generated choreography on a dyadic grid found it: one message
    more on the path without events)."""
    fast, fast_model = _run(_generated(1.0), 1, elide=True, trace=False)
    full, _ = _run(_generated(1.0), 1, elide=False, trace=False)
    assert fast_model.protocol.broker._lean == "tracker"  # type: ignore[attr-defined]
    assert (pd.DataFrame(fast.transactions)["outcome"] == "stuck").any()  # (some still going at the end)
    pd.testing.assert_frame_equal(pd.DataFrame(fast.transactions), pd.DataFrame(full.transactions))


def test_count_sent_counts_what_is_sent_before_the_horizon() -> None:
    world = World(1)
    txn = world.new_transaction()
    world.horizon = 10.0
    assert world.count_sent(txn, 9.999) and not world.count_sent(txn, 10.0)
    assert world.messages[txn] == 1


def test_of_two_acks_of_a_copy_at_one_instant_the_one_sent_first_goes_first() -> None:
    """An ack is accounted for when it is sent (``Broker.ack_at``), taking
    its place among the events of the instant it arrives then: of two acks
    of one copy that arrive at the same instant, the one sent first keeps
    its place, as on the full path (its event id is the smaller); one sent
    later that arrives earlier goes first."""
    model = Model(order_scenario({"run.protocols": ["choreography"]}), "choreography", 1)
    broker = model.protocol.broker  # type: ignore[attr-defined]
    copy = Copy(1, 0, 0, 0, 0.0, "inventory")
    broker.ack_at(copy, 0.5)
    first = copy.ack_eid
    broker.ack_at(copy, 0.5)
    assert copy.acked == 0.5 and copy.ack_eid == first
    broker.ack_at(copy, 0.25)
    assert copy.acked == 0.25 and copy.ack_eid > first
