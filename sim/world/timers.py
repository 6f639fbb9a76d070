"""Timeouts that cost one event per timeout that matters, not one per request.

Almost every command is answered long before its timeout. With a constant
timeout, deadlines expire in the order they were set, so one FIFO and a single
armed wake-up suffice: answered entries are skipped when they reach the head,
and the queue sleeps until the first entry still waiting. A run therefore
schedules about one timer event per timeout period plus one per real timeout,
instead of one per command.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heappush
from typing import TYPE_CHECKING, Any

from simpy.events import NORMAL, URGENT

from sim.world import node as _node

if TYPE_CHECKING:
    from sim.world.core import World
    from sim.world.node import Node


class DeadlineQueue:
    """Calls ``on_expire(item)`` ``delay`` seconds after :meth:`add`, unless
    ``is_live(item)`` is false by then.

    ``first``: the wake-ups come before every other event due at the same
    instant (SimPy's urgent priority), so that when a deadline coincides with
    something else, the timeout goes first whenever the wake-up was
    scheduled; otherwise such ties are ordered by when it was scheduled."""

    def __init__(
        self,
        world: World,
        delay: float,
        is_live: Callable[[Any], bool],
        on_expire: Callable[[Any], None],
        owner: Node | None = None,
        first: bool = False,
    ) -> None:
        self.world = world
        self._priority = URGENT if first else NORMAL
        self.owner = owner
        if owner is not None:
            owner.timers.append(self)
        self.delay = delay
        self.is_live = is_live
        self.on_expire = on_expire
        self._queue: deque[tuple[float, Any]] = deque()
        self._armed = False
        self._generation = 0
        #: when the armed wake-up comes (while expiring: now)
        self._wake_at = 0.0

    def add(self, item: Any) -> None:
        deadline = self.world.env._now + self.delay
        self._queue.append((deadline, item))
        if not self._armed:
            self._arm(deadline)

    def insert(self, deadline: float, item: Any, order: Callable[[Any], int]) -> None:
        """Put an entry in the place it would have had if it had been added
        earlier, for a caller that added nothing when the entry was due to be
        added: after every entry whose item's ``order`` is not greater than
        ``item``'s (deadlines must stay in order). The search goes back from
        the end: the place is near it (a deadline added late is recent)."""
        queue = self._queue
        rank = order(item)
        index = len(queue)
        while index:
            _, before = queue[index - 1]
            if order(before) <= rank:
                break
            index -= 1
        queue.insert(index, (deadline, item))
        if not self._armed:
            self._arm(deadline)
        elif deadline < self._wake_at:  # a new head, due before the armed wake-up
            self._generation += 1
            self._arm(deadline)

    def prune(self) -> None:
        """Drop the entries at the head that are no longer live (what a
        wake-up does after expiring), before their deadline: whatever they
        hold is freed while it is still in cache, not a timeout later."""
        queue = self._queue
        is_live = self.is_live
        while queue:
            _, item = queue[0]
            if is_live(item):
                break
            queue.popleft()

    def oldest(self) -> Any:
        """The item of the entry that expires first (``None`` when there is none)."""
        if not self._queue:
            return None
        _, item = self._queue[0]
        return item

    def clear(self) -> None:
        """Forget every deadline (a crash loses its timers)."""
        self._queue.clear()
        self._armed = False
        self._generation += 1

    def _arm(self, deadline: float) -> None:
        self._armed = True
        self._wake_at = deadline
        owner = self.owner
        if owner is not None and owner.replaying_at is not None:
            # The owner is running the work it held while paused: a deadline
            # that fell inside the pause comes due among that work.
            rank = _node.FIRST if self._priority == URGENT else _node.NORMAL
            if owner.replay_at(deadline, self._wake, self._generation, rank):
                return
        world = self.world
        now = world.env._now
        # World.at, with this queue's priority
        heappush(world._queue, (now + (deadline - now), self._priority, next(world._eid), self._wake, self._generation))

    def _wake(self, generation: int) -> None:
        if generation != self._generation:
            return
        owner = self.owner
        if owner is not None and owner.paused:
            owner.hold(self._wake, generation, _node.FIRST if self._priority == URGENT else _node.NORMAL)
            return
        queue = self._queue
        # Replaying held work, the wake-up is as late as the instant it came
        # due: later deadlines wait for their own turn among the held work.
        now = self.world.env._now if owner is None or owner.replaying_at is None else owner.replaying_at
        is_live = self.is_live
        # Stay "armed" while expiring, so that an on_expire that adds a new
        # deadline does not arm for it ahead of earlier entries.
        self._armed = True
        self._wake_at = now
        while queue:
            deadline, item = queue[0]
            if deadline > now:
                break
            queue.popleft()
            if is_live(item):
                self.on_expire(item)
        self.prune()
        self._armed = False
        if queue:
            deadline, _ = queue[0]
            self._arm(deadline)
