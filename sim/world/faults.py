"""Faults on a timeline: crashes and partitions.

Faults happen only while transactions arrive. When the workload stops, every
fault is healed and every node restarted, and the drain window runs without
faults, so liveness (stuck) is judged apart from safety (inconsistent).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from sim.scenario import FaultSpec
    from sim.world.core import World
    from sim.world.network import Network
    from sim.world.node import Node


class FaultRecord(NamedTuple):
    """One row of ``faults.parquet``."""

    kind: str
    target: str
    start: float
    end: float
    settings: str


class Faults:
    """Schedules the scenario's faults and heals them at the end of the workload."""

    def __init__(self, world: World, network: Network, nodes: dict[str, Node], heal_at: float) -> None:
        self.world = world
        self.network = network
        self.nodes = nodes
        self.heal_at = heal_at
        self.records: list[FaultRecord] = []
        world.at(heal_at, self._heal_all)

    def schedule(self, faults: list[FaultSpec]) -> None:
        for fault in faults:
            end = self.heal_at if fault.duration is None else min(fault.at + fault.duration, self.heal_at)
            if fault.kind == "crash":
                for name in fault.targets(self.nodes):
                    node = self.nodes[name]
                    self.world.at(fault.at, node.crash)
                    if end < self.heal_at:
                        self.world.at(end, node.restart)
                    self.records.append(FaultRecord("crash", name, fault.at, end, "{}"))
            else:
                groups = [list(g) for g in fault.groups or []]
                one_way = bool(fault.one_way)
                self.world.at(fault.at, self._cut, (groups, one_way, end))
                settings = json.dumps({"groups": groups, "one_way": one_way})
                target = " | ".join(",".join(g) for g in groups)
                self.records.append(FaultRecord("partition", target, fault.at, end, settings))

    def _cut(self, job: tuple[list[list[str]], bool, float]) -> None:
        groups, one_way, end = job
        pairs = self.network.cut(groups, one_way)
        if end < self.heal_at:
            self.world.at(end - self.world.now, self.network.heal, pairs)

    def _heal_all(self, _arg: Any = None) -> None:
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, "faults", "heal-all", -1, "", "workload over")
        self.network.heal_all()
        for node in self.nodes.values():
            node.restart()
