"""`sagasim explore`: schedules per second, and explore against random faults.

Usage::

    .venv/bin/python benchmarks/explore.py speed                 # schedules/s, 1 core and all cores
    .venv/bin/python benchmarks/explore.py speed --schedules 3000
    .venv/bin/python benchmarks/explore.py library               # every naive and robust library scenario
    .venv/bin/python benchmarks/explore.py random                # explore vs the random nemesis and swarm
    .venv/bin/python benchmarks/explore.py all --json explore.json

``speed``: the 3-step order saga (``robust-orchestrator.toml``, no violation,
so the whole budget is spent on schedules) with 2 transactions, depth 2, a
budget of ``--schedules``: on one core (``workers=1``) and on every core.
The hand-written baseline in the same run: the same schedules run the way a
user script would without the explorer, each its scenario file's data
through ``sim.run`` (validated, run, a ``Result`` built) and judged from
``result.transactions``. The goal (issue 18): 500 schedules/s per core.

``library``: ``explore`` on the six naive scenarios (each must give a
minimal violation) and on their robust counterparts at depth 2 (each must be
certified, or the violation is a finding to explain).

``random``: schedules and seconds to the first violation for explore,
against runs of the same 2-transaction scenario under a random nemesis (every
fault kind, each target; faults lasting half the transactions' time window on
average) and under a swarm of the same (seeds 1, 2, ... until a violation, at
most ``--max-runs``). One run is one schedule. Two densities: each (kind,
target) striking once per window on average (dozens of faults per run), and
2 faults per run on average (what explore's depth 2 allows).

A benchmark, not a test: it prints figures and exits 0. ``docs/performance.md``
and ``docs/explore.md`` have them.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.explore import Budget, certificate, default_workers, explore, prepare  # noqa: E402

SCENARIOS = ROOT / "scenarios"
GOAL = 500.0  # schedules per second per core
NAIVE = (
    "naive-orchestrator",
    "lost-replies-naive",
    "failing-compensations-naive",
    "duplicates-not-idempotent",
    "choreography-dual-write",
    "choreography-redelivery",
)
ROBUST = (
    "robust-orchestrator",
    "lost-replies",
    "failing-compensations",
    "duplicates-idempotent",
    "choreography-happy",
    "choreography-redelivery-idempotent",
)


def _protocol(name: str) -> str:
    return tomllib.loads((SCENARIOS / f"{name}.toml").read_text())["run"]["protocols"][0]


def _cpu() -> float:
    """CPU seconds of this process and of its children that have ended."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def speed(schedules: int) -> dict[str, Any]:
    setup = prepare(SCENARIOS / "robust-orchestrator.toml", "orchestration")
    explore(setup, depth=1)  # warm: imports, memoised random blocks
    out: dict[str, Any] = {"schedules": schedules}
    for label, workers in (("one_core", 1), ("all_cores", default_workers())):
        cpu = _cpu()
        result = explore(setup, depth=2, workers=workers, budget=Budget(schedules=schedules))
        cpu = _cpu() - cpu
        # Per second of CPU (this process and its finished workers): what a
        # core gives when the machine is shared (wall time then counts the
        # others' work too); with workers, what the pool costs on top.
        out[label] = {
            "workers": workers,
            "schedules_per_s": result.explored / result.seconds,
            "schedules_per_cpu_s": result.explored / cpu,
        }
    # The hand-written baseline: the first schedules of the same search, each
    # through sim.run as a user script would.
    import sim

    base = setup.run(())
    points = [p for p in base.points if p.at < setup.settings.horizon][: min(300, schedules)]
    started, cpu = time.perf_counter(), _cpu()
    for point in points:
        ran = sim.run(setup.scenario_data((point,)))
        ran.transactions["outcome"].isin(["inconsistent", "stuck"]).any()
    elapsed, cpu = time.perf_counter() - started, _cpu() - cpu
    out["baseline_sim_run"] = {"schedules_per_s": len(points) / elapsed, "schedules_per_cpu_s": len(points) / cpu}
    out["goal_per_core"] = GOAL
    out["met"] = out["one_core"]["schedules_per_cpu_s"] >= GOAL
    return out


def library(workers: int, names: list[str] | None = None) -> dict[str, Any]:
    """Every protocol of each scenario, as `sagasim explore` runs them."""
    out: dict[str, Any] = {}
    for name in names or (*NAIVE, *ROBUST):
        for protocol in tomllib.loads((SCENARIOS / f"{name}.toml").read_text())["run"]["protocols"]:
            setup = prepare(SCENARIOS / f"{name}.toml", protocol)
            result = explore(setup, depth=2, workers=workers)
            row = result.summary()
            row["certificate"] = certificate(result)
            out[f"{name}/{protocol}"] = row
            print(f"{name}: {row['certificate']} ({result.seconds:.1f} s)", flush=True)
            if result.shrunk is not None:
                print("   " + "; ".join(p.describe() for p in result.shrunk), flush=True)
    return out


def _nemesis(setup: Any, window: float, swarm: bool, faults: float | None) -> dict[str, Any]:
    """A random nemesis with every kind, aimed at every node, in the
    transactions' window: each (kind, target) strikes once per window on
    average, or, with ``faults``, the run meets that many faults on average."""
    from sim.runner import Model

    model = Model(setup.scenario, setup.protocol, setup.seed)
    streams = 3 * len(model.nodes) + 3 + len(model.participants)  # crash, pause, partition; links; failure_rate
    mtbf = window if faults is None else window * streams / faults
    duration = {"dist": "exponential", "mean": window / 2}
    kinds = {
        "crash": {"target": "*"},
        "pause": {"target": "*"},
        "partition": {"target": "*"},
        "loss": {"probability": 0.5},
        "duplicate": {"probability": 0.5},
        "delay": {"extra": {"dist": "constant", "value": setup.settings.delay}},
        "failure_rate": {"target": "*", "transient_failure": 0.5},
    }
    return {"swarm": swarm, **{k: {**v, "mtbf": mtbf, "duration": duration} for k, v in kinds.items()}}


def random_faults(max_runs: int) -> dict[str, Any]:
    from sim.runner import Model
    from sim.scenario import scenario_from_dict

    out: dict[str, Any] = {}
    for name in NAIVE:
        protocol = _protocol(name)
        setup = prepare(SCENARIOS / f"{name}.toml", protocol)
        found = explore(setup, depth=2)
        row: dict[str, Any] = {"explore": {"schedules": found.to_violation, "seconds": found.seconds_to_violation}}
        base = setup.run(())
        window = base.finished * 1.5
        for label, swarm, faults in (
            ("nemesis", False, None),
            ("swarm", True, None),
            ("nemesis_2_faults", False, 2.0),
            ("swarm_2_faults", True, 2.0),
        ):
            data = copy.deepcopy(setup.scenario_data(()))
            data["run"]["duration"] = window
            data["nemesis"] = _nemesis(setup, window, swarm, faults)
            scenario = scenario_from_dict(data)
            started = time.perf_counter()
            hit = None
            for seed in range(1, max_runs + 1):
                model = Model(scenario, protocol, seed)
                model.world.run(until=model.end)
                bad = any(
                    model.checker.judge(model.world.effects.of(t), model.protocol.view(t), s).outcome
                    in ("inconsistent", "stuck")
                    for t, s in model.workload.started
                )
                if bad:
                    hit = seed
                    break
            row[label] = {"schedules": hit, "seconds": time.perf_counter() - started, "max_runs": max_runs}
        out[name] = row
        print(name, json.dumps(row), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "library", "random", "all"])
    parser.add_argument("--schedules", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--max-runs", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--scenario", action="append", default=None, help="library: only these (repeatable)")
    args = parser.parse_args()
    figures: dict[str, Any] = {"python": platform.python_version(), "cores": default_workers()}
    if args.what in ("speed", "all"):
        figures["speed"] = speed(args.schedules)
        print(json.dumps(figures["speed"], indent=2), flush=True)
    if args.what in ("library", "all"):
        figures["library"] = library(args.workers, args.scenario)
    if args.what in ("random", "all"):
        figures["random"] = random_faults(args.max_runs)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
