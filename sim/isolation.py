"""The isolation checker: anomalies between concurrent sagas, from the history
of reads and writes of every record (:mod:`sim.world.records`).

Like Jepsen's Elle it judges a history, never what a coordinator believes,
and names each anomaly with the two or three operations that show it (its
witness). Per record (a participant's key), in the order the accesses happened:

* ``lost_update``: a write computed from an older version than the one it
  replaced (a compensation by value restores what its step saw) while another
  transaction wrote in between: that transaction's write is gone. Flagged on
  the transaction that overwrote.
* ``dirty_read``: a step read (a read, or the check of a write) a value
  holding another transaction's write that was compensated after the read,
  and its transaction then acted on it (it went through to its last step, or
  wrote after the read): it acted on a value that, in the end, never was.
  Flagged on the reader.
* ``fuzzy_read``: a transaction read a record it had seen before at another
  version, another transaction having written it in between (a
  non-repeatable read). Flagged on the reader.
* ``invariant``: a write left a record below its ``min`` ("never below",
  checked on every write). Flagged on the writer.

A refused step's reads (a failed check, a re-read that found a change) acted
on nothing: they make no anomaly. The "constant sum" invariant (``conserved``)
is judged once every transaction is done, per participant, and counted in the
summary (``invariant_end_violations``): it belongs to no single transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from typing import TYPE_CHECKING, NamedTuple

from sim.world.effects import COMPENSATE, FORWARD
from sim.world.records import READ, Access

if TYPE_CHECKING:
    from sim.scenario import IsolationSpec, StepSpec

#: Isolation anomaly codes, in the order the summary lists them.
ISOLATION_ANOMALIES: tuple[str, ...] = ("lost_update", "dirty_read", "fuzzy_read", "invariant")


class Found(NamedTuple):
    """One anomaly of one transaction: its code, the other transaction and the witness in words."""

    code: str
    other: int | None
    reason: str


class IsolationChecker:
    """Finds isolation anomalies in a run's history of record accesses."""

    def __init__(self, spec: IsolationSpec, steps: Sequence[StepSpec]) -> None:
        self.spec = spec
        self.names = [(s.name, s.compensation or f"undo of {s.name}") for s in steps]

    def _op(self, access: Access) -> str:
        return self.names[access.step][0 if access.op == FORWARD else 1]

    def check(self, history: Sequence[tuple[object, ...]], ended: Set[int] | None = None) -> dict[int, list[Found]]:
        """Every anomaly of the history, per transaction (first found first).
        ``ended``: the transactions that went through to their last step (a
        dirty read counts when its reader then acted on it: it ended so, or
        wrote after the read); ``None``: every transaction did."""
        found: dict[int, list[Found]] = {}
        by_record: dict[tuple[str, int], list[Access]] = {}
        at: dict[tuple[str, int], list[int]] = {}
        last_write: dict[int, int] = {}  # txn -> its last forward write's place in the history
        for i, raw in enumerate(history):
            access = Access._make(raw)
            by_record.setdefault((access.participant, access.key), []).append(access)
            at.setdefault((access.participant, access.key), []).append(i)
            if access.kind != READ and access.op == FORWARD:
                last_write[access.txn] = i

        def acted(txn: int, i: int) -> bool:
            return ended is None or txn in ended or last_write.get(txn, -1) > i

        for (where, key), accesses in by_record.items():
            self._record(f"{where}[{key}]", self.spec.records[where].min, accesses, at[(where, key)], acted, found)
        return found

    def _record(
        self,
        rec: str,
        floor: float | None,
        accesses: list[Access],
        at: list[int],
        acted: Callable[[int, int], bool],
        found: dict[int, list[Found]],
    ) -> None:
        """The anomalies on one record, from its accesses in order (``at``:
        their places in the whole history)."""
        writer: dict[int, Access] = {}  # version -> the write that made it
        undone_at: dict[tuple[int, int], int] = {}  # (txn, step) -> position of its last compensation here
        for pos, a in enumerate(accesses):
            if a.kind != READ and a.op == COMPENSATE:
                undone_at[(a.txn, a.step)] = pos
        seen: dict[int, Access] = {}  # txn -> its last forward read here

        def flag(txn: int, code: str, other: int | None, reason: str) -> None:
            found.setdefault(txn, []).append(Found(code, other, f"{code} on {rec}: {reason}"))

        # the forward writes applied and not yet undone that will be undone later
        doomed: dict[tuple[int, int], Access] = {}
        for pos, a in enumerate(accesses):
            if a.kind != READ:
                writer[a.version] = a
                if a.op == FORWARD and undone_at.get((a.txn, a.step), -1) > pos:
                    doomed[(a.txn, a.step)] = a
                elif a.op == COMPENSATE:
                    doomed.pop((a.txn, a.step), None)
                self._lost(a, writer, flag)
                if floor is not None and a.value < floor:
                    flag(
                        a.txn, "invariant", None, f"txn {a.txn} {self._op(a)} wrote {a.value:g} (never below {floor:g})"
                    )
                continue
            if a.op != FORWARD or a.refused:
                continue
            for source in doomed.values():
                if source.txn != a.txn and acted(a.txn, at[pos]):
                    # the value read holds a write that is later undone
                    flag(
                        a.txn, "dirty_read", source.txn,
                        f"txn {source.txn} {self._op(source)} wrote v{source.version}, txn {a.txn} {self._op(a)} "
                        f"read v{a.version}, then txn {source.txn} compensated it",
                    )  # fmt: skip
                    break
            before = seen.get(a.txn)
            if before is not None:
                self._fuzzy(a, before, writer, flag)
            seen[a.txn] = a

    def _lost(self, w: Access, writer: dict[int, Access], flag: object) -> None:
        """A write computed from an older version than the one it replaced."""
        for version in range(w.based_on + 1, w.version):
            other = writer.get(version)
            if other is not None and other.txn != w.txn:
                flag(  # type: ignore[operator]
                    w.txn, "lost_update", other.txn,
                    f"txn {w.txn} saw v{w.based_on}, txn {other.txn} {self._op(other)} wrote v{version}, "
                    f"txn {w.txn} {self._op(w)} wrote v{w.version} from v{w.based_on}: txn {other.txn}'s write is lost",
                )  # fmt: skip
                return

    def _fuzzy(self, a: Access, before: Access, writer: dict[int, Access], flag: object) -> None:
        """A read of a version other than the one the transaction last saw here, another having written between."""
        last = before.version
        for version in range(last + 1, a.version + 1):
            other = writer.get(version)
            if other is not None and other.txn != a.txn:
                flag(  # type: ignore[operator]
                    a.txn, "fuzzy_read", other.txn,
                    f"txn {a.txn} {self._op(before)} saw v{last}, txn {other.txn} {self._op(other)} wrote v{version}, "
                    f"txn {a.txn} {self._op(a)} read v{a.version}",
                )  # fmt: skip
                return


def end_violations(spec: IsolationSpec, drift: dict[str, float]) -> list[str]:
    """The "constant sum" invariants broken once every transaction is done, in words."""
    return [
        f"the sum of {name}'s records moved by {drift[name]:+g} (constant sum)"
        for name, rec in spec.records.items()
        if rec.conserved and abs(drift[name]) > 1e-9
    ]


class _Followed:
    """One record's part of a history judged as it goes: the accesses still
    needed, as (place in the whole history, access), and who still counts."""

    __slots__ = ("name", "floor", "ordinal", "accesses", "first", "writers")

    def __init__(self, name: str, floor: float | None, ordinal: int) -> None:
        self.name = name
        self.floor = floor
        #: the record's place in the order of first accesses: the order the
        #: end-of-run check lists a transaction's anomalies in, record by record
        self.ordinal = ordinal
        self.accesses: list[tuple[int, Access]] = []
        #: transaction not yet judged -> its first access here
        self.first: dict[int, int] = {}
        #: transaction not yet settled -> its first write here
        self.writers: dict[int, int] = {}


class FollowedHistory:
    """The history of a run judged as it goes (``sagasim run --stream``): it
    takes the place of :attr:`sim.world.records.Records.history` (it has its
    ``append``), keeps per record only the accesses that a transaction not yet
    judged can still need, and judges transactions once their anomalies are
    final, with exactly the ``Found`` lists, in the same order, of
    :meth:`IsolationChecker.check` on the whole history.

    **When a transaction's anomalies are final.** Every anomaly is flagged on
    the transaction whose access shows it, from that access and what came
    before it on the same record, with one exception:

    * ``lost_update`` (a write against the writers of the versions between the
      one it was based on and the one it made), ``fuzzy_read`` (a read against
      the writers since the transaction's previous read) and ``invariant``
      (the value written) look only at the past: final when made;
    * ``dirty_read`` looks at the future: the read holds a write that is
      compensated *later*, by any transaction whose forward write on that
      record was applied before the read and not undone yet, and its reader
      "acted" (ended, or wrote after the read), which the reader's own future says.

    So a transaction T is final when T is settled (nothing of it can change:
    :mod:`sim.world.settle`) and, on every record T accessed, every
    transaction that wrote the record before T's last access to it is settled
    too: no compensation that would make one of T's reads dirty can come any
    more. (Conservative: it waits for writers whose writes were undone
    already, or never read.) A writer that never settles (stuck) keeps the
    readers after it waiting until the end of the run, where every
    transaction is final.

    **What is kept.** On a record, the accesses from the first access of the
    earliest transaction not yet judged: every version and every read those
    transactions' checks look at lies there (a write's base and a read's
    previous version are versions T saw, made at or after T's first access).
    Of the earlier accesses, only the forward writes not undone yet whose
    compensation comes later on the record (they make a later read dirty),
    which are all by judged transactions. Per transaction, its records and
    its last forward write, until it is judged.
    """

    def __init__(self, checker: IsolationChecker) -> None:
        self.checker = checker
        #: accesses appended so far: the next access's place in the whole history
        self.count = 0
        self.records: dict[tuple[str, int], _Followed] = {}
        #: transaction not yet judged -> record -> the place of its last access there
        self.touched: dict[int, dict[tuple[str, int], int]] = {}
        #: transaction not yet judged -> its last forward write's place (see ``IsolationChecker.check``)
        self.last_write: dict[int, int] = {}
        #: settled, not yet judged
        self.settled: set[int] = set()
        # settled transactions to look at again (:meth:`ready`), and those
        # waiting, by the writer not settled that holds them back
        self._look: list[int] = []
        self._blocked: dict[int, list[int]] = {}

    def append(self, raw: tuple[object, ...]) -> None:
        """One more access (the fields of :class:`Access`), as the history takes it."""
        access = Access._make(raw)
        place = self.count
        self.count = place + 1
        where = (access.participant, access.key)
        rec = self.records.get(where)
        if rec is None:
            spec = self.checker.spec.records[access.participant]
            rec = self.records[where] = _Followed(f"{access.participant}[{access.key}]", spec.min, len(self.records))
        rec.accesses.append((place, access))
        txn = access.txn
        rec.first.setdefault(txn, place)
        self.touched.setdefault(txn, {})[where] = place
        if access.kind != READ:
            rec.writers.setdefault(txn, place)
            if access.op == FORWARD:
                self.last_write[txn] = place

    def __len__(self) -> int:
        """Accesses kept, over every record."""
        return sum(len(rec.accesses) for rec in self.records.values())

    def settle(self, txn: int) -> None:
        """``txn`` is settled: none of its accesses can come any more. It and
        the settled transactions that waited for it are looked at again by
        :meth:`ready`."""
        self.settled.add(txn)
        records = self.records
        for where in self.touched.get(txn, ()):
            records[where].writers.pop(txn, None)
        self._look.append(txn)
        self._look.extend(self._blocked.pop(txn, ()))

    def _blocker(self, txn: int) -> int | None:
        """A transaction not settled that wrote a record ``txn`` accessed
        before ``txn``'s last access to it, if any (the rule above)."""
        records = self.records
        for where, last in self.touched.get(txn, {}).items():
            for writer, first in records[where].writers.items():
                # (places are distinct: a writer's first write is before T's last access or after it)
                if first < last:
                    return writer
        return None

    def final(self, txn: int) -> bool:
        """Whether ``txn``'s anomalies can no longer change (the rule above)."""
        return txn in self.settled and self._blocker(txn) is None

    def ready(self) -> list[int]:
        """The settled transactions whose anomalies became final since the
        last call, by id. One that is not waits for the writer that holds it
        back (it is looked at again when that one settles): a transaction
        held back until the end costs nothing per look."""
        found = []
        for txn in self._look:
            if txn not in self.settled:
                continue  # (judged already)
            blocker = self._blocker(txn)
            if blocker is None:
                found.append(txn)
            else:
                self._blocked.setdefault(blocker, []).append(txn)
        self._look = []
        return sorted(set(found))

    def judge(self, txns: Sequence[int], ended: Set[int]) -> dict[int, list[Found]]:
        """The anomalies of ``txns`` (each final, or the run is over), then
        forget them: their records keep only what the others still need.
        ``ended``: those of ``txns`` that went through to their last step."""
        batch = set(txns)
        last_write = self.last_write

        def acted(txn: int, i: int) -> bool:
            return txn in ended or last_write.get(txn, -1) > i

        records = self.records
        wheres = sorted({w for t in batch for w in self.touched.get(t, ())}, key=lambda w: records[w].ordinal)
        found: dict[int, list[Found]] = {}
        for where in wheres:
            rec = records[where]
            local: dict[int, list[Found]] = {}
            places = [place for place, _ in rec.accesses]
            accesses = [access for _, access in rec.accesses]
            self.checker._record(rec.name, rec.floor, accesses, places, acted, local)
            for txn, flagged in local.items():
                if txn in batch:
                    found.setdefault(txn, []).extend(flagged)
        for txn in batch:
            for where in self.touched.pop(txn, ()):
                records[where].first.pop(txn, None)
                records[where].writers.pop(txn, None)
            last_write.pop(txn, None)
            self.settled.discard(txn)
        for where in wheres:
            self._trim(records[where])
        return found

    def _trim(self, rec: _Followed) -> None:
        """Drop the accesses before the first access of every transaction not
        yet judged, but the forward writes not undone by then whose
        compensation comes after (a later read holding one is dirty)."""
        cut = min(rec.first.values(), default=self.count)
        accesses = rec.accesses
        live: dict[tuple[int, int], list[tuple[int, Access]]] = {}
        kept_from = len(accesses)
        for i, (place, a) in enumerate(accesses):
            if place >= cut:
                kept_from = i
                break
            if a.kind != READ:
                if a.op == FORWARD:
                    live.setdefault((a.txn, a.step), []).append((place, a))
                else:
                    live.pop((a.txn, a.step), None)
        if kept_from == 0:
            return  # (nothing before the cut)
        rest = accesses[kept_from:]
        undone_later = {(a.txn, a.step) for _, a in rest if a.kind != READ and a.op == COMPENSATE}
        doomed = sorted(item for key, items in live.items() if key in undone_later for item in items)
        rec.accesses = doomed + rest
