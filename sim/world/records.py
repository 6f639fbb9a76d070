"""Records with values: what participants hold under the keys of ``[workload.keys]``.

Off unless a scenario declares ``[isolation]`` (``docs/isolation.md``): then
each participant named in ``[isolation.records]`` holds one record per key
(an account balance, a stock count), created with its initial value the
first time it is touched. A step declared in ``[isolation.steps]`` reads and
writes the records of the keys it touches when its participant applies it
(:meth:`Records.forward`), and its compensation undoes that by delta or by
value (:meth:`Records.compensate`). Every read and write is appended to
``history`` with the value and the version of the record (a record's version
counts its writes), so the isolation checker (:mod:`sim.isolation`) sees the
whole history.

The countermeasures that act at the participant live here too:

* ``semantic-lock``: a step's writes mark its records *pending* until its
  saga ends (its last step applied, or the step compensated); another saga's
  step meeting a pending record waits for it (:meth:`Records.gate`) or is refused;
* ``commutative-updates``: compensations by delta, whatever the step declares;
* ``reread-value``: a step re-reads the records its saga read before and is
  refused (the saga aborts) if one changed since; a compensation by value
  that finds the record changed since its step undoes by delta instead (an
  undo cannot abort: its saga is aborting already);
* ``version-file``: the participant records, per step of a transaction, the
  operations it received (:attr:`Records.version_file`), so that they
  commute: a compensation that finds nothing applied to undo (its step not
  arrived yet, or undone already) applies nothing, and the step arriving
  after it is skipped (:meth:`Records.skips`); a compensation undoes its
  step as if it had never been applied, the operations recorded since kept
  (a restore by value becomes the step's delta: another saga's write in
  between is not overwritten).

This module knows no protocol: each protocol's participant side calls it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sim.world.effects import COMPENSATE, FORWARD, EffectLog

if TYPE_CHECKING:
    from sim.scenario import IsolationSpec, StepOpSpec, StepSpec
    from sim.world.core import World
    from sim.world.participant import Participant
    from sim.world.workload import TxnKeys

#: Kinds of access in the history.
READ = 0
WRITE = 1

#: What :meth:`Records.gate` answers.
GO = 0
WAIT = 1
REFUSE = 2


class Access(NamedTuple):
    """One read or write of a record (an entry of :attr:`Records.history`)."""

    time: float
    txn: int
    step: int
    #: FORWARD (the step) or COMPENSATE (its compensation)
    op: int
    participant: str
    key: int
    #: READ or WRITE
    kind: int
    value: float
    #: a read: the version seen; a write: the version it made
    version: int
    #: a write: the version its value was computed from (a compensation by
    #: value: the version its step saw; else the version it replaced); a read: its version
    based_on: int
    #: a read after which the step was refused (it acted on nothing)
    refused: bool


class Recorded(NamedTuple):
    """One operation in a participant's version file (:attr:`Records.version_file`)."""

    time: float
    #: FORWARD (the step) or COMPENSATE (its compensation)
    op: int
    #: whether it took effect: a step applied (not refused, not skipped; a
    #: read too), a compensation that had an application to undo
    applied: bool


class _Undo(NamedTuple):
    """What a step wrote to one record, for its compensation."""

    key: int
    value_before: float
    version_before: int
    version_written: int
    delta: float


class Cell:
    """One record's current state: its ``value`` and ``version`` (writes so far)."""

    __slots__ = ("value", "version")

    def __init__(self, value: float) -> None:
        self.value = value
        self.version = 0


class _Waiter:
    """A step waiting for a pending record (semantic lock, ``pending = "wait"``)."""

    __slots__ = ("node", "epoch", "resume", "job", "since", "txn", "step", "key", "done")

    def __init__(
        self, node: Participant, resume: Callable[[Any], None], job: Any, txn: int, step: int, key: Any
    ) -> None:
        self.node = node
        self.epoch = node.epoch
        self.resume = resume
        self.job = job
        self.since = node.world.env._now
        self.txn = txn
        self.step = step
        self.key = key
        self.done = False


class Records:
    """Every participant's records, their history and the countermeasures."""

    def __init__(self, world: World, spec: IsolationSpec, steps: Sequence[StepSpec], keys: TxnKeys) -> None:
        self.world = world
        self.spec = spec
        self.keys = keys
        self.initial = {name: r.initial for name, r in spec.records.items()}
        index = {s.name: i for i, s in enumerate(steps)}
        self.names = [(s.name, s.compensation or f"undo of {s.name}") for s in steps]
        self.ops = [spec.steps.get(s.name) for s in steps]
        self.key_step = [index[op.keys_of] if op is not None and op.keys_of else i for i, op in enumerate(self.ops)]
        self.cm = [
            op.countermeasure if op is not None and op.countermeasure else spec.countermeasure for op in self.ops
        ]
        self.last = len(steps) - 1
        #: (participant, key) -> its current state
        self.values: dict[tuple[str, int], Cell] = {}
        #: every read and write, in the order they happened (:class:`Access`
        #: fields); a run judged as it goes puts in its place a history that
        #: keeps only what is still needed (:class:`sim.isolation.FollowedHistory`)
        self.history: list[tuple[Any, ...]] = []
        self._undo: dict[tuple[int, int], list[list[_Undo]]] = {}
        self._seen: dict[tuple[int, str, int], int] = {}
        self.pending: dict[tuple[str, int], int] = {}
        #: per transaction, its marked records and how many of its steps' writes on each are not undone
        self._marks: dict[int, dict[tuple[str, int], int]] = {}
        self._waiters: dict[tuple[str, int], deque[_Waiter]] = {}
        self._timed_out: set[tuple[int, int]] = set()
        #: version file: per (transaction, step) of a ``version-file`` step,
        #: the operations its participant received, in order
        self.version_file: dict[tuple[int, int], list[Recorded]] = {}
        #: per record, the version of its last absolute write (a ``set``, a
        #: restore by value): what a version file's undo cannot see through
        self._absolute: dict[tuple[str, int], int] = {}
        # counters (the summary's isolation_* columns)
        self.waits = 0
        self.wait_time = 0.0
        self.pending_refusals = 0
        self.pending_timeouts = 0
        self.reread_aborts = 0
        self.reread_fallbacks = 0
        self.check_refusals = 0
        self.version_ops = 0
        self.version_skips = 0
        self.version_nulls = 0
        self.version_rebased = 0
        world.effects = _ReleasingLog(world.effects, self)

    # ------------------------------------------------------------ helpers

    def declared(self, step: int) -> bool:
        """Whether ``step`` reads or writes records."""
        return self.ops[step] is not None

    def adds(self, step: int) -> bool:
        """Whether ``step`` adds to or sets its records (a credit), rather
        than taking from or reading them: what a reservation (TCC's Try)
        defers to its confirmation."""
        op = self.ops[step]
        return op is not None and op.op in ("add", "set")

    def _keys(self, txn: int, step: int) -> list[int]:
        by_step = self.keys.of(txn)
        return sorted(set(by_step[self.key_step[step]])) if by_step else []

    def _record(self, participant: str, key: int) -> Cell:
        rec = self.values.get((participant, key))
        if rec is None:
            rec = self.values[(participant, key)] = Cell(self.initial[participant])
        return rec

    def _log(self, txn: int, step: int, op: int, where: str, key: int, kind: int, value: float, version: int,
             based_on: int, refused: bool = False) -> None:  # fmt: skip
        now = self.world.env._now
        self.history.append((now, txn, step, op, where, key, kind, value, version, based_on, refused))
        tracer = self.world.tracer
        if tracer.on:
            what = "read" if kind == READ else "write"
            note = ", refused" if refused else f" from v{based_on}" if kind == WRITE and based_on != version - 1 else ""
            tracer.emit(now, where, what, txn, self.names[step][op], f"{where}[{key}] = {value:g} (v{version}{note})")

    # ------------------------------------------------------------ semantic lock

    def gate(self, node: Participant, txn: int, step: int, resume: Callable[[Any], None], job: Any) -> int:
        """May ``txn``'s ``step`` touch its records at ``node`` now? GO; WAIT:
        the caller frees its worker, and ``job`` is submitted to ``node``'s
        pool again (``resume(job)`` when a worker takes it, through
        ``node.after``: not if the node crashed meanwhile) when the record is
        released or after ``pending_timeout``; or REFUSE (a pending record and
        ``pending = "refuse"``, or the wait timed out)."""
        if self.ops[step] is None:
            return GO
        if (txn, step) in self._timed_out:
            self._timed_out.discard((txn, step))
            self.pending_timeouts += 1
            return REFUSE
        pending = self.pending
        for key in self._keys(txn, step):
            holder = pending.get((node.name, key))
            if holder is not None and holder != txn:
                if self.world.tracer.on:
                    self.world.tracer.emit(
                        self.world.now, node.name, "pending", txn, self.names[step][FORWARD],
                        f"{node.name}[{key}] pending for txn {holder}",
                    )  # fmt: skip
                if self.spec.pending == "refuse":
                    self.pending_refusals += 1
                    return REFUSE
                waiter = _Waiter(node, resume, job, txn, step, (node.name, key))
                self._waiters.setdefault((node.name, key), deque()).append(waiter)
                self.waits += 1
                self.world.at(self.spec.pending_timeout, self._expire, waiter)
                return WAIT
        return GO

    def _wake(self, waiter: _Waiter) -> None:
        waiter.done = True
        self.wait_time += self.world.env._now - waiter.since
        if waiter.node.epoch == waiter.epoch:  # (else the job was lost in a crash)
            waiter.node.after(0.0, self._resubmit, waiter)

    def _resubmit(self, waiter: _Waiter) -> None:
        waiter.node.pool.submit(waiter.job, waiter.resume)

    def _expire(self, waiter: _Waiter) -> None:
        if waiter.done:
            return
        if waiter.node.epoch == waiter.epoch:  # (a job lost in a crash leaves no refusal behind)
            self._timed_out.add((waiter.txn, waiter.step))
        self._waiters[waiter.key].remove(waiter)
        self._wake(waiter)

    def _unmark(self, txn: int, rec: tuple[str, int]) -> None:
        if self.pending.get(rec) == txn:
            del self.pending[rec]
            queue = self._waiters.pop(rec, None)
            while queue:
                self._wake(queue.popleft())

    def _undone(self, txn: int, recs: list[tuple[str, int]]) -> None:
        """A compensation of ``txn`` undid its writes on ``recs``: a record
        none of its other steps still holds a write on is no longer pending."""
        marks = self._marks.get(txn)
        if not marks:
            return
        for rec in recs:
            left = marks.get(rec, 0) - 1
            if left > 0:
                marks[rec] = left
            elif rec in marks:
                del marks[rec]
                self._unmark(txn, rec)
        if not marks:
            del self._marks[txn]

    def ended(self, txn: int) -> None:
        """``txn``'s last step was applied: its saga is over, its marks go."""
        marks = self._marks.pop(txn, None)
        for rec in marks or ():
            self._unmark(txn, rec)

    # ------------------------------------------------------------ operations

    def forward(self, where: str, txn: int, step: int) -> bool:
        """Apply ``step`` of ``txn`` to its records at ``where``; False when
        the step is refused (its check failed, a re-read found a change, or
        its version file holds its compensation already): nothing written then."""
        op = self.ops[step]
        if op is None:
            return True
        if self.cm[step] != "version-file":
            return self._forward(where, txn, step, op)
        if self.skips(txn, step):
            return False
        applied = self._forward(where, txn, step, op)
        self._file(txn, step, FORWARD, applied)
        return applied

    def _file(self, txn: int, step: int, op: int, applied: bool) -> None:
        """Record an operation in the version file."""
        self.version_ops += 1
        self.version_file.setdefault((txn, step), []).append(Recorded(self.world.env._now, op, applied))

    def skips(self, txn: int, step: int) -> bool:
        """Version file: whether this arrival of ``step`` of ``txn`` (at its
        participant) is not to be applied because its compensation was
        recorded before it (counted and recorded when so). The order is the order of arrival, so a
        compensation handled at the same instant just before its step counts
        as first. A saga never sends a step again once it compensates it:
        whatever arrives later was in flight or queued (or is a copy)."""
        if self.cm[step] != "version-file" or self.ops[step] is None:
            return False
        recorded = self.version_file.get((txn, step))
        if recorded is None or not any(r.op == COMPENSATE for r in recorded):
            return False
        self.version_skips += 1
        self._file(txn, step, FORWARD, False)
        return True

    def _forward(self, where: str, txn: int, step: int, op: StepOpSpec) -> bool:
        keys = self._keys(txn, step)
        recs = [self._record(where, key) for key in keys]
        if self.cm[step] == "reread-value":
            for key, rec in zip(keys, recs, strict=True):
                seen = self._seen.get((txn, where, key))
                if seen is not None and seen != rec.version:
                    self._log(txn, step, FORWARD, where, key, READ, rec.value, rec.version, rec.version, True)
                    self.reread_aborts += 1
                    return False
        news = [_new_value(op.op, op.amount, rec.value) for rec in recs]
        refused = op.check_min is not None and any(new < op.check_min for new in news)
        if op.op == "read" or refused:
            for key, rec in zip(keys, recs, strict=True):
                self._log(txn, step, FORWARD, where, key, READ, rec.value, rec.version, rec.version, refused)
                self._seen[(txn, where, key)] = rec.version
            self.check_refusals += refused
            return not refused
        undo = []
        lock = self.cm[step] == "semantic-lock"
        for key, rec, new in zip(keys, recs, news, strict=True):
            before, version = rec.value, rec.version
            if op.check_min is not None:  # the check read the value: the step acts on it
                self._log(txn, step, FORWARD, where, key, READ, before, version, version)
            rec.value, rec.version = new, version + 1
            self._log(txn, step, FORWARD, where, key, WRITE, new, version + 1, version)
            self._seen[(txn, where, key)] = version + 1  # (it saw its own write)
            undo.append(_Undo(key, before, version, version + 1, new - before))
            if op.op == "set":
                self._absolute[(where, key)] = version + 1
            if lock:
                marks = self._marks.setdefault(txn, {})
                marks[(where, key)] = marks.get((where, key), 0) + 1
                self.pending.setdefault((where, key), txn)
        self._undo.setdefault((txn, step), []).append(undo)
        return True

    def compensate(self, where: str, txn: int, step: int) -> bool:
        """Undo the last application of ``step`` of ``txn`` at ``where`` (nothing
        if it wrote nothing), and release the records it marked pending.
        False when the compensation is to apply no effect at all: a
        ``version-file`` step with no application left to undo (a null
        compensation, recorded so that the step arriving later is skipped)."""
        cm = self.cm[step]
        if cm == "version-file" and self.ops[step] is not None:
            return self._compensate_filed(where, txn, step)
        op = self.ops[step]
        if op is None:
            return True  # (a step without records wrote nothing)
        by_value = op.compensation == "value" and cm != "commutative-updates"

        def restored(u: _Undo, rec: Cell) -> tuple[float, int]:
            if by_value and cm == "reread-value" and rec.version != u.version_written:
                self.reread_fallbacks += 1
                return rec.value - u.delta, rec.version
            if by_value:
                self._absolute[(where, u.key)] = rec.version + 1
                return u.value_before, u.version_before
            return rec.value - u.delta, rec.version

        self._undo_last(where, txn, step, restored)
        return True

    def _compensate_filed(self, where: str, txn: int, step: int) -> bool:
        """Version file: a compensation of ``step`` of ``txn``. The file says
        whether an application of the step is left to undo (applied and not
        yet compensated: a read that wrote nothing counts, its compensation
        is an effect); if none, it applies nothing (False). Else it undoes
        the step's last writes as if the step had never been applied, every
        operation recorded since kept: the record less the step's change,
        unless an absolute write (a ``set``, a restore by value) replaced the
        record after it, which the step no longer shows through. A restore by
        value whose record moved since its step is counted
        (``version_rebased``): by value it would have overwritten those writes."""
        filed = self.version_file.get((txn, step), ())
        live = sum(1 if r.op == FORWARD else -1 for r in filed if r.applied)
        self._file(txn, step, COMPENSATE, live > 0)
        if live <= 0:
            self.version_nulls += 1
            return False
        op = self.ops[step]
        assert op is not None
        by_value = op.compensation == "value"

        def rebased(u: _Undo, rec: Cell) -> tuple[float, int]:
            self.version_rebased += by_value and rec.version != u.version_written
            if self._absolute.get((where, u.key), -1) > u.version_written:
                return rec.value, rec.version  # (overwritten since: nothing of the step is left)
            return rec.value - u.delta, rec.version

        self._undo_last(where, txn, step, rebased)
        return True

    def _undo_last(self, where: str, txn: int, step: int, undone: Callable[[_Undo, Cell], tuple[float, int]]) -> None:
        """Write back the last application of ``step`` of ``txn`` at ``where``
        (nothing if it wrote nothing: a read), each record to the value
        ``undone(u, record)`` gives with the version it is based on, and
        release the records it marked pending."""
        applied = self._undo.get((txn, step))
        if not applied:
            return
        undo = applied.pop()
        for u in undo:
            rec = self._record(where, u.key)
            version = rec.version
            new, based = undone(u, rec)
            rec.value, rec.version = new, version + 1
            self._log(txn, step, COMPENSATE, where, u.key, WRITE, new, version + 1, based)
        self._undone(txn, [(where, u.key) for u in undo])

    def forget(self, txn: int, recs: Sequence[tuple[str, int]]) -> None:
        """Free what is kept for ``txn``, settled and judged (a run judged as
        it goes): no step or compensation of it can come any more. ``recs``:
        the records it accessed."""
        for step in range(self.last + 1):
            self._undo.pop((txn, step), None)
            self.version_file.pop((txn, step), None)
            self._timed_out.discard((txn, step))
        for where, key in recs:
            self._seen.pop((txn, where, key), None)
        self._marks.pop(txn, None)

    # ------------------------------------------------------------ end of run

    def drift(self) -> dict[str, float]:
        """Per participant with records, the sum of its records' values minus
        their initial sum (0 when the sum was conserved)."""
        out = dict.fromkeys(self.initial, 0.0)
        for (where, _key), rec in self.values.items():
            out[where] += rec.value - self.initial[where]
        return out

    def summary(self) -> dict[str, Any]:
        """The run's isolation counters (the summary's ``isolation_*`` columns;
        the version file's only when a step uses it)."""
        out: dict[str, Any] = {
            "isolation_waits": self.waits,
            "isolation_wait_time": self.wait_time,
            "isolation_pending_refusals": self.pending_refusals,
            "isolation_pending_timeouts": self.pending_timeouts,
            "isolation_reread_aborts": self.reread_aborts,
            "isolation_reread_fallbacks": self.reread_fallbacks,
            "isolation_check_refusals": self.check_refusals,
        }
        if "version-file" in self.cm:  # (only then: the summaries of the other countermeasures stay as they were)
            out["isolation_version_ops"] = self.version_ops
            out["isolation_version_skips"] = self.version_skips
            out["isolation_version_nulls"] = self.version_nulls
            out["isolation_version_rebased"] = self.version_rebased
        return out


def _new_value(op: str, amount: float, value: float) -> float:
    if op == "add":
        return value + amount
    if op == "subtract":
        return value - amount
    if op == "set":
        return amount
    return value  # read


class _ReleasingLog(EffectLog):
    """The effect log of a run with records: a transaction's last step
    applied ends its saga, which releases its semantic locks."""

    __slots__ = ("records",)

    def __init__(self, log: EffectLog, records: Records) -> None:
        super().__init__()
        self.by_txn = log.by_txn
        self.records = records

    def apply(self, time: float, txn: int, step: int, op: int, participant: str) -> None:
        self.by_txn[txn].append((time, step, op, participant))
        if op == FORWARD and step == self.records.last:
            self.records.ended(txn)
