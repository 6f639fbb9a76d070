"""The participant's side of an atomic commit protocol: locks, the prepare
work, the vote, the in-doubt wait and the decision.

Two-phase commit and Paxos Commit share it: a participant takes the locks on
the keys the transaction touches there (FIFO; waiting longer than its
``lock_timeout`` makes it vote no), does the work (one attempt on its worker
pool, with its service time and failure draws), forces a prepared record and
votes yes; a business or a transient failure makes it abort on its own and
vote no. A participant that has not voted ``vote_timeout`` after it was asked
aborts on its own; one that voted yes is in doubt: it holds its locks until it
learns the decision, and asks every ``in_doubt_timeout``.

What differs between the protocols is where a vote goes, whom an in-doubt
participant asks, what follows a commit and which messages arrive: the
subclass's :meth:`LockingSide.handle`, :meth:`LockingSide._vote`,
:meth:`LockingSide._query` and :meth:`LockingSide._after_commit`.

Ground truth goes to the effect log: ``PREPARED`` when a participant forces
its prepared record, ``FORWARD`` when it commits a step, ``ABORT`` when it
records an abort for a transaction it had started or prepared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sim.world.effects import ABORT, FORWARD, PREPARED
from sim.world.locks import LockTable
from sim.world.messages import Message, Signal
from sim.world.participant import HANG, REFUSE, SUCCEED
from sim.world.timers import DeadlineQueue
from sim.world.trace import IN

if TYPE_CHECKING:
    from sim.world.core import World
    from sim.world.participant import Participant
    from sim.world.workload import TxnKeys

__all__ = ["P_ABORTED", "P_COMMITTED", "P_PREPARED", "LockWindow", "LockingSide", "lock_columns"]

# Participant durable states.
P_PREPARED = 1
P_COMMITTED = 2
P_ABORTED = 3


class _Work:
    """A participant's volatile work on one transaction before its vote."""

    __slots__ = ("txn", "arrived", "locked")

    def __init__(self, txn: int, arrived: float) -> None:
        self.txn = txn
        self.arrived = arrived
        self.locked = False


class LockingSide:
    """One participant's side of an atomic commit: locks, prepare, vote, decision.

    The participant delegates every message that is not a saga request here
    (:meth:`handle`, the subclass's). Subclasses say where a vote goes
    (:meth:`_vote`), whom an in-doubt participant asks (:meth:`_query`) and
    what follows a commit (:meth:`_after_commit`).
    """

    def __init__(
        self,
        participant: Participant,
        steps: list[int],
        keys: TxnKeys,
        vote_timeout: float,
        in_doubt_timeout: float,
    ) -> None:
        self.p = participant
        self.world = participant.world
        self.network = participant.network
        self.name = participant.name
        self.steps = steps
        self.label = "+".join(participant.step_names[s][FORWARD] for s in steps)
        self.keys = keys
        self.locks = LockTable(self.world, self._granted)
        world = self.world
        self.vote_deadlines = DeadlineQueue(world, vote_timeout, self._unvoted, self._vote_timeout, owner=participant)
        self.lock_deadlines = DeadlineQueue(
            world, participant.spec.lock_timeout, self._lock_waiting, self._lock_timeout, owner=participant
        )
        self.doubt_deadlines = DeadlineQueue(world, in_doubt_timeout, self._in_doubt, self._ask, owner=participant)
        # durable
        self.table: dict[int, int] = {}
        self.voted_at: dict[int, float] = {}
        self.blocked: dict[int, float] = {}
        # volatile
        self.working: dict[int, _Work] = {}
        # counters
        self.lock_timeouts = 0
        self.unilateral_aborts = 0
        self.queries = 0
        participant.side = self

    def _trace(self, kind: str, txn: int, detail: str = "", **fields: Any) -> None:
        self.world.tracer.emit(self.world.now, self.name, kind, txn, self.label, detail, **fields)

    def _send(self, dst: str, msg: Message) -> None:
        self.network.send(self.name, dst, msg)

    # ------------------------------------------------------------ the protocol's part

    def handle(self, msg: Message) -> None:
        """A message of the protocol for this participant."""
        raise NotImplementedError

    def _vote(self, txn: int, yes: bool) -> None:
        """Send this participant's vote on ``txn`` (yes: prepared)."""
        raise NotImplementedError

    def _query(self, txn: int) -> None:
        """In doubt about ``txn``: ask whoever can tell the decision."""
        raise NotImplementedError

    def _after_commit(self, txn: int) -> None:
        """What follows committing ``txn`` here (2PC acknowledges)."""

    # ------------------------------------------------------------ phase one

    def _prepare(self, txn: int) -> None:
        work = _Work(txn, self.world.env._now)
        self.working[txn] = work
        self.vote_deadlines.add(work)
        by_step = self.keys.of(txn)
        keys = tuple(sorted({k for s in self.steps for k in by_step[s]})) if by_step else ()
        if keys:
            req = self.locks.request(txn, keys)
            if req.waiting:
                if self.world.tracer.on:
                    self._trace(
                        "lock-wait", txn, f"key {keys[req.next]} held by txn {self.locks.holder[keys[req.next]]}"
                    )
                self.lock_deadlines.add(work)
                return
        self._locked(work)

    def _granted(self, txn: int) -> None:
        work = self.working.get(txn)
        if work is not None:
            if self.world.tracer.on:
                self._trace("locked", txn)
            self._locked(work)

    def _locked(self, work: _Work) -> None:
        work.locked = True
        self.p.pool.submit(work, self._start, self._wanted)

    def _wanted(self, work: _Work) -> bool:
        """Whether a prepare waiting for a worker is still to run (not aborted meanwhile)."""
        return self.working.get(work.txn) is work

    def _lock_waiting(self, work: _Work) -> bool:
        return not work.locked and self.working.get(work.txn) is work

    def _lock_timeout(self, work: _Work) -> None:
        self.lock_timeouts += 1
        self._abort(work.txn, "lock timeout", unilateral=True)
        self._vote(work.txn, False)

    def _unvoted(self, work: _Work) -> bool:
        return self.working.get(work.txn) is work

    def _vote_timeout(self, work: _Work) -> None:
        self._abort(work.txn, "not voted in time", unilateral=True)
        self._vote(work.txn, False)

    def _start(self, work: _Work) -> None:
        p = self.p
        p.attempts += 1
        # (one prepare covers every step this participant runs: its fate is the first's)
        outcome, duration = p.draw_attempt(work.txn, self.steps[0], FORWARD)
        p.pool.serve(duration, self._done, (work, outcome))

    def _done(self, job: tuple[_Work, int]) -> None:
        work, outcome = job
        p = self.p
        txn = work.txn
        if self.working.get(txn) is work:
            if outcome == SUCCEED and self.world.records is not None and not self._records_prepare(txn):
                outcome = REFUSE  # its records refused it (a failed check)
            if outcome == SUCCEED:
                self._prepared(txn)
            elif outcome == HANG:
                if self.world.tracer.on:
                    self._trace("hang", txn)
            else:
                self._abort(txn, "refused" if outcome == REFUSE else "transient error", unilateral=outcome != REFUSE)
                self._vote(txn, False)
        p.pool.release()

    def _records_prepare(self, txn: int) -> bool:
        """Apply this participant's steps to their records, under the locks
        held until the decision (:mod:`sim.world.records`); False, with
        nothing left written, when one of them is refused."""
        records = self.world.records
        assert records is not None
        for i, step in enumerate(self.steps):
            if not records.forward(self.name, txn, step):
                for done in reversed(self.steps[:i]):
                    records.compensate(self.name, txn, done)
                return False
        return True

    def _received(self, msg: Signal) -> int | None:
        """Trace the arrival of ``msg``; returns the transaction's state here
        (``None``: nothing yet)."""
        txn = msg.txn
        if self.world.tracer.on:
            kind, src = msg.kind, msg.src
            self._trace("receive", txn, f"{kind} from {src}", peer=src, message=kind, direction=IN)
        return self.table.get(txn)

    def _on_prepare(self, txn: int, state: int | None) -> None:
        """A request to prepare ``txn``: a repeat gets the same vote again;
        a first one prepares, unless the prepare is under way."""
        if state is not None:
            self._vote(txn, state != P_ABORTED)
        elif txn not in self.working:
            self._prepare(txn)

    def _prepared(self, txn: int) -> None:
        del self.working[txn]
        now = self.world.env._now
        self.table[txn] = P_PREPARED
        self.voted_at[txn] = now
        apply = self.world.effects.apply
        for step in self.steps:
            apply(now, txn, step, PREPARED, self.name)
        if self.world.tracer.on:
            self._trace("prepared", txn, "in doubt")
        self._vote(txn, True)
        self.doubt_deadlines.add(txn)

    def _decided(self, txn: int) -> None:
        now = self.world.env._now
        voted = self.voted_at.pop(txn, None)
        if voted is not None:
            self.blocked[txn] = self.blocked.get(txn, 0.0) + now - voted
        self.locks.release(txn)

    def _commit(self, txn: int) -> None:
        now = self.world.env._now
        self.table[txn] = P_COMMITTED
        apply = self.world.effects.apply
        for step in self.steps:
            apply(now, txn, step, FORWARD, self.name)
        self._decided(txn)
        if self.world.tracer.on:
            self._trace("commit", txn, "forward")
        self._after_commit(txn)

    def _abort(self, txn: int, why: str, *, unilateral: bool) -> None:
        """Abort ``txn`` here; ``unilateral`` when not told the decision
        and not a refusal (counted in ``unilateral_aborts``)."""
        work = self.working.pop(txn, None)
        if work is not None:
            self.locks.cancel(txn)
            if unilateral:
                self.unilateral_aborts += 1
        now = self.world.env._now
        if self.world.records is not None and self.table.get(txn) == P_PREPARED:
            for step in reversed(self.steps):  # the writes made at prepare are undone
                self.world.records.compensate(self.name, txn, step)
        self.table[txn] = P_ABORTED
        apply = self.world.effects.apply
        for step in self.steps:
            apply(now, txn, step, ABORT, self.name)
        self._decided(txn)
        if self.world.tracer.on:
            self._trace("abort", txn, why)
        if work is not None and self.p.pool.queue:
            self.p.pool.pump()

    # ------------------------------------------------------------ in doubt

    def _in_doubt(self, txn: int) -> bool:
        return self.table.get(txn) == P_PREPARED

    def _ask(self, txn: int) -> None:
        self._query(txn)
        self.doubt_deadlines.add(txn)

    def on_crash(self) -> None:
        self.working.clear()  # (its queued prepares are lost with the worker pool)
        self.vote_deadlines.clear()
        self.lock_deadlines.clear()
        self.doubt_deadlines.clear()
        prepared = {t for t, s in self.table.items() if s == P_PREPARED}
        self.locks.crash(prepared)

    def relies_on_fault_plan(self) -> bool:
        return False

    def on_restart(self) -> None:
        for txn, state in self.table.items():
            if state == P_PREPARED:
                if self.world.tracer.on:
                    self._trace("recover", txn, "prepared: in doubt")
                self._ask(txn)

    # ------------------------------------------------------------ judging as the run goes

    def quiet(self, txn: int) -> bool:
        """Whether nothing here can still change ``txn`` (see
        the protocol's ``quiet``): not prepared (in doubt: its query timer
        or a recovery will ask about it, and its blocked time still grows)
        and no work before the vote (its lock wait, vote timer and prepare
        job act only while it is in ``working``). Locks are held or waited
        for only in those two states (``_prepared`` moves a transaction from
        one to the other, every way out of them releases its locks, and a
        crash drops the waits and the locks of all but the prepared)."""
        return self.table.get(txn) != P_PREPARED and txn not in self.working

    def forget(self, txn: int) -> None:
        """Drop the records of a settled transaction: its durable state (no
        message about it can arrive any more: the engine counted none) and
        its lock times."""
        self.table.pop(txn, None)
        self.blocked.pop(txn, None)
        self.locks.forget(txn)

    # ------------------------------------------------------------ results

    def blocked_time(self, txn: int, now: float) -> float:
        total = self.blocked.get(txn, 0.0)
        voted = self.voted_at.get(txn)
        if voted is not None:
            total += now - voted
        return total


# ------------------------------------------------------------ columns of the protocols that lock


def lock_columns(sides: Iterable[LockingSide], txn: int, now: float) -> dict[str, float]:
    """``lock_held``, ``lock_wait`` and ``blocked`` of one transaction,
    summed over its participants' sides (still held or waiting: up to ``now``)."""
    sides = list(sides)
    return {
        "lock_held": sum(s.locks.held_time(txn, now) for s in sides),
        "lock_wait": sum(s.locks.wait_time(txn, now) for s in sides),
        "blocked": sum(s.blocked_time(txn, now) for s in sides),
    }


class LockWindow:
    """The lock level's integral and acquisitions over the workload window
    (taken when the workload ends), and the lock figures of the summary."""

    def __init__(self, world: World, sides: Iterable[LockingSide], duration: float) -> None:
        self.world = world
        self.sides = list(sides)
        self.duration = duration
        self.window: tuple[float, int] | None = None
        world.at(duration, self._snapshot)

    def _snapshot(self, _arg: Any = None) -> None:
        now = self.world.env._now
        self.window = (
            sum(s.locks.area_until(now) for s in self.sides),
            sum(s.locks.acquisitions for s in self.sides),
        )

    def figures(self) -> dict[str, Any]:
        """``locks_held_mean``, ``lock_acquisitions``, ``lock_hold_mean``,
        ``lock_waits``, ``lock_timeouts``, ``unilateral_aborts`` and
        ``in_doubt_at_end`` (the participants still prepared)."""
        sides = self.sides
        area, acquired = self.window if self.window is not None else (math.nan, 0)
        releases = sum(s.locks.releases for s in sides)
        return {
            "locks_held_mean": area / self.duration,
            "lock_acquisitions": acquired,
            "lock_hold_mean": sum(s.locks.hold_total for s in sides) / releases if releases else math.nan,
            "lock_waits": sum(s.locks.waits for s in sides),
            "lock_timeouts": sum(s.lock_timeouts for s in sides),
            "unilateral_aborts": sum(s.unilateral_aborts for s in sides),
            "in_doubt_at_end": sum(1 for s in sides for st in s.table.values() if st == P_PREPARED),
        }
