"""Start-up time of the ``sagasim`` command against hand-written baselines.

Usage::

    .venv/bin/python benchmarks/startup.py                  # 10 rounds
    .venv/bin/python benchmarks/startup.py --repeat 20 --json startup.json
    .venv/bin/python benchmarks/startup.py --other /tmp/old  # also an older checkout's sim/ package

Each command runs in a fresh process (``subprocess.run``), its wall time
measured around the call with ``perf_counter``: what a user waits for at the
prompt, interpreter start included. The commands run in rounds, one of each
per round in the same order, so a busy moment of the machine hits every
command alike; a first untimed round warms the disk cache. Reported: best and
median per command.

The baselines, in the same run:

* ``python -c pass``: the interpreter alone, the floor no command goes under;
* a bare click CLI: a click group with one command, printing its ``--help``
  (what any click program pays: the interpreter plus click);
* ``import pandas, scipy.stats, pydantic``: what ``sagasim --help`` paid
  before these imports were made lazy (for scale).

The goal (issue 20): ``sagasim --version`` and ``--help`` under 0.3 s on the
project's machine. This is a benchmark, not a test: it says whether the goal
is met and exits 0 either way. ``docs/performance.md`` has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

GOAL = 0.3  # seconds, median of sagasim --version and --help

BARE_CLICK = """
import click

@click.group()
@click.version_option("1.0", prog_name="bare")
def cli():
    "A bare click program."

@cli.command()
@click.argument("path")
def run(path):
    "Run PATH."

cli(["--help"], standalone_mode=False)
"""

#: How the console script starts sagasim, here with the package taken from ``root``.
ENTRY = "import sys; sys.path.insert(0, {root!r}); sys.argv = ['sagasim', *{args!r}]; from sim.cli import main; main()"


@dataclass(frozen=True)
class Command:
    """One command to time: a label and the argv of a fresh process."""

    label: str
    argv: list[str]


@dataclass(frozen=True)
class Timing:
    """The timed runs of one command, in seconds."""

    label: str
    command: str
    best: float
    median: float
    runs: list[float]


def commands(other: Path | None) -> list[Command]:
    """The baselines, then sagasim as installed (the console script beside this interpreter)."""
    python = sys.executable
    script = Path(python).with_name("sagasim")
    sagasim = [str(script)] if script.exists() else [python, "-m", "sim"]
    listed = [
        Command("python -c pass", [python, "-c", "pass"]),
        Command("bare click CLI --help", [python, "-c", BARE_CLICK]),
        Command("import pandas, scipy.stats, pydantic", [python, "-c", "import pandas, scipy.stats, pydantic"]),
        Command("sagasim --version", [*sagasim, "--version"]),
        Command("sagasim --help", [*sagasim, "--help"]),
        Command("sagasim run --help", [*sagasim, "run", "--help"]),
    ]
    if other is not None:
        for args in (["--version"], ["--help"]):
            code = ENTRY.format(root=str(other.resolve()), args=args)
            listed.append(Command(f"sagasim {' '.join(args)} ({other})", [python, "-c", code]))
    return listed


def time_once(command: Command) -> float:
    """Wall seconds of one fresh process running ``command``; it must succeed."""
    start = time.perf_counter()
    done = subprocess.run(command.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command.label} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def measure(listed: list[Command], repeat: int) -> list[Timing]:
    """``repeat`` rounds after one untimed warm-up round."""
    for command in listed:
        time_once(command)
    runs: dict[str, list[float]] = {c.label: [] for c in listed}
    for _ in range(repeat):
        for command in listed:
            runs[command.label].append(time_once(command))
    return [
        Timing(c.label, " ".join(c.argv)[:200], min(runs[c.label]), statistics.median(runs[c.label]), runs[c.label])
        for c in listed
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--json", type=Path, default=None, help="write every timing and the environment here")
    parser.add_argument(
        "--other", type=Path, default=None, help="also time the sim/ package of this checkout (e.g. the old code)"
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    timings = measure(commands(args.other), args.repeat)
    width = max(len(t.label) for t in timings)
    print(f"{'command':<{width}}  {'best':>7}  {'median':>7}   ({args.repeat} runs each, fresh processes)")
    for t in timings:
        print(f"{t.label:<{width}}  {t.best:>6.3f}s  {t.median:>6.3f}s")
    ours = [t for t in timings if t.label in ("sagasim --version", "sagasim --help")]
    met = all(t.median < GOAL for t in ours)
    print(f"goal: sagasim --version and --help under {GOAL} s (median): {'met' if met else 'NOT met'}")
    if args.json is not None:
        environment = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
        report = {"environment": environment, "goal": GOAL, "met": met, "timings": [asdict(t) for t in timings]}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
