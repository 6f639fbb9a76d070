"""Generates choreographies whose instants tie, and runs each both ways
(issue 16, point 4).

Every network latency, service time and timeout is a multiple of 1/1024 s
(so instants tie exactly), network latencies are constant, and timeouts are
often exactly a round trip between the broker and a node (an ack or a
confirm then arrives at the very instant of its deadline). Each
choreography is run with messages on steady links accounted for without
events (the default) and with every message an event
(``ChoreographyProtocol.elide = False``).

With ``--random`` (:func:`choreographies` with ``random=True``) every
link's latency is random instead (exponential or lognormal, its mean on
the grid): no two instants tie, but the path without events draws a
message's latency when it accounts for it, ahead of its sending, so only
latencies keyed by the message (:meth:`sim.world.network.Network.lane`)
give both paths the same samples.

``tests/test_one_path.py`` asserts the two runs give the same transactions,
and that each mutant of :mod:`tests.one_path.mutants` makes them differ.
As a tool it prints every generated choreography whose transactions differ,
so that a divergence can be traced::

    .venv/bin/python -m tests.one_path.probe [--examples 60] [--first] [--late-acks] [--random]

(exit 1 if one differs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sim.runner import Model
from tests.conftest import order_scenario

GRID = 1 / 1024
NAMES = ("payment", "inventory", "shipping")


def _grid(low: int, high: int) -> st.SearchStrategy[float]:
    return st.integers(low, high).map(lambda k: k * GRID)


def _constant(value: float) -> dict[str, Any]:
    return {"dist": "constant", "value": value}


def _latency(draw: st.DrawFn, ticks: int, random: bool) -> dict[str, Any]:
    """A one-way latency of ``ticks`` grid units: constant, or (``random``)
    exponential or lognormal with that mean or median."""
    if not random:
        return _constant(ticks * GRID)
    if draw(st.booleans()):
        return {"dist": "exponential", "mean": ticks * GRID}
    return {"dist": "lognormal", "median": ticks * GRID, "p99": 4 * ticks * GRID}


def _timeout(draw: st.DrawFn, round_trips: list[int]) -> float:
    """A timeout on the grid, half the time exactly a round trip between the
    broker and a node (so that an ack or a confirm arrives at the very
    instant of its deadline: the ties the mutants flip)."""
    if draw(st.booleans()):
        return draw(st.sampled_from(sorted(set(round_trips)))) * GRID
    return draw(_grid(1, 16))


@st.composite
def choreographies(draw: st.DrawFn, late_acks: bool = False, random: bool = False) -> dict[str, Any]:
    """``--set`` overrides of the test order saga as a busy choreography
    (``random``: with random latencies).
    ``late_acks``: the broker's ack timeout is at most the shortest round
    trip to a consumer, so that every ack is late (one exactly at its
    deadline is late too): copies wait in their partitions for acks sent
    later than the broker delivered them (the tracker's) or than the store
    of the publish that sends them (a dual write's: no participant has an
    outbox), and are delivered at the very instant those acks arrive (per-key
    ordering). Shorter runs, with fewer deliveries per copy: every copy is
    delivered again."""
    latency = draw(st.integers(1, 4))
    # one-way latencies in grid units: (src, dst) -> k, the default unless a link says otherwise
    links = []
    ticks: dict[tuple[str, str], int] = {}
    for name in ("tracker", "client", *NAMES):
        for src, dst in (("broker", name), (name, "broker")):
            ticks[(src, dst)] = latency
            if name != "client" and draw(st.booleans()):
                ticks[(src, dst)] = draw(st.integers(1, 6))
                links.append(
                    {"src": src, "dst": dst, "both_ways": False, "latency": _latency(draw, ticks[(src, dst)], random)}
                )
    round_trips = {n: ticks[("broker", n)] + ticks[(n, "broker")] for n in ("tracker", "client", *NAMES)}
    # (the client consumes nothing: it only publishes)
    shortest = min(round_trips[n] for n in ("tracker", *NAMES))
    overrides: dict[str, Any] = {
        "run.protocols": ["choreography"],
        "run.duration": 0.5 if late_acks else 1.0,
        "run.drain": 10.0,
        "workload.interarrival": {"dist": "exponential", "mean": draw(st.sampled_from([0.005, 0.02]))},
        "network.latency": _latency(draw, latency, random),
        "network.links": links,
        "broker.ack_timeout": (draw(_grid(1, shortest)) if late_acks else _timeout(draw, list(round_trips.values()))),
        # (with every ack late, a copy is delivered until its ack comes: a few times)
        "broker.max_deliveries": draw(st.sampled_from([2, 3] if late_acks else [1, 2, 3, 10])),
        "broker.ordering": "per-key" if late_acks else draw(st.sampled_from(["per-key", "unordered"])),
        "broker.deduplicate": draw(st.booleans()),
        "choreography.publish_timeout": _timeout(draw, list(round_trips.values())),
        # with few attempts a publish timed out at the very instant of its
        # confirm is given up, which its dual write's ack shows
        "choreography.publish_retry.attempts": draw(st.sampled_from([1, 2, "unlimited"])),
    }
    for name in NAMES:
        mean = draw(_grid(1, 8))
        random_service = draw(st.booleans())  # (service times are keyed draws: their order does not matter)
        overrides[f"participants.{name}.service_time"] = (
            {"dist": "exponential", "mean": mean} if random_service else _constant(mean)
        )
        overrides[f"participants.{name}.workers"] = draw(st.sampled_from([1, 2, 8]))
        overrides[f"participants.{name}.business_failure"] = draw(st.sampled_from([0.0, 0.1]))
        overrides[f"participants.{name}.transient_failure"] = draw(st.sampled_from([0.0, 0.2]))
        overrides[f"participants.{name}.hang"] = draw(st.sampled_from([0.0, 0.05]))
        overrides[f"participants.{name}.hang_duration"] = _constant(draw(_grid(1, 32)))
        overrides[f"participants.{name}.idempotent"] = draw(st.booleans())
        overrides[f"participants.{name}.outbox"] = False if late_acks else draw(st.booleans())
    faults = []
    if draw(st.booleans()):  # a node that can fail: its links take the full path on both runs
        target = draw(st.sampled_from(["tracker", *NAMES]))
        faults.append({"kind": "crash", "target": target, "at": draw(_grid(0, 512)), "duration": draw(_grid(1, 128))})
    overrides["faults"] = faults
    return overrides


class _Found(Exception):
    """Stops the search at the first choreography whose paths differ (``--first``)."""


def transactions(overrides: dict[str, Any], elide: bool) -> pd.DataFrame:
    """The transactions of one run, with or without the accounting."""
    model = Model(order_scenario(overrides), "choreography", 1, trace=False)
    model.protocol.elide = elide  # type: ignore[attr-defined]
    return pd.DataFrame(model.run().transactions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=60, help="choreographies to generate (default 60)")
    parser.add_argument("--first", action="store_true", help="stop at the first choreography that differs")
    parser.add_argument(
        "--late-acks", action="store_true", help="ack timeouts no longer than a round trip: every ack late"
    )
    parser.add_argument("--random", action="store_true", help="random latencies (exponential, lognormal)")
    args = parser.parse_args(argv)
    differ: list[dict[str, Any]] = []

    @settings(
        max_examples=args.examples,
        deadline=None,
        derandomize=True,
        phases=[Phase.generate],
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(choreographies(late_acks=args.late_acks, random=args.random))
    def probe(overrides: dict[str, Any]) -> None:
        if not transactions(overrides, True).equals(transactions(overrides, False)):
            differ.append(overrides)
            if args.first:
                raise _Found

    with contextlib.suppress(_Found):
        probe()
    for overrides in differ:
        print(json.dumps(overrides))
    print(f"{len(differ)} of {args.examples} generated choreographies differ between the two paths", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
