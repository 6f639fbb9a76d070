"""A Hypothesis state machine over a scenario: :class:`SagaMachine`.

Subclass it with one line naming your scenario file, and pytest runs it::

    from sim.testing import SagaMachine

    class CheckoutMachine(SagaMachine):
        scenario = "scenarios/checkout.toml"

    TestCheckout = CheckoutMachine.TestCase

Hypothesis then drives a live run (:mod:`sim.live`) of the scenario's
services and transaction (its workload, ``[[faults]]`` and ``[nemesis]`` left
out): rules start a transaction, advance time, crash / restart / pause /
resume a node, partition two nodes / heal, drop or duplicate the next message
on a link. After every step the invariants hold (nothing applied twice, no
compensation without its step, no step after its compensation); at the end
every fault is healed, the run drains, and every transaction must be
consistent (no ``inconsistent``, no ``stuck``). A failure is shrunk by
Hypothesis to a minimal sequence and printed as a ``[[faults]]`` timeline
to paste into a scenario.

Needs Hypothesis (``pip install 'sagasim[testing]'``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sim.errors import SagasimError
from sim.files import read_input_text
from sim.live import LiveRun, RuntimeFault, open_run
from sim.world.effects import COMPENSATE, FORWARD

__all__ = ["SagaMachine"]

#: How far one ``advance`` step moves the clock (seconds): from one message's
#: latency to past a timeout; a small set shrinks well.
STEPS = (0.001, 0.005, 0.02, 0.1, 0.5, 2.0)
#: An index into the run's nodes (taken modulo their number): shrinks to the first.
_NODE = st.integers(min_value=0, max_value=63)


class _Fault(NamedTuple):
    """One fault the machine started, for the printed timeline."""

    entry: dict[str, Any]
    handle: RuntimeFault


class SagaMachine(RuleBasedStateMachine):
    """Faults chosen by Hypothesis against a scenario's design (see the module docstring).

    Class attributes a subclass may set: ``scenario`` (the file; required),
    ``protocol`` and ``seed`` (default: the scenario's first), ``max_transactions``
    (how many the rules may start), ``horizon`` (seconds of faults and
    arrivals; the scenario's drain follows).
    """

    scenario: ClassVar[str | Path] = ""
    protocol: ClassVar[str | None] = None
    seed: ClassVar[int | None] = None
    max_transactions: ClassVar[int] = 3
    horizon: ClassVar[float] = 30.0

    def __init__(self) -> None:
        super().__init__()
        self.live: LiveRun = open_run(self._data(), protocol=self.protocol, seed=self.seed)
        self.nodes = list(self.live.model.nodes)
        self.participants = set(self.live.model.participants)
        self.down: dict[str, _Fault] = {}
        self.paused: dict[str, _Fault] = {}
        self.cuts: dict[tuple[str, str], _Fault] = {}
        self.timeline: list[_Fault] = []
        self.started: list[tuple[int, float]] = []
        # a fault on one link until its next message has met it: the fault,
        # the network's counter that says so, and its value when armed
        self.armed: tuple[_Fault, str, int] | None = None

    @classmethod
    def _data(cls) -> dict[str, Any]:
        """The scenario without its workload's arrivals, faults and nemesis."""
        if not cls.scenario:
            raise SagasimError(f"{cls.__name__}: set scenario = 'path/to/scenario.toml'")
        path = Path(cls.scenario)
        raw = tomllib.loads(read_input_text(path, "scenario file"))
        raw.pop("faults", None)
        raw.pop("nemesis", None)
        raw.pop("expect", None)
        run = raw.setdefault("run", {})
        run["duration"] = cls.horizon
        run.pop("keep", None)
        # No arrival of its own: the first would come after the workload ends.
        raw.setdefault("workload", {})["interarrival"] = {"dist": "constant", "value": 2 * cls.horizon}
        return raw

    # ------------------------------------------------------------ helpers

    def _node(self, index: int) -> str:
        return self.nodes[index % len(self.nodes)]

    def _link(self, a: int, b: int) -> tuple[str, str] | None:
        src, dst = self._node(a), self._node(b)
        return None if src == dst else (src, dst)

    def _start(self, entry: dict[str, Any]) -> _Fault:
        settings = {k: v for k, v in entry.items() if k != "kind"}
        fault = _Fault({**entry, "at": self.live.now}, self.live.start_fault(entry["kind"], **settings))
        self.timeline.append(fault)
        return fault

    def _stop(self, fault: _Fault) -> None:
        self.live.stop_fault(fault.handle)

    def _room(self, dt: float) -> bool:
        return self.live.now + dt < self.live.workload_end

    def _arm(self, entry: dict[str, Any], counter: str) -> None:
        self.armed = (self._start(entry), counter, getattr(self.live.model.network, counter))

    def _disarm_if_met(self) -> None:
        """End the armed one-message fault now if a message has met it."""
        if self.armed is not None:
            fault, counter, armed_at = self.armed
            if getattr(self.live.model.network, counter) != armed_at:
                self._stop(fault)
                self.armed = None

    def _advance(self, to: float) -> None:
        """Advance to ``to``; an armed one-message fault ends right after the
        instant its first message met it."""
        live = self.live
        while self.armed is not None:
            due = live.next_event
            if due >= to:
                break
            live.advance(_after(due))
            self._disarm_if_met()
        if live.now < to:
            live.advance(to)

    # ------------------------------------------------------------ rules

    @precondition(lambda self: len(self.started) < self.max_transactions)
    @rule()
    def start_transaction(self) -> None:
        txn = self.live.start_transaction()
        if txn is not None:
            self.started.append((txn, self.live.now))
        self._disarm_if_met()  # its first message may have met the armed fault

    @rule(dt=st.sampled_from(STEPS))
    def advance(self, dt: float) -> None:
        if self._room(dt):
            self._advance(self.live.now + dt)

    @rule(node=_NODE)
    def crash(self, node: int) -> None:
        name = self._node(node)
        if name not in self.down:
            self.down[name] = self._start({"kind": "crash", "target": name})

    @precondition(lambda self: bool(self.down))
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.down)))
        self._stop(self.down.pop(name))

    @rule(node=_NODE)
    def pause(self, node: int) -> None:
        name = self._node(node)
        if name not in self.paused:
            self.paused[name] = self._start({"kind": "pause", "target": name})

    @precondition(lambda self: bool(self.paused))
    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.paused)))
        self._stop(self.paused.pop(name))

    @rule(a=_NODE, b=_NODE)
    def partition(self, a: int, b: int) -> None:
        link = self._link(a, b)
        if link is not None and link not in self.cuts:
            src, dst = link
            self.cuts[link] = self._start({"kind": "partition", "groups": [[src], [dst]]})

    @precondition(lambda self: bool(self.cuts))
    @rule(data=st.data())
    def heal(self, data: st.DataObject) -> None:
        link = data.draw(st.sampled_from(sorted(self.cuts)))
        self._stop(self.cuts.pop(link))

    @precondition(lambda self: self.armed is None)
    @rule(a=_NODE, b=_NODE)
    def drop_next(self, a: int, b: int) -> None:
        link = self._link(a, b)
        if link is not None:
            src, dst = link
            self._arm({"kind": "partition", "groups": [[src], [dst]], "one_way": True}, "lost")

    @precondition(lambda self: self.armed is None)
    @rule(a=_NODE, b=_NODE)
    def duplicate_next(self, a: int, b: int) -> None:
        link = self._link(a, b)
        if link is not None:
            src, dst = link
            entry = {"kind": "duplicate", "probability": 1.0, "groups": [[src], [dst]], "one_way": True}
            self._arm(entry, "duplicated")

    # ------------------------------------------------------------ invariants

    @invariant()
    def effects_are_sane(self) -> None:
        """Nothing applied twice; no compensation without its step; no step after its compensation."""
        effects = self.live.model.world.effects
        for txn, _ in self.started:
            problems = effect_problems(effects.of(txn))
            if problems:
                raise AssertionError(self._report(f"transaction {txn}: {'; '.join(problems)}"))

    def teardown(self) -> None:
        """Heal everything, drain, and require every transaction consistent."""
        live = self.live
        if self.armed is not None:
            self._stop(self.armed[0])
        # Every fault is healed when the workload ends; the drain follows.
        if live.now < live.end:
            live.advance(live.end)
        model = live.model
        lines = []
        for txn, started_at in model.workload.started:
            verdict = model.checker.judge(model.world.effects.of(txn), model.protocol.view(txn), started_at)
            if verdict.outcome in ("inconsistent", "stuck"):
                why = "; ".join(verdict.reasons) or "never finished"
                lines.append(f"transaction {txn} ended {verdict.outcome}: {why}")
        if lines:
            raise AssertionError(self._report("not eventually consistent after the drain:\n  " + "\n  ".join(lines)))

    def _report(self, what: str) -> str:
        """``what``, then the faults as a ``[[faults]]`` timeline and the transactions' starts."""
        from sim.explore import to_toml

        entries = []
        for fault in self.timeline:
            entry = dict(fault.entry)
            ended = fault.handle.ended
            record = self.live.model.faults.records[fault.handle.rows[0]] if fault.handle.rows else None
            if ended and record is not None:
                entry["duration"] = record.end - record.start
            entries.append(entry)
        starts = ", ".join(f"{t:.6g} s" for _, t in self.started) or "none"
        body = to_toml({"faults": entries}).strip() if entries else "(no faults)"
        return (
            f"{type(self).__name__} ({self.scenario}, protocol {self.live.protocol}, seed {self.live.seed}): {what}\n"
            f"transactions started at: {starts}\n"
            f"the faults, to paste into a scenario:\n{body}"
        )


def effect_problems(effects: list[Any]) -> list[str]:
    """What breaks the safety rules in one transaction's effects (time order):
    a step or a compensation applied twice, a compensation without its step,
    a step applied after its compensation."""
    problems = []
    done: dict[int, int] = {}
    undone: dict[int, int] = {}
    for effect in effects:
        if effect.op == FORWARD:
            if undone.get(effect.step):
                problems.append(f"step {effect.step} applied after its compensation")
            done[effect.step] = done.get(effect.step, 0) + 1
            if done[effect.step] == 2:
                problems.append(f"step {effect.step} applied twice")
        elif effect.op == COMPENSATE:
            if not done.get(effect.step):
                problems.append(f"step {effect.step} compensated without being applied")
            undone[effect.step] = undone.get(effect.step, 0) + 1
            if undone[effect.step] == 2:
                problems.append(f"step {effect.step} compensated twice")
    return problems


def _after(instant: float) -> float:
    """The next float after ``instant``: advancing there runs that instant's events."""
    import math

    return math.nextafter(instant, math.inf)
