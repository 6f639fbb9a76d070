"""Systematic fault exploration: every single fault, every pair, ... with shrinking.

``sagasim explore SCENARIO`` (see ``docs/explore.md``) takes a scenario's
services, transaction and protocols, replaces its workload by a few
overlapping transactions, and runs:

1. the run without faults, whose trace gives the **fault points**: every
   message sent (drop it, duplicate it, delay it past any timeout), every
   node's instants between two of its events (crash it there and restart it
   after a while; pause it as long), every request a participant receives (a
   transient failure, a hang);
2. every schedule of one fault at one point (depth 1), then, for every
   schedule of depth k, every later point of *its own* run (depth k + 1), up
   to ``depth``.

Every schedule is a fresh run whose faults are written on the scenario's
``[[faults]]`` timeline (:meth:`Point.fault`), so the scenario a violation is
written to (``counterexample.toml``) reproduces it with ``sagasim run``, for
every protocol. A schedule's run is judged by the protocol's checker from the
effects the participants applied.

Reductions (each keeps the search sound; ``docs/explore.md`` argues it):

- a fault point is an instant where something happens; points with the same
  fault at the same instant are one point;
- no point after every transaction has finished in the run it extends (its
  last event: points are read from events, so this holds by construction);
- a schedule whose run has the same effects and the same messages as the run
  it extends (its last fault changed nothing anyone saw) is extended only at
  points while that fault is active: any later extension is equivalent to
  the same extension of the shorter schedule, explored already.

Determinism: one scenario and seed give the same points, the same order, the
same schedules and the same counterexample, whatever the number of workers.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import os
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sim.errors import SagasimError
from sim.files import read_input_text
from sim.runner import Model
from sim.scenario import FaultSpec, Scenario, scenario_from_dict
from sim.world import fates
from sim.world.core import EventBudgetExceeded
from sim.world.trace import IN, OUT, TraceEvent

__all__ = [
    "BAD",
    "Exploration",
    "Point",
    "Schedule",
    "Settings",
    "explore",
    "prepare",
    "to_toml",
]

#: The outcomes that are violations: a counterexample is written for them.
BAD = ("inconsistent", "stuck")
#: How long a fault aimed at one instant lasts: it holds that instant and
#: nothing else (events of a run with random latencies never tie closer).
WINDOW = 1e-9
#: How a point's ``what`` starts when it hits a compensation attempt.
COMPENSATION = "compensation "
#: A hang: the participant's service time multiplied by this (the attempt
#: would end long after any run does).
HANG_FACTOR = 1e9
#: Random blocks an exploring process keeps across its runs (about 64 kB each).
MEMO_BLOCKS = 512
#: The trace's kinds of the network's own ends of a message (not a send).
_NETWORK_KINDS = frozenset(("drop", "duplicate"))
#: The kinds of fault point, in the order they are tried at one instant.
KINDS = ("drop", "duplicate", "delay", "crash", "pause", "refuse", "fail", "hang")


class Settings(NamedTuple):
    """How faults are shaped and how far the search goes."""

    #: how long a crashed node stays down, and a paused one paused (seconds)
    restart_after: float
    #: the extra delay of a delayed message (seconds; past every timeout)
    delay: float
    #: when the faults are healed: the end of the workload (seconds)
    horizon: float


class Point(NamedTuple):
    """One fault the explorer can inject: its instant, its kind (one of
    :data:`KINDS`, ``rank`` its place there), its target (a node, or
    ``src->dst`` for a message) and what it hits, for people. Points compare
    by instant, then kind, then target: the search's order."""

    at: float
    rank: int
    target: str
    kind: str
    what: str

    @staticmethod
    def make(at: float, kind: str, target: str, what: str) -> Point:
        return Point(at, KINDS.index(kind), target, kind, what)

    @property
    def key(self) -> tuple[float, int, str]:
        """The order of points: by instant, then kind, then target."""
        return (self.at, self.rank, self.target)

    def fault(self, settings: Settings) -> dict[str, Any]:
        """This fault as a ``[[faults]]`` entry of a scenario file."""
        at = self.at
        if self.kind in ("drop", "duplicate", "delay"):
            src, dst = self.target.split("->")
            link = {"groups": [[src], [dst]], "one_way": True, "at": at, "duration": WINDOW}
            if self.kind == "drop":
                return {"kind": "partition", **link}
            if self.kind == "duplicate":
                return {"kind": "duplicate", "probability": 1.0, **link}
            return {"kind": "delay", "extra": {"dist": "constant", "value": settings.delay}, **link}
        if self.kind in ("crash", "pause"):
            return {"kind": self.kind, "target": self.target, "at": at, "duration": settings.restart_after}
        if self.kind in ("refuse", "fail"):
            # The attempt's outcome is drawn when it starts: a window holding
            # its receipt. A compensation attempt has its own rate.
            if self.what.startswith(COMPENSATION):
                rates = {"compensation_failure": 1.0}
            elif self.kind == "refuse":
                rates = {"business_failure": 1.0, "transient_failure": 0.0}
            else:
                rates = {"business_failure": 0.0, "transient_failure": 1.0}
            return {"kind": "failure_rate", "target": self.target, **rates, "at": at, "duration": WINDOW}
        return {"kind": "slow", "target": self.target, "factor": HANG_FACTOR, "at": at, "duration": WINDOW}

    def ends(self, settings: Settings) -> float:
        """When the fault ends."""
        return self.at + (settings.restart_after if self.kind in ("crash", "pause") else WINDOW)

    def describe(self) -> str:
        """One line for people: ``crash payment at 0.0123 s``."""
        verb = {"drop": "drop", "duplicate": "duplicate", "delay": "delay", "crash": "crash", "pause": "pause"}
        if self.kind in ("refuse", "fail", "hang"):
            word = {"refuse": "a refusal (business failure) of", "fail": "a transient failure of"}.get(
                self.kind, "a hang of"
            )
            return f"{word} {self.what} at {self.target} at {self.at:.6g} s"
        if self.kind in ("crash", "pause"):
            return f"{verb[self.kind]} {self.target} at {self.at:.6g} s ({self.what})"
        return f"{verb[self.kind]} {self.what} {self.target} sent at {self.at:.6g} s"


#: A schedule: the faults of one run, in the order of their points.
Schedule = tuple[Point, ...]


class RunFacts(NamedTuple):
    """What one schedule's run gave: each transaction's outcome, its
    signature (its effects and messages), and its fault points."""

    outcomes: tuple[str, ...]
    signature: str
    #: every fault point of the run, by key
    points: tuple[Point, ...]
    #: when every transaction had finished: the last event of any
    #: transaction (its last message, attempt or effect; a coordinator's
    #: decision is not the end: its commits, acks and late copies are still
    #: to come); inf when not computed
    finished: float

    @property
    def bad(self) -> int | None:
        """The first transaction that ended inconsistent or stuck (its index), if any."""
        for i, outcome in enumerate(self.outcomes):
            if outcome in BAD:
                return i
        return None


# ------------------------------------------------------------------ the setup


@dataclass
class Setup:
    """The scenario an exploration runs (its workload replaced), for one protocol and seed."""

    raw: dict[str, Any]
    protocol: str
    seed: int
    settings: Settings
    #: faults every schedule carries: they fault nothing but tell the run
    #: that any node may crash and any link be touched (see :func:`prepare`)
    marker: list[dict[str, Any]]
    ignored: list[str] = field(default_factory=list)
    _scenario: Scenario | None = None
    _specs: dict[Point, FaultSpec] = field(default_factory=dict)

    @property
    def scenario(self) -> Scenario:
        """The scenario without the explored faults (the marker's only)."""
        if self._scenario is None:
            self._scenario = scenario_from_dict(self.scenario_data(()), source=f"<explore {self.raw['name']}>")
        return self._scenario

    def scenario_data(self, schedule: Schedule) -> dict[str, Any]:
        """The scenario file of ``schedule``, as TOML data."""
        data = copy.deepcopy(self.raw)
        data["run"]["protocols"] = [self.protocol]
        data["run"]["seeds"] = [self.seed]
        data["faults"] = [*copy.deepcopy(self.marker), *(p.fault(self.settings) for p in schedule)]
        return data

    def with_faults(self, schedule: Schedule) -> Scenario:
        """The validated scenario of ``schedule`` (fault entries validated once each)."""
        base = self.scenario
        specs = []
        for point in schedule:
            spec = self._specs.get(point)
            if spec is None:
                spec = self._specs[point] = FaultSpec.model_validate(point.fault(self.settings))
            specs.append(spec)
        return base.model_copy(update={"faults": [*base.faults, *specs]})

    def run(self, schedule: Schedule, points: bool = True) -> RunFacts:
        """Run ``schedule`` and judge it; its signature and fault points only
        with ``points`` (a schedule of the last depth is not extended)."""
        model = Model(self.with_faults(schedule), self.protocol, self.seed, trace=True)
        try:
            model.world.run(until=model.end)
        except EventBudgetExceeded:
            return RunFacts(("too-busy",), "too-busy", (), math.inf)
        outcomes = []
        for txn, started_at in model.workload.started:
            view = model.protocol.view(txn)
            verdict = model.checker.judge(model.world.effects.of(txn), view, started_at)
            outcomes.append(verdict.outcome)
        if not points:
            return RunFacts(tuple(outcomes), "", (), math.inf)
        events = model.world.tracer.events
        finished = max((e.time for e in events if e.txn_id is not None), default=0.0)
        nodes = list(model.nodes)
        participants = set(model.participants)
        undo = {s.compensation for s in model.scenario.transaction.steps if s.compensation}
        found = points_of(events, nodes, participants, undo)
        return RunFacts(tuple(outcomes), signature(events), tuple(found), finished)


def signature(events: Iterable[TraceEvent]) -> str:
    """A digest of a run's effects and messages (the faults' own events left out)."""
    kept = [e[:5] + e[6:9] for e in events if e.message is not None or e.kind == "effect"]
    return hashlib.blake2b(repr(kept).encode(), digest_size=16).hexdigest()


_MESSAGE_KINDS = tuple((kind, KINDS.index(kind)) for kind in ("drop", "duplicate", "delay"))
_FORWARD_KINDS = tuple((kind, KINDS.index(kind)) for kind in ("refuse", "fail", "hang"))
_UNDO_KINDS = tuple((kind, KINDS.index(kind)) for kind in ("fail", "hang"))
_NODE_KINDS = tuple((kind, KINDS.index(kind)) for kind in ("crash", "pause"))


def points_of(
    events: Sequence[TraceEvent], nodes: Sequence[str], participants: set[str], compensations: set[str]
) -> list[Point]:
    """Every fault point of a traced run, in key order, each once.
    ``compensations`` are the names of the transaction's compensations (a
    compensation attempt can fail, not be refused)."""
    found: dict[tuple[float, int, str], Point] = {}
    instants: dict[str, set[float]] = {n: set() for n in nodes}
    for e in events:
        times = instants.get(e.node)
        if times is not None and e.txn_id is not None:
            times.add(e.time)
        if e.message is None or e.peer is None or e.kind in _NETWORK_KINDS:
            continue
        if e.direction == OUT:
            _message_points(e, found)
        elif e.direction == IN and e.node in participants:
            _attempt_points(e, e.step in compensations, found)
    for node, times in instants.items():
        distinct = sorted(times)
        for before, after in itertools.pairwise(distinct):
            middle = (before + after) / 2
            what = f"between its events at {before:.6g} s and {after:.6g} s"
            for kind, rank in _NODE_KINDS:
                found.setdefault((middle, rank, node), Point(middle, rank, node, kind, what))
    return [found[k] for k in sorted(found)]


def _message_points(e: TraceEvent, found: dict[tuple[float, int, str], Point]) -> None:
    """The points of a message sent: drop, duplicate, delay it."""
    target = f"{e.node}->{e.peer}"
    if (e.time, _MESSAGE_KINDS[0][1], target) in found:
        return
    what = f"{e.message} of {e.step or 'txn'} (txn {e.txn_id})"
    for kind, rank in _MESSAGE_KINDS:
        found[(e.time, rank, target)] = Point(e.time, rank, target, kind, what)


def _attempt_points(e: TraceEvent, undo: bool, found: dict[tuple[float, int, str], Point]) -> None:
    """The points of a request a participant received: refuse (not a
    compensation), fail, hang the attempt."""
    kinds = _UNDO_KINDS if undo else _FORWARD_KINDS
    if (e.time, kinds[0][1], e.node) in found:
        return
    attempt = f"{COMPENSATION if undo else ''}{e.step} (txn {e.txn_id})"
    for kind, rank in kinds:
        found[(e.time, rank, e.node)] = Point(e.time, rank, e.node, kind, attempt)


def _timeouts(data: Any) -> list[float]:
    """Every number under a key naming a timeout, anywhere in ``data``."""
    found: list[float] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if "timeout" in str(key) and isinstance(value, (int, float)) and not isinstance(value, bool):
                found.append(float(value))
            else:
                found.extend(_timeouts(value))
    elif isinstance(data, list):
        for item in data:
            found.extend(_timeouts(item))
    return found


def prepare(
    source: str | Path,
    protocol: str,
    seed: int | None = None,
    transactions: int = 2,
    restart_after: float = 1.0,
    delay: float | None = None,
    horizon: float = 10.0,
) -> Setup:
    """The exploration's scenario for one protocol: ``source``'s services and
    transaction, ``transactions`` arriving at a constant gap of half one
    transaction's latency (so they overlap), its own ``[[faults]]`` and
    ``[nemesis]`` left out (listed in :attr:`Setup.ignored`)."""
    fates.remember(MEMO_BLOCKS)  # every schedule draws the same first blocks
    path = Path(source)
    try:
        raw = tomllib.loads(read_input_text(path, "scenario file"))
    except tomllib.TOMLDecodeError as exc:
        raise SagasimError(f"{path}: is not valid TOML: {exc}") from None
    checked = scenario_from_dict(raw, source=str(path))  # its own errors first
    if protocol not in checked.run.protocols:
        raw.setdefault("run", {})["protocols"] = [protocol]
    ignored = []
    if raw.pop("faults", None):
        ignored.append(f"its {len(checked.faults)} [[faults]]")
    if raw.pop("nemesis", None):
        ignored.append("its [nemesis]")
    raw.pop("expect", None)
    run = raw.setdefault("run", {})
    run.update(duration=float(horizon), drain=float(checked.run.drain))
    run.pop("keep", None)
    run.pop("trace", None)
    if delay is None:
        delay = 2.0 * max(_timeouts(checked.effective()), default=1.0)
    settings = Settings(float(restart_after), float(delay), float(horizon))
    seed = checked.run.seeds[0] if seed is None else seed
    # One transaction alone: its latency sets the gap between arrivals.
    workload = raw.setdefault("workload", {})
    workload.update(interarrival={"dist": "constant", "value": horizon / 4}, limit=1)
    gap = _pilot_gap(Setup(raw, protocol, seed, settings, []))
    workload.update(interarrival={"dist": "constant", "value": gap}, limit=transactions)
    if gap * transactions >= horizon:
        raise SagasimError(f"--transactions {transactions}: they would not all arrive within {horizon:g} s")
    bare = Setup(raw, protocol, seed, settings, [])
    marker = [
        {"kind": "duplicate", "probability": 0.0, "at": 0.0},
        {"kind": "pause", "target": "*", "at": 0.0, "duration": WINDOW},
    ]
    marked = Setup(raw, protocol, seed, settings, marker)
    # A protocol may take shortcuts where the fault plan says no fault can
    # happen (messages without events on links nothing can touch); the marker
    # takes them away, so that every fault point is in the trace and a fault
    # added later does not change the run before it.
    if bare.run(()).signature == marked.run(()).signature:
        marked = bare
    marked.ignored = ignored
    return marked


def _pilot_gap(setup: Setup) -> float:
    """Half the latency of one transaction alone, as its coordinator (or
    tracker) saw it end; 0.01 s when it never ended."""
    model = Model(setup.with_faults(()), setup.protocol, setup.seed)
    model.world.run(until=model.end)
    latencies = [model.protocol.view(txn).finished_at - at for txn, at in model.workload.started]
    latency = latencies[0] if latencies else math.nan
    if not (latency > 0 and math.isfinite(latency)):
        return 0.01
    return latency / 2


# ------------------------------------------------------------------ the search


@dataclass
class Exploration:
    """The result of exploring one protocol."""

    protocol: str
    depth: int
    #: schedules run, per depth (depth 0: the run without faults)
    runs: list[int] = field(default_factory=list)
    #: schedules the naive search would run, per depth
    naive: list[int] = field(default_factory=list)
    #: the outcomes reached, per depth
    reached: list[set[str]] = field(default_factory=list)
    points: int = 0
    violation: Schedule | None = None
    facts: RunFacts | None = None
    shrunk: Schedule | None = None
    shrunk_facts: RunFacts | None = None
    budget_hit: bool = False
    seconds: float = 0.0
    #: schedules run until the first violation (0 if none)
    to_violation: int = 0
    seconds_to_violation: float = 0.0

    @property
    def explored(self) -> int:
        return sum(self.runs)

    def summary(self) -> dict[str, Any]:
        """The figures, as ``explore.json`` holds them."""
        return {
            "protocol": self.protocol,
            "depth": self.depth,
            "schedules": self.explored,
            "schedules_per_depth": self.runs,
            "naive_per_depth": self.naive,
            "naive": sum(self.naive),
            "saved": sum(self.naive) - self.explored,
            "reduction_factor": sum(self.naive) / self.explored if self.explored else 1.0,
            "points": self.points,
            "violations": 0 if self.violation is None else 1,
            "outcomes_reached": {str(d): sorted(r) for d, r in enumerate(self.reached)},
            "budget_hit": self.budget_hit,
            "seconds": self.seconds,
            "schedules_to_violation": self.to_violation,
            "seconds_to_violation": self.seconds_to_violation,
            "violation": None if self.shrunk is None else [p.describe() for p in self.shrunk],
        }


class Budget(NamedTuple):
    """Stop after this many schedules, or seconds (either may be None)."""

    schedules: int | None = None
    seconds: float | None = None

    @staticmethod
    def parse(text: str | None) -> Budget:
        """``"5000"`` (schedules) or ``"30s"`` (seconds)."""
        if not text:
            return Budget()
        try:
            if text.endswith("s"):
                seconds = float(text[:-1])
                if seconds > 0:
                    return Budget(seconds=seconds)
            elif int(text) > 0:
                return Budget(schedules=int(text))
        except ValueError:
            pass
        raise SagasimError(f"--budget {text}: expected a number of schedules (5000) or of seconds (30s), above 0")


_WORKER_SETUP: Setup | None = None


def _init_worker(setup: Setup) -> None:
    global _WORKER_SETUP
    _WORKER_SETUP = setup
    fates.remember(MEMO_BLOCKS)


def _run_in_worker(schedule: Schedule, points: bool) -> RunFacts:
    assert _WORKER_SETUP is not None
    return _WORKER_SETUP.run(schedule, points)


class _Runner:
    """Runs schedules, in this process or on a pool of worker processes, in order."""

    def __init__(self, setup: Setup, workers: int) -> None:
        self.setup = setup
        self.pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(setup,)) if workers > 1 else None
        self.workers = workers

    def map(self, schedules: Sequence[Schedule], points: bool) -> Iterator[RunFacts]:
        flags = itertools.repeat(points, len(schedules))
        if self.pool is None:
            return map(self.setup.run, schedules, flags)
        chunk = max(1, min(64, len(schedules) // (self.workers * 8)))
        return self.pool.map(_run_in_worker, schedules, flags, chunksize=chunk)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def _extensions(
    schedule: Schedule, facts: RunFacts, parent: RunFacts | None, settings: Settings, reduce: bool = True
) -> list[Point]:
    """The points a schedule is extended at: later than its last fault and
    before the faults are healed; with ``reduce``, only before every
    transaction finished, and only while its last fault is active if that
    fault changed nothing."""
    last = schedule[-1] if schedule else None
    if not reduce:
        return [p for p in facts.points if p.at < settings.horizon and (last is None or p > last)]
    limit = min(facts.finished, settings.horizon)
    # A crash loses volatile state (an in-memory table) without an event: it
    # is never taken for a fault that changed nothing.
    if last is not None and parent is not None and last.kind != "crash" and facts.signature == parent.signature:
        limit = min(limit, last.ends(settings))
    return [p for p in facts.points if p.at < limit and (last is None or p > last)]


def _naive(schedule: Schedule, facts: RunFacts, settings: Settings) -> int:
    """How many extensions the naive search runs: every later point before the heal."""
    last = schedule[-1] if schedule else None
    return sum(1 for p in facts.points if p.at < settings.horizon and (last is None or p > last))


Progress = Callable[[int, int], None]


def explore(
    setup: Setup,
    depth: int = 2,
    workers: int = 1,
    budget: Budget | None = None,
    progress: Progress | None = None,
    reduce: bool = True,
) -> Exploration:
    """Explore every schedule of up to ``depth`` faults; stop at the first
    violation (in the search's order) and shrink it. ``reduce=False`` runs
    the naive search (every later point of every run), to measure the
    reduction against."""
    budget = budget or Budget()
    started = time.perf_counter()
    result = Exploration(setup.protocol, depth)
    base = setup.run(())
    result.runs.append(1)
    result.naive.append(1)
    result.reached.append(set(base.outcomes))
    result.points = len([p for p in base.points if p.at < setup.settings.horizon])
    frontier: list[tuple[Schedule, RunFacts, RunFacts | None]] = [((), base, None)]
    runner = _Runner(setup, workers)
    done = 1
    try:
        if base.bad is not None:
            result.violation, result.facts = (), base
        for level in range(1, depth + 1):
            if result.violation is not None or not frontier:
                break
            todo: list[tuple[Schedule, RunFacts]] = []
            naive = 0
            for schedule, facts, parent in frontier:
                naive += _naive(schedule, facts, setup.settings)
                todo.extend(
                    ((*schedule, p), facts) for p in _extensions(schedule, facts, parent, setup.settings, reduce)
                )
            result.naive.append(naive)
            result.reached.append(set())
            frontier = []
            count = 0
            total = done + len(todo)
            for (schedule, parent_facts), facts in zip(
                todo, runner.map([s for s, _ in todo], level < depth), strict=False
            ):
                count += 1
                done += 1
                result.reached[-1].update(facts.outcomes)
                frontier.append((schedule, facts, parent_facts))
                if progress is not None:
                    progress(done, total)
                if facts.bad is not None:
                    result.violation, result.facts = schedule, facts
                    break
                if _over(budget, done, started):
                    result.budget_hit = True
                    break
            result.runs.append(count)
            if result.budget_hit:
                break
    finally:
        runner.close()
    if result.violation is not None:
        result.to_violation = done
        result.seconds_to_violation = time.perf_counter() - started
        result.shrunk, result.shrunk_facts = shrink(setup, result.violation, result.facts)
    result.seconds = time.perf_counter() - started
    return result


def _over(budget: Budget, done: int, started: float) -> bool:
    if budget.schedules is not None and done >= budget.schedules:
        return True
    return budget.seconds is not None and time.perf_counter() - started >= budget.seconds


# ------------------------------------------------------------------ shrinking


def shrink(setup: Setup, schedule: Schedule, facts: RunFacts | None) -> tuple[Schedule, RunFacts | None]:
    """A minimal violating schedule: fewest faults (every smaller subset
    tried, smallest first), then each fault moved to the earliest point of
    the same kind on the same target that still violates (delta debugging
    over a handful of faults)."""
    best, best_facts = schedule, facts
    found = False
    for size in range(0, len(schedule)):
        for subset in itertools.combinations(schedule, size):
            tried = setup.run(subset)
            if tried.bad is not None:
                best, best_facts, found = subset, tried, True
                break
        if found:
            break
    # Earliest: each fault in turn, to the earliest point like it.
    for i in range(len(best)):
        rest = best[:i] + best[i + 1 :]
        around = setup.run(rest)
        current = best[i]
        for candidate in around.points:
            if candidate >= current:
                break
            if candidate.kind != current.kind or candidate.target != current.target or candidate in rest:
                continue
            trial = tuple(sorted((*rest, candidate), key=lambda p: p.key))
            tried = setup.run(trial)
            if tried.bad is not None:
                best, best_facts = trial, tried
                break
    return best, best_facts


# ------------------------------------------------------------------ files


def to_toml(data: dict[str, Any], comment: str = "") -> str:
    """A scenario's TOML data as a file: tables of tables as ``[a.b]``, the
    faults as ``[[faults]]``, everything else inline."""
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    tables = []
    for key, value in data.items():
        if isinstance(value, dict) or (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables:
        if isinstance(value, list):
            for item in value:
                lines += ["", f"[[{_key(key)}]]", *(f"{_key(k)} = {_value(v)}" for k, v in item.items())]
        elif value and all(isinstance(v, dict) for v in value.values()) and key in ("participants", "transactions"):
            for name, sub in value.items():
                lines += ["", f"[{_key(key)}.{_key(name)}]", *(f"{_key(k)} = {_value(v)}" for k, v in sub.items())]
        else:
            lines += ["", f"[{_key(key)}]", *(f"{_key(k)} = {_value(v)}" for k, v in value.items())]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _value(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------ what is written


class Counterexample(NamedTuple):
    """A violation written to a folder, reproduced with the scenario file written."""

    scenario: Path
    swimlane: Path | None
    txn_id: int
    outcome: str
    #: one paragraph: which faults, what happened, which anomaly
    paragraph: str
    #: whether running the written scenario gave the violation again
    reproduced: bool


def write_counterexample(setup: Setup, schedule: Schedule, out: Path) -> Counterexample:
    """Write ``counterexample.toml`` (a complete scenario with ``schedule`` on
    its ``[[faults]]`` timeline), run it as ``sagasim run`` does, and write
    the failing transaction's swimlane (``swimlane.png``) and the
    explanation (``explanation.md``)."""
    from sim.api import run
    from sim.explain import explain_transaction

    out.mkdir(parents=True, exist_ok=True)
    path = out / "counterexample.toml"
    data = setup.scenario_data(schedule)
    data["name"] = f"{setup.raw['name']}-counterexample"[:100]
    data["description"] = "A minimal fault schedule found by sagasim explore that ends a transaction " + "/".join(BAD)
    data["expect"] = {outcome: "none" for outcome in BAD}
    lines = [
        f"Found by: sagasim explore {setup.raw['name']} (protocol {setup.protocol}, seed {setup.seed}).",
        f"Reproduce: sagasim run {path} --fail-on {','.join(BAD)}",
        "The faults (the explorer's; the scenario's own were left out):",
        *(f"  {i + 1}. {p.describe()}" for i, p in enumerate(schedule)),
    ]
    if setup.marker:
        lines.append("The first faults change nothing: they tell the run any node may crash and any link be touched.")
    path.write_text(to_toml(data, "\n".join(lines)))
    result = run(path, trace=True)
    txns = result.transactions
    bad = txns[txns["outcome"].isin(BAD)]
    if bad.empty:
        paragraph = "Running the written scenario gave no violation: " + ", ".join(
            f"{k} {v}" for k, v in txns["outcome"].value_counts().items()
        )
        return Counterexample(path, None, -1, "", paragraph, False)
    row = bad.iloc[0]
    txn_id = int(row["txn_id"])
    story = explain_transaction(row, result.events, result.scenario)
    reasons = "; ".join(row["reasons"]) or "it never finished"
    if schedule:
        faults = "; ".join(p.describe() for p in schedule)
        lead = f"With {len(schedule)} fault{'s' if len(schedule) != 1 else ''} ({faults})"
    else:
        lead = f"Without any fault of the explorer's (the scenario's own randomness, seed {setup.seed})"
    paragraph = (
        f"{lead}, transaction {txn_id} under {setup.protocol} ends **{row['outcome']}**: {reasons}. "
        + " ".join(story.plain())
    )
    (out / "explanation.md").write_text(paragraph + "\n")
    swimlane = out / "swimlane.png"
    try:
        from sim.swimlane import plot_swimlane

        fig = plot_swimlane(result.events, txn_id, result.faults)
        fig.savefig(swimlane)
    except ValueError:
        swimlane = None
    return Counterexample(path, swimlane, txn_id, str(row["outcome"]), paragraph, True)


def certificate(result: Exploration) -> str:
    """The sentence a clean exploration ends with."""
    if result.violation is not None:
        return f"{result.protocol}: a violation after {result.to_violation} schedules"
    runs = result.runs
    parts = [f"every single fault at {result.points} points"] if len(runs) > 1 else ["the run without faults"]
    names = {2: "every pair", 3: "every triple"}
    for depth in range(2, len(runs)):
        parts.append(f"{names.get(depth, f'every {depth} faults')} ({runs[depth]})")
    reached = sorted(set().union(*result.reached))
    cut = " (budget reached: NOT a certificate)" if result.budget_hit else ""
    return (
        f"{result.protocol}: {result.explored} schedules explored{cut}: {' and '.join(parts)}, reduced from "
        f"{sum(result.naive)}; 0 violations; outcomes reached: {', '.join(reached)}"
    )


def reachable(result: Exploration) -> list[str]:
    """Which outcomes the protocol reaches with k faults (a "sometimes" property)."""
    lines = []
    for depth, outcomes in enumerate(result.reached):
        lines.append(f"with {depth} fault{'s' if depth != 1 else ''}: {', '.join(sorted(outcomes)) or '-'}")
    return lines
