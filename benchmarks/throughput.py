"""Throughput and memory of the harness against a hand-written SimPy model.

Usage::

    .venv/bin/python benchmarks/throughput.py            # the reference run (50,000 transactions, best of 3)
    .venv/bin/python benchmarks/throughput.py --quick    # a smoke run of a few seconds
    .venv/bin/python benchmarks/throughput.py --json bench.json

Two models of the same workload run in this one process, alternately, each
``--repeat`` times:

* **the harness**: the reference scenario below (the order saga: charge,
  reserve, ship; orchestration; tracing off; 1,000 workers per participant so
  nothing ever queues) built and run by ``sim.runner.Model``. It is timed
  twice from the same run: the simulation alone (building the model plus
  ``world.run``), and with the checker and result collection added
  (``Model.collect``; build + run + collect is exactly what ``run_once``
  does).
* **the hand-written model**: the least SimPy code that simulates the same
  saga: one process per transaction, three timeouts per step (request delay,
  service time, reply delay), business failures decided from a pre-drawn
  array, compensations in reverse order with three timeouts each, and no
  harness at all. It draws from the same distributions (read from the same
  scenario dict) and runs the same number of transactions with the same
  arrival process.

The same scenario also runs as 2PC, as TCC and as Paxos Commit (both
reported, no target) and as a choreography. The choreography has
its own hand-written model (``baseline_run(choreography=True)``): per step the
publish of the event before it, the broker's delivery and the service, and a
last timeout for the publish of the terminal event, when the harness's
choreography finishes. It models no confirm, no ack and no saga tracker; the
harness does (without an event each, on links no fault can touch: see
``sim.protocols.choreography``).

What the harness does in addition, per transaction: a durable saga record in
the orchestrator's log; a message tuple per command and per reply routed
through the network (per-link lookup, loss and duplication settings, active
network faults, per-transaction message counting); a worker pool per
participant with an outcome draw per attempt; an
idempotency table entry per step; an effect record per applied operation (the
ground truth the checker reads); a timeout per command (armed through a
``DeadlineQueue``); crash epochs checked on every completion; and, in the "with
checker" figure, a verdict per transaction from its effects plus the result
columns and the summary row.

Each timed run records wall time (``perf_counter``, the reported figure), the
process's CPU time (which tells a busy machine from a slow run) and the time
spent in the cyclic garbage collector (``gc.callbacks``).

Events processed are counted by the harness's event loop
(``World.events_run``, plus the stop marker) and, for the hand-written
model, from SimPy's event-id counter, which every heap push takes one number
from: pushes = ``next(env._eid)`` after the run, processed = pushes - events
left in the queue. Both cost nothing, so they are read in the timed runs,
and they are the figure to compare across machines: they do not depend on
how busy the machine is. Peak memory is measured with
``tracemalloc`` in a separate, untimed pass per model (tracing slows a run
several times) and scaled to 100,000 transactions.

The targets (from the issue): the harness's simulation reaches at least half
of the hand-written model's rate, and at least 10,000 transactions per wall
second on one core. This is a benchmark, not a test: it reports whether the
targets are met and exits 0 either way. ``docs/performance.md`` has the
figures measured on the project's machine.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from sim.runner import Model
from sim.scenario import Scenario, scenario_from_dict

PROTOCOL = "orchestration"
DEFAULT_TRANSACTIONS = 50_000
QUICK_TRANSACTIONS = 5_000
DEFAULT_REPEAT = 3
QUICK_REPEAT = 2
TARGET_RATIO = 0.5
TARGET_RATE = 10_000.0
PER = 100_000  # memory is reported per this many transactions

#: The mean gap between arrivals, in simulated seconds (1,000 arrivals/s).
INTERARRIVAL_MEAN = 0.001


def _participant(business_failure: float) -> dict[str, Any]:
    return {
        "service_time": {"dist": "exponential", "mean": 0.01},
        "workers": 1000,
        "business_failure": business_failure,
        "transient_failure": 0.0,
    }


#: The reference scenario, in the spelling of a scenario file (TOML parsed to
#: a dict). ``run.duration`` and ``workload.limit`` are set from the size.
REFERENCE: dict[str, Any] = {
    "name": "bench-order",
    "run": {"duration": 100.0, "drain": 10.0, "seeds": [1], "protocols": [PROTOCOL], "trace": False},
    "workload": {
        "transaction": "order",
        "interarrival": {"dist": "exponential", "mean": INTERARRIVAL_MEAN},
    },
    "network": {"latency": {"dist": "exponential", "mean": 0.001}},
    "participants": {
        "payment": _participant(0.02),
        "inventory": _participant(0.02),
        "shipping": _participant(0.02),
    },
    "transactions": {
        "order": {
            "steps": [
                {"name": "charge", "participant": "payment", "compensation": "refund"},
                {"name": "reserve", "participant": "inventory", "compensation": "release"},
                {"name": "ship", "participant": "shipping", "kind": "pivot"},
            ]
        }
    },
    "orchestrator": {"timeout": 1.0},
}


def reference(transactions: int) -> dict[str, Any]:
    """The reference scenario sized for ``transactions`` arrivals.

    The workload stops at ``limit`` arrivals; the duration leaves room for
    them (an expected 0.83 of it is used, the spread of the arrival count is
    a fraction of a percent), and the drain lets the last sagas finish.
    """
    raw = copy.deepcopy(REFERENCE)
    raw["workload"]["limit"] = transactions
    raw["run"]["duration"] = math.ceil(1.2 * transactions * INTERARRIVAL_MEAN) + 10.0
    return raw


# ---------------------------------------------------------------- timing


class Clock:
    """Wall time (``perf_counter``), CPU time of this process and time spent in
    the cyclic garbage collector, over a ``with`` block.

    CPU time shows how much of a core the run actually got (the wall figures
    are the ones reported; the CPU ones tell a busy machine from a slow run).
    GC time is measured by ``gc.callbacks``, which fire only on collections.
    """

    def __init__(self, gc_off: bool = False) -> None:
        self.gc_off = gc_off
        self.wall = self.cpu = self.gc = 0.0
        self.collections = [0, 0, 0]
        self._gc_start = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc += time.perf_counter() - self._gc_start
            self.collections[info["generation"]] += 1

    def __enter__(self) -> Clock:
        gc.collect()
        gc.callbacks.append(self._on_gc)
        if self.gc_off:
            gc.disable()
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()
        return self

    def lap(self) -> tuple[float, float, float]:
        """(wall, cpu, gc) seconds since the block started."""
        return time.perf_counter() - self._wall0, time.process_time() - self._cpu0, self.gc

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu, self.gc = self.lap()
        gc.enable()
        gc.callbacks.remove(self._on_gc)


# ---------------------------------------------------------------- the harness


def _event_counts(env: simpy.Environment) -> tuple[int, int]:
    """(heap pushes, events processed) so far: every push takes one event id."""
    pushed = next(env._eid)  # type: ignore[attr-defined]
    return pushed, pushed - len(env._queue)  # type: ignore[attr-defined]


def harness_once(scenario: Scenario, seed: int, gc_off: bool = False, protocol: str = PROTOCOL) -> dict[str, Any]:
    """One timed harness run: build + run (the simulation), then collect."""
    with Clock(gc_off) as clock:
        model = Model(scenario, protocol, seed)
        model.world.run(until=model.end)
        sim_wall, sim_cpu, sim_gc = clock.lap()
        out = model.collect(sim_wall)
    # Event ids also go to messages accounted for without an event (their
    # place in the order: World.due), so the harness counts what it ran: the
    # world's count, and the stop marker.
    pushed = next(model.world.env._eid)  # type: ignore[attr-defined]
    processed = model.world.events_run + 1
    s = out.summary
    return {
        "sim": sim_wall,
        "sim_cpu": sim_cpu,
        "sim_gc": sim_gc,
        "full": clock.wall,
        "full_cpu": clock.cpu,
        "full_gc": clock.gc,
        "collections": clock.collections,
        "transactions": s["transactions"],
        "pushed": pushed,
        "processed": processed,
        "outcomes": {k: s[k] for k in ("committed", "compensated", "aborted", "inconsistent", "stuck") if s[k]},
        "timeouts": s.get("timeouts", 0),
        "messages_per_txn": s["messages_per_txn"],
    }


def harness_memory(scenario: Scenario, seed: int) -> dict[str, int]:
    """Peak traced memory of one harness run (untimed: tracemalloc is slow)."""
    gc.collect()
    tracemalloc.start()
    try:
        model = Model(scenario, PROTOCOL, seed)
        model.world.run(until=model.end)
        held_after_run, peak_run = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        out = model.collect()
        held_after_collect, peak_collect = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del out, model
    return {
        "peak_sim": peak_run,
        "peak_full": max(peak_run, peak_collect),
        "held_after_run": held_after_run,
        "held_after_collect": held_after_collect,
    }


# ---------------------------------------------------------------- the hand-written model

_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


def draw(spec: dict[str, Any], rng: np.random.Generator, size: Any) -> np.ndarray:
    """Draws of a scenario-file distribution, written out with numpy alone."""
    kind = spec["dist"]
    if kind == "constant":
        return np.full(size, float(spec["value"]))
    if kind == "exponential":
        return rng.exponential(spec["mean"], size)
    if kind == "uniform":
        return rng.uniform(spec["low"], spec["high"], size)
    if kind == "lognormal":
        sigma = math.log(spec["p99"] / spec["median"]) / _Z99
        return rng.lognormal(math.log(spec["median"]), sigma, size)
    if kind == "empirical":
        samples = np.asarray(spec["samples"], dtype=float)
        return samples[rng.integers(0, len(samples), size)]
    raise ValueError(f"unknown dist {kind!r}")


def _baseline_config(raw: dict[str, Any]) -> dict[str, Any]:
    """What the hand-written model reads from the scenario dict.

    It models latency, service time and business failures only, so it
    refuses a scenario with anything else (transient failures, hangs, loss,
    duplication, per-link settings, faults).
    """
    network = raw["network"]
    if network.get("loss", 0.0) or network.get("duplicate", 0.0) or network.get("links") or raw.get("faults"):
        raise ValueError("the hand-written model has no loss, duplication, links or faults")
    workload = raw["workload"]
    txn = raw["transactions"][workload["transaction"]]
    participants = raw["participants"]
    steps = []
    for step in txn["steps"]:
        p = participants[step["participant"]]
        if p.get("transient_failure", 0.0) or p.get("hang", 0.0) or p.get("compensation_failure", 0.0):
            raise ValueError("the hand-written model has business failures only")
        steps.append(
            {
                "service": p["service_time"],
                "compensation_service": p.get("compensation_time") or p["service_time"],
                "business_failure": p.get("business_failure", 0.0),
                "compensatable": step.get("kind", "compensatable") == "compensatable",
            }
        )
    return {
        "transactions": workload["limit"],
        "interarrival": workload["interarrival"],
        "latency": network["latency"],
        "steps": steps,
    }


def baseline_run(
    raw: dict[str, Any], seed: int, choreography: bool = False
) -> tuple[simpy.Environment, list[int], list[float]]:
    """The hand-written SimPy model of the saga; returns (env, outcomes, finish times).

    As an orchestration each step is a command, the service and the reply; as
    a choreography (``choreography=True``) it is the publish of the event
    before it to the broker, the broker's delivery to the service, and the
    service (compensations likewise, driven by the failure event), and the
    transaction ends with the publish of its terminal event (the last step's
    ``done``, or the last compensation's, or the first step's ``failed``):
    the harness's choreography finishes when the broker stores it.

    Every draw is made up front with numpy, inside the timed region: the
    arrival gaps, for each transaction and step the three delays of the
    forward command and the three of its compensation, and which step (if
    any) refuses. Outcome 0 is committed, 1 compensated.
    """
    cfg = _baseline_config(raw)
    n = cfg["transactions"]
    steps = cfg["steps"]
    n_steps = len(steps)
    rng = np.random.default_rng(seed)
    gaps = draw(cfg["interarrival"], rng, n).tolist()
    # delays[i] = (request, service, reply, comp request, comp service, comp reply), each per step
    delays = np.empty((n, 6, n_steps))
    delays[:, (0, 2, 3, 5), :] = draw(cfg["latency"], rng, (n, 4, n_steps))
    for k, step in enumerate(steps):
        delays[:, 1, k] = draw(step["service"], rng, n)
        delays[:, 4, k] = draw(step["compensation_service"], rng, n)
    refused = rng.random((n, n_steps)) < np.array([s["business_failure"] for s in steps])
    terminal = draw(cfg["latency"], rng, n).tolist() if choreography else None
    # the first step that refuses, or n_steps when none does
    first_refusal = np.where(refused.any(axis=1), refused.argmax(axis=1), n_steps).tolist()
    compensatable = [s["compensatable"] for s in steps]

    env = simpy.Environment()
    timeout = env.timeout
    outcome = [0] * n
    finished = [0.0] * n

    def transaction(i: int):  # type: ignore[no-untyped-def]
        req, svc, rep, creq, csvc, crep = delays[i].tolist()
        refuse_at = first_refusal[i]
        k = 0
        while k < n_steps:
            if choreography:  # publish, delivery, service
                yield timeout(req[k])
                yield timeout(rep[k])
                yield timeout(svc[k])
            else:  # command, service, reply
                yield timeout(req[k])
                yield timeout(svc[k])
                yield timeout(rep[k])
            if k == refuse_at:
                break
            k += 1
        if k < n_steps:  # step k refused: undo k-1 .. 0
            for j in range(k - 1, -1, -1):
                if compensatable[j]:
                    yield timeout(creq[j])
                    if choreography:
                        yield timeout(crep[j])
                        yield timeout(csvc[j])
                    else:
                        yield timeout(csvc[j])
                        yield timeout(crep[j])
            outcome[i] = 1
        if terminal is not None:  # the publish of the terminal event
            yield timeout(terminal[i])
        finished[i] = env.now

    def arrivals():  # type: ignore[no-untyped-def]
        process = env.process
        for i, gap in enumerate(gaps):
            yield timeout(gap)
            process(transaction(i))

    env.process(arrivals())
    env.run()
    return env, outcome, finished


def baseline_once(raw: dict[str, Any], seed: int, gc_off: bool = False, choreography: bool = False) -> dict[str, Any]:
    with Clock(gc_off) as clock:
        env, outcome, _ = baseline_run(raw, seed, choreography)
    pushed, processed = _event_counts(env)
    compensated = sum(outcome)
    return {
        "sim": clock.wall,
        "sim_cpu": clock.cpu,
        "sim_gc": clock.gc,
        "collections": clock.collections,
        "transactions": len(outcome),
        "pushed": pushed,
        "processed": processed,
        "outcomes": {"committed": len(outcome) - compensated, "compensated": compensated},
    }


def baseline_memory(raw: dict[str, Any], seed: int) -> dict[str, int]:
    gc.collect()
    tracemalloc.start()
    try:
        result = baseline_run(raw, seed)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return {"peak_sim": peak, "held_after_run": held}


# ---------------------------------------------------------------- reporting


def _rates(runs: list[dict[str, Any]], key: str, n: int) -> dict[str, Any]:
    """Best and median of one timed figure over the repeats."""
    times = [r[key] for r in runs]
    best = min(times)
    median = statistics.median(times)
    cpu = min(r[f"{key}_cpu"] for r in runs)
    fastest = runs[times.index(best)]
    return {
        "best_s": best,
        "median_s": median,
        "best_txn_per_s": n / best,
        "median_txn_per_s": n / median,
        "times_s": times,
        "best_cpu_s": cpu,
        "best_cpu_txn_per_s": n / cpu,
        "cpu_share_of_best": fastest[f"{key}_cpu"] / best,
        "gc_s_of_best": fastest[f"{key}_gc"],
        "gc_share_of_best": fastest[f"{key}_gc"] / best,
    }


def _same(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> bool:
    return all(all(r[k] == runs[0][k] for k in keys) for r in runs)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(
    transactions: int, repeat: int, seed: int, memory: bool, log: Callable[[str], None], gc_off: bool = False
) -> dict[str, Any]:
    raw = reference(transactions)
    scenario = scenario_from_dict(raw, source="benchmark")
    harness_runs: list[dict[str, Any]] = []
    baseline_runs: list[dict[str, Any]] = []
    twopc_runs: list[dict[str, Any]] = []
    tcc_runs: list[dict[str, Any]] = []
    paxos_runs: list[dict[str, Any]] = []
    choreo_runs: list[dict[str, Any]] = []
    choreo_baseline_runs: list[dict[str, Any]] = []
    for k in range(repeat):
        h = harness_once(scenario, seed, gc_off)
        log(
            f"  run {k + 1}/{repeat}  harness: sim {h['sim']:.2f} s, with checker {h['full']:.2f} s"
            f"  ({transactions / h['sim']:,.0f} / {transactions / h['full']:,.0f} txn/s)"
        )
        harness_runs.append(h)
        b = baseline_once(raw, seed, gc_off)
        log(f"  run {k + 1}/{repeat}  hand-written: {b['sim']:.2f} s  ({transactions / b['sim']:,.0f} txn/s)")
        baseline_runs.append(b)
        t = harness_once(scenario, seed, gc_off, "2pc")
        log(f"  run {k + 1}/{repeat}  2pc: sim {t['sim']:.2f} s  ({transactions / t['sim']:,.0f} txn/s)")
        twopc_runs.append(t)
        tc = harness_once(scenario, seed, gc_off, "tcc")
        log(f"  run {k + 1}/{repeat}  tcc: sim {tc['sim']:.2f} s  ({transactions / tc['sim']:,.0f} txn/s)")
        tcc_runs.append(tc)
        x = harness_once(scenario, seed, gc_off, "paxos-commit")
        log(f"  run {k + 1}/{repeat}  paxos-commit: sim {x['sim']:.2f} s  ({transactions / x['sim']:,.0f} txn/s)")
        paxos_runs.append(x)
        c = harness_once(scenario, seed, gc_off, "choreography")
        log(f"  run {k + 1}/{repeat}  choreography: sim {c['sim']:.2f} s  ({transactions / c['sim']:,.0f} txn/s)")
        choreo_runs.append(c)
        cb = baseline_once(raw, seed, gc_off, choreography=True)
        log(
            f"  run {k + 1}/{repeat}  hand-written choreography: {cb['sim']:.2f} s"
            f"  ({transactions / cb['sim']:,.0f} txn/s)"
        )
        choreo_baseline_runs.append(cb)
    h0, b0 = harness_runs[0], baseline_runs[0]
    for name, r in (("harness", h0), ("hand-written", b0)):
        if r["transactions"] != transactions:
            raise RuntimeError(f"the {name} model ran {r['transactions']} transactions, not {transactions}")
    deterministic = all(
        _same(runs, ("pushed", "processed", "outcomes"))
        for runs in (harness_runs, baseline_runs, twopc_runs, tcc_runs, paxos_runs, choreo_runs, choreo_baseline_runs)
    )

    harness_sim = _rates(harness_runs, "sim", transactions)
    harness_full = _rates(harness_runs, "full", transactions)
    baseline = _rates(baseline_runs, "sim", transactions)
    twopc_sim = _rates(twopc_runs, "sim", transactions)
    twopc_full = _rates(twopc_runs, "full", transactions)
    t0 = twopc_runs[0]
    tcc_sim = _rates(tcc_runs, "sim", transactions)
    tcc_full = _rates(tcc_runs, "full", transactions)
    tc0 = tcc_runs[0]
    paxos_sim = _rates(paxos_runs, "sim", transactions)
    paxos_full = _rates(paxos_runs, "full", transactions)
    x0 = paxos_runs[0]
    choreo_sim = _rates(choreo_runs, "sim", transactions)
    choreo_full = _rates(choreo_runs, "full", transactions)
    c0 = choreo_runs[0]
    choreo_baseline = _rates(choreo_baseline_runs, "sim", transactions)
    cb0 = choreo_baseline_runs[0]
    for figures, r, times in (
        (harness_sim, h0, harness_sim["times_s"]),
        (harness_full, h0, harness_full["times_s"]),
        (baseline, b0, baseline["times_s"]),
        (twopc_sim, t0, twopc_sim["times_s"]),
        (twopc_full, t0, twopc_full["times_s"]),
        (tcc_sim, tc0, tcc_sim["times_s"]),
        (tcc_full, tc0, tcc_full["times_s"]),
        (paxos_sim, x0, paxos_sim["times_s"]),
        (paxos_full, x0, paxos_full["times_s"]),
        (choreo_sim, c0, choreo_sim["times_s"]),
        (choreo_full, c0, choreo_full["times_s"]),
        (choreo_baseline, cb0, choreo_baseline["times_s"]),
    ):
        figures["events_pushed_per_txn"] = r["pushed"] / transactions
        figures["events_per_txn"] = r["processed"] / transactions
        figures["us_per_event_best"] = min(times) / r["processed"] * 1e6

    result: dict[str, Any] = {
        "transactions": transactions,
        "repeat": repeat,
        "seed": seed,
        "gc_off": gc_off,
        "deterministic": deterministic,
        "harness_sim": harness_sim,
        "harness_full": harness_full,
        "baseline": baseline,
        "twopc_sim": twopc_sim,
        "twopc_full": twopc_full,
        "twopc_outcomes": t0["outcomes"],
        "twopc_messages_per_txn": t0["messages_per_txn"],
        "tcc_sim": tcc_sim,
        "tcc_full": tcc_full,
        "tcc_outcomes": tc0["outcomes"],
        "tcc_messages_per_txn": tc0["messages_per_txn"],
        "paxos_commit_sim": paxos_sim,
        "paxos_commit_full": paxos_full,
        "paxos_commit_outcomes": x0["outcomes"],
        "paxos_commit_messages_per_txn": x0["messages_per_txn"],
        "choreography_sim": choreo_sim,
        "choreography_baseline": choreo_baseline,
        "choreography_ratio_sim_best": choreo_sim["best_txn_per_s"] / choreo_baseline["best_txn_per_s"],
        "choreography_ratio_sim_median": choreo_sim["median_txn_per_s"] / choreo_baseline["median_txn_per_s"],
        "choreography_full": choreo_full,
        "choreography_outcomes": c0["outcomes"],
        "choreography_messages_per_txn": c0["messages_per_txn"],
        "ratio_sim_best": harness_sim["best_txn_per_s"] / baseline["best_txn_per_s"],
        "ratio_sim_median": harness_sim["median_txn_per_s"] / baseline["median_txn_per_s"],
        "ratio_full_best": harness_full["best_txn_per_s"] / baseline["best_txn_per_s"],
        "ratio_full_median": harness_full["median_txn_per_s"] / baseline["median_txn_per_s"],
        "harness_outcomes": h0["outcomes"],
        "harness_timeouts": h0["timeouts"],
        "harness_messages_per_txn": h0["messages_per_txn"],
        "baseline_outcomes": b0["outcomes"],
    }
    if memory:
        log("  memory pass (tracemalloc, untimed) ...")
        hm = harness_memory(scenario, seed)
        bm = baseline_memory(raw, seed)
        scale = PER / transactions
        harness_sim["peak_mb_per_100k"] = hm["peak_sim"] * scale / 1e6
        harness_full["peak_mb_per_100k"] = hm["peak_full"] * scale / 1e6
        baseline["peak_mb_per_100k"] = bm["peak_sim"] * scale / 1e6
        result["memory_bytes"] = {"harness": hm, "baseline": bm}

    def target(value: float, goal: float) -> dict[str, Any]:
        return {"target": goal, "value": value, "met": value >= goal}

    result["targets"] = {
        "ratio": target(result["ratio_sim_best"], TARGET_RATIO),
        "rate": target(harness_sim["best_txn_per_s"], TARGET_RATE),
        "rate_with_checker": target(harness_full["best_txn_per_s"], TARGET_RATE),
        "choreography_ratio": target(result["choreography_ratio_sim_best"], TARGET_RATIO),
    }
    result["environment"] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "simpy": simpy.__version__,
        "numpy": np.__version__,
        "cpu": cpu_model(),
        "platform": platform.platform(),
    }
    result["scenario"] = raw
    return result


def table(result: dict[str, Any]) -> str:
    rows = [
        ("hand-written SimPy model", result["baseline"]),
        ("harness, simulation only", result["harness_sim"]),
        ("harness, with checker + collection", result["harness_full"]),
        ("harness 2PC, simulation only", result["twopc_sim"]),
        ("harness 2PC, with checker + collection", result["twopc_full"]),
        ("harness TCC, simulation only", result["tcc_sim"]),
        ("harness TCC, with checker + collection", result["tcc_full"]),
        ("Paxos Commit, simulation only", result["paxos_commit_sim"]),
        ("Paxos Commit, with checker + collection", result["paxos_commit_full"]),
        ("hand-written SimPy choreography model", result["choreography_baseline"]),
        ("choreography, simulation only", result["choreography_sim"]),
        ("choreography, with checker + collection", result["choreography_full"]),
    ]
    head = (
        f"{'model':<40}{'best s':>8}{'median s':>10}{'txn/s best':>12}{'txn/s median':>14}"
        f"{'CPU txn/s':>11}{'GC %':>6}{'events/txn':>12}{'us/event':>10}{'MB/100k txn':>13}"
    )
    lines = [head, "-" * len(head)]
    for name, f in rows:
        mem = f.get("peak_mb_per_100k")
        lines.append(
            f"{name:<40}{f['best_s']:>8.2f}{f['median_s']:>10.2f}{f['best_txn_per_s']:>12,.0f}"
            f"{f['median_txn_per_s']:>14,.0f}{f['best_cpu_txn_per_s']:>11,.0f}{f['gc_share_of_best']:>6.0%}"
            f"{f['events_per_txn']:>12.2f}{f['us_per_event_best']:>10.2f}"
            f"{'-' if mem is None else f'{mem:.1f}':>13}"
        )
    r = result
    lines += [
        "txn/s: transactions per wall second (perf_counter); CPU txn/s: per second of this process's CPU time;",
        "GC %: share of the best run's wall time spent in the cyclic garbage collector; us/event: wall",
        "microseconds per SimPy event processed; MB/100k txn: tracemalloc peak, scaled to 100,000 transactions.",
    ]
    if r["gc_off"]:
        lines.append("--no-gc: the cyclic garbage collector was disabled during the timed runs of both models.")
    busy = min(f["cpu_share_of_best"] for _, f in rows)
    if busy < 0.9:
        lines.append(
            f"note: the machine was busy: a best run got as little as {busy:.0%} of a core; "
            "the wall figures understate the speed, the CPU ones less so."
        )
    lines += [
        "",
        f"ratio harness / hand-written, simulation only:  best {r['ratio_sim_best']:.2f}, "
        f"median {r['ratio_sim_median']:.2f}",
        f"ratio harness / hand-written, with checker:     best {r['ratio_full_best']:.2f}, "
        f"median {r['ratio_full_median']:.2f}",
        f"outcomes: harness {r['harness_outcomes']} (timeouts {r['harness_timeouts']}, "
        f"{r['harness_messages_per_txn']:.2f} messages/txn); hand-written {r['baseline_outcomes']}",
        f"2PC (same transactions, no contended keys): {r['twopc_outcomes']} "
        f"({r['twopc_messages_per_txn']:.2f} messages/txn)",
        f"TCC (same transactions, no contended keys): {r['tcc_outcomes']} "
        f"({r['tcc_messages_per_txn']:.2f} messages/txn; reported, no target)",
        f"Paxos Commit (same transactions, f = 1; reported, no target): {r['paxos_commit_outcomes']} "
        f"({r['paxos_commit_messages_per_txn']:.2f} messages/txn)",
        f"ratio choreography / hand-written choreography, simulation only:  best "
        f"{r['choreography_ratio_sim_best']:.2f}, median {r['choreography_ratio_sim_median']:.2f}",
        f"choreography (same transactions): {r['choreography_outcomes']} "
        f"({r['choreography_messages_per_txn']:.2f} messages/txn)",
        f"same events and outcomes on every repeat: {'yes' if r['deterministic'] else 'NO'}",
        "",
    ]
    t = r["targets"]

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    lines += [
        f"target: harness >= {TARGET_RATIO:.0%} of the hand-written rate (simulation, best): "
        f"{t['ratio']['value']:.2f} -> {verdict(t['ratio']['met'])}",
        f"target: harness >= {TARGET_RATE:,.0f} txn/s on one core (simulation, best): "
        f"{t['rate']['value']:,.0f} -> {verdict(t['rate']['met'])}",
        f"        (with checker + collection: {t['rate_with_checker']['value']:,.0f} txn/s -> "
        f"{verdict(t['rate_with_checker']['met'])})",
        f"target: choreography >= {TARGET_RATIO:.0%} of its hand-written model (simulation, best): "
        f"{t['choreography_ratio']['value']:.2f} -> {verdict(t['choreography_ratio']['met'])}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="throughput.py",
        description=(
            "Transactions per wall-second of the harness (the order saga, orchestration, tracing off, "
            "no queueing) against a minimal hand-written SimPy model of the same saga, in one process: "
            "best and median of --repeat runs, their ratio, SimPy events per transaction, and peak "
            "memory per 100,000 transactions (tracemalloc, separate untimed pass). Reports whether the "
            f"targets are met (ratio >= {TARGET_RATIO}, harness >= {TARGET_RATE:,.0f} txn/s); always exits 0."
        ),
        epilog="Figures measured on the project's machine are in docs/performance.md.",
    )
    parser.add_argument(
        "--transactions",
        "-n",
        type=int,
        default=None,
        metavar="N",
        help=f"transactions per run (default {DEFAULT_TRANSACTIONS:,}; {QUICK_TRANSACTIONS:,} with --quick)",
    )
    parser.add_argument(
        "--repeat",
        "-r",
        type=int,
        default=None,
        metavar="K",
        help=f"timed runs of each model; best and median are reported (default {DEFAULT_REPEAT}; "
        f"{QUICK_REPEAT} with --quick)",
    )
    parser.add_argument("--seed", type=int, default=1, help="the seed of both models (default 1)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write every figure as JSON")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (a few seconds); its figures are noisy")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="disable Python's cyclic garbage collector during the timed runs of both models "
        "(a diagnostic: shows how much of the time is collection; the targets are judged as usual)",
    )
    args = parser.parse_args(argv)
    if args.transactions is None:
        args.transactions = QUICK_TRANSACTIONS if args.quick else DEFAULT_TRANSACTIONS
    if args.repeat is None:
        args.repeat = QUICK_REPEAT if args.quick else DEFAULT_REPEAT
    if args.transactions < 1:
        parser.error("--transactions must be >= 1")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def log(text: str) -> None:
        print(text, flush=True)

    env = f"Python {platform.python_version()}, SimPy {simpy.__version__}, numpy {np.__version__}, CPU {cpu_model()}"
    log(f"throughput benchmark: {args.transactions:,} transactions, best of {args.repeat}, seed {args.seed}")
    log(f"  {env}")
    started = time.perf_counter()
    result = run(args.transactions, args.repeat, args.seed, not args.no_memory, log, gc_off=args.no_gc)
    result["benchmark_wall_s"] = time.perf_counter() - started
    log("")
    log(table(result))
    log(f"\n(benchmark took {result['benchmark_wall_s']:.0f} s)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        log(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
