"""Property-based tests (Hypothesis) of the orchestration saga and its checker.

The project's claim, from the issue: *with recovery, retries and idempotent
participants, any mix of failure rates, hangs, lost and duplicated messages
and orchestrator crashes ends with no ``inconsistent`` transaction after the
drain; turning idempotency off or recovery off produces violations that the
checker names.*

* :func:`test_robust_design_is_safe`: the first half of the claim over a wide
  generated space (shapes, rates, slow services, small pools, crashes,
  partitions, seeds); :func:`test_robust_design_is_safe_under_hostile_failures`
  the same where a hole would show most often (high rates, few attempts).
* :func:`test_robust_design_is_live_where_it_must_be`: no ``stuck`` either,
  in the sub-space where liveness can be proved (argued in the docstring).
* ``test_*_is_named``: the second half, as deterministic assertions (or
  Hypothesis over seeds where the chance of *no* violation is computed and
  astronomically small).
* :func:`test_checker_names_every_violation`: whatever the settings, the
  checker's verdicts are well formed: every inconsistency has reasons and
  anomaly codes, consistent rows have none.
* :func:`test_same_seed_same_run`: determinism (transactions and traces), and
  :func:`test_same_run_in_other_processes` across interpreters (hash seeds).
* :class:`ChaosBuilder`: a state machine that grows a scenario fault by fault
  and checks the robust design after each change.

Every test is derandomized and database-free, so CI sees the same examples on
every machine. A failure prints the generated scenario dict and seed: feed
them to ``sim.run(scenario_from_dict(d), seed=s, trace=True).events``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import sim
from sim.checker import ANOMALIES
from sim.scenario import scenario_from_dict

from conftest import ORDER_STEPS

pytestmark = pytest.mark.slow

PARTICIPANTS = ("payment", "inventory", "shipping")
COMP_STEPS = (("charge", "refund"), ("reserve", "release"), ("hold", "unhold"), ("book", "cancel"))
RETRIABLE_STEPS = ("notify", "invoice")
SHOW = ["txn_id", "outcome", "coordinator", "steps_applied", "compensations_applied", "reasons", "anomalies"]


def _profile(max_examples: int, **extra: Any) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **extra,
    )


# ---------------------------------------------------------------- helpers


def _run(raw: dict[str, Any], seed: int, trace: bool = False) -> sim.Result:
    return sim.run(scenario_from_dict(raw, source="hypothesis"), seed=seed, trace=trace)


def _rows(df: pd.DataFrame, n: int = 5) -> str:
    with pd.option_context("display.width", 250, "display.max_colwidth", 120):
        return df[SHOW].head(n).to_string()


def assert_safe(df: pd.DataFrame) -> None:
    """No inconsistent transaction; every finished one is consistent."""
    bad = df[df.outcome == "inconsistent"]
    assert bad.empty, f"{len(bad)} of {len(df)} transactions inconsistent after the drain:\n{_rows(bad)}"
    unsafe = df[(df.outcome != "stuck") & ~df.consistent]
    assert unsafe.empty, f"finished but not consistent:\n{_rows(unsafe)}"
    assert set(df.outcome) <= {"committed", "compensated", "stuck"}, set(df.outcome)


def _judged_run(raw: dict[str, Any], seed: int) -> pd.DataFrame:
    """The transactions of one run, their outcomes noted for Hypothesis's report."""
    df = _run(raw, seed).transactions
    note(f"outcomes: {df.outcome.value_counts().to_dict()}")
    return df


def assert_well_judged(df: pd.DataFrame, n_steps: int, n_compensatable: int, safe: bool = False) -> None:
    """The checker's verdict is well formed, whatever the protocol did; with
    ``safe``, nothing is inconsistent either (:func:`assert_safe`)."""
    if safe:
        assert_safe(df)
    inconsistent = df[df.outcome == "inconsistent"]
    unnamed = inconsistent[(inconsistent.reasons.map(len) == 0) | (inconsistent.anomalies.map(len) == 0)]
    assert unnamed.empty, f"inconsistent transactions without reasons or anomaly codes:\n{_rows(unnamed)}"
    for codes in df.anomalies:
        assert set(codes) <= set(ANOMALIES), codes
    consistent = df[df.consistent]
    assert (consistent.reasons.map(len) == 0).all() and (consistent.anomalies.map(len) == 0).all(), _rows(consistent)
    # Time to consistency: for transactions that ended well, and only for them.
    ended_well = df.outcome.isin(["committed", "compensated", "aborted"])
    assert df.loc[ended_well, "consistent_at"].notna().all(), _rows(df[ended_well])
    assert df.loc[~ended_well, "consistent_at"].isna().all(), _rows(df[~ended_well])
    # stuck means exactly: the coordinator had not finished by the end of the drain.
    assert ((df.outcome == "stuck") == (df.coordinator == "running")).all(), _rows(df[df.outcome == "stuck"])
    assert df.loc[df.outcome != "stuck", "finished_at"].notna().all()
    committed = df[df.outcome == "committed"]
    assert (committed.steps_applied == n_steps).all() and (committed.compensations_applied == 0).all()
    compensated = df[df.outcome == "compensated"]
    assert (compensated.steps_applied == compensated.compensations_applied).all(), _rows(compensated)
    assert (compensated.steps_applied <= n_compensatable).all(), _rows(compensated)


# ---------------------------------------------------------------- strategies


def _grid(lo: int, hi: int, scale: float) -> st.SearchStrategy[float]:
    """Floats ``k / scale`` for ``lo <= k <= hi``: readable values that shrink to ``lo``."""
    return st.integers(lo, hi).map(lambda k: k / scale)


def _prob(max_percent: int, min_percent: int = 0) -> st.SearchStrategy[float]:
    return _grid(min_percent, max_percent, 100)


def _latency(max_mean_ms: int) -> st.SearchStrategy[dict[str, Any]]:
    ms = _grid(1, max_mean_ms, 1000)
    return st.one_of(
        ms.map(lambda m: {"dist": "exponential", "mean": m}),
        ms.map(lambda v: {"dist": "constant", "value": v}),
        st.tuples(_grid(0, max_mean_ms, 1000), ms).map(lambda t: {"dist": "uniform", "low": t[0], "high": t[0] + t[1]}),
        st.tuples(ms, st.sampled_from([2.0, 5.0, 20.0])).map(
            lambda t: {"dist": "lognormal", "median": t[0], "p99": t[0] * t[1]}
        ),
    )


def _around(mean: float) -> st.SearchStrategy[dict[str, Any]]:
    """A service-time distribution with (about) the given mean."""
    return st.sampled_from(
        [
            {"dist": "exponential", "mean": mean},
            {"dist": "constant", "value": mean},
            {"dist": "uniform", "low": 0.0, "high": 2 * mean},
            {"dist": "lognormal", "median": 0.8 * mean, "p99": 5 * mean},
            {"dist": "empirical", "samples": [0.5 * mean, mean, 1.5 * mean]},
        ]
    )


@st.composite
def _participant(draw: st.DrawFn, timeout: float, live: bool, retriable: bool, low: int = 0) -> dict[str, Any]:
    if live:
        # Fast and bounded well below the timeout (see the live test's docstring).
        mean = draw(_grid(1, 5, 1000))
        service = draw(
            st.sampled_from([{"dist": "constant", "value": mean}, {"dist": "uniform", "low": 0.0, "high": 2 * mean}])
        )
        spec: dict[str, Any] = {
            "service_time": service,
            "workers": draw(st.integers(2, 8)),
            "business_failure": 0.0 if retriable else draw(_prob(30)),
            "transient_failure": draw(_prob(20)),
            "hang": 0.0,
            "compensation_failure": draw(_prob(20)),
            "idempotent": True,
        }
        return spec
    slow = draw(st.booleans())
    # Slow: the mean service time is 0.3x to 1.5x the timeout, so many attempts time
    # out and are applied after the orchestrator has given up on them.
    mean = timeout * draw(_grid(3, 15, 10)) if slow else draw(_grid(1, 20, 1000))
    rates = [draw(_prob(30, low)) for _ in range(3)]
    spec = {
        "service_time": draw(_around(round(mean, 6))),
        "workers": draw(st.sampled_from([1, 2, 3, 4, 16])),
        # a retriable step must never be refused: a refusal is final, so the
        # transaction could not complete (validate warns of such a design)
        "business_failure": 0.0 if retriable else rates[0],
        "transient_failure": rates[1],
        "hang": rates[2],
        "compensation_failure": draw(_prob(50, low)),
        "idempotent": True,
    }
    if draw(st.booleans()):
        spec["hang_duration"] = {"dist": "exponential", "mean": draw(_grid(1, 30, 10))}
    if draw(st.booleans()):
        spec["compensation_time"] = draw(_around(round(mean, 6)))
    return spec


@st.composite
def _transaction(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    """1-4 compensatable steps, an optional pivot, 0-2 retriable steps after it."""
    pivot = draw(st.booleans())
    n_comp = draw(st.integers(0 if pivot else 1, 4))
    n_retriable = draw(st.integers(0, 2)) if pivot else 0
    who = st.sampled_from(names)
    steps: list[dict[str, Any]] = [
        {"name": name, "participant": draw(who), "compensation": undo} for name, undo in COMP_STEPS[:n_comp]
    ]
    if pivot:
        steps.append({"name": "ship", "participant": draw(who), "kind": "pivot"})
    steps += [{"name": name, "participant": draw(who), "kind": "retriable"} for name in RETRIABLE_STEPS[:n_retriable]]
    return {"steps": steps}


@st.composite
def _faults(
    draw: st.DrawFn,
    duration: float,
    names: list[str],
    max_crashes: int,
    max_other: int,
    live: bool = False,
    no_refusal: frozenset[str] = frozenset(),
) -> list[dict]:
    """Orchestrator crashes, then any other fault kind, inside the workload window.

    The other kinds: participant crashes, pauses of any node, partitions,
    extra loss, duplication and delay on links, slow services and changed
    failure rates. A bad deploy never makes a participant of ``no_refusal``
    (those running a retriable step) refuse, and in ``live`` mode it only
    raises the transient rate.
    """
    at = _grid(0, int(duration * 100) - 1, 100)  # strictly before run.duration
    length = st.none() | _grid(1, 50, 10)  # None: until the workload ends
    nodes = ["orchestrator", *names]

    def timed(fault: dict[str, Any]) -> dict[str, Any]:
        fault["at"] = draw(at)
        d = draw(length)
        if d is not None:
            fault["duration"] = d
        return fault

    def link(fault: dict[str, Any]) -> dict[str, Any]:
        choice = draw(st.sampled_from(["all", "target", "groups"]))
        if choice == "target":
            fault["target"] = draw(st.sampled_from(nodes))
        elif choice == "groups":
            cut = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
            fault["groups"] = [["orchestrator", *[n for n in names if n not in cut]], cut]
            fault["one_way"] = draw(st.booleans())
        return timed(fault)

    faults = [timed({"kind": "crash", "target": "orchestrator"}) for _ in range(draw(st.integers(0, max_crashes)))]
    kinds = ["crash", "partition", "pause", "loss", "duplicate", "delay", "slow", "failure_rate"]
    for _ in range(draw(st.integers(0, max_other))):
        kind = draw(st.sampled_from(kinds))
        if kind == "crash":
            faults.append(timed({"kind": "crash", "target": draw(st.sampled_from([*names, "*"]))}))
        elif kind == "partition":
            cut = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
            rest = [n for n in names if n not in cut]
            faults.append(timed({"kind": "partition", "groups": [["orchestrator", *rest], cut]}))
        elif kind == "pause":
            faults.append(timed({"kind": "pause", "target": draw(st.sampled_from([*nodes, "*"]))}))
        elif kind in ("loss", "duplicate"):
            faults.append(link({"kind": kind, "probability": draw(_prob(50 if kind == "loss" else 100))}))
        elif kind == "delay":
            extra = {"dist": "exponential", "mean": draw(_grid(1, 50, 100))}
            faults.append(link({"kind": "delay", "extra": extra}))
        elif kind == "slow":
            factor = draw(_grid(2, 100, 1))
            faults.append(timed({"kind": "slow", "target": draw(st.sampled_from([*names, "*"])), "factor": factor}))
        else:
            rates = {"transient_failure": draw(_prob(60))}
            target = draw(st.sampled_from(names))
            if not live and target not in no_refusal and draw(st.booleans()):
                rates["business_failure"] = draw(_prob(40))
            faults.append(timed({"kind": "failure_rate", "target": target, **rates}))
    return faults


@st.composite
def scenarios(draw: st.DrawFn, mode: str = "robust") -> dict[str, Any]:
    """A small scenario dict.

    ``robust``: the robust orchestrator and idempotent participants, any failures.
    ``live``: robust, in the sub-space where every saga must also finish.
    ``any``: every knob free, the unsafe settings included.
    ``hostile``: like ``any``, but violation-prone: every failure rate >= 10%,
    duplication >= 10%, one or two attempts per step.
    ``robust-hostile``: the robust settings with the hostile failures.
    """
    live = mode == "live"
    hostile = mode in ("hostile", "robust-hostile")
    low = 10 if hostile else 0
    names = list(PARTICIPANTS[: draw(st.integers(1, 3))])
    txn = draw(_transaction(names))
    retriable_at = {s["participant"] for s in txn["steps"] if s.get("kind") == "retriable"}
    timeout = draw(_grid(5, 10, 10) if live else _grid(2, 10, 10))
    duration = float(draw(st.integers(5, 15)))
    # Shrinks towards the slowest arrivals: fewer transactions, cheaper shrinking.
    interarrival = draw(st.integers(0, 10 if live else 15).map(lambda k: (20 - k) / 100))
    participants = {n: draw(_participant(timeout, live, n in retriable_at, low)) for n in names}
    retry_initial = draw(_grid(1, 10, 100))
    orchestrator: dict[str, Any] = {
        "timeout": timeout,
        "retry": {
            "attempts": draw(st.integers(1, 2 if hostile else 5)),
            "initial": retry_initial,
            "multiplier": draw(_grid(10, 30, 10)),
            "max": draw(_grid(5, 10 if live else 20, 10)),  # >= 0.5 s: bounded retry storms
            "jitter": draw(st.booleans()),
        },
        "compensation_retry": {
            "attempts": "unlimited",
            "initial": draw(_grid(1, 10, 100)),
            "max": 1.0,
            "jitter": draw(st.booleans()),
        },
        "recovery": True,
        "idempotency_keys": True,
        "compensate_uncertain": True,
    }
    network = {
        "latency": draw(_latency(10 if live else 20)),
        "loss": draw(_prob(5 if live else 20)),
        "duplicate": draw(_prob(20, low)),
    }
    if mode in ("any", "hostile"):
        for p in participants.values():
            p["idempotent"] = draw(st.booleans())
        orchestrator["recovery"] = draw(st.booleans())
        orchestrator["idempotency_keys"] = draw(st.booleans())
        orchestrator["compensate_uncertain"] = draw(st.booleans())
        orchestrator["compensation_retry"]["attempts"] = draw(st.sampled_from(["unlimited", 1, 2, 3]))
    return {
        "name": f"prop-{mode}",
        "run": {"duration": duration, "drain": 300.0 if live else 120.0},
        "workload": {"transaction": "order", "interarrival": {"dist": "exponential", "mean": interarrival}},
        "network": network,
        "participants": participants,
        "transactions": {"order": txn},
        "orchestrator": orchestrator,
        "faults": draw(
            _faults(duration, names, max_crashes=3, max_other=4, live=live, no_refusal=frozenset(retriable_at))
        ),
    }


seeds = st.integers(0, 2**32 - 1)


def _shape(raw: dict[str, Any]) -> tuple[int, int]:
    steps = raw["transactions"]["order"]["steps"]
    return len(steps), sum(1 for s in steps if s.get("kind", "compensatable") == "compensatable")


# ---------------------------------------------------------------- 1. safety of the robust design


@_profile(150)
@given(raw=scenarios("robust"), seed=seeds)
def test_robust_design_is_safe(raw: dict[str, Any], seed: int) -> None:
    """Recovery, retries, idempotency keys, compensating the uncertain, unlimited
    compensation retries, idempotent participants: no ``inconsistent``, whatever
    the failure rates, hangs, slow services, loss, duplication, crashes and
    partitions.

    ``stuck`` may legitimately remain here, so it is not asserted against:
    hangs are a property of a participant and persist through the (fault-free)
    drain, and slow services with small pools can keep a retry storm going past
    it (every timed-out attempt stays queued while its retry joins the queue).
    A participant that runs a retriable step never refuses: a refusal is final,
    so such a transaction cannot complete, and a design that allows it is not
    robust (``sagasim validate`` warns).
    """
    assert_well_judged(_judged_run(raw, seed), *_shape(raw), safe=True)


@_profile(150)
@given(raw=scenarios("robust-hostile"), seed=seeds)
def test_robust_design_is_safe_under_hostile_failures(raw: dict[str, Any], seed: int) -> None:
    """The same claim where violations are most likely if the design has a hole:
    every failure rate >= 10%, duplication >= 10%, one or two attempts per step
    (so steps and pivots are often given up on while a copy of a command is
    still on its way or queued)."""
    assert_well_judged(_judged_run(raw, seed), *_shape(raw), safe=True)


@_profile(60)
@given(raw=scenarios("live"), seed=seeds)
def test_robust_design_is_live_where_it_must_be(raw: dict[str, Any], seed: int) -> None:
    """In the sub-space below, the robust design is also live: nothing is stuck.

    The sub-space: no hangs; no business failure at a participant that runs a
    retriable step (a refusal there is final: the transaction cannot complete);
    fast bounded services (mean <= 5 ms, at most 10 ms, >= 2 workers, <= 10
    arrivals/s: utilisation far below 1, so queueing stays far below the
    timeout of >= 0.5 s); loss <= 5%, transient failure <= 20%, compensation
    failure <= 20%.

    The argument: faults only happen during the workload; at its end every
    node restarts and recovery resends the current command of every
    unfinished saga, and the drain (300 s) is fault-free. An attempt then
    succeeds with probability q >= 0.95 * 0.95 * 0.8 = 0.72 (request and
    reply delivered, no transient failure), less about 1% for latency tails
    (a lognormal latency with median <= 10 ms and p99 <= 200 ms exceeds 0.25 s
    with probability < 0.6%), so q > 0.6; and an attempt takes at most timeout
    + back-off cap <= 1 s + 1 s, so each saga gets >= 150 attempts in the
    drain. It needs at most 7 forward answers and 4 compensations, and
    exhausting a step's attempts is progress too; so P(stuck) <=
    P(Binomial(150, 0.6) < 11) < 1e-40 per transaction: with a few hundred
    transactions per example and 60 examples, a spurious failure is out of
    the question.
    """
    df = _run(raw, seed).transactions
    note(f"outcomes: {df.outcome.value_counts().to_dict()}")
    assert_safe(df)
    stuck = df[df.outcome == "stuck"]
    assert stuck.empty, f"{len(stuck)} stuck after a fault-free drain of 300 s:\n{_rows(stuck)}"


# ---------------------------------------------------------------- 2. unsafe settings are named


def _order(**over: Any) -> dict[str, Any]:
    """The order saga (charge/refund, reserve/release, ship as pivot), robust, no failures."""
    part = {"service_time": {"dist": "exponential", "mean": 0.005}, "workers": 8}
    raw: dict[str, Any] = {
        "name": "prop-named",
        "run": {"duration": 10.0, "drain": 60.0},
        "workload": {"transaction": "order", "interarrival": {"dist": "constant", "value": 0.05}},
        "network": {"latency": {"dist": "constant", "value": 0.005}},
        "participants": {n: copy.deepcopy(part) for n in PARTICIPANTS},
        "transactions": {"order": {"steps": [dict(step) for step in ORDER_STEPS]}},
        "orchestrator": {
            "timeout": 0.2,
            "retry": {"attempts": 3, "initial": 0.05, "max": 1.0, "jitter": False},
            # >= 100 compensation attempts fit in the drain: nothing stays stuck.
            "compensation_retry": {"attempts": "unlimited", "initial": 0.05, "max": 0.5},
        },
    }
    for dotted, value in over.items():
        node = raw
        *path, last = dotted.split(".")
        for part_name in path:
            node = node.setdefault(part_name, {})
        node[last] = value
    return raw


def _idempotency_off(how: str) -> dict[str, Any]:
    if how == "participants":
        return {f"participants.{n}.idempotent": False for n in PARTICIPANTS}
    return {"orchestrator.idempotency_keys": False}


_APPLIED = re.compile(r"\b(charge|reserve|ship) applied (\d+) times\b")


@pytest.mark.parametrize("how", ["participants", "keys"])
@_profile(3)
@given(seed=seeds)
def test_duplicates_without_idempotency_are_named(how: str, seed: int) -> None:
    """20% duplicated messages, no idempotency: double charges, named ``applied_twice``.

    No failure rates and no faults, so both copies of a duplicated command are
    applied. 199 transactions (constant arrivals every 50 ms for 10 s) send
    at least 3 forward commands each; the chance that none of those 597
    commands is duplicated is 0.8**597 < 1e-57.
    """
    raw = _order(**{"network.duplicate": 0.2, **_idempotency_off(how)})
    df = _run(raw, seed).transactions
    twice = df[df.anomalies.map(lambda codes: "applied_twice" in codes)]
    assert len(twice) > 0, df.outcome.value_counts()
    assert (twice.outcome == "inconsistent").all(), _rows(twice)
    for reasons, applied in zip(twice.reasons, twice.steps_applied, strict=True):
        counts = [int(n) for _, n in _APPLIED.findall("; ".join(reasons))]
        assert counts and min(counts) >= 2, reasons
        assert applied > 3, reasons  # more effects than the saga has steps
    assert_well_judged(df, 3, 2)


@pytest.mark.parametrize("how", ["participants", "keys"])
def test_timed_out_retries_without_idempotency_are_named(how: str) -> None:
    """A service slower than the timeout, no idempotency: every retry is applied again.

    Deterministic: constant arrivals, latency and service times (0.3 s against
    a 0.2 s timeout), no jitter and no failure rates, so there is no random
    draw at all. Every charge attempt times out and is applied anyway: three
    attempts, three charges, in every transaction. With idempotency on, the
    same scenario compensates every order cleanly.
    """
    slow = {"dist": "constant", "value": 0.3}
    fast = {"dist": "constant", "value": 0.005}
    over = {"participants.payment.service_time": slow, "participants.payment.compensation_time": fast}
    df = _run(_order(**over, **_idempotency_off(how)), seed=1).transactions
    assert len(df) == 199
    assert (df.outcome == "inconsistent").all(), df.outcome.value_counts()
    assert df.anomalies.map(lambda codes: "applied_twice" in codes).all(), _rows(df)
    assert df.reasons.map("; ".join).str.contains(r"\bcharge applied 3 times\b").all(), _rows(df)
    assert_well_judged(df, 3, 2)

    robust = _run(_order(**over), seed=1).transactions
    assert (robust.outcome == "compensated").all(), robust.outcome.value_counts()
    assert_safe(robust)


@_profile(3)
@given(seed=seeds)
def test_crashes_without_recovery_leave_stuck_sagas(seed: int) -> None:
    """Orchestrator crashes mid-run without recovery: the sagas it was driving are stuck.

    50 arrivals/s, each saga busy for about 3 x (2 x 10 ms + 50 ms) = 0.21 s
    (64 workers: no queueing), so the number of sagas in flight at any instant
    is Poisson with mean about 10.5 (M/G/inf), and the sagas stranded by the 5
    crashes (2 s apart, so independent) are Poisson with mean 52.5: fewer than
    5 of them with probability < 1e-17. With recovery on, the same run has no
    stuck and no inconsistent saga.
    """
    over = {
        "workload.interarrival": {"dist": "exponential", "mean": 0.02},
        "network.latency": {"dist": "exponential", "mean": 0.01},
        "orchestrator.timeout": 1.0,
        "faults": [
            {"kind": "crash", "target": "orchestrator", "at": t, "duration": 0.5} for t in (2.0, 4.0, 6.0, 8.0, 9.0)
        ],
        **{f"participants.{n}.service_time": {"dist": "exponential", "mean": 0.05} for n in PARTICIPANTS},
        **{f"participants.{n}.workers": 64 for n in PARTICIPANTS},
    }
    df = _run(_order(**over, **{"orchestrator.recovery": False}), seed).transactions
    stuck = df[df.outcome == "stuck"]
    assert len(stuck) >= 5, df.outcome.value_counts()
    assert (stuck.coordinator == "running").all() and stuck.finished_at.isna().all()
    # Each crash strands the sagas in flight: stuck sagas started shortly before
    # a crash. A saga lasts about 0.21 s (three services of mean 0.05 s and six
    # hops of 0.01 s); one still in flight 1.5 s after its start is a ~1e-10 event.
    crashes = [f["at"] for f in over["faults"]]
    for started in stuck.started_at:
        assert any(0 <= at - started < 1.5 for at in crashes), started
    assert_well_judged(df, 3, 2)

    robust = _run(_order(**over, **{"orchestrator.recovery": True}), seed).transactions
    assert_safe(robust)
    assert (robust.outcome != "stuck").all(), _rows(robust[robust.outcome == "stuck"])


@_profile(3)
@given(seed=seeds)
def test_naive_compensation_is_named(seed: int) -> None:
    """One compensation attempt and a flaky refund: refunds never happen, named.

    Half the reservations are refused, so half the orders compensate; half of
    their refunds fail and are not retried (``compensation_retry.attempts =
    1``). Each of the ~200 orders (Poisson, mean 200) ends with a missing
    refund with probability 1/4 independently: P(none) = exp(-200/4) < 2e-21.
    With unlimited compensation retries the same run is clean: over 100
    attempts fit in the drain, so a refund stays missing with probability
    < 0.5**100.
    """
    over = {
        "workload.interarrival": {"dist": "exponential", "mean": 0.05},
        "participants.inventory.business_failure": 0.5,
        "participants.payment.compensation_failure": 0.5,
    }
    naive = {"orchestrator.compensation_retry": {"attempts": 1, "initial": 0.05, "max": 1.0}}
    df = _run(_order(**over, **naive), seed).transactions
    missing = df[df.anomalies.map(lambda codes: "never_compensated" in codes)]
    assert len(missing) > 0, df.outcome.value_counts()
    assert (missing.outcome == "inconsistent").all(), _rows(missing)
    assert (missing.reasons.map(tuple) == ("charge never compensated (refund missing)",)).all(), _rows(missing)
    assert (missing.coordinator == "failed").all(), _rows(missing)  # it knows it gave up
    assert (missing.steps_applied == 1).all() and (missing.compensations_applied == 0).all()
    assert_well_judged(df, 3, 2)

    robust = _run(_order(**over), seed).transactions
    assert_safe(robust)
    assert (robust.outcome != "stuck").all()


#: A pivot refused by one copy of its command and applied by the duplicate
#: (a participant without idempotency): the saga refunds the charge, then the
#: duplicate ships. Charge, refund, ship: neither committed nor compensated,
#: yet the effects break no rule the checker lists (the refund lands before
#: the pivot, so it is not "compensated after the pivot").
PIVOT_AFTER_REFUND = _order(
    **{
        "workload.interarrival": {"dist": "exponential", "mean": 0.05},
        "network.latency": {"dist": "constant", "value": 0.001},
        "network.duplicate": 0.2,
        "participants.payment.service_time": {"dist": "constant", "value": 0.001},
        "participants.shipping.service_time": {"dist": "exponential", "mean": 0.05},
        "participants.shipping.business_failure": 0.3,
        "participants.shipping.idempotent": False,
        "transactions.order.steps": [
            {"name": "charge", "participant": "payment", "compensation": "refund"},
            {"name": "ship", "participant": "shipping", "kind": "pivot"},
        ],
        "orchestrator.timeout": 1.0,
    }
)


@_profile(150)
@example(raw=PIVOT_AFTER_REFUND, seed=1)
@given(raw=scenarios("hostile"), seed=seeds)
def test_checker_names_every_violation(raw: dict[str, Any], seed: int) -> None:
    """Any settings, the unsafe ones included: every ``inconsistent`` verdict comes
    with reasons and anomaly codes, consistent ones with none, and the outcome
    agrees with the counts of effects.

    The generated space is violation-prone (``hostile``); the explicit example
    is a violation shape that is rare to generate: the pivot applied after the
    saga was compensated."""
    assert_well_judged(_judged_run(raw, seed), *_shape(raw))


# ---------------------------------------------------------------- 3. determinism


@_profile(40)
@given(raw=scenarios("any"), seed=seeds)
def test_same_seed_same_run(raw: dict[str, Any], seed: int) -> None:
    """Same scenario, same seed: identical transactions, traces and summaries."""
    raw = dict(raw, run={**raw["run"], "drain": 30.0})  # a long drain adds only retry storms to compare
    scenario = scenario_from_dict(raw, source="hypothesis")
    a = sim.run(scenario, seed=seed, trace=True)
    b = sim.run(scenario_from_dict(copy.deepcopy(raw), source="hypothesis"), seed=seed, trace=True)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    pd.testing.assert_frame_equal(a.events, b.events)
    assert len(a.events) > 0
    pd.testing.assert_frame_equal(a.faults, b.faults)
    pd.testing.assert_frame_equal(a.summary.drop(columns="wall_time"), b.summary.drop(columns="wall_time"))


_FINGERPRINT = """
import hashlib, json, sys
import sim
from sim.scenario import scenario_from_dict
result = sim.run(scenario_from_dict(json.loads(sys.argv[1])), seed=int(sys.argv[2]), trace=True)
text = result.transactions.to_csv(index=False) + result.events.to_csv(index=False)
print(hashlib.sha256(text.encode()).hexdigest())
"""


def test_same_run_in_other_processes() -> None:
    """Same scenario and seed in fresh interpreters with different hash seeds: the
    same transactions and trace, byte for byte (no dependence on set or dict
    order, object ids or anything else a process picks at random)."""
    over = {
        "run.duration": 5.0,
        "network.duplicate": 0.1,
        "network.loss": 0.05,
        "participants.payment.transient_failure": 0.2,
        "participants.inventory.hang": 0.1,
        "participants.shipping.business_failure": 0.1,
        "faults": [
            {"kind": "crash", "target": "orchestrator", "at": 1.0, "duration": 0.5},
            {"kind": "partition", "groups": [["orchestrator"], ["inventory"]], "at": 2.0, "duration": 0.5},
            {"kind": "crash", "target": "*", "at": 3.5},
        ],
    }
    raw = json.dumps(_order(**over))
    digests = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", _FINGERPRINT, raw, "7"], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    result = _run(json.loads(raw), 7, trace=True)
    text = result.transactions.to_csv(index=False) + result.events.to_csv(index=False)
    digests.add(hashlib.sha256(text.encode()).hexdigest())
    assert len(digests) == 1, digests


# ---------------------------------------------------------------- 4. a chaos state machine


class ChaosBuilder(RuleBasedStateMachine):
    """Grow a robust scenario one change at a time; after each, the run must be safe."""

    @initialize(seed=seeds)
    def start(self, seed: int) -> None:
        self.seed = seed
        self.raw = _order(
            **{
                "run.duration": 5.0,
                "run.drain": 120.0,
                "workload.interarrival": {"dist": "exponential", "mean": 0.05},
                "orchestrator.timeout": 0.5,
                "orchestrator.retry": {"attempts": 3, "initial": 0.05, "max": 1.0, "jitter": True},
                "faults": [],
            }
        )

    @rule(node=st.sampled_from(["orchestrator", *PARTICIPANTS, "*"]), at=_grid(0, 499, 100), d=_grid(1, 20, 10))
    def crash(self, node: str, at: float, d: float) -> None:
        self.raw["faults"].append({"kind": "crash", "target": node, "at": at, "duration": d})

    @rule(cut=st.sampled_from(PARTICIPANTS), at=_grid(0, 499, 100), d=_grid(1, 20, 10))
    def partition(self, cut: str, at: float, d: float) -> None:
        rest = [n for n in PARTICIPANTS if n != cut]
        self.raw["faults"].append(
            {"kind": "partition", "groups": [["orchestrator", *rest], [cut]], "at": at, "duration": d}
        )

    @rule(loss=_prob(20), duplicate=_prob(20))
    def network(self, loss: float, duplicate: float) -> None:
        self.raw["network"].update(loss=loss, duplicate=duplicate)

    @rule(
        who=st.sampled_from(PARTICIPANTS),
        rates=st.tuples(_prob(30), _prob(30), _prob(30), _prob(50)),
    )
    def failures(self, who: str, rates: tuple[float, float, float, float]) -> None:
        spec = self.raw["participants"][who]
        spec.update(zip(("business_failure", "transient_failure", "hang", "compensation_failure"), rates, strict=True))

    @rule(who=st.sampled_from(PARTICIPANTS), factor=_grid(3, 15, 10), workers=st.integers(1, 4))
    def slow_down(self, who: str, factor: float, workers: int) -> None:
        timeout = self.raw["orchestrator"]["timeout"]
        spec = self.raw["participants"][who]
        spec.update(service_time={"dist": "exponential", "mean": timeout * factor}, workers=workers)

    @precondition(lambda self: hasattr(self, "raw"))
    @invariant()
    def safe(self) -> None:
        note(repr(self.raw))
        df = _run(self.raw, self.seed).transactions
        assert_safe(df)
        assert_well_judged(df, 3, 2)


ChaosBuilder.TestCase.settings = _profile(20, stateful_step_count=6)
test_chaos_builder = ChaosBuilder.TestCase
