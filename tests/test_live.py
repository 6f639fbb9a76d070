"""Faults at any moment: a live run takes faults from Python while it goes
(sim.live), with the same result as the same fault on the timeline."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

import sim
import sim.live
from sim.errors import SagasimError
from sim.names import PROTOCOLS
from sim.runner import Model
from sim.scenario import Scenario

from conftest import order_scenario

#: Random latencies and service times (no two instants tie), failures and
#: hangs, so every kind of fault meets work in flight.
RANDOM: dict[str, Any] = {
    "run.duration": 8.0,
    "run.drain": 20.0,
    "network.latency": {"dist": "exponential", "mean": 0.004},
    "workload.interarrival": {"dist": "exponential", "mean": 0.03},
}
for _name in ("payment", "inventory", "shipping"):
    RANDOM[f"participants.{_name}.service_time"] = {"dist": "exponential", "mean": 0.01}
    RANDOM[f"participants.{_name}.transient_failure"] = 0.05
    RANDOM[f"participants.{_name}.hang"] = 0.02
RANDOM["participants.inventory.business_failure"] = 0.1

#: One fault of every kind, as a ``[[faults]]`` entry would give its settings.
KINDS: dict[str, dict[str, Any]] = {
    "crash": {"target": "payment"},
    "pause": {"target": "inventory"},
    "partition": {"target": "payment"},  # cut off from every other node
    "loss": {"target": "payment", "probability": 0.3},
    "duplicate": {"probability": 0.4},
    "delay": {"target": "shipping", "extra": {"dist": "exponential", "mean": 0.05}},
    "slow": {"target": "payment", "factor": 4.0},
    "failure_rate": {"target": "shipping", "business_failure": 0.5},
}
START, STOP = 2.0, 3.5


def _planned(kind: str, protocol: str) -> pd.DataFrame:
    """The run with the fault on the timeline, as ``sim.run`` gives it (a
    choreography accounts for the messages on its steady links without
    events: the same run, its latencies keyed by the message)."""
    fault = {"kind": kind, "at": START, "duration": STOP - START, **KINDS[kind]}
    model = Model(order_scenario({**RANDOM, "faults": [fault]}), protocol, 1, trace=False)
    return pd.DataFrame(model.run().transactions)


def _live(kind: str, protocol: str, duration: float | None = None) -> sim.Result:
    run = sim.live.open_run(order_scenario(RANDOM), protocol=protocol, seed=1)
    run.advance(START)
    fault = run.start_fault(kind, duration=duration, **KINDS[kind])
    if duration is None:
        run.advance(STOP)
        run.stop_fault(fault)
    return run.finish()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_fault_from_python_gives_the_run_of_the_same_fault_on_the_timeline(kind: str, protocol: str) -> None:
    planned = _planned(kind, protocol)
    live = _live(kind, protocol).transactions
    columns = [c for c in planned.columns if c not in ("run_id", "scenario", "protocol", "seed")]
    assert len(planned) > 150
    pd.testing.assert_frame_equal(
        live[columns].reset_index(drop=True), planned[columns].reset_index(drop=True), check_dtype=False
    )


def test_the_fault_changed_the_run() -> None:
    """(So the equality above says something: with the fault, the run differs from the run without.)"""
    for kind in ("crash", "partition", "slow"):
        without = sim.run(order_scenario(RANDOM), protocol=PROTOCOLS[0], seed=1).transactions
        assert not _live(kind, PROTOCOLS[0]).transactions["latency"].equals(without["latency"]), kind


def test_a_duration_stops_the_fault_as_stop_fault_does() -> None:
    by_hand = _live("crash", PROTOCOLS[0])
    timed = _live("crash", PROTOCOLS[0], duration=STOP - START)
    pd.testing.assert_frame_equal(by_hand.transactions, timed.transactions)
    pd.testing.assert_frame_equal(by_hand.faults, timed.faults)


def test_runtime_faults_are_rows_of_the_faults_table() -> None:
    run = sim.live.open_run(order_scenario(RANDOM), protocol=PROTOCOLS[0], seed=1)
    run.advance(START)
    groups = [["payment", "inventory"], ["shipping"]]
    run.stop_fault(run.start_fault("partition", groups=groups, one_way=True, duration=9.0))
    faults = run.finish().faults
    assert len(faults) == 1
    row = faults.iloc[0]
    assert (row["kind"], row["source"], row["start"], row["end"]) == ("partition", "runtime", START, START)
    assert json.loads(row["settings"]) == {"one_way": True, "groups": groups}
    # a fault left running ends with the workload, as on the timeline
    run = sim.live.open_run(order_scenario(RANDOM), protocol=PROTOCOLS[0], seed=1)
    run.advance(1.0)
    run.start_fault("crash", target="payment")
    assert run.finish().faults["end"].tolist() == [RANDOM["run.duration"]]


def test_a_fault_on_every_target_makes_one_row_each_and_stops_together() -> None:
    run = sim.live.open_run(order_scenario(RANDOM), protocol=PROTOCOLS[0], seed=1)
    run.advance(1.0)
    fault = run.start_fault("crash", target=["payment", "shipping"])
    run.advance(2.0)
    nodes = run.model.nodes
    assert not nodes["payment"].up and not nodes["shipping"].up and nodes["inventory"].up
    run.stop_fault(fault)
    run.stop_fault(fault)  # (a second stop does nothing)
    assert nodes["payment"].up and nodes["shipping"].up
    assert run.finish().faults[["target", "end"]].values.tolist() == [["payment", 2.0], ["shipping", 2.0]]


def test_the_last_instant_of_the_workload_takes_no_fault() -> None:
    """Faults happen while transactions arrive: one at the workload's end is refused, one just before is not."""
    scenario: Scenario = order_scenario(RANDOM)
    end = scenario.run.duration
    run = sim.live.open_run(scenario, protocol=PROTOCOLS[0], seed=1)
    run.advance(end - 1e-9)
    run.start_fault("crash", target="payment")
    run.advance(end)
    with pytest.raises(SagasimError, match=r"faults happen while transactions arrive \(until 8 s\)"):
        run.start_fault("crash", target="inventory")


@pytest.mark.parametrize(
    ("kind", "settings", "message"),
    [
        ("meteor", {}, r"fault 'meteor': kind: Input should be 'crash', 'pause'"),
        ("crash", {}, r"fault 'crash': a crash fault needs 'target'"),
        ("crash", {"target": "paymnet"}, r"no node named paymnet; the run's nodes: orchestrator, payment"),
        ("loss", {"probability": 1.5}, r"probability: Input should be less than or equal to 1"),
        ("crash", {"target": "payment", "colour": "red"}, r"colour: not a fault setting \(allowed: target"),
        ("partition", {"groups": [["payment"], ["nobody"]]}, r"no node named nobody"),
    ],
)
def test_a_bad_fault_is_one_clear_error(kind: str, settings: dict[str, Any], message: str) -> None:
    run = sim.live.open_run(order_scenario(RANDOM), protocol=PROTOCOLS[0], seed=1)
    with pytest.raises(SagasimError, match=message):
        run.start_fault(kind, **settings)


def test_a_live_run_refuses_what_it_cannot_do() -> None:
    run = sim.live.open_run(order_scenario(RANDOM), protocol=PROTOCOLS[0], seed=1)
    run.advance(1.0)
    with pytest.raises(SagasimError, match=r"advance\(to=0.5\): expected a time after now \(1 s\)"):
        run.advance(0.5)
    with pytest.raises(SagasimError, match=r"advance\(to=1\.0\)"):
        run.advance(1.0)  # (now itself: nothing to run)
    with pytest.raises(SagasimError, match=r"at most the end of the run \(28 s\)"):
        run.advance(28.5)
    with pytest.raises(SagasimError, match="expected what start_fault returned"):
        run.stop_fault("payment")  # type: ignore[arg-type]
    run.finish()
    with pytest.raises(SagasimError, match="is over"):
        run.finish()
    with pytest.raises(SagasimError, match="one protocol"):
        sim.live.open_run(order_scenario(RANDOM), protocol=list(PROTOCOLS), seed=1)  # type: ignore[arg-type]


def test_a_run_not_opened_to_runtime_faults_refuses_them() -> None:
    model = Model(order_scenario(RANDOM), PROTOCOLS[0], 1)
    with pytest.raises(ValueError, match="runtime_faults=True"):
        model.faults.start("crash", target="payment")


def test_a_live_run_is_deterministic_and_equals_sim_run_without_faults() -> None:
    for protocol in PROTOCOLS:
        first = sim.live.open_run(order_scenario(RANDOM), protocol=protocol, seed=4).finish()
        again = sim.live.open_run(order_scenario(RANDOM), protocol=protocol, seed=4).finish()
        pd.testing.assert_frame_equal(first.transactions, again.transactions)
        plain = sim.run(order_scenario(RANDOM), protocol=protocol, seed=4)
        pd.testing.assert_frame_equal(first.transactions, plain.transactions)


# ------------------------------------------------------------ the choreography's accounting, per link

_STEPS = ("payment", "inventory", "shipping")
#: A busy choreography (many messages in flight at any instant), so that a
#: runtime fault meets messages accounted for ahead on the links it touches:
#: confirms on their way, acks of dual writes still to be sent, first
#: deliveries without an ack timer.
BUSY: dict[str, Any] = {
    **RANDOM,
    "run.protocols": ["choreography"],
    "run.duration": 4.0,
    "network.latency": {"dist": "exponential", "mean": 0.01},
    "workload.interarrival": {"dist": "exponential", "mean": 0.004},
    **{f"participants.{name}.service_time": {"dist": "exponential", "mean": 0.003} for name in _STEPS},
}
BUSY_START, BUSY_STOP = 2.0, 2.6
#: How the services publish and consume.
CHOREOGRAPHIES: dict[str, dict[str, Any]] = {
    "outbox": {},
    "dual-write": {
        **{f"participants.{name}.outbox": False for name in _STEPS},
        **{f"participants.{name}.idempotent": False for name in _STEPS},
    },
    "unordered": {"broker.ordering": "unordered"},
}
#: Faults that touch some of the broker's links (the broker's own: all of them).
TOUCHING: dict[str, tuple[str, dict[str, Any]]] = {
    "crash-broker": ("crash", {"target": "broker"}),
    "pause-broker": ("pause", {"target": "broker"}),
    "crash-tracker": ("crash", {"target": "tracker"}),
    "pause-shipping": ("pause", {"target": "shipping"}),
    "partition-inventory": ("partition", {"target": "inventory"}),
    "loss-everywhere": ("loss", {"probability": 0.2}),
}


def _busy_live(overrides: dict[str, Any], kind: str, settings: dict[str, Any], elide: bool = True) -> sim.live.LiveRun:
    """A live run of a busy choreography with one runtime fault from BUSY_START to BUSY_STOP, not finished."""
    run = sim.live.open_run(order_scenario({**BUSY, **overrides}), seed=1)
    run.model.protocol.elide = elide  # type: ignore[attr-defined]
    run.advance(BUSY_START)
    fault = run.start_fault(kind, **settings)
    run.advance(BUSY_STOP)
    run.stop_fault(fault)
    return run


@pytest.mark.parametrize("fault", list(TOUCHING))
@pytest.mark.parametrize("choreography", list(CHOREOGRAPHIES))
def test_a_runtime_fault_on_the_choreographys_accounted_links_gives_the_timeline_run(
    choreography: str, fault: str
) -> None:
    """The links the fault could touch take the full path from its start
    (Broker.undirect): what was accounted for ahead on them becomes what the
    full path holds then, so the run is the timeline's, transaction by
    transaction."""
    kind, settings = TOUCHING[fault]
    overrides = CHOREOGRAPHIES[choreography]
    planned = {"kind": kind, "at": BUSY_START, "duration": BUSY_STOP - BUSY_START, **settings}
    timeline = sim.run(order_scenario({**BUSY, **overrides, "faults": [planned]}), seed=1).transactions
    live = _busy_live(overrides, kind, settings).finish().transactions
    assert len(timeline) > 800
    pd.testing.assert_frame_equal(live, timeline)


def test_links_a_runtime_fault_cannot_touch_keep_the_accounting_on() -> None:
    """A live choreography accounts for the messages on its steady links
    without events, and a fault turns that off for exactly the links it could
    touch, from its start: the others keep it (fewer events than the same
    live run with every message an event, the same transactions)."""
    run = sim.live.open_run(order_scenario(BUSY), seed=1)
    broker = run.model.protocol.broker  # type: ignore[attr-defined]
    run.advance(BUSY_START)
    everyone = ["client", *sorted(_STEPS)]
    assert (sorted(broker.confirmers), sorted(broker.direct)) == (everyone, sorted(_STEPS))
    fault = run.start_fault("crash", target="payment")
    others = ["inventory", "shipping"]
    assert (sorted(broker.confirmers), sorted(broker.direct)) == (["client", *others], others)
    assert not run.model.nodes["payment"].up
    run.advance(BUSY_STOP)
    run.stop_fault(fault)
    # (a link taken off stays off: the plan now says the node may crash)
    assert (sorted(broker.confirmers), sorted(broker.direct)) == (["client", *others], others)
    accounted = run.finish()
    full = _busy_live({}, "crash", {"target": "payment"}, elide=False)
    full_result = full.finish()
    pd.testing.assert_frame_equal(accounted.transactions, full_result.transactions)
    assert run.model.world.events_run < 0.8 * full.model.world.events_run
    # the broker's own fault touches every link
    run = sim.live.open_run(order_scenario(BUSY), seed=1)
    broker = run.model.protocol.broker  # type: ignore[attr-defined]
    run.advance(BUSY_START)
    run.start_fault("pause", target="broker")
    assert not broker.confirmers and not broker.direct and not broker.relies_on_fault_plan()


def test_a_confirm_due_at_the_faults_very_instant_has_not_arrived() -> None:
    """Constant latencies: a crash of a publisher at the very instant a
    confirm accounted for ahead reaches it. Nothing of that instant has run
    when the fault starts, so the confirm is still on its way (it becomes a
    message, dropped at the crashed node, and the outbox keeps the row, which
    is published again at the restart), as on the timeline, where the crash
    goes before it too. (Taking it as arrived, ``<=`` for ``<`` in
    Publisher.undirect, makes the messages differ.)"""
    tie: dict[str, Any] = {
        "run.protocols": ["choreography"],
        "run.duration": 4.0,
        "network.latency": {"dist": "constant", "value": 2 / 1024},
        "workload.interarrival": {"dist": "exponential", "mean": 0.01},
    }
    run = sim.live.open_run(order_scenario(tie), seed=1)
    publisher = run.model.protocol.sides["payment"].publisher  # type: ignore[attr-defined]
    now, due = 2.0, []
    while not due:
        run.advance(now)
        due = sorted(e.conf.at for e in publisher.pending.values() if run.now < e.conf.at < float("inf"))
        now += 0.0007
    run.advance(due[0])
    run.start_fault("crash", target="payment", duration=0.1)
    live = run.finish().transactions
    planned = {"kind": "crash", "target": "payment", "at": due[0], "duration": 0.1}
    pd.testing.assert_frame_equal(live, sim.run(order_scenario({**tie, "faults": [planned]}), seed=1).transactions)
