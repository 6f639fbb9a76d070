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
