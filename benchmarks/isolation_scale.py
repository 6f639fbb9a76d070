"""Peak memory of long runs with records with values ([isolation]) judged as they go.

Usage::

    .venv/bin/python benchmarks/isolation_scale.py                         # 200k transactions
    .venv/bin/python benchmarks/isolation_scale.py --sizes 20000,200000 --population 1
    .venv/bin/python benchmarks/isolation_scale.py --sizes 200000 --at-end   # judged at the end, for comparison

Each size runs ``scenarios/isolation-dirty-read.toml`` (orchestration unless
``--protocol`` says otherwise; 50 orders/s, its wallets Zipf-skewed over
``--population`` keys, 100 by default; 1 is one hot key) for as long as
``size`` arrivals take, in a fresh child process so that each peak is its
own. The child streams the run to a result folder
(``sim.stream.run_to_folder``, ``keep = "violations"``) and reports its wall
time, its peak resident memory (``ru_maxrss``, the interpreter and libraries
included), the accesses of the whole history and the most the run kept at
once (``len(records.history)`` at each progress call). ``--at-end`` runs
``Model.run`` and ``Result.save`` instead (the whole history kept). A
benchmark, not a test: it prints the figures and exits 0.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATE = 50.0  # the scenario's orders per simulated second


def child(size: int, at_end: bool, protocol: str, population: int) -> dict[str, float]:
    from sim.result import Result
    from sim.runner import Model
    from sim.scenario import load_scenario
    from sim.stream import Streamer, run_to_folder

    overrides = {
        "run.duration": size / RATE,
        "run.drain": 30.0,
        "run.keep": "violations",
        "workload.keys.population": population,
        "limits.in_memory_arrivals": 10**8,
    }
    scenario = load_scenario(ROOT / "scenarios" / "isolation-dirty-read.toml", overrides)
    model = Model(scenario, protocol, 1)
    kept = [0]

    def look(streamer: Streamer) -> None:
        kept[0] = max(kept[0], len(model.world.records.history))  # type: ignore[union-attr]

    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        if at_end:
            out = model.run()
            Result(scenario, [out], {}, out.wall_time).save(Path(tmp) / "r")
            summary = out.summary
        else:
            run_to_folder(model, Path(tmp) / "r", progress=look)
            import pandas as pd

            summary = pd.read_parquet(Path(tmp) / "r" / "summary.parquet").iloc[0].to_dict()
    history = model.world.records.history  # type: ignore[union-attr]
    return {
        "transactions": int(summary["transactions"]),
        "inconsistent": int(summary["inconsistent"]),
        "wall": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "accesses": len(history) if at_end else history.count,  # type: ignore[union-attr]
        "kept_max": len(history) if at_end else kept[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="200000")
    parser.add_argument("--at-end", action="store_true")
    parser.add_argument("--protocol", default="orchestration")
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.at_end, args.protocol, args.population)))
        return
    path = "judged at the end" if args.at_end else "streamed"
    print(f"{args.protocol}, isolation-dirty-read, {args.population} keys, {path}")
    print(f"{'transactions':>12} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'accesses':>10} {'kept max':>9}")
    for size in (int(s) for s in args.sizes.split(",")):
        command = [sys.executable, __file__, "--child", str(size), "--protocol", args.protocol]
        command += ["--population", str(args.population)] + (["--at-end"] if args.at_end else [])
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        f = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{f['transactions']:>12,} {f['wall']:>8.1f} {f['cpu']:>8.1f} {f['peak_mb']:>8.0f} "
            f"{f['accesses']:>10,} {f['kept_max']:>9,}"
        )


if __name__ == "__main__":
    main()
