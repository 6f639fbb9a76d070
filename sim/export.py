"""``sagasim export``: a result's tables in formats other tools read.

- ``csv``: one CSV file per table (``transactions.csv``, ``summary.csv``,
  ``faults.csv``, and ``events.csv`` when traced) in a folder; list columns
  (``reasons``, ``anomalies``) as JSON arrays, nulls as empty cells.
- ``jsonl``: one file, one JSON object per row, each with a ``table`` field
  naming its table (rows of ``transactions`` first, then ``summary``,
  ``faults``, ``events``); nulls and NaN as ``null``.
- ``perfetto``: the Trace Event Format JSON that https://ui.perfetto.dev and
  chrome://tracing open: a process per run, a thread (track) per node, a
  complete span per transaction on its coordinator's track and per
  participant attempt (from a message's receipt to the node's next send),
  instant events for messages and faults; times in microseconds.
- ``jepsen``: a history in EDN, one op per step of each transaction:
  ``:invoke`` when the step was first asked for, then ``:ok`` (its effect was
  applied), ``:fail`` (refused or aborted) or ``:info`` (outcome unknown: it
  timed out, hung, or nothing came back); ``:process`` the transaction id,
  ``:f`` the step, ``:time`` in nanoseconds, ``:index`` the op's position.

``perfetto`` and ``jepsen`` need the trace (``sagasim run --trace``).
See docs/export.md.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.dataset import Dataset
from sim.errors import SagasimError
from sim.files import atomic_file
from sim.world.trace import IN, OUT

FORMATS: tuple[str, ...] = ("csv", "jsonl", "perfetto", "jepsen")
#: Formats that read the trace.
NEED_TRACE: frozenset[str] = frozenset({"perfetto", "jepsen"})
_SUFFIX = {"csv": "", "jsonl": ".jsonl", "perfetto": ".perfetto.json", "jepsen": ".edn"}
#: Trace event kinds that end a step for good (Jepsen ``:fail``).
_FAILED = frozenset({"refuse", "exhausted", "abort"})
#: Trace event kinds that leave a step's outcome unknown (Jepsen ``:info``).
_UNKNOWN = frozenset({"timeout", "hang", "error"})


@dataclass(frozen=True)
class Selection:
    """Transactions to export: ``(run_id or None, txn_id)`` pairs (empty: all),
    of one run when ``run`` is given."""

    pairs: tuple[tuple[str | None, int], ...] = ()
    run: str | None = None

    @classmethod
    def parse(cls, values: Iterable[str], run: str | None = None) -> Selection:
        """``TXN_ID`` (that id in every run) or ``RUN_ID:TXN_ID`` each; exit 2 on anything else."""
        pairs = []
        for value in values:
            owner, _, txn = str(value).rpartition(":")
            try:
                number = int(txn)
            except ValueError:
                raise SagasimError(
                    f"--txn {value!r}: {txn!r} is not a transaction id; expected TXN_ID or RUN_ID:TXN_ID, e.g. 0"
                ) from None
            pairs.append((owner or None, number))
        return cls(tuple(pairs), run)

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """Rows of ``frame`` (with ``txn_id`` and ``run_id``) of the chosen transactions."""
        in_run = frame["run_id"] == self.run if self.run is not None else pd.Series(True, index=frame.index)
        if not self.pairs:
            return in_run
        keep = pd.Series(False, index=frame.index)
        for run, txn in self.pairs:
            hit = frame["txn_id"] == txn
            if run is not None:
                hit &= frame["run_id"] == run
            keep |= hit.fillna(False).astype(bool)
        return keep & in_run


def default_out(dataset: Dataset, fmt: str) -> Path:
    """Beside the result: ``<folder>.<format>`` (a folder for csv)."""
    return dataset.path.parent / f"{dataset.path.name}-{fmt}{_SUFFIX[fmt]}"


def export(
    dataset: Dataset,
    fmt: str,
    out: Path | None = None,
    txns: Iterable[str] = (),
    *,
    run: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``dataset`` in ``fmt`` to ``out`` (default: :func:`default_out`); returns the path.

    Refuses (:class:`~sim.errors.SagasimError`) an unknown format, a format
    that needs the trace of an untraced result, an ``out`` that exists
    without ``overwrite`` (and, with it, a folder that is not a previous csv
    export), ``--txn`` values that match no transaction, an unknown ``run``,
    and (``jepsen``, whose processes are transaction ids) transactions of
    more than one run.
    """
    if fmt not in FORMATS:
        raise SagasimError(f"--format {fmt!r}: unknown; choose one of {', '.join(FORMATS)}")
    if fmt in NEED_TRACE and not dataset.traced:
        raise SagasimError(
            f"{dataset.path}: has no trace (events.parquet), which --format {fmt} needs; "
            "run it again with --trace (sagasim run ... --trace)"
        )
    selection = Selection.parse(txns, run)
    runs = list(dict.fromkeys(dataset.summary["run_id"]))
    if run is not None and run not in runs:
        raise SagasimError(f"--run {run!r}: no such run in {dataset.path}; runs include {', '.join(runs[:4])}")
    target = Path(out) if out is not None else default_out(dataset, fmt)
    _check_target(target, fmt, overwrite)
    tables = _tables(dataset, selection)
    if selection.pairs and tables["transactions"].empty:
        raise SagasimError(f"--txn {', '.join(map(str, txns))}: no such transaction in {dataset.path}")
    chosen = list(dict.fromkeys(tables["transactions"]["run_id"]))
    if fmt == "jepsen" and len(chosen) > 1:
        raise SagasimError(
            f"{dataset.path}: holds {len(chosen)} runs, and a Jepsen history is one run's (its processes are "
            f"transaction ids); choose one with --run, e.g. --run {chosen[0]}"
        )
    if fmt == "csv":
        target.mkdir(parents=True, exist_ok=True)
        for name, frame in tables.items():
            atomic_file(target / f"{name}.csv", lambda tmp, frame=frame: _write_csv(frame, tmp))
        return target
    writer = {"jsonl": _jsonl_text, "perfetto": _perfetto_text, "jepsen": _jepsen_text}[fmt]
    text = writer(dataset, tables)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_file(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return target


def _check_target(target: Path, fmt: str, overwrite: bool) -> None:
    """Never replace what the user owns: an existing target only with
    ``overwrite``, and a folder only when it holds nothing but CSV files."""
    if not target.exists():
        return
    if not overwrite:
        raise SagasimError(f"--out {target}: already exists; choose another path, or pass --overwrite to replace it")
    if fmt == "csv":
        if not target.is_dir():
            raise SagasimError(f"--out {target}: exists and is not a folder; will not replace it")
        others = [p.name for p in target.iterdir() if p.suffix != ".csv"]
        if others:
            raise SagasimError(
                f"--out {target}: holds {others[0]}, which is not an export's CSV file; will not write into it"
            )
    elif target.is_dir():
        raise SagasimError(f"--out {target}: is a folder; --format {fmt} writes one file")


def _tables(dataset: Dataset, selection: Selection) -> dict[str, pd.DataFrame]:
    txns = dataset.transactions
    tables = {"transactions": txns[selection.mask(txns)].reset_index(drop=True)}
    summary = dataset.summary
    if selection.pairs or selection.run is not None:
        summary = summary[summary["run_id"].isin(set(tables["transactions"]["run_id"]))]
    tables["summary"] = summary.reset_index(drop=True)
    faults = dataset.faults
    if (selection.pairs or selection.run is not None) and "run_id" in faults.columns:
        faults = faults[faults["run_id"].isin(set(tables["transactions"]["run_id"]))]
    tables["faults"] = faults.reset_index(drop=True)
    if dataset.traced:
        events = dataset.events
        if selection.pairs or selection.run is not None:
            runs = set(tables["transactions"]["run_id"])
            # The chosen transactions' events, and the events of no transaction (crashes, faults) of their runs.
            events = events[selection.mask(events) | (events["txn_id"].isna() & events["run_id"].isin(runs))]
        tables["events"] = events.reset_index(drop=True)
    return tables


# ---------------------------------------------------------------- csv, jsonl


def _cell(value: Any) -> Any:
    """A cell as plain JSON: lists stay lists, nulls and NaN become None, numpy scalars Python ones."""
    if isinstance(value, (list, tuple)):
        return [_cell(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):
        return _cell(value.tolist())
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def _rows(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    columns = list(frame.columns)
    for values in frame.itertuples(index=False, name=None):
        yield {c: _cell(v) for c, v in zip(columns, values, strict=True)}


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(frame.columns)
        for row in _rows(frame):
            writer.writerow(["" if v is None else json.dumps(v) if isinstance(v, list) else v for v in row.values()])


def _jsonl_text(_dataset: Dataset, tables: dict[str, pd.DataFrame]) -> str:
    lines = [
        json.dumps({"table": name, **row}, allow_nan=False) for name, frame in tables.items() for row in _rows(frame)
    ]
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------- perfetto


def _us(seconds: float) -> float:
    return round(float(seconds) * 1e6, 3)


def _perfetto_text(_dataset: Dataset, tables: dict[str, pd.DataFrame]) -> str:
    events = tables["events"]
    out: list[dict[str, Any]] = []
    for pid, (run_id, run_events) in enumerate(events.groupby("run_id", sort=False), start=1):
        tids = {node: tid for tid, node in enumerate(dict.fromkeys(run_events["node"]), start=1)}
        out.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": str(run_id)}})
        out += [{"ph": "M", "name": "thread_name", "pid": pid, "tid": t, "args": {"name": n}} for n, t in tids.items()]
        txns = tables["transactions"]
        out += _transaction_spans(txns[txns["run_id"] == run_id], run_events, pid, tids)
        out += _attempt_spans(run_events, pid, tids)
        out += _instants(run_events, pid, tids)
        faults = tables["faults"]
        out += _fault_instants(faults[faults["run_id"] == run_id] if "run_id" in faults else faults, pid, tids)
    return json.dumps({"traceEvents": out, "displayTimeUnit": "ms"}, allow_nan=False)


def _transaction_spans(
    txns: pd.DataFrame, events: pd.DataFrame, pid: int, tids: dict[str, int]
) -> list[dict[str, Any]]:
    """A span per transaction on the track of the node that began it (its coordinator)."""
    begins = events[events["kind"].isin(["begin", "publish"])].drop_duplicates("txn_id")
    first = dict(zip(begins["txn_id"], begins["node"], strict=True))
    end = float(events["time"].max())
    out = []
    for row in txns.itertuples(index=False):
        node = first.get(row.txn_id)
        if node is None:
            continue
        finished = row.finished_at if row.finished_at == row.finished_at else end
        out.append(
            {
                "ph": "X", "name": f"txn {row.txn_id}", "cat": "transaction", "pid": pid, "tid": tids[node],
                "ts": _us(row.started_at), "dur": _us(finished - row.started_at),
                "args": {"txn_id": int(row.txn_id), "outcome": row.outcome, "coordinator": row.coordinator},
            }
        )  # fmt: skip
    return out


def _attempt_spans(events: pd.DataFrame, pid: int, tids: dict[str, int]) -> list[dict[str, Any]]:
    """A span per participant attempt: from a request's receipt to the
    node's next send for the same transaction (its reply or vote), or to its
    last event of the transaction when it sent nothing back (hung, crashed)."""
    out = []
    mine = events[events["txn_id"].notna() & events["direction"].notna()]
    for (node, txn), group in mine.groupby(["node", "txn_id"], sort=False):
        opened: Any = None
        for row in group.itertuples(index=False):
            if row.direction == IN and row.message in ("req", "prep") and opened is None:
                opened = row
            elif row.direction == OUT and opened is not None:
                out.append(_span(opened, row.time, pid, tids[str(node)], int(txn)))
                opened = None
        if opened is not None:
            out.append(_span(opened, float(group["time"].iloc[-1]), pid, tids[str(node)], int(txn)))
    return out


def _span(opened: Any, end: float, pid: int, tid: int, txn: int) -> dict[str, Any]:
    step = "" if pd.isna(opened.step) else str(opened.step)
    return {
        "ph": "X", "name": f"{step or opened.message} (txn {txn})", "cat": "attempt", "pid": pid, "tid": tid,
        "ts": _us(opened.time), "dur": _us(end - opened.time), "args": {"txn_id": txn, "step": step},
    }  # fmt: skip


def _instants(events: pd.DataFrame, pid: int, tids: dict[str, int]) -> list[dict[str, Any]]:
    """An instant per message end (sent, received, dropped, duplicated) and per node fault event."""
    out = []
    messages = events[events["message"].notna() | events["kind"].isin(["crash", "restart", "pause", "resume"])]
    for row in messages.itertuples(index=False):
        args = {k: _cell(getattr(row, k)) for k in ("txn_id", "step", "peer", "message", "direction", "attempt")}
        name = f"{row.kind} {row.message}" if not pd.isna(row.message) else str(row.kind)
        out.append(
            {
                "ph": "i", "s": "t", "name": name, "cat": "message" if args["message"] else "fault",
                "pid": pid, "tid": tids[str(row.node)], "ts": _us(row.time), "args": args | {"detail": row.detail},
            }
        )  # fmt: skip
    return out


def _fault_instants(faults: pd.DataFrame, pid: int, tids: dict[str, int]) -> list[dict[str, Any]]:
    """An instant at the start and at the end of each injected fault, on its
    target's track (process-wide when it targets no single node)."""
    out = []
    for row in faults.itertuples(index=False):
        tid = tids.get(str(row.target))
        for edge, t in (("start", row.start), ("end", row.end)):
            if t != t or math.isinf(float(t)):
                continue
            event = {"ph": "i", "name": f"fault {row.kind} {edge}", "cat": "fault", "pid": pid, "ts": _us(t)}
            event |= {"s": "t", "tid": tid} if tid is not None else {"s": "p", "tid": 0}
            event["args"] = {"kind": str(row.kind), "target": str(row.target), "source": str(row.source)}
            out.append(event)
    return out


# ---------------------------------------------------------------- jepsen


@dataclass(frozen=True)
class Op:
    """One op of the history."""

    type: str
    f: str
    process: int
    time: int
    run: str


def history(dataset: Dataset, tables: dict[str, pd.DataFrame]) -> list[Op]:
    """The ops, two per step each transaction asked for, in time order."""
    ops: list[Op] = []
    events = tables["events"]
    for run_id, run_events in events[events["txn_id"].notna() & events["step"].notna()].groupby("run_id", sort=False):
        steps = _step_names(dataset, str(run_id))
        for txn, group in run_events.groupby("txn_id", sort=False):
            for step, mine in group.groupby("step", sort=False):
                if step in steps:
                    ops += _step_ops(mine, str(step), int(txn), str(run_id))
    ops.sort(key=lambda op: (op.time, op.run, op.process, op.type != "invoke"))
    return ops


def _step_names(dataset: Dataset, run_id: str) -> set[str]:
    scenario = dataset.scenario_for(run_id)
    spec = scenario.transactions[scenario.workload.transaction]
    return {name for s in spec.steps for name in (s.name, s.compensation) if name}


def _step_ops(mine: pd.DataFrame, step: str, txn: int, run: str) -> list[Op]:
    """``:invoke`` at the step's first event; ``:ok`` at its first applied
    effect (effects are the truth, whatever the coordinator heard), else
    ``:fail`` at a refusal or abort, else ``:info`` at its last event."""

    def ns(t: float) -> int:
        return round(float(t) * 1e9)

    start = ns(mine["time"].iloc[0])
    applied = mine[mine["kind"].isin(["effect", "commit", "null-compensation"])]
    failed = mine[mine["kind"].isin(_FAILED)]
    if len(applied):
        end = Op("ok", step, txn, ns(applied["time"].iloc[0]), run)
    elif len(failed):
        end = Op("fail", step, txn, ns(failed["time"].iloc[0]), run)
    else:
        end = Op("info", step, txn, ns(mine["time"].iloc[-1]), run)
    return [Op("invoke", step, txn, start, run), end]


def _edn_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _jepsen_text(dataset: Dataset, tables: dict[str, pd.DataFrame]) -> str:
    lines = []
    for index, op in enumerate(history(dataset, tables)):
        lines.append(
            f"{{:type :{op.type}, :f :{op.f}, :value nil, :process {op.process}, :time {op.time}, "
            f":index {index}, :run {_edn_string(op.run)}}}"
        )
    return "[" + "\n ".join(lines) + "]\n"
