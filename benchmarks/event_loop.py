"""The cost of one event: the harness's ``World.at`` and ``World.run`` against
SimPy's own way to call a function later, in one process.

Usage::

    .venv/bin/python benchmarks/event_loop.py            # 500,000 events, best of 5
    .venv/bin/python benchmarks/event_loop.py -n 100000 -r 3

Both loops run the same chain of events: 40 chains, each handler scheduling
the next call of its chain after the next of a list of pre-drawn exponential
delays (mean 1 ms), until 500,000 events have run. The handler does nothing
else, so the figure is what the event machinery costs:

* **harness**: ``World.at(delay, fn, arg)`` and ``World.run(until)``;
* **SimPy**: ``env.timeout(delay)`` with the handler appended to its
  callbacks, and ``env.run(until)``: the cheapest way to call a function
  later with SimPy's public API (a process per call costs more).

Reported: CPU microseconds per event (``process_time``, best of ``--repeat``
runs, the two loops alternating) and their ratio. A benchmark, not a test:
it always exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import simpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.world.core import World

CHAINS = 40


def harness(delays: list[float]) -> float:
    world = World(1)
    it = iter(delays)
    at = world.at

    def handler(arg: Any) -> None:
        delay = next(it, None)
        if delay is not None:
            at(delay, handler, arg)

    for chain in range(CHAINS):
        at(next(it), handler, chain)
    start = time.process_time()
    world.run(until=1e12)
    return time.process_time() - start


def simpy_callbacks(delays: list[float]) -> float:
    env = simpy.Environment()
    it = iter(delays)
    timeout = env.timeout

    def handler(event: Any) -> None:
        delay = next(it, None)
        if delay is not None:
            timeout(delay).callbacks.append(handler)

    for _ in range(CHAINS):
        timeout(next(it)).callbacks.append(handler)
    start = time.process_time()
    env.run(until=1e12)
    return time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", "-n", type=int, default=500_000, help="events per run (default 500,000)")
    parser.add_argument("--repeat", "-r", type=int, default=5, help="runs of each loop, best reported (default 5)")
    args = parser.parse_args(argv)
    if args.events < CHAINS or args.repeat < 1:
        parser.error(f"--events must be at least {CHAINS} and --repeat at least 1")
    delays = np.random.default_rng(1).exponential(0.001, args.events).tolist()
    best = {"harness": float("inf"), "simpy": float("inf")}
    for _ in range(args.repeat):
        best["harness"] = min(best["harness"], harness(delays))
        best["simpy"] = min(best["simpy"], simpy_callbacks(delays))
    per = {name: seconds / args.events * 1e6 for name, seconds in best.items()}
    print(f"World.at + World.run           {per['harness']:.3f} us/event")
    print(f"env.timeout + callback (SimPy) {per['simpy']:.3f} us/event")
    print(f"SimPy / harness: {per['simpy'] / per['harness']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
