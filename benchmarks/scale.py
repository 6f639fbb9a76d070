"""Peak memory and time per transaction of long runs judged as they go.

Usage::

    .venv/bin/python benchmarks/scale.py                       # 100k and 1M transactions
    .venv/bin/python benchmarks/scale.py --sizes 100000,1000000,10000000
    .venv/bin/python benchmarks/scale.py --sizes 100000 --at-end   # the judge-at-the-end path, for comparison
    .venv/bin/python benchmarks/scale.py --protocol 2pc            # another protocol that judges as it goes

Each size runs the reference scenario of ``benchmarks/throughput.py`` (the
order saga, 1,000 arrivals per simulated second; orchestration unless
``--protocol`` says otherwise) in a fresh
child process, so that each peak is its own: the child streams the run to a
result folder (``sim.stream.run_to_folder``, ``keep = "all"``: every row is
written) and reports its wall time and its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes the
interpreter and the imported libraries). ``--at-end`` runs
``Model.run`` (every transaction kept in memory and judged at the end) and
``Result.save`` instead: the path every run took before issue 21.

Time per transaction is wall time (and CPU time of the child: on a shared
machine the steadier figure) over transactions; its growth is reported
against the smallest size. This is a benchmark, not a test: it prints the
figures and whether the goals (the largest size under 1 GB, at most 10%
growth of the time per transaction) are met, and exits 0 either way.
``docs/performance.md`` has the figures measured on the project's machine.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from throughput import PROTOCOL  # noqa: E402

from sim.scenario import PROTOCOLS  # noqa: E402

GOAL_MB = 1024.0
GOAL_GROWTH = 0.10


def child(size: int, at_end: bool, protocol: str) -> dict[str, float]:
    """One run of ``size`` transactions of ``protocol`` in this process; its figures."""
    from throughput import reference

    from sim.result import Result
    from sim.runner import Model
    from sim.scenario import scenario_from_dict
    from sim.stream import run_to_folder

    scenario = scenario_from_dict(reference(size))
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        cpu0 = time.process_time()
        model = Model(scenario, protocol, 1)
        if at_end:
            Result(scenario, [model.run()]).save(Path(folder) / "result")
        else:
            run_to_folder(model, Path(folder) / "result")
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        meta = json.loads((Path(folder) / "result" / "run.json").read_text())
    transactions = meta["runs"][0].get("transactions", size)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    return {"size": size, "transactions": transactions, "wall": wall, "cpu": cpu, "peak_mb": peak_mb}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="transactions per run, comma-separated")
    parser.add_argument("--at-end", action="store_true", help="judge at the end (the path before issue 21)")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=PROTOCOL,
        help=f"the protocol run (default {PROTOCOL}); one that does not judge as it goes keeps every "
        "transaction until the end",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.at_end, args.protocol)))
        return 0
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--child", str(size), "--protocol", args.protocol]
        cmd += ["--at-end"] if args.at_end else []
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["us_per_txn"] = row["wall"] / row["transactions"] * 1e6
        row["cpu_us_per_txn"] = row["cpu"] / row["transactions"] * 1e6
        rows.append(row)
        print(
            f"{row['transactions']:>11,} transactions  {row['wall']:9.1f} s wall  "
            f"{row['us_per_txn']:6.1f} us/txn ({row['cpu_us_per_txn']:5.1f} CPU)  peak RSS {row['peak_mb']:7.0f} MB",
            flush=True,
        )
    growth = rows[-1]["us_per_txn"] / rows[0]["us_per_txn"] - 1
    cpu_growth = rows[-1]["cpu_us_per_txn"] / rows[0]["cpu_us_per_txn"] - 1
    print(
        f"time per transaction, largest vs smallest size: {growth:+.1%} wall, {cpu_growth:+.1%} CPU "
        f"(goal: at most +{GOAL_GROWTH:.0%}; on a shared machine the CPU figure is the steadier one)"
    )
    print(f"peak RSS at the largest size: {rows[-1]['peak_mb']:.0f} MB (goal: under {GOAL_MB:.0f} MB)")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "growth": growth, "cpu_growth": cpu_growth}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
