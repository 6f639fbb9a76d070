"""Long runs in constant memory: judge each transaction once it is settled,
write its row to Parquet as the run goes, and forget it.

A run here produces exactly the tables of :meth:`sim.runner.Model.run` (the
rows in the order the transactions were judged, not by id), but memory grows
with the transactions in flight, not with the run:

* a transaction is judged as soon as it is *settled* (its coordinator is done
  and no work for it is pending: :mod:`sim.world.settle`), by the same
  :meth:`~sim.runner.Model.judge` the end-of-run path uses, and its records
  are freed (its effects, the protocol's record, the participants'
  idempotency entries). A protocol that does not declare ``settles`` has its
  transactions judged at the end, as before;
* rows go to ``transactions.parquet`` in row groups (:class:`RowWriter`),
  into a hidden file renamed into place only when the run completed;
* the summary is tallied as rows are judged (:class:`Tally`): counts and sums
  as numbers, latencies as compact float arrays, so its quantiles are exact;
* ``[run] keep`` chooses the rows written (:class:`Keep`); the summary counts
  every transaction whatever is kept.
"""

from __future__ import annotations

import json
import math
import os
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from itertools import takewhile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sim.files import staged_folder
from sim.isolation import FollowedHistory
from sim.keep import Keep, is_violation
from sim.metrics import OUTCOMES, TRANSACTION_COLUMNS, TRANSACTION_EXTRA, summarize, transactions_frame
from sim.protocols.base import KEY_STRIDE
from sim.runner import AlertFacts, Model, RunOutput, RunTooBusy, alert_figures, run_id
from sim.schema import arrow_table, write_parquet
from sim.tracing import ChosenTracer
from sim.world.core import EventBudgetExceeded
from sim.world.fates import BLOCK, uniform
from sim.world.settle import Settlement

#: Rows per Parquet row group: large enough for fast reads, small enough
#: that a buffer costs a few megabytes.
ROW_GROUP = 65_536

#: Simulated time between two looks for settled transactions, as a fraction
#: of the run (and at most :data:`MAX_SLICE` seconds): the transactions that
#: settled meanwhile wait at most this long in memory.
SLICES = 1000
MAX_SLICE = 1.0
#: Slices between two looks at every open transaction (between them, only at
#: those started in the last this many slices).
RECENT = 64


class RowWriter:
    """Rows of one run's transactions table, written to ``path`` in row groups
    (buffered as columns: a row group's worth costs a few megabytes)."""

    def __init__(self, path: Path, constant: dict[str, Any]) -> None:
        self.path = path
        self.constant = constant
        self.rows = 0
        self._columns: dict[str, list[Any]] = {}
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, row: dict[str, Any]) -> None:
        columns = self._columns
        if not columns:
            columns.update({c: [] for c in row})
        for column, value in row.items():
            columns[column].append(value)
        self._buffered += 1
        if self._buffered >= ROW_GROUP:
            self.flush()

    def _table(self) -> pa.Table:
        columns, n = self._columns, self._buffered
        if not n:  # an empty table still has every contract column
            columns = {c: [] for c in TRANSACTION_COLUMNS + TRANSACTION_EXTRA}
        for column, value in self.constant.items():
            columns[column] = [value] * n
        return arrow_table(transactions_frame(columns))

    def flush(self) -> None:
        if not self._buffered:
            return
        table = self._table()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table, row_group_size=ROW_GROUP)
        self.rows += self._buffered
        self._columns = {}
        self._buffered = 0

    def close(self) -> None:
        self.flush()
        if self._writer is None:
            pq.write_table(self._table(), self.path)
        else:
            self._writer.close()


#: Slots a tally's arrays grow by (8 bytes each).
_GROW = 65_536


class Tally:
    """The summary's inputs, gathered one judged transaction at a time:
    outcome counts, sums, the latencies as compact float arrays indexed by
    transaction id (exact quantiles, and the mean summed in the order of the
    end-of-run path), and only the anomalies and alert facts that count."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(OUTCOMES, 0)
        #: transactions judged
        self.n = 0
        self.latency = array("d")
        self.time_to_consistency = array("d")
        self.messages = 0
        self.retries = 0
        self.anomalies: list[tuple[str, ...]] = []
        self.alerts: list[AlertFacts] = []

    def add(self, row: dict[str, Any], anomalies: tuple[str, ...], alert: AlertFacts) -> None:
        self.counts[row["outcome"]] += 1
        self.n += 1
        # At the place of its id, as the end-of-run path lists them: the mean
        # is then summed in the same order, to the bit. Ids without a started
        # transaction stay NaN, which the summary skips like a stuck one's.
        txn = row["txn_id"]
        if txn >= len(self.latency):
            grow = array("d", [math.nan]) * (txn - len(self.latency) + _GROW)
            self.latency.extend(grow)
            self.time_to_consistency.extend(grow)
        self.latency[txn] = row["latency"]
        self.time_to_consistency[txn] = row["time_to_consistency"]
        self.messages += row["messages"]
        self.retries += row["retries"]
        if anomalies:
            self.anomalies.append(anomalies)
        # Only alerted or stuck transactions move an alert figure.
        if alert.flagged_at == alert.flagged_at or alert.outcome == "stuck":
            self.alerts.append(alert)


@dataclass
class TraceChoice:
    """Which transactions a streamed run traces: ``txns`` by id, the
    ``violations``, and a ``sample`` fraction of the others (drawn per
    transaction id from the named stream ``trace.sample``). Events of no
    transaction (crashes, faults) are traced whenever any is chosen."""

    txns: frozenset[int] = frozenset()
    violations: bool = False
    sample: float = 0.0
    draw: Callable[[int], float] | None = None

    @property
    def any(self) -> bool:
        return bool(self.txns) or self.violations or self.sample > 0

    def sampled(self, txn: int) -> bool:
        return self.draw is not None and self.draw(txn) < self.sample


class Streamed(NamedTuple):
    """A finished streamed run: its output (without the transactions' rows)
    and how many rows were written."""

    output: RunOutput
    kept: int


class Streamer:
    """Runs one model, judging and writing its transactions as it goes."""

    def __init__(self, model: Model, writer: RowWriter, keep: Keep, trace: TraceChoice | None = None) -> None:
        self.model = model
        self.writer = writer
        self.keep = keep
        self.trace = trace if trace is not None else TraceChoice()
        #: the tracer keeping the chosen transactions' events, if any are chosen
        self.chosen: ChosenTracer | None = None
        if self.trace.any:
            self.chosen = model.world.tracer = ChosenTracer(
                self.trace.txns, self.trace.violations or self.trace.sample > 0
            )
            sample = model.world.streams.keyed("trace.sample", uniform, BLOCK) if self.trace.sample else None
            self.trace.draw = sample.at if sample is not None else None
        self.tally = Tally()
        #: started, not yet judged: transaction id -> start
        self.open: dict[int, float] = {}
        self.settles = model.settles
        if self.settles:
            model.world.settle = Settlement()
        #: records with values judged as the run goes: a settled transaction
        #: waits there until its isolation anomalies are final too
        self.followed: FollowedHistory | None = (
            model.follow_isolation() if self.settles and model.world.records is not None else None
        )
        self._forget: Callable[[int], None] | None = getattr(model.protocol, "forget", None)
        #: the protocol's own look at what it still holds of a transaction, if it keeps any
        self._quiet: Callable[[int], bool] | None = getattr(model.protocol, "quiet", None)
        self._names = model.row_columns()
        steps = len(model.scenario.transaction.steps)
        self._keys = range(steps)
        self._slices = 0
        self._step = 0.0
        #: transactions judged so far, and violations among them
        self.judged = 0
        self.violations = 0

    def run(self, progress: Callable[[Streamer], None] | None = None) -> Streamed:
        model = self.model
        end = model.end
        step = self._step = min(end / SLICES, MAX_SLICE)
        now = 0.0
        started = time.perf_counter()
        try:
            while now < end:
                now = min(end, now + step)
                model.world.run(until=now)
                self._gather()
                if self.settles:
                    self._judge_settled()
                if progress is not None:
                    progress(self)
        except EventBudgetExceeded as exc:
            raise RunTooBusy(model._too_busy(exc)) from None
        blind = model.blind_spots()
        rest = sorted(self.open)
        if self.followed is not None:
            model.isolation_of(rest)  # the run is over: every anomaly is final
        for txn in rest:
            self._judge(txn, blind.get(txn, ""))
        self.open.clear()
        if self.chosen is not None:
            self.chosen.finish()
        self.writer.close()
        return Streamed(self._output(time.perf_counter() - started), self.writer.rows)

    def _gather(self) -> None:
        started = self.model.workload.started
        self.open.update(started)
        started.clear()

    def _judge_settled(self) -> None:
        """Judge and free the open transactions that settled: each slice the
        ones started in the last :data:`RECENT` slices, every
        :data:`RECENT`-th slice all of them. A transaction that stays open
        (stuck) is then looked at rarely, not once per slice; one judged a
        little later is judged alike, since nothing about it changes."""
        settle = self.model.world.settle
        assert settle is not None
        view = self.model.protocol.view
        self._slices += 1
        if self._slices % RECENT == 0:
            candidates = list(self.open)
        else:
            horizon = self.model.world.now - RECENT * self._step
            candidates = list(takewhile(lambda t: self.open[t] >= horizon, reversed(self.open)))
        quiet = self._quiet
        blind = self.model.blind_spots()
        followed = self.followed
        if followed is not None:
            self._judge_final(followed, candidates, blind)
            return
        for txn in candidates:
            if settle.idle(txn) and view(txn).terminal and (quiet is None or quiet(txn)):
                self._judge(txn, blind.get(txn, ""))
                self._free(txn)

    def _judge_final(self, followed: FollowedHistory, candidates: list[int], blind: dict[int, str]) -> None:
        """With records with values: the candidates that settled wait in
        ``followed`` until their isolation anomalies are final
        (:meth:`FollowedHistory.ready`); those that are (these or earlier
        ones) are judged and freed, by transaction id."""
        settle = self.model.world.settle
        assert settle is not None
        view = self.model.protocol.view
        quiet = self._quiet
        waiting = followed.settled
        for txn in candidates:
            if txn not in waiting and settle.idle(txn) and view(txn).terminal and (quiet is None or quiet(txn)):
                followed.settle(txn)
        ready = followed.ready()
        if not ready:
            return
        self.model.isolation_of(ready)
        for txn in ready:
            self._judge(txn, blind.get(txn, ""))
            self._free(txn)

    def _judge(self, txn: int, blind: str) -> None:
        started_at = self.open.pop(txn) if txn in self.open else math.nan
        judged = self.model.judge(txn, started_at, blind)
        row = dict(zip(self._names, judged.row, strict=True))
        self.tally.add(row, judged.anomalies, judged.alert)
        self.judged += 1
        violation = is_violation(row)
        if violation:
            self.violations += 1
        if self.keep(row):
            self.writer.add(row)
        if self.chosen is not None:
            self.chosen.judged(txn, (violation and self.trace.violations) or self.trace.sampled(txn))

    def _free(self, txn: int) -> None:
        model = self.model
        model.world.settle.forgotten(txn)  # type: ignore[union-attr]
        model.world.effects.by_txn[txn] = None  # type: ignore[call-overload]  # a later effect would fail loudly
        if self._forget is not None:
            self._forget(txn)
        model.keys.forget(txn)
        base = txn * KEY_STRIDE
        keys = [base + s for s in self._keys]
        for participant in model.participants.values():
            participant.forget(keys)

    def _output(self, wall_time: float) -> RunOutput:
        """The run's output as :meth:`sim.runner.Model.collect` gathers it,
        from the tally instead of the rows."""
        model = self.model
        tally = self.tally
        s = model.scenario
        extra = model.run_figures(wall_time)
        extra.update(alert_figures(tally.alerts, model.end, s.monitor.stuck_after))
        extra.update(model.protocol.summary_extra())
        rid = run_id(s.name, model.protocol_name, model.seed)
        n = tally.n
        if model.world.records is not None:
            extra.update(model.isolation_figures(tally.anomalies, n))
        summary = summarize(
            run_id=rid,
            scenario=s.name,
            protocol=model.protocol_name,
            seed=model.seed,
            duration=s.run.duration,
            outcomes=[],
            outcome_counts=tally.counts,
            latency=np.frombuffer(tally.latency, dtype=float) if n else [],
            time_to_consistency=np.frombuffer(tally.time_to_consistency, dtype=float) if n else [],
            messages=[tally.messages / n] if n else [],
            retries=[tally.retries / n] if n else [],
            anomalies=tally.anomalies,
            extra=extra,
        )
        world = model.world
        return RunOutput(
            run_id=rid,
            scenario=s.name,
            protocol=model.protocol_name,
            seed=model.seed,
            transactions={"txn_id": []},
            summary=summary,
            events=world.tracer.events,
            faults=model.faults.records,
            wall_time=wall_time,
            streams=world.streams.names,
        )


def stream_run(
    model: Model,
    path: Path,
    keep: str | float | None = None,
    progress: Callable[[Streamer], None] | None = None,
    trace: TraceChoice | None = None,
) -> Streamed:
    """Run ``model`` to the end, writing its transactions table to ``path``
    (a Parquet file) as it goes; ``keep`` defaults to the scenario's
    ``[run] keep``. ``trace`` chooses transactions to trace (a model built
    with tracing on traces them all)."""
    s = model.scenario
    constant = {
        "run_id": run_id(s.name, model.protocol_name, model.seed),
        "scenario": s.name,
        "protocol": model.protocol_name,
        "seed": model.seed,
    }
    chosen = s.run.keep if keep is None else keep
    streamer = Streamer(model, RowWriter(path, constant), Keep(chosen, model.world.streams), trace)
    return streamer.run(progress)


def run_to_folder(
    model: Model,
    folder: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[Streamer], None] | None = None,
    trace: TraceChoice | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Run ``model`` and write its result folder (as :meth:`sim.result.Result.save`
    writes one) with the transactions streamed to disk. The folder is staged
    under a hidden name and renamed into place only when the run completed:
    an interrupted run leaves nothing that looks like a result."""
    from sim.result import RESULT_MARKER, Result, check_replaceable

    target = Path(folder)
    check_replaceable(target, overwrite)
    with staged_folder(target) as staging:
        done = stream_run(model, staging / "transactions.parquet", progress=progress, trace=trace)
        result = Result(model.scenario, [done.output], overrides or {}, done.output.wall_time)
        write_parquet(result.summary, staging / "summary.parquet")
        write_parquet(result.faults, staging / "faults.parquet")
        if result.traced:
            write_parquet(result.events, staging / "events.parquet")
        meta = result.metadata()
        for run in meta["runs"]:
            run["kept"] = done.kept  # the rows went to disk, not into the output
        with open(staging / RESULT_MARKER, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2, default=str)
            fh.flush()
            os.fsync(fh.fileno())
    return target
