"""Which transaction a report's swimlane shows, and its events replayed from
the run when the result kept no trace."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sim.compare import worst_transaction
from sim.dataset import Dataset
from sim.errors import SagasimError
from sim.metrics import events_frame
from sim.report.cells import _reasons_text
from sim.world.trace import TraceEvent


@dataclass(frozen=True)
class Choice:
    """The transaction the swimlane shows, and why it was chosen."""

    row: pd.Series | None
    why: str
    named: bool = False


def pick_transaction(dataset: Dataset, txn: str | None = None) -> Choice:
    """The transaction to draw: ``txn`` when given (``TXN_ID`` for a dataset
    of one run, else ``RUN_ID:TXN_ID``), else the worst one as
    :func:`sim.compare.worst_transaction` ranks them (inconsistent with the
    most reasons, else the oldest stuck), else the first compensated one,
    else the first transaction that needed a retry, else the first one.
    """
    txns = dataset.transactions
    runs = list(dict.fromkeys(txns["run_id"])) if len(txns) else [e["run_id"] for e in dataset.meta.get("runs", [])]
    if txn is not None:
        return Choice(_named_transaction(txns, runs, str(txn)), f"chosen with --txn {txn}", named=True)
    if txns.empty:
        return Choice(None, "no transactions")
    worst = worst_transaction(txns)
    if worst is not None:
        reasons = _reasons_text(worst.get("reasons"))
        why = f"the worst transaction: {worst['outcome']}"
        if reasons:
            why += f" ({reasons})"
        return Choice(worst, why)
    for label, mask in (
        (
            "the first compensated transaction that undid an effect (none is inconsistent or stuck)",
            (txns["outcome"] == "compensated") & (txns["compensations_applied"] > 0),
        ),
        (
            "the first compensated or aborted transaction (none is inconsistent or stuck)",
            txns["outcome"].isin(["compensated", "aborted"]),
        ),
        ("the first transaction that needed a retry (every one committed)", txns["retries"] > 0),
        ("the first transaction (every one committed without a retry)", pd.Series(True, index=txns.index)),
    ):
        found = txns[mask]
        if len(found):
            first = found.sort_values(["started_at", "txn_id"], kind="stable").iloc[0]
            return Choice(first, label)
    return Choice(None, "no transactions")


def _named_transaction(txns: pd.DataFrame, runs: list[str], text: str) -> pd.Series:
    spelling = "TXN_ID" if len(runs) == 1 else "RUN_ID:TXN_ID"
    shown = ", ".join(runs[:6]) + (f" (and {len(runs) - 6} more)" if len(runs) > 6 else "")
    run, sep, number = text.rpartition(":")
    if not sep:
        if len(runs) != 1:
            raise SagasimError(
                f"--txn {text!r}: this dataset holds {len(runs)} runs; spell it RUN_ID:TXN_ID with a run among {shown}"
            )
        run = runs[0]
    if run not in runs:
        raise SagasimError(f"--txn {text!r}: no run {run!r}; runs: {shown}")
    if not (number.isascii() and number.isdigit()):
        example = "0" if spelling == "TXN_ID" else f"{run}:0"
        raise SagasimError(f"--txn {text!r}: {number!r} is not a transaction id; expected {spelling}, e.g. {example}")
    of_run = txns[txns["run_id"] == run]
    hit = of_run[of_run["txn_id"] == int(number)]
    if hit.empty:
        ids = of_run["txn_id"]
        known = f"{int(ids.min())}..{int(ids.max())}" if len(ids) else "none"
        raise SagasimError(f"--txn {text!r}: run {run} has no transaction {int(number)}; its ids: {known}")
    return hit.iloc[0]


def replay_events(dataset: Dataset, run_id: str, txn_id: int, until: float | None = None) -> pd.DataFrame:
    """The trace of one transaction (and the node events of its run: crashes,
    restarts, faults) from a replay of its run with tracing on.

    Runs are deterministic, so the replay is the transaction that was
    recorded. Only these events are kept, so a long run fits in memory; the
    replay stops at ``until`` (default: the end of the run).
    """
    from sim.runner import Model

    entry = dataset.run(run_id)
    model = Model(dataset.scenario_for(run_id), str(entry["protocol"]), int(entry["seed"]), trace=True)
    model.world.tracer.events = _OneTransaction(txn_id)  # type: ignore[assignment]
    model.world.run(until=model.end if until is None else min(until, model.end))
    frame = events_frame(list(model.world.tracer.events))
    frame.insert(0, "run_id", run_id)
    return frame


class _OneTransaction(list):  # type: ignore[type-arg]
    """A trace list that keeps the events of one transaction and those of no
    transaction (txn_id None: crashes, faults). The tracer only ever appends."""

    def __init__(self, txn_id: int) -> None:
        super().__init__()
        self.txn_id = txn_id

    def append(self, event: TraceEvent) -> None:
        if event.txn_id == self.txn_id or event.txn_id is None:
            super().append(event)
