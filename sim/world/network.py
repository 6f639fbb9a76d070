"""The network: one-way delays, loss, duplication and partitions.

Every message between nodes goes through :meth:`Network.send`. Its one-way
delay is drawn from the network's latency distribution, or a link's own; it
may be lost (``loss``) or delivered twice with independent delays
(``duplicate``), and a cut link drops it. Independent delays reorder messages
naturally. Every send counts against its transaction, lost ones included.

Messages are plain tuples ``(kind, src, txn_id, ...)``: cheap to build and
compare on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.scenario import NetworkSpec
    from sim.world.core import World
    from sim.world.node import Node


class _Link:
    __slots__ = ("latency", "loss", "duplicate")

    def __init__(self, latency: Callable[[], float], loss: float, duplicate: float) -> None:
        self.latency = latency
        self.loss = loss
        self.duplicate = duplicate


class Network:
    """Delivers messages between the world's nodes."""

    def __init__(self, world: World, spec: NetworkSpec) -> None:
        self.world = world
        self.nodes: dict[str, Node] = {}
        streams = world.streams
        self._default = _Link(streams.sampler("network.latency", spec.latency.built), spec.loss, spec.duplicate)
        self._links: dict[tuple[str, str], _Link] = {}
        for link in spec.links:
            pairs = [(link.src, link.dst)]
            if link.both_ways:
                pairs.append((link.dst, link.src))
            for src, dst in pairs:
                latency = (
                    streams.sampler(f"network.latency.{src}->{dst}", link.latency.built)
                    if link.latency is not None
                    else self._default.latency
                )
                self._links[(src, dst)] = _Link(
                    latency,
                    spec.loss if link.loss is None else link.loss,
                    spec.duplicate if link.duplicate is None else link.duplicate,
                )
        self._loss_draw = streams.uniform("network.loss")
        self._dup_draw = streams.uniform("network.duplicate")
        # How many active partitions cut each directed pair; overlapping cuts
        # heal independently.
        self._cuts: dict[tuple[str, str], int] = {}
        self.sent = 0
        self.lost = 0
        self.duplicated = 0

    def attach(self, node: Node) -> None:
        self.nodes[node.name] = node

    def send(self, src: str, dst: str, msg: tuple[Any, ...]) -> None:
        """Send ``msg`` from ``src`` to ``dst`` (``msg[2]`` is its transaction)."""
        world = self.world
        world.messages[msg[2]] += 1
        self.sent += 1
        tracer = world.tracer
        if self._cuts and (src, dst) in self._cuts:
            self.lost += 1
            if tracer.on:
                tracer.emit(world.now, src, "drop", msg[2], "", f"partition: {msg[0]} to {dst}")
            return
        link = self._links.get((src, dst), self._default)
        if link.loss and self._loss_draw() < link.loss:
            self.lost += 1
            if tracer.on:
                tracer.emit(world.now, src, "drop", msg[2], "", f"lost: {msg[0]} to {dst}")
            return
        node = self.nodes[dst]
        world.at(link.latency(), node.receive, msg)
        if link.duplicate and self._dup_draw() < link.duplicate:
            world.messages[msg[2]] += 1
            self.sent += 1
            self.duplicated += 1
            if tracer.on:
                tracer.emit(world.now, src, "duplicate", msg[2], "", f"{msg[0]} to {dst}")
            world.at(link.latency(), node.receive, msg)

    def cut(self, groups: Sequence[Iterable[str]], one_way: bool = False) -> list[tuple[str, str]]:
        """Cut the links between every pair of groups; returns the pairs cut.

        With ``one_way`` only messages from an earlier group to a later one
        are dropped. Heal with :meth:`heal` and the returned pairs.
        """
        sets = [list(g) for g in groups]
        pairs: list[tuple[str, str]] = []
        for i, a in enumerate(sets):
            for j, b in enumerate(sets):
                if i == j or (one_way and j < i):
                    continue
                pairs.extend((x, y) for x in a for y in b)
        for pair in pairs:
            self._cuts[pair] = self._cuts.get(pair, 0) + 1
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, "network", "cut", -1, "", repr(sets))
        return pairs

    def heal(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Undo one :meth:`cut`."""
        for pair in pairs:
            left = self._cuts.get(pair, 0) - 1
            if left > 0:
                self._cuts[pair] = left
            else:
                self._cuts.pop(pair, None)
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, "network", "heal")

    def heal_all(self) -> None:
        self._cuts.clear()

    def is_cut(self, src: str, dst: str) -> bool:
        return (src, dst) in self._cuts
