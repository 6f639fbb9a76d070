"""Faults: a timeline from the scenario plus a random nemesis, healed when the
workload ends.

Kinds: ``crash`` and ``pause`` (any node), ``partition``, ``loss``,
``duplicate`` and ``delay`` (links), ``slow`` and ``failure_rate``
(participants: gray failures and bad deploys).

Faults happen only while transactions arrive. When the workload stops, every
fault is healed and every node restarted, and the drain window runs without
faults, so liveness (stuck) is judged apart from safety (inconsistent).

**Faults at any moment.** A run opened to runtime faults
(:meth:`Faults.open`, ``Model(..., runtime_faults=True)``, or
:func:`sim.live.open_run`) takes the same faults from Python while it goes:
:meth:`Faults.start` applies one now, with the kind and settings a
``[[faults]]`` entry has, and :meth:`Faults.stop` ends it. They go through
the same code as a planned fault (:func:`_instances`, :meth:`Faults._actions`),
so a fault started at the instant a timeline fault would start, and stopped
when it would end, gives the same run. Such a run starts with the links
steady that the plan leaves alone; a runtime fault is added to the plan
before it is applied (:meth:`sim.world.network.Network.expect`), and the
links it could touch stop being steady then: what was accounted for on
them without events takes the full path from that instant
(:meth:`sim.world.broker.Broker.undirect`). No node is steady in such a run
(:attr:`Node.steady`: its guard is kept).

The nemesis draws its whole schedule before the run starts, from streams of
its own (one per kind and target), so the schedule depends on the scenario
and the seed only: two protocols run with one seed meet the same faults at
the same simulated times. :meth:`Faults.schedule` also tells the network the
plan (:meth:`sim.world.network.Network.expect`): which nodes can ever crash
or pause and which links any fault can touch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from sim.world.network import LinkFault, pairs_between

if TYPE_CHECKING:
    from sim.scenario import FaultSpec, NemesisSpec, _FaultSettings
    from sim.world.core import World
    from sim.world.network import Network
    from sim.world.node import Node
    from sim.world.participant import Participant
    from sim.world.rng import Streams

LINK_KINDS = ("partition", "loss", "duplicate", "delay")


class FaultRecord(NamedTuple):
    """One row of ``faults.parquet``."""

    kind: str
    target: str
    start: float
    end: float
    source: str
    settings: str


class Planned(NamedTuple):
    """One fault instance with its targets resolved."""

    kind: str
    start: float
    end: float
    targets: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    spec: _FaultSettings
    source: str


def plan_timeline(faults: list[FaultSpec], nodes: list[str], participants: list[str], until: float) -> list[Planned]:
    """The scenario's ``[[faults]]`` as planned instances."""
    planned = []
    for i, fault in enumerate(faults):
        end = until if fault.duration is None else min(fault.at + fault.duration, until)
        planned.extend(_instances(fault.kind, fault, fault.at, end, nodes, participants, f"faults[{i}]"))
    return planned


def plan_nemesis(
    nemesis: NemesisSpec, streams: Streams, nodes: list[str], participants: list[str], until: float
) -> list[Planned]:
    """Draw the nemesis's schedule for ``[0, until)``.

    Per kind and target: the first fault starts an exponential time (mean
    ``mtbf``) after 0, each later one that long after the previous one ended.
    With ``swarm``, each configured kind is first kept with probability 1/2
    (at least one is kept) and its ``mtbf`` scaled by 2^u, u uniform in
    [-2, 2]: between a quarter and four times as often.
    """
    kinds = nemesis.kinds()
    scale = {kind: 1.0 for kind, _ in kinds}
    if nemesis.swarm and kinds:
        rng = streams.generator("nemesis.swarm")
        keep = rng.random(len(kinds)) < 0.5
        if not keep.any():
            keep[rng.integers(len(kinds))] = True
        factors = 2.0 ** rng.uniform(-2.0, 2.0, len(kinds))
        kinds = [k for k, kept in zip(kinds, keep, strict=True) if kept]
        scale = {kind: float(f) for (kind, _), f in zip(nemesis.kinds(), factors, strict=True)}
    planned: list[Planned] = []
    for kind, spec in kinds:
        known = participants if kind in ("slow", "failure_rate") else nodes
        for target in spec.targets(known) or [""]:
            rng = streams.generator(f"nemesis.{kind}.{target or 'all'}")
            mtbf = spec.mtbf * scale[kind]
            duration = spec.duration.built
            t = float(rng.exponential(mtbf))
            while t < until:
                length = duration.sample(rng)
                end = min(t + length, until)
                source = f"nemesis.{kind}"
                if target:
                    planned.extend(_instances(kind, spec, t, end, nodes, participants, source, only=target))
                else:
                    planned.extend(_instances(kind, spec, t, end, nodes, participants, source))
                t = end + float(rng.exponential(mtbf))
    planned.sort(key=lambda p: (p.start, p.kind, p.targets))
    return planned


def _instances(
    kind: str,
    spec: _FaultSettings,
    start: float,
    end: float,
    nodes: list[str],
    participants: list[str],
    source: str,
    only: str | None = None,
) -> list[Planned]:
    if kind in LINK_KINDS:
        if spec.groups is not None:
            groups = tuple(tuple(g) for g in spec.groups)
            return [Planned(kind, start, end, (), groups, spec, source)]
        if spec.target is None:  # every link
            return [Planned(kind, start, end, (), (), spec, source)]
        targets = [only] if only else spec.targets(nodes)
        # Cutting a node off: its group against everyone else.
        return [
            Planned(kind, start, end, (t,), ((t,), tuple(n for n in nodes if n != t)), spec, source) for t in targets
        ]
    known = nodes if kind in ("crash", "pause") else participants
    targets = [only] if only else spec.targets(known)
    return [Planned(kind, start, end, (t,), (), spec, source) for t in targets]


class RuntimeFault:
    """A fault started while the run goes (:meth:`Faults.start`): a handle for :meth:`Faults.stop`."""

    __slots__ = ("kind", "started", "stops", "rows", "ended")

    def __init__(self, kind: str, started: float, stops: list[Callable[[Any], None]], rows: list[int]) -> None:
        self.kind = kind
        self.started = started
        #: what ends each of its instances (one per target)
        self.stops = stops
        #: its rows in :attr:`Faults.records`
        self.rows = rows
        self.ended = False

    def __repr__(self) -> str:
        return f"<RuntimeFault {self.kind} from {self.started:g} s{' (ended)' if self.ended else ''}>"


def _runtime_spec(kind: str, now: float, duration: float | None, settings: dict[str, Any], nodes: list[str]) -> Any:
    """A runtime fault's settings, validated as a ``[[faults]]`` entry's."""
    from pydantic import ValidationError  # (the world imports no pydantic until a runtime fault)

    from sim.scenario import FaultSpec

    try:
        spec = FaultSpec.model_validate({"kind": kind, "at": now, "duration": duration, **settings})
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(part) for part in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = f"not a fault setting (allowed: {', '.join(f for f in FaultSpec.model_fields if f != 'at')})"
            problems.append(f"{where}: {message}" if where else message)
        raise ValueError(f"fault {kind!r}: " + "; ".join(problems)) from None
    named = [*spec.targets(nodes), *(n for g in spec.groups or [] for n in g)]
    unknown = sorted({n for n in named if n not in nodes})
    if unknown:
        raise ValueError(f"fault {kind!r}: no node named {', '.join(unknown)}; the run's nodes: {', '.join(nodes)}")
    return spec


class Faults:
    """Applies planned faults to the world and heals them at the end of the workload."""

    def __init__(
        self,
        world: World,
        network: Network,
        nodes: dict[str, Node],
        participants: dict[str, Participant],
        heal_at: float,
    ) -> None:
        self.world = world
        self.network = network
        self.nodes = nodes
        self.participants = participants
        self.heal_at = heal_at
        self.records: list[FaultRecord] = []
        #: whether faults may be started from Python while the run goes (see :meth:`open`)
        self.runtime = False
        # fault instances so far, planned and runtime: the number names a delay's stream
        self._instances = 0
        world.at(heal_at, self._heal_all)

    def open(self) -> None:
        """Accept faults started while the run goes (:meth:`start`): the
        network's steady links may stop being steady (:attr:`Network.open`),
        and no node is steady. Call before the run starts."""
        self.network.open = True
        self.network.expect((), ())
        self.runtime = True
        for node in self.nodes.values():
            node.steady = False

    def start(self, kind: str, *, duration: float | None = None, **settings: Any) -> RuntimeFault:
        """Start a fault now: ``kind`` and ``settings`` as in a scenario's
        ``[[faults]]`` entry (``target``, ``groups``, ``one_way``,
        ``probability``, ``extra``, ``factor``, ``business_failure``,
        ``transient_failure``), e.g. ``start("crash", target="payment")`` or
        ``start("partition", groups=[["orchestrator"], ["payment"]])``.

        It lasts ``duration`` simulated seconds, or until :meth:`stop`, or
        until the workload ends (every fault is healed then). Raises
        :class:`ValueError` naming the bad setting (the messages of a
        scenario file's faults), or when the run was not opened to runtime
        faults or the workload is over (the drain runs without faults)."""
        now = self.world.env._now
        if not self.runtime:
            raise ValueError("this run takes no faults while it goes: build it with runtime_faults=True")
        if now >= self.heal_at:
            raise ValueError(
                f"a fault at {now:g} s: faults happen while transactions arrive (until {self.heal_at:g} s); "
                "the drain runs without faults"
            )
        spec = _runtime_spec(kind, now, duration, settings, list(self.nodes))
        end = self.heal_at if duration is None else min(now + duration, self.heal_at)
        parts = list(self.participants)
        planned = _instances(kind, spec, now, end, list(self.nodes), parts, "runtime")
        fault = RuntimeFault(kind, now, [], [])
        self._expect(planned)  # (the links it could touch take the full path from now on)
        for instance in planned:
            start, stop = self._actions(instance, self._instances)
            self._instances += 1
            fault.stops.append(stop)
            fault.rows.append(len(self.records))
            self.records.append(self._record(instance))
            start(None)
        if end < self.heal_at:
            self.world.at(end - now, self._stop_due, fault)
        return fault

    def stop(self, fault: RuntimeFault) -> None:
        """End ``fault`` now (a crash's node restarts, a partition heals, ...);
        nothing happens if it has ended already."""
        if fault.ended:
            return
        fault.ended = True
        now = self.world.env._now
        for row in fault.rows:
            self.records[row] = self.records[row]._replace(end=now)
        for stop in fault.stops:
            stop(None)

    def _stop_due(self, fault: RuntimeFault) -> None:
        self.stop(fault)

    def _expect(self, planned: list[Planned]) -> list[str]:
        """Tell the network what ``planned`` can touch (:meth:`Network.expect`);
        returns the nodes it may crash or pause."""
        at_risk = [t for f in planned if f.kind in ("crash", "pause") for t in f.targets]
        links = [
            pairs_between(f.groups, bool(f.spec.one_way)) if f.groups else None for f in planned if f.kind in LINK_KINDS
        ]
        self.network.expect(at_risk, links)
        return at_risk

    def schedule(self, planned: list[Planned]) -> None:
        at_risk = self._expect(planned)
        if not self.runtime:  # (a run open to runtime faults has no steady node)
            for name, node in self.nodes.items():
                node.steady = name not in at_risk
        for index, fault in enumerate(planned):
            start, stop = self._actions(fault, index)
            self.world.at(fault.start, start)
            if fault.end < self.heal_at:
                self.world.at(fault.end, stop)
            self.records.append(self._record(fault))
        self._instances = len(planned)

    @staticmethod
    def _record(fault: Planned) -> FaultRecord:
        """The row of ``faults.parquet`` of one fault instance."""
        target = ",".join(fault.targets) or (" | ".join(",".join(g) for g in fault.groups) or "*")
        settings = fault.spec.settings()
        if fault.groups and not fault.targets:
            settings["groups"] = [list(g) for g in fault.groups]
        return FaultRecord(fault.kind, target, fault.start, fault.end, fault.source, json.dumps(settings))

    def _actions(self, fault: Planned, index: int) -> tuple[Callable[[Any], None], Callable[[Any], None]]:
        kind = fault.kind
        spec = fault.spec
        if kind == "crash":
            node = self.nodes[fault.targets[0]]
            return node.crash, node.restart
        if kind == "pause":
            node = self.nodes[fault.targets[0]]
            return node.pause, node.resume
        if kind == "slow":
            participant = self.participants[fault.targets[0]]
            factor = float(spec.factor or 1.0)
            return (lambda _: participant.slow_down(factor)), (lambda _: participant.speed_up(factor))
        if kind == "failure_rate":
            participant = self.participants[fault.targets[0]]
            rates = (spec.business_failure, spec.transient_failure, spec.compensation_failure)
            return (lambda _: participant.override_rates(rates)), (lambda _: participant.restore_rates(rates))
        # link faults
        pairs = pairs_between(fault.groups, bool(spec.one_way)) if fault.groups else None
        delay = None
        if kind == "delay":
            assert spec.extra is not None
            delay = self.world.streams.sampler(f"faults.delay.{index}", spec.extra.built)
        label = f"{kind} {','.join(fault.targets) or (' | '.join(','.join(g) for g in fault.groups) or '*')}"
        link = LinkFault(
            pairs,
            cut=kind == "partition",
            loss=float(spec.probability or 0.0) if kind == "loss" else 0.0,
            duplicate=float(spec.probability or 0.0) if kind == "duplicate" else 0.0,
            delay=delay,
            label=label,
        )
        return (lambda _: self.network.add_fault(link)), (lambda _: self.network.remove_fault(link))

    def _heal_all(self, _arg: Any = None) -> None:
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, "faults", "heal-all", None, None, "workload over")
        self.network.heal_all()
        for participant in self.participants.values():
            participant.end_gray_failures()
        for node in self.nodes.values():
            node.heal()
