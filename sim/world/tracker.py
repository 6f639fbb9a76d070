"""Stuck-transaction alerts, alike for every protocol (``[monitor] stuck_after``).

* :class:`SagaTracker`: the choreography's monitoring node ``tracker``. There
  is no coordinator to ask, so it subscribes (group ``tracker``) to every
  topic of the broker and follows each transaction's chain of events. It
  raises an alert for a transaction that has no terminal event
  ``stuck_after`` seconds after the tracker first heard of it. Its table
  (first seen, terminal seen, flagged) is durable; its alarm timers are not:
  a restarted tracker re-arms them (overdue ones fire at once). It acks each
  event as soon as it has recorded it.
* :class:`Watchdog`: the same alert for a protocol with a coordinator
  (orchestration, 2PC): ``stuck_after`` seconds after a transaction started,
  it checks the coordinator's durable log and flags it if it is not in a
  terminal state. It is a cron job beside the coordinator, reading its log:
  it runs while the coordinator is down too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sim.world.node import Node
from sim.world.timers import DeadlineQueue

if TYPE_CHECKING:
    from sim.world.core import World
    from sim.world.network import Network

TRACKER = "tracker"


class Watchdog:
    """Flags transactions not terminal ``stuck_after`` seconds after they start."""

    def __init__(self, world: World, stuck_after: float, terminal: Callable[[int], bool]) -> None:
        self.world = world
        self.terminal = terminal
        self.flagged: dict[int, float] = {}
        self.deadlines = DeadlineQueue(world, stuck_after, self._pending, self._flag)

    def watch(self, txn: int) -> None:
        self.deadlines.add(txn)

    def _pending(self, txn: int) -> bool:
        return not self.terminal(txn)

    def _flag(self, txn: int) -> None:
        self.flagged[txn] = self.world.env._now
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, "monitor", "alert", txn, "", "no terminal state")

    def flagged_at(self, txn: int) -> float:
        return self.flagged.get(txn, math.nan)


class SagaTracker(Node):
    """The choreography's saga tracker node (its name is ``tracker``)."""

    def __init__(
        self, world: World, network: Network, stuck_after: float, terminal_topics: set[int], labels: dict[int, str]
    ) -> None:
        super().__init__(world, TRACKER)
        self.network = network
        self.stuck_after = stuck_after
        self.terminal_topics = terminal_topics
        self.labels = labels
        # durable: txn -> [first seen, terminal seen at]
        self.table: dict[int, list[float]] = {}
        self.flagged: dict[int, float] = {}
        self.events = 0
        self.deadlines = DeadlineQueue(world, stuck_after, self._pending, self._flag, owner=self)

    def handle(self, msg: tuple[Any, ...]) -> None:
        # ("evt", broker, txn, eid, topic, started, group, seq, delivery)
        txn = msg[2]
        now = self.world.env._now
        self.events += 1
        entry = self.table.get(txn)
        if entry is None:
            entry = self.table[txn] = [now, math.nan]
            self.deadlines.add(txn)
        if msg[4] in self.terminal_topics and math.isnan(entry[1]):
            entry[1] = now
            if self.world.tracer.on:
                self.world.tracer.emit(now, self.name, "terminal", txn, self.labels[msg[4]])
        self.network.send(self.name, msg[1], ("ack", self.name, txn, msg[7], msg[6]))

    def _pending(self, txn: int) -> bool:
        return math.isnan(self.table[txn][1]) and txn not in self.flagged

    def _flag(self, txn: int) -> None:
        self.flagged[txn] = self.world.env._now
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, "alert", txn, "", "no terminal event")

    def _check(self, item: tuple[int, int]) -> None:
        txn, epoch = item
        if epoch != self.epoch:
            return
        if self.paused:
            self.hold(self._check, item)
            return
        if self._pending(txn):
            self._flag(txn)

    def flagged_at(self, txn: int) -> float:
        return self.flagged.get(txn, math.nan)

    def on_crash(self) -> None:
        self.deadlines.clear()

    def on_restart(self) -> None:
        now = self.world.env._now
        for txn, (first, _) in self.table.items():
            if self._pending(txn):
                self.world.at(max(0.0, first + self.stuck_after - now), self._check, (txn, self.epoch))
