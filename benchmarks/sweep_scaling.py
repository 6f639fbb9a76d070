"""How a sweep scales with local worker processes.

Runs the same sweep (sweeps/payment-failure.toml, made small with --seeds and
--duration) three ways in one invocation: in this process (``workers=1``, the
baseline), on N local processes, and on a Dask ``LocalCluster`` with N
single-threaded worker processes. Reports the wall time of each, the speed-up
over the baseline, the parallel efficiency (speed-up / workers), and checks
that the three datasets are identical (the determinism a sweep promises). Figures go into docs/performance.md.

    .venv/bin/python benchmarks/sweep_scaling.py            # 2 workers, seeds 1..2
    .venv/bin/python benchmarks/sweep_scaling.py --workers 4 --seeds 1..4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from sim.compare import parse_seeds
from sim.dataset import Dataset
from sim.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "sweeps" / "payment-failure.toml"


def same(a: Dataset, b: Dataset) -> bool:
    left, right = (d.summary.drop(columns=["wall_time"]) for d in (a, b))
    try:
        pd.testing.assert_frame_equal(left, right)
        pd.testing.assert_frame_equal(a.transactions, b.transactions)
    except AssertionError:
        return False
    return True


#: Dask settings for workers that run sweeps (docs/sweeps.md): a run is
#: pure Python on one core, and the worker's statistical profiler (a stack
#: sample every 10 ms) and its memory and system monitors take their share of
#: that core from it.
WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "10s",
    "distributed.admin.system-monitor.interval": "10s",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    parser.add_argument("--seeds", default="1..2", help="seeds of the sweep (default 1..2)")
    parser.add_argument("--duration", type=float, default=60.0, help="run.duration of each run (default 60)")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster row")
    parser.add_argument(
        "--default-dask-config",
        action="store_true",
        help="start the Dask workers with Dask's defaults, their statistical profiler and monitors on "
        "(docs/sweeps.md turns them off for sweeps: WORKER_CONFIG)",
    )
    parser.add_argument(
        "--cold-dask",
        action="store_true",
        help="start the Dask workers without --preload sim.runner: each imports sagasim on its first run",
    )
    args = parser.parse_args(argv)

    sweep = load_sweep(SWEEP, seeds=parse_seeds(args.seeds), overrides={"run.duration": args.duration})
    runs = len(sweep.runs)
    print(f"sweep scaling: {SWEEP.name}, {runs} runs, run.duration={args.duration:g}, {os.cpu_count()} cores")
    rows: list[tuple[str, float, Dataset]] = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        baseline = run_sweep(sweep, Path(tmp) / "inline", workers=1)
        rows.append(("this process (baseline)", time.perf_counter() - started, baseline))

        started = time.perf_counter()
        local = run_sweep(sweep, Path(tmp) / "local", workers=args.workers)
        rows.append((f"{args.workers} local processes", time.perf_counter() - started, local))

        if not args.no_dask:
            import dask
            from dask.distributed import LocalCluster

            # Workers started as docs/sweeps.md says (--preload sim.runner): a
            # cluster imports sagasim when it starts, not during the sweep;
            # and without the profiler and monitors that share the worker's
            # core with the runs (WORKER_CONFIG).
            config = {} if args.default_dask_config else WORKER_CONFIG
            with (
                dask.config.set(config),
                LocalCluster(
                    n_workers=args.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    preload=[] if args.cold_dask else ["sim.runner"],
                ) as cluster,
            ):
                started = time.perf_counter()
                dask = run_sweep(sweep, Path(tmp) / "dask", scheduler=cluster.scheduler_address)
                rows.append((f"Dask LocalCluster, {args.workers} workers", time.perf_counter() - started, dask))

        txns = len(baseline.transactions)
        print("\n| executor | wall s | runs/s | txn/s | speed-up | efficiency | same dataset as baseline |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for i, (name, wall, data) in enumerate(rows):
            # parallel efficiency: speed-up over the workers used (goal: at least 0.9)
            speedup = rows[0][1] / wall
            workers = 1 if i == 0 else args.workers
            print(
                f"| {name} | {wall:.1f} | {runs / wall:.2f} | {txns / wall:,.0f} | "
                f"{speedup:.2f}x | {speedup / workers:.2f} | {'yes' if same(baseline, data) else 'NO'} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
