"""Lock tables: exclusive locks on a participant's keys, granted in FIFO order.

A transaction asks for all the keys it touches at a participant at once. The
keys are taken one at a time in sorted order (so two transactions never wait
for each other in opposite orders on one table); a key held by another
transaction puts the request at the back of that key's FIFO queue, and a
released key goes to the first request waiting for it. The caller bounds the
wait (``lock_timeout``) and :meth:`LockTable.cancel` withdraws a request.

Monitors (salabim's two kinds): a level, the time-weighted number of locks
held (``area`` / elapsed time is the mean), and tallies per transaction of
the time its locks were held (summed over keys) and the time it waited.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.world.core import World


class LockRequest:
    """One transaction's request for its keys at one table."""

    __slots__ = ("txn", "keys", "next", "since", "waiting")

    def __init__(self, txn: int, keys: tuple[int, ...], since: float) -> None:
        self.txn = txn
        self.keys = keys
        self.next = 0  # index of the next key to take
        self.since = since
        self.waiting = True


class LockTable:
    """Exclusive locks of one participant, with level and tally monitors."""

    def __init__(self, world: World, on_granted: Callable[[int], None]) -> None:
        self.world = world
        self.on_granted = on_granted
        self.holder: dict[int, int] = {}  # key -> txn
        self.since: dict[int, float] = {}  # key -> when its holder got it
        self.waiters: dict[int, deque[LockRequest]] = {}
        self.held: dict[int, list[int]] = {}  # txn -> keys it holds
        self.requests: dict[int, LockRequest] = {}  # txn -> its request still waiting
        # monitors
        self.level = 0  # locks held now
        self.area = 0.0  # integral of level over time
        self._last = 0.0
        self.acquisitions = 0
        self.releases = 0
        self.hold_total = 0.0  # seconds, over released locks
        self.waits = 0  # requests that had to wait
        self.txn_held: dict[int, float] = {}
        self.txn_wait: dict[int, float] = {}
        #: (granted, released) per released lock, when switched on (tests)
        self.record_holds = False
        self.holds: list[tuple[float, float]] = []

    def _move(self, delta: int) -> None:
        now = self.world.env._now
        self.area += self.level * (now - self._last)
        self._last = now
        self.level += delta

    def area_until(self, now: float) -> float:
        """The level's integral from 0 to ``now`` (``now`` >= the last change)."""
        return self.area + self.level * (now - self._last)

    # ------------------------------------------------------------ requests

    def request(self, txn: int, keys: tuple[int, ...]) -> LockRequest:
        """Ask for ``keys`` (sorted, distinct) for ``txn``. Returns the request;
        ``waiting`` is false when every key was granted at once; otherwise
        ``on_granted(txn)`` is called when the last one is."""
        req = LockRequest(txn, keys, self.world.env._now)
        self.held.setdefault(txn, [])
        if not self._advance(req):
            self.waits += 1
            self.requests[txn] = req
        return req

    def _advance(self, req: LockRequest) -> bool:
        """Take keys until one is busy (queue there: False) or all are held (True)."""
        keys = req.keys
        while req.next < len(keys):
            key = keys[req.next]
            holder = self.holder.get(key)
            if holder is None:
                self._grant(key, req.txn)
            elif holder != req.txn:
                self.waiters.setdefault(key, deque()).append(req)
                return False
            req.next += 1
        req.waiting = False
        txn = req.txn
        self.txn_wait[txn] = self.txn_wait.get(txn, 0.0) + self.world.env._now - req.since
        return True

    def _grant(self, key: int, txn: int) -> None:
        self._move(1)
        self.holder[key] = txn
        self.since[key] = self.world.env._now
        self.held[txn].append(key)
        self.acquisitions += 1

    def cancel(self, txn: int) -> None:
        """Withdraw ``txn``'s waiting request (if any) and release what it holds."""
        req = self.requests.pop(txn, None)
        if req is not None and req.waiting:
            req.waiting = False
            queue = self.waiters.get(req.keys[req.next])
            if queue is not None and req in queue:
                queue.remove(req)
            self.txn_wait[txn] = self.txn_wait.get(txn, 0.0) + self.world.env._now - req.since
        self.release(txn)

    def release(self, txn: int) -> None:
        """Release every lock ``txn`` holds; each key goes to its first waiter."""
        keys = self.held.pop(txn, None)
        if not keys:
            return
        now = self.world.env._now
        held = 0.0
        for key in keys:
            start = self.since.pop(key)
            del self.holder[key]
            held += now - start
            self._move(-1)
            self.releases += 1
            if self.record_holds:
                self.holds.append((start, now))
        self.hold_total += held
        self.txn_held[txn] = self.txn_held.get(txn, 0.0) + held
        for key in keys:
            queue = self.waiters.get(key)
            if queue and key not in self.holder:
                req = queue.popleft()
                if not queue:
                    del self.waiters[key]
                if self._advance(req):
                    self.requests.pop(req.txn, None)
                    self.on_granted(req.txn)

    def crash(self, keep: set[int]) -> None:
        """A crash: every waiting request is forgotten and every lock released,
        except the locks of ``keep`` (prepared transactions: their locks are
        recovered from the durable prepared record)."""
        for txn in list(self.requests):
            req = self.requests.pop(txn)
            req.waiting = False
            self.txn_wait[txn] = self.txn_wait.get(txn, 0.0) + self.world.env._now - req.since
        self.waiters.clear()
        for txn in [t for t in self.held if t not in keep]:
            self.release(txn)

    # ------------------------------------------------------------ per transaction

    def held_time(self, txn: int, now: float) -> float:
        """Seconds ``txn``'s locks were held, those still held counted up to ``now``."""
        total = self.txn_held.get(txn, 0.0)
        for key in self.held.get(txn, ()):
            total += now - self.since[key]
        return total

    def forget(self, txn: int) -> None:
        """Drop the lock times of ``txn`` (it holds and waits for nothing)."""
        self.txn_held.pop(txn, None)
        self.txn_wait.pop(txn, None)

    def wait_time(self, txn: int, now: float) -> float:
        """Seconds ``txn`` waited for locks, a wait still going counted up to ``now``."""
        total = self.txn_wait.get(txn, 0.0)
        req = self.requests.get(txn)
        if req is not None and req.waiting:
            total += now - req.since
        return total
