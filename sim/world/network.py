"""The network: one-way delays, loss, duplication and partitions.

Every message between nodes goes through :meth:`Network.send`. Its one-way
delay is drawn from the network's latency distribution, or a link's own; it
may be lost (``loss``) or delivered twice with independent delays
(``duplicate``), and a cut link drops it. Independent delays reorder messages
naturally. Every send counts against its transaction, lost ones included.

Messages are tuples that start with their envelope ``(kind, src, txn, ...)``,
named records (:mod:`sim.world.messages`, a protocol's own) or a broker's plain
tuples: the network reads only the envelope, at its named positions.

**The fault plan.** Every fault of a run is drawn before it starts
(:mod:`sim.world.faults`), which tells the network up front (:meth:`Network.expect`)
which nodes can ever crash or pause and which links any fault can touch. A
link is *steady* (:meth:`Network.steady`) when nothing can ever happen to a
message on it: no loss or duplication configured for it, no planned fault on
it, and neither end can crash or pause. The engine may then account for a
message on a steady link without scheduling its delivery (it counts the
message and draws its latency from a :class:`Lane`, keyed by what the
message is, as the same message sent through the network draws it:
:meth:`Network.lane`). Without a plan no link is steady.

**Runtime faults.** A run open to faults applied while it goes
(:attr:`Network.open`, :meth:`sim.world.faults.Faults.open`) starts with
the links steady that the plan leaves alone, and a runtime fault adds to
the plan the moment it starts (:meth:`Network.expect`): every link it could
touch that was steady is no longer, and whoever accounts for messages on it
without events is told first (:meth:`Network.watch`), to take the full
path from that instant. In a run not open to them, a fault outside the plan
on a link already reported steady is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.world.distributions import Constant
from sim.world.fates import BLOCK, RETRY_BLOCK, KeyedDraws, keyed_dist, uniform
from sim.world.trace import OUT

if TYPE_CHECKING:
    from sim.scenario import NetworkSpec
    from sim.world.core import World
    from sim.world.distributions import Distribution
    from sim.world.messages import Message
    from sim.world.node import Node

#: A lane's first attempts come in blocks of ``1 << LANE_SHIFT`` draws
#: (:data:`sim.world.fates.BLOCK`), of which it keeps ``LANE_KEEP``: its
#: indices grow with the run, and an older one is rarely asked for again
#: (made again, a block holds the same draws).
LANE_SHIFT = BLOCK.bit_length() - 1
LANE_MASK = BLOCK - 1
LANE_KEEP = 4
#: Steps of a lane's generator between two of its blocks (far more than a block draws).
LANE_STRIDE = 48


# The kinds of loss and duplication draw, and their streams' names.
_LOSS, _DUPLICATE, _FAULT_LOSS, _FAULT_DUPLICATE = range(4)
_KIND_NAMES = ("network.loss", "network.duplicate", "faults.network.loss", "faults.network.duplicate")


def command_role(step: int, op: int) -> int:
    """The role of a message that asks a participant to run ``op`` of
    ``step``: an orchestrator's command, a choreography's delivery of the
    event that triggers it."""
    return ((step << 1) | op) << 1


def reply_role(step: int, op: int) -> int:
    """The role of a message that tells what ``op`` of ``step`` did: a
    participant's reply, a choreography participant's publish of the event
    it emits."""
    return (((step << 1) | op) << 1) | 1


class _Link:
    __slots__ = ("latency", "dist", "loss", "duplicate")

    def __init__(self, latency: Callable[[], float], dist: Distribution, loss: float, duplicate: float) -> None:
        self.latency = latency
        self.dist = dist
        self.loss = loss
        self.duplicate = duplicate


class Lane(dict[int, list[float]]):
    """The latencies of one kind of message on one link, keyed by what the
    message is rather than drawn in order (:meth:`Network.lane`).

    ``lane.at(index, attempt)`` is the latency of the message numbered
    ``index`` (a transaction, a broker's store...) at its ``attempt``-th
    sending, drawn from a keyed stream per attempt
    (:class:`~sim.world.fates.KeyedDraws`), so a message accounted for ahead
    of its sending (:mod:`sim.world.broker`) and the same message sent later
    through the network draw the same value, whatever happened in between.

    A lane is the dict of its first attempts' blocks, by block number, a
    block made when it is missing (:meth:`__missing__`): a first attempt's
    latency is ``lane[index >> LANE_SHIFT][index & LANE_MASK]``, two
    subscripts that run no Python code, which is how :meth:`at` reads it
    (a method, not ``__call__``: calling an instance goes through a slower
    C path than calling a method). Block ``b`` is drawn from the lane's own generator advanced
    ``b << LANE_STRIDE`` steps from its seed (disjoint stretches of one
    PCG64 stream, one jump per block: a fresh generator per block, as
    :class:`~sim.world.fates.KeyedDraws` makes, costs several times more, and
    lanes whose indices are sparse, like a consumer's store numbers, make
    many). ``sent`` is a count its owner may number its messages by (the
    broker's confirms to one publisher)."""

    __slots__ = ("_base", "_dist", "_generator", "_keyed", "_later", "_name", "sent")

    def __init__(
        self,
        keyed: Callable[[str, Callable[[Any, int], Any], int], KeyedDraws],
        generator: Callable[[str], np.random.Generator],
        name: str,
        dist: Distribution,
    ) -> None:
        super().__init__()
        self._keyed = keyed
        self._name = name
        self._dist = dist
        self._later: dict[int, Callable[[int], float]] = {}
        self.sent = 0
        #: the first attempts' generator (None for a constant: no randomness, no stream) and its seeded state
        self._generator = None if isinstance(dist, Constant) else generator(f"{name}.attempt1")
        self._base = self._generator.bit_generator.state if self._generator is not None else None

    def __missing__(self, number: int) -> list[float]:
        if len(self) >= LANE_KEEP:
            del self[next(iter(self))]  # (the oldest made)
        generator = self._generator
        if generator is None:
            values = [self._dist.mean] * BLOCK
        else:
            bits = generator.bit_generator
            bits.state = self._base
            bits.advance(number << LANE_STRIDE)  # type: ignore[attr-defined]
            values = self._dist.draw(generator, BLOCK).tolist()
        self[number] = values
        return values

    def at(self, index: int, attempt: int = 1) -> float:
        """The latency of the message numbered ``index``, sent for the ``attempt``-th time."""
        if attempt == 1:
            return self[index >> LANE_SHIFT][index & LANE_MASK]
        draw = self._later.get(attempt)
        if draw is None:  # (later attempts are rare: small blocks)
            name = f"{self._name}.attempt{attempt}"
            draw = self._later[attempt] = keyed_dist(self._keyed, name, self._dist, RETRY_BLOCK)
        return draw(index)


class LinkFault:
    """A fault on some links for a while: a cut, extra loss or duplication, or
    extra delay. ``pairs`` is the set of directed (src, dst) pairs it applies
    to, ``None`` for every link."""

    __slots__ = ("cut", "delay", "duplicate", "label", "loss", "pairs")

    def __init__(
        self,
        pairs: set[tuple[str, str]] | None,
        *,
        cut: bool = False,
        loss: float = 0.0,
        duplicate: float = 0.0,
        delay: Callable[[], float] | None = None,
        label: str = "",
    ) -> None:
        self.pairs = pairs
        self.cut = cut
        self.loss = loss
        self.duplicate = duplicate
        self.delay = delay
        self.label = label

    def applies(self, src: str, dst: str) -> bool:
        return self.pairs is None or (src, dst) in self.pairs


def pairs_between(groups: Sequence[Iterable[str]], one_way: bool = False) -> set[tuple[str, str]]:
    """Directed pairs between nodes of different groups (only earlier to
    later groups when ``one_way``)."""
    sets = [list(g) for g in groups]
    pairs: set[tuple[str, str]] = set()
    for i, a in enumerate(sets):
        for j, b in enumerate(sets):
            if i != j and not (one_way and j < i):
                pairs.update((x, y) for x in a for y in b)
    return pairs


class Network:
    """Delivers messages between the world's nodes."""

    def __init__(self, world: World, spec: NetworkSpec) -> None:
        self.world = world
        self.nodes: dict[str, Node] = {}
        streams = world.streams
        built = spec.latency.built
        self._default = _Link(streams.sampler("network.latency", built), built, spec.loss, spec.duplicate)
        self._links: dict[tuple[str, str], _Link] = {}
        for link in spec.links:
            pairs = [(link.src, link.dst)]
            if link.both_ways:
                pairs.append((link.dst, link.src))
            for src, dst in pairs:
                own = link.latency is not None
                dist = link.latency.built if link.latency is not None else built
                latency = streams.sampler(f"network.latency.{src}->{dst}", dist) if own else self._default.latency
                self._links[(src, dst)] = _Link(
                    latency,
                    dist,
                    spec.loss if link.loss is None else link.loss,
                    spec.duplicate if link.duplicate is None else link.duplicate,
                )
        # Loss and duplication draws of messages without a role, in order,
        # by kind (_LOSS, _DUPLICATE, _FAULT_LOSS, _FAULT_DUPLICATE); and
        # those of messages with one, keyed (see send).
        self._in_order = [streams.uniform(name) for name in _KIND_NAMES]
        self._keyed: dict[tuple[int, int, int], KeyedDraws] = {}
        self._lanes: dict[tuple[str, str, str], Lane] = {}
        # Active link faults; overlapping faults act and heal independently.
        self._faults: list[LinkFault] = []
        self.lost = 0
        self.duplicated = 0
        self._receivers: dict[str, Callable[[Message], None]] = {}
        # The fault plan (None until expect() is called: then no link is steady).
        self._at_risk: set[str] | None = None
        self._planned: list[set[tuple[str, str]] | None] = []
        self._steady: dict[tuple[str, str], bool] = {}
        #: faults may be applied while the run goes (:meth:`sim.world.faults.Faults.open`)
        self.open = False
        # (src, dst) -> what to call when that steady link stops being steady (see watch())
        self._watchers: dict[tuple[str, str], list[Callable[[], None]]] = {}

    def attach(self, node: Node) -> None:
        self.nodes[node.name] = node
        self._receivers[node.name] = node.receive  # bound once, not per message

    def send(
        self, src: str, dst: str, msg: Message, role: int = -1, attempt: int = 1, delay: float | None = None
    ) -> None:
        """Send ``msg`` from ``src`` to ``dst`` (counted against its envelope's transaction).

        ``role`` (see :func:`command_role` and :func:`reply_role`) and
        ``attempt`` name what the message is for a transaction, in terms
        every protocol shares: its loss and duplication draws are then keyed
        by (transaction, role, attempt), so the command for step k in one
        protocol and the event that triggers step k in another are lost
        together or not at all. Messages without a role draw in order.
        ``delay``: its latency, drawn by the caller from a :meth:`lane`
        (else drawn here, in order; a duplicate's always is)."""
        world = self.world
        txn = msg.txn
        world.messages[txn] += 1
        tracer = world.tracer
        link = self._links.get((src, dst), self._default) if self._links else self._default
        extra = 0.0
        duplicate = link.duplicate
        if self._faults:
            faulted = self._through_faults(src, dst, msg, role, attempt)
            if faulted is None:
                return
            extra, faulted_duplicate = faulted
            duplicate = max(duplicate, faulted_duplicate)
        if link.loss and self._draw(_LOSS, role, attempt, txn) < link.loss:
            self.lost += 1
            if tracer.on:
                self._trace("drop", src, dst, msg, role, attempt, "lost: ")
            return
        receive = self._receivers[dst]
        settle = world.settle
        if delay is None:
            delay = link.latency()
        if settle is not None:  # held until handled (judging as it goes)
            settle.carry(world.at, delay + extra, receive, msg)
        else:
            world.at(delay + extra, receive, msg)
        if duplicate and (duplicate == 1.0 or self._draw(_DUPLICATE, role, attempt, txn) < duplicate):
            world.messages[txn] += 1
            self.duplicated += 1
            if tracer.on:
                self._trace("duplicate", src, dst, msg, role, attempt, "")
            if settle is not None:
                settle.carry(world.at, link.latency() + extra, receive, msg)
            else:
                world.at(link.latency() + extra, receive, msg)

    def _trace(self, kind: str, src: str, dst: str, msg: Message, role: int, attempt: int, why: str) -> None:
        """Trace a message the network dropped or duplicated, at its sender's end
        (``attempt`` only for messages that have one: a role)."""
        self.world.tracer.emit(
            self.world.now, src, kind, msg.txn, None, f"{why}{msg.kind} to {dst}",
            peer=dst, message=msg.kind, direction=OUT, attempt=attempt if role >= 0 else None,
        )  # fmt: skip

    def _through_faults(self, src: str, dst: str, msg: Message, role: int, attempt: int) -> tuple[float, float] | None:
        """The active network faults on ``msg``: ``None`` if one dropped it, else
        the extra delay and 1.0 if one duplicates it (0.0 if none does)."""
        extra = 0.0
        duplicate = 0.0
        for fault in self._faults:
            if fault.pairs is not None and (src, dst) not in fault.pairs:
                continue
            if fault.cut or (fault.loss and self._draw(_FAULT_LOSS, role, attempt, msg.txn) < fault.loss):
                self.lost += 1
                if self.world.tracer.on:
                    self._trace("drop", src, dst, msg, role, attempt, "partition: " if fault.cut else "lost: ")
                return None
            if fault.delay is not None:
                extra += fault.delay()
            if fault.duplicate and self._draw(_FAULT_DUPLICATE, role, attempt, msg.txn) < fault.duplicate:
                duplicate = 1.0
        return extra, duplicate

    def _draw(self, kind: int, role: int, attempt: int, txn: int) -> float:
        """A uniform draw deciding a loss or a duplication: in order from the
        kind's stream, or keyed by (transaction, role, attempt)."""
        if role < 0:
            return self._in_order[kind]()
        key = (kind, role, attempt)
        keyed = self._keyed.get(key)
        if keyed is None:
            block = BLOCK if attempt == 1 else RETRY_BLOCK
            name = f"{_KIND_NAMES[kind]}.role{role}.attempt{attempt}"
            keyed = self._keyed[key] = self.world.streams.keyed(name, uniform, block)
        return keyed.at(txn)

    def expect(self, nodes: Iterable[str], links: Iterable[set[tuple[str, str]] | None]) -> None:
        """Add to the fault plan: ``nodes`` may crash or pause; faults may touch
        the directed pairs of each of ``links`` (``None``: every link).

        A link found steady that the addition touches is steady no longer:
        in a run open to runtime faults its watchers are called now
        (:meth:`watch`), before the fault is applied; in any other run that
        is an error (the plan is complete before the first message)."""
        if self._at_risk is None:
            self._at_risk = set()
        nodes, links = set(nodes), list(links)
        touched = [
            (src, dst)
            for (src, dst), steady in self._steady.items()
            if steady and (src in nodes or dst in nodes or any(p is None or (src, dst) in p for p in links))
        ]
        if touched and not self.open:
            src, dst = touched[0]
            raise RuntimeError(f"a fault planned on {src}->{dst} after it was found steady")
        self._at_risk.update(nodes)
        self._planned.extend(links)
        for key in touched:
            self._steady[key] = False
        for key in touched:
            for off in self._watchers.pop(key, ()):
                off()

    def watch(self, src: str, dst: str, off: Callable[[], None]) -> None:
        """Call ``off()`` the moment the steady link from ``src`` to ``dst``
        stops being steady (a runtime fault could touch it: :meth:`expect`)."""
        self._watchers.setdefault((src, dst), []).append(off)

    def at_risk(self, name: str) -> bool:
        """Whether the node ``name`` may crash or pause (by the plan so far)."""
        return self._at_risk is None or name in self._at_risk

    def steady(self, src: str, dst: str) -> bool:
        """Whether no fault of the plan, no loss and no duplication can ever
        touch a message from ``src`` to ``dst`` (false without a plan; in a
        run open to runtime faults, until one could: :meth:`watch`)."""
        known = self._steady.get((src, dst))
        if known is not None:
            return known
        at_risk = self._at_risk
        link = self._links.get((src, dst), self._default)
        steady = (
            at_risk is not None
            and src not in at_risk
            and dst not in at_risk
            and not link.loss
            and not link.duplicate
            and not any(p is None or (src, dst) in p for p in self._planned)
        )
        self._steady[(src, dst)] = steady
        return steady

    def lane(self, src: str, dst: str, kind: str) -> Lane:
        """The keyed latencies of the messages of ``kind`` from ``src`` to
        ``dst`` (one :class:`Lane` per link and kind, shared by everyone
        who asks): for messages that may be accounted for ahead of their
        sending, so that both paths draw the same latency for each."""
        key = (src, dst, kind)
        lane = self._lanes.get(key)
        if lane is None:
            dist = self._links.get((src, dst), self._default).dist
            streams = self.world.streams
            name = f"network.latency.{src}->{dst}.{kind}"
            lane = self._lanes[key] = Lane(streams.keyed, streams.generator, name, dist)
        return lane

    def receiver(self, name: str) -> Callable[[Message], None]:
        """The bound ``receive`` of the node ``name``."""
        return self._receivers[name]

    def add_fault(self, fault: LinkFault) -> LinkFault:
        """Start a link fault; undo it with :meth:`remove_fault`."""
        for (src, dst), steady in self._steady.items():
            if steady and fault.applies(src, dst):
                raise RuntimeError(
                    f"{fault.label or 'a link fault'}: not in the run's fault plan, and {src}->{dst} "
                    "was taken to be steady; put the fault in the scenario"
                )
        self._faults.append(fault)
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, "network", "fault", None, None, fault.label)
        return fault

    def remove_fault(self, fault: LinkFault) -> None:
        if fault in self._faults:
            self._faults.remove(fault)
            if self.world.tracer.on:
                self.world.tracer.emit(self.world.now, "network", "heal", None, None, fault.label)

    def cut(self, groups: Sequence[Iterable[str]], one_way: bool = False) -> LinkFault:
        """Cut the links between every pair of groups; returns the cut.

        With ``one_way`` only messages from an earlier group to a later one
        are dropped. Heal with :meth:`heal` and the returned cut.
        """
        sets = [list(g) for g in groups]
        label = "partition " + " | ".join(",".join(g) for g in sets) + (" (one way)" if one_way else "")
        return self.add_fault(LinkFault(pairs_between(sets, one_way), cut=True, label=label))

    def heal(self, cut: LinkFault) -> None:
        """Undo one :meth:`cut` (or any link fault)."""
        self.remove_fault(cut)

    def heal_all(self) -> None:
        self._faults.clear()

    def is_cut(self, src: str, dst: str) -> bool:
        return any(f.cut and f.applies(src, dst) for f in self._faults)
