"""What a named message record costs against a plain tuple (``docs/architecture.md``,
"Messages and records"): building one, reading a field, unpacking it, and a
message's whole life on the hot path (built, held in an event entry, six
fields read, freed), for a plain tuple, a ``typing.NamedTuple`` built by its
class or with ``tuple.__new__``, and a ``__slots__`` class. Best of 7, in
nanoseconds per operation; run it on an idle core:

    python benchmarks/records.py
"""

from __future__ import annotations

import timeit

from sim.world.messages import Request

#: the saga's request: the record measured
Record = Request


class Slotted:
    __slots__ = ("kind", "src", "txn", "step", "op", "key", "token")

    def __init__(self, kind: str, src: str, txn: int, step: int, op: int, key: int | None, token: int) -> None:
        self.kind = kind
        self.src = src
        self.txn = txn
        self.step = step
        self.op = op
        self.key = key
        self.token = token


FIELDS = "'req', name, txn, step, op, key, token"
NAMES = {
    "Record": Record,
    "Slotted": Slotted,
    "new": tuple.__new__,
    "name": "orchestrator",
    "txn": 5,
    "step": 1,
    "op": 0,
    "key": 9,
    "token": 3,
    "t": ("req", "a", 5, 1, 0, 9, 3),
    "r": Record("req", "a", 5, 1, 0, 9, 3),
    "s": Slotted("req", "a", 5, 1, 0, 9, 3),
}

SINGLE = [
    ("build: tuple literal", f"({FIELDS})"),
    ("build: Record(...)", f"Record({FIELDS})"),
    ("build: tuple.__new__(Record, (...))", f"new(Record, ({FIELDS}))"),
    ("build: Record._make((...))", f"Record._make(({FIELDS}))"),
    ("build: Slotted(...)", f"Slotted({FIELDS})"),
    ("read: tuple[2]", "t[2]"),
    ("read: record[2]", "r[2]"),
    ("read: record.txn", "r.txn"),
    ("read: slotted.txn", "s.txn"),
    ("unpack 7: tuple", "_, a, b, c, d, e, f = t"),
    ("unpack 7: record", "_, a, b, c, d, e, f = r"),
]

LIFE = [
    ("life: plain tuple, index reads", f"({FIELDS})", "m[2]; m[3]; m[4]; m[5]; m[6]; m[1]"),
    ("life: record by tuple.__new__, names", f"new(Record, ({FIELDS}))", "m.txn; m.step; m.op; m.key; m.token; m.src"),
    ("life: record by its class, names", f"Record({FIELDS})", "m.txn; m.step; m.op; m.key; m.token; m.src"),
    ("life: slotted class, names", f"Slotted({FIELDS})", "m.txn; m.step; m.op; m.key; m.token; m.src"),
]


def best(stmt: str, number: int) -> float:
    """Best of 7 timings of ``number`` runs of ``stmt``, in ns per run."""
    return min(timeit.repeat(stmt, globals=NAMES, number=number, repeat=7)) / number * 1e9


def main() -> None:
    for label, stmt in SINGLE:
        print(f"{label:42s} {best(stmt, 1_000_000):7.1f} ns")
    for label, build, reads in LIFE:
        # 1,000 messages per run, each in an event-like entry (time, priority, id, message)
        stmt = f"for i in range(1000):\n    e = (0.1, 1, i, {build})\n    m = e[3]\n    {reads}"
        print(f"{label:42s} {best(stmt, 200) / 1000:7.1f} ns")


if __name__ == "__main__":
    main()
