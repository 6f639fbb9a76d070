"""Reading what ``sagasim run``, ``compare`` and ``sweep`` wrote, the same way.

A *result folder* (``run.json`` + Parquet tables, see :mod:`sim.result`) and a
*sweep dataset* (``sweep.json`` + Parquet tables partitioned by protocol, see
:mod:`sim.sweep`) load into one :class:`Dataset`, so reports and notebooks do
not care which they were given:

- ``transactions``, ``summary``, ``faults`` and ``events`` are DataFrames with
  the columns of the result contract (``events`` is empty unless traced);
- ``axes`` names the swept parameters: in a sweep they are columns of
  ``summary`` and ``transactions`` (one value per grid point, with a
  ``point`` column numbering the points); a result folder has none;
- :meth:`Dataset.scenario_for` rebuilds the exact scenario of a run, so any
  transaction can be replayed with tracing.

Loading refuses a folder that is not complete (an interrupted run or sweep)
with a message that says how to finish it, and a damaged one (its
``run.json`` or ``sweep.json`` without the tables, a run's file deleted, a
table of another schema or with transactions missing) with a message naming
the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sim.errors import SagasimError
from sim.metrics import FAULT_COLUMNS, TRANSACTION_COLUMNS, events_frame, faults_frame
from sim.result import RESULT_MARKER
from sim.scenario import Scenario, scenario_from_dict
from sim.schema import check_version, parquet_version

SWEEP_MARKER = "sweep.json"
#: Written when a sweep starts, replaced by ``sweep.json`` when every run is in.
SWEEP_PENDING = "sweep.pending.json"
#: Columns a table must have to be read (a file with another schema is damaged).
TABLE_NEEDED: dict[str, tuple[str, ...]] = {"transactions": TRANSACTION_COLUMNS, "faults": FAULT_COLUMNS}
SUMMARY_NEEDED: tuple[str, ...] = ("run_id", "protocol", "seed", "transactions")


@dataclass
class Dataset:
    """The tables of a result folder or a sweep dataset."""

    path: Path
    kind: Literal["result", "sweep"]
    meta: dict[str, Any]
    axes: list[str]
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------ tables
    @property
    def transactions(self) -> pd.DataFrame:
        """One row per transaction of every run, with its ``run_id`` (and grid point)."""
        return self._table("transactions")

    @property
    def summary(self) -> pd.DataFrame:
        """One row per run: its protocol, seed, outcome counts (and grid point)."""
        if "summary" not in self._cache:
            file = self.path / "summary.parquet"
            self._cache["summary"] = _check_columns(_read_parquet(file), SUMMARY_NEEDED, file)
        return self._cache["summary"]

    @property
    def faults(self) -> pd.DataFrame:
        """One row per fault window of every run (empty when no fault was injected)."""
        return self._table("faults")

    @property
    def events(self) -> pd.DataFrame:
        """The trace, when the runs were traced; empty otherwise."""
        if "events" not in self._cache:
            file = self.path / "events.parquet"
            if file.exists():
                self._cache["events"] = _read_parquet(file)
            else:
                frame = events_frame([])
                frame.insert(0, "run_id", pd.Series([], dtype=object))
                self._cache["events"] = frame
        return self._cache["events"]

    @property
    def traced(self) -> bool:
        """Whether the runs were traced (the folder has ``events.parquet``)."""
        return (self.path / "events.parquet").exists()

    @property
    def name(self) -> str:
        """The scenario's name (a result) or the sweep's name."""
        return str(self.meta.get("sweep") or self.meta.get("scenario"))

    @property
    def protocols(self) -> list[str]:
        """The protocols that ran, in run order."""
        return list(dict.fromkeys(self.summary["protocol"]))

    @property
    def seeds(self) -> list[int]:
        """The seeds that ran, in increasing order."""
        return sorted({int(s) for s in self.summary["seed"]})

    # ------------------------------------------------------------ runs
    def run(self, run_id: str) -> dict[str, Any]:
        """The ``run.json``/``sweep.json`` entry of one run (protocol, seed, point...)."""
        for entry in self.meta["runs"]:
            if entry["run_id"] == run_id:
                return entry
        known = ", ".join(e["run_id"] for e in self.meta["runs"][:5])
        raise SagasimError(f"{self.path}: no run {run_id!r}; runs include {known}")

    def scenario_for(self, run_id: str) -> Scenario:
        """The effective scenario of one run (for a sweep: its grid point's)."""
        entry = self.run(run_id)
        if self.kind == "sweep":
            config = self.meta["points"][int(entry["point"])]["config"]
        else:
            config = self.meta["config"]
        return scenario_from_dict(config, source=f"{self.path} ({run_id})")

    # ------------------------------------------------------------ internals
    def _table(self, name: str) -> pd.DataFrame:
        if name in self._cache:
            return self._cache[name]
        needed = TABLE_NEEDED[name]
        if self.kind == "result":
            file = self.path / f"{name}.parquet"
            frame = _check_columns(_read_parquet(file), needed, file)
        else:
            frame = _read_partitioned(self.path / name, needed)
            if name == "faults" and frame.empty:
                frame = faults_frame([])
                frame.insert(0, "run_id", pd.Series([], dtype=object))
        if name == "transactions":
            self._check_counts(frame)
        self._cache[name] = frame
        return frame

    def _check_counts(self, txns: pd.DataFrame) -> None:
        """Every run's transactions are there: as many rows as the summary
        counts, or as ``run.json`` says were kept (``[run] keep``)."""
        summary = self.summary
        counted = int(summary["transactions"].sum())
        runs = self.meta.get("runs", [])
        if self.kind == "result" and runs and all("kept" in run for run in runs):
            counted = sum(int(run["kept"]) for run in runs)
        points = self.meta.get("points", [])
        if self.kind != "result" and any(p["config"]["run"].get("keep", "all") != "all" for p in points):
            return  # rows chosen by [run] keep: the summary counts every transaction
        if len(txns) != counted:
            where = self.path / ("transactions.parquet" if self.kind == "result" else "transactions")
            raise SagasimError(
                f"{where}: damaged: it holds {len(txns):,} transactions, but summary.parquet counts {counted:,} "
                "(a file was deleted or replaced); copy the whole folder, or write it again"
            )


def _read_partitioned(folder: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    """A ``protocol=<name>/`` partitioned table, with ``protocol`` back as a
    plain string column after ``scenario``, rows in sweep order."""
    frames = []
    for file in sorted(folder.glob("protocol=*/*.parquet")):
        frame = _check_columns(_read_parquet(file, pyarrow=True), tuple(c for c in needed if c != "protocol"), file)
        protocol = file.parent.name.removeprefix("protocol=")
        position = frame.columns.get_loc("scenario") + 1 if "scenario" in frame.columns else len(frame.columns)
        frame.insert(position, "protocol", pd.Series([protocol] * len(frame), dtype=object))
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    frame = pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)
    sort = [c for c in ("point", "protocol", "seed", "txn_id", "start") if c in frame.columns]
    return frame.sort_values(sort, kind="stable", ignore_index=True)


def load(path: str | Path) -> Dataset:
    """Open a result folder (``run.json``) or a sweep dataset (``sweep.json``).

    Raises :class:`~sim.errors.SagasimError` naming the folder when it is
    neither, when it is an interrupted run or sweep, or when a run's file is
    missing; reading a table raises it, naming the file, when the table is
    missing, unreadable, of another schema, or holds fewer transactions than
    the summary counts ("damaged").
    """
    folder = Path(path)
    expected = "expected a result folder (run.json) or a sweep (sweep.json)"
    if folder.exists() and not folder.is_dir():
        raise SagasimError(f"{folder}: is a file, not a folder; {expected}")
    if not folder.is_dir():
        raise SagasimError(f"{folder}: no such folder; {expected}")
    if (folder / SWEEP_MARKER).exists():
        meta = _json(folder / SWEEP_MARKER)
        check_version(meta.get("schema"), folder / SWEEP_MARKER)
        _check_complete(folder, SWEEP_MARKER, ("summary.parquet", "transactions"))
        _check_run_files(folder, meta)
        return Dataset(folder, "sweep", meta, list(meta.get("axes", [])))
    if (folder / RESULT_MARKER).exists():
        meta = _json(folder / RESULT_MARKER)
        check_version(meta.get("schema"), folder / RESULT_MARKER)
        _check_complete(folder, RESULT_MARKER, ("summary.parquet", "transactions.parquet", "faults.parquet"))
        return Dataset(folder, "result", meta, [])
    if (folder / SWEEP_PENDING).exists():
        pending = _json(folder / SWEEP_PENDING)
        raise SagasimError(
            f"{folder}: the sweep {pending.get('sweep')!r} is not complete (interrupted, or some runs failed); "
            f"finish it with: {pending.get('resume') or f'sagasim sweep SWEEP --out {folder} --resume'}"
        )
    partial = sorted(p.name for p in folder.parent.glob(f".{folder.name}.*.partial"))
    hint = f" (an interrupted write left {partial[0]})" if partial else ""
    raise SagasimError(
        f"{folder}: not a result folder (no run.json) nor a sweep dataset (no sweep.json){hint}; "
        "give a folder written by `sagasim run`, `compare` or `sweep`"
    )


def _check_complete(folder: Path, marker: str, needed: tuple[str, ...]) -> None:
    """A folder with its marker but not its tables was damaged after it was
    written (a partial copy, a file deleted by hand)."""
    missing = [name for name in needed if not (folder / name).exists()]
    if missing:
        what = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        raise SagasimError(
            f"{folder}: damaged: {what} {'is' if len(missing) == 1 else 'are'} missing (it has {marker}); "
            "copy the whole folder, or write it again"
        )


def _check_run_files(folder: Path, meta: dict[str, Any]) -> None:
    """Each run of a sweep has its transactions and faults file."""
    runs = meta.get("runs")
    if not isinstance(runs, list):
        raise SagasimError(f"{folder / SWEEP_MARKER}: damaged: it lists no runs; write the sweep again")
    for entry in runs:
        try:
            name = f"p{int(entry['point']):04d}-s{int(entry['seed'])}.parquet"
            protocol = str(entry["protocol"])
        except (KeyError, TypeError, ValueError):
            raise SagasimError(f"{folder / SWEEP_MARKER}: damaged: a run entry is malformed ({entry!r:.80})") from None
        for table in ("transactions", "faults"):
            file = folder / table / f"protocol={protocol}" / name
            if not file.is_file():
                raise SagasimError(
                    f"{file}: damaged: the file of run {entry.get('run_id')} is missing (it is listed in "
                    f"{SWEEP_MARKER}); copy the whole folder, or write the sweep again"
                )


def _check_columns(frame: pd.DataFrame, needed: tuple[str, ...], file: Path) -> pd.DataFrame:
    """A table without the columns sagasim writes is damaged (or not sagasim's)."""
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise SagasimError(
            f"{file}: damaged: the table lacks the column{'s' if len(missing) > 1 else ''} {shown}; "
            "write it again with sagasim"
        )
    return frame


def _read_parquet(file: Path, *, pyarrow: bool = False) -> pd.DataFrame:
    """A table of the dataset; a missing or unreadable file is a damaged dataset."""
    if not file.exists():
        raise SagasimError(f"{file.parent}: damaged: {file.name} is missing")
    try:
        # Without hive discovery (pandas would turn a sweep's folder name into a categorical column).
        table = pq.read_table(file, partitioning=None)
    except (OSError, pa.ArrowException) as exc:
        raise SagasimError(f"{file}: damaged: cannot read it ({exc})") from None
    version = parquet_version(table.schema.metadata)
    if version is not None:  # a table without it is judged by its columns (run.json holds the folder's version)
        check_version(version, file)
    return _to_pandas(table)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """A table as pandas, its list columns (``reasons``, ``anomalies``) as Python lists."""
    frame = table.to_pandas()
    for name in table.column_names:
        if pa.types.is_list(table.schema.field(name).type):
            frame[name] = pd.Series(table.column(name).to_pylist(), index=frame.index, dtype=object)
    return frame


def _json(file: Path) -> dict[str, Any]:
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise SagasimError(f"{file}: cannot read it ({exc})") from None
    if not isinstance(data, dict):
        raise SagasimError(f"{file}: expected a JSON object")
    return data
