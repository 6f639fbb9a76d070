"""Running a sweep: every (point, protocol, seed) of a sweep file, into one dataset.

:mod:`sim.sweepfile` reads and validates the sweep file; this module runs its
runs (on this process, local processes or a Dask cluster, see
:mod:`sim.executors`) and writes one dataset:

```
OUT/
  sweep.json                          the plan, every point's effective scenario,
                                      the runs, versions: written last, marks it complete
  summary.parquet                     one row per run, with ``point`` and the axes as columns
  transactions/protocol=NAME/p0003-s2.parquet   one file per run
  faults/protocol=NAME/p0003-s2.parquet
```

Runs are deterministic, so a run gives the same tables wherever it runs: a
sweep on a cluster is identical, seed for seed, to one on this machine. Each
run's files are written atomically as soon as it is done, with a marker in
``OUT/.runs/``; ``resume=True`` skips the runs whose marker is there. Until
every run is in, the folder holds ``sweep.pending.json`` and no
``sweep.json``, so an interrupted or partly failed sweep never looks complete.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd

from sim import executors
from sim.dataset import SWEEP_MARKER, SWEEP_PENDING, Dataset, load
from sim.errors import SagasimError
from sim.files import atomic_file
from sim.metrics import faults_frame, transactions_frame
from sim.result import package_versions
from sim.runner import run_once
from sim.scenario import scenario_from_dict
from sim.schema import SCHEMA_VERSION, check_version, write_parquet
from sim.sweepfile import RunTask, Scalar, Sweep, SweepFileError, load_sweep, sweep_from_dict

__all__ = [
    "RunFailure",
    "RunPart",
    "RunTask",
    "Sweep",
    "SweepFileError",
    "SweepIncomplete",
    "execute",
    "load_sweep",
    "point_table",
    "run_sweep",
    "sweep_from_dict",
]

_RUNS_DIR = ".runs"
#: The lock file a sweep holds while it writes its folder (removed when the sweep is complete).
_LOCK = ".lock"

#: ``progress(done, total, failed, last)``, called as runs finish.
Progress = Callable[[int, int, int, "RunPart | RunFailure | None"], None]


class SweepIncomplete(SagasimError):
    """Some runs of a sweep failed; the others are saved and ``resume`` retries the rest."""

    def __init__(self, message: str, failures: list[RunFailure]) -> None:
        super().__init__(message)
        self.failures = failures


@dataclass
class RunPart:
    """What one run gives back: its tables, ready to write."""

    task: RunTask
    transactions: pd.DataFrame
    faults: pd.DataFrame
    summary: dict[str, Any]
    wall_time: float


@dataclass(frozen=True)
class RunFailure:
    """A run that raised: its parameters, the error and its traceback."""

    task: RunTask
    error: str
    detail: str = ""

    def describe(self) -> str:
        return f"{self.task.describe()}: {self.error}"


# ---------------------------------------------------------------- one run


def execute(task: RunTask) -> RunPart:
    """Run one (point, protocol, seed) and shape its tables. Runs in a worker
    process (local or Dask), so it takes and returns plain, picklable data."""
    scenario = scenario_from_dict(task.config, source=f"sweep {task.sweep!r} point {task.point}")
    out = run_once(scenario, task.protocol, task.seed)
    clash = sorted(set(task.values) & set(out.summary))
    if clash:  # a named axis with the name of a summary column would overwrite it
        raise SweepFileError(f"grid axis {clash[0]!r} has the name of a summary column; rename the axis")
    txns = transactions_frame(out.transactions)
    txns["run_id"] = task.run_id
    txns = txns.drop(columns=["protocol"])  # the partition's folder name holds it
    faults = faults_frame(out.faults)
    faults.insert(0, "run_id", pd.Series([task.run_id] * len(faults), dtype=object))
    for frame in (txns, faults):
        frame.insert(1, "point", pd.Series([task.point] * len(frame), dtype="int64"))
        for position, (axis, value) in enumerate(task.values.items(), start=2):
            frame.insert(position, axis, pd.Series([value] * len(frame), dtype=_dtype(value)))
    # The run id names the point too: the same protocol and seed run at every point.
    summary = {"run_id": task.run_id, "point": task.point, **task.values, **out.summary}
    summary["run_id"] = task.run_id
    return RunPart(task, txns, faults, summary, out.wall_time)


def _dtype(value: Scalar) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    return "object"


def _execute_safely(task: RunTask) -> RunPart | RunFailure:
    try:
        return execute(task)
    except Exception as exc:  # one failing run must not lose the others
        return RunFailure(task, f"{type(exc).__name__}: {exc}", traceback.format_exc())


def _lost(task: RunTask, why: str) -> RunFailure:
    return RunFailure(task, why)


# ---------------------------------------------------------------- the dataset folder


@dataclass
class _Folder:
    """The dataset folder while a sweep writes it."""

    root: Path

    @property
    def runs(self) -> Path:
        return self.root / _RUNS_DIR

    def marker(self, task: RunTask) -> Path:
        return self.runs / f"{task.key}-{task.protocol}.json"

    def error(self, task: RunTask) -> Path:
        return self.runs / f"{task.key}-{task.protocol}.error"

    def part(self, table: str, task: RunTask) -> Path:
        return self.root / table / f"protocol={task.protocol}" / f"{task.key}.parquet"

    def save(self, part: RunPart) -> None:
        """The run's tables first, its marker last: a marker means the run is complete."""
        for table, frame in (("transactions", part.transactions), ("faults", part.faults)):
            atomic_file(self.part(table, part.task), lambda tmp, frame=frame: write_parquet(frame, tmp))
        entry = {
            "run_id": part.task.run_id,
            "point": part.task.point,
            "protocol": part.task.protocol,
            "seed": part.task.seed,
            "transactions": len(part.transactions),
            "wall_time": part.wall_time,
            "summary": part.summary,
        }
        _write_json(self.marker(part.task), entry, indent=None)
        self.error(part.task).unlink(missing_ok=True)

    def save_failure(self, failure: RunFailure) -> Path:
        """The traceback of a failed run, where the user can read it."""
        target = self.error(failure.task)
        text = f"{failure.describe()}\n\n{failure.detail}"
        atomic_file(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        return target


def _write_json(target: Path, data: dict[str, Any], indent: int | None = 2) -> None:
    # NaN is written as JSON's NaN extension, which Python reads back as NaN.
    atomic_file(target, lambda tmp: tmp.write_text(json.dumps(data, indent=indent, default=_json_default)))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _plan(sweep: Sweep, out: Path) -> dict[str, Any]:
    return {
        "sweep": sweep.name,
        "schema": SCHEMA_VERSION,
        "sagasim": package_versions()["sagasim"],
        "description": sweep.description,
        "source": sweep.source,
        "resume": sweep.resume_command(out),
        "scenario_source": sweep.scenario_source,
        "scenario": sweep.points[0].scenario.name,
        "fingerprint": sweep.fingerprint(),
        "axes": [a.name for a in sweep.axes],
        "axis_keys": {a.name: sorted({k for case in a.cases for k in case}) for a in sweep.axes},
        "set": sweep.fixed,
        "protocols": list(sweep.protocols),
        "seeds": list(sweep.seeds),
        "points": [
            {"point": p.index, "values": p.values, "overrides": p.overrides, "config": p.scenario.effective()}
            for p in sweep.points
        ],
    }


def _open(folder: _Folder, sweep: Sweep, resume: bool) -> IO[str] | None:
    """Check that ``out`` can take this sweep, lock it and mark it as started.

    Returns the open lock file (closing it releases the lock), or ``None``
    for a complete sweep, which is only read. A folder that is neither empty
    nor a sweep is refused before anything is written into it.
    """
    root = folder.root
    if root.exists() and not root.is_dir():
        raise SagasimError(f"--out {root}: is a file; give a folder for the dataset")
    pending, complete = (root / SWEEP_PENDING).exists(), (root / SWEEP_MARKER).exists()
    if root.is_dir() and _entries(root) and not (pending or complete):
        raise SagasimError(
            f"--out {root}: is not empty and is not a sweep dataset (no {SWEEP_PENDING} or {SWEEP_MARKER}); "
            "choose another --out, or an empty folder"
        )
    if complete and not pending:
        _prepare(folder, sweep, resume)
        return None
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SagasimError(f"--out {root}: cannot write a dataset there ({exc.strerror or exc})") from None
    lock = _lock(root)
    try:
        _prepare(folder, sweep, resume)
    except BaseException:
        lock.close()
        raise
    if (root / SWEEP_MARKER).exists():  # another process finished it meanwhile: nothing to write
        (root / _LOCK).unlink(missing_ok=True)
        lock.close()
        return None
    return lock


def _entries(root: Path) -> list[str]:
    """What the folder holds, its lock file aside."""
    return [p.name for p in root.iterdir() if p.name != _LOCK]


def _lock(root: Path) -> IO[str]:
    """Take the sweep's lock, or refuse: two processes writing one dataset would mix their files."""
    try:
        handle = open(root / _LOCK, "a", encoding="utf-8")  # noqa: SIM115 - held until the sweep ends
    except OSError as exc:
        raise SagasimError(f"--out {root}: cannot write a dataset there ({exc.strerror or exc})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SagasimError(
            f"--out {root}: another sagasim process is running or resuming this sweep; "
            "let it finish (or stop it), then resume"
        ) from None
    return handle


def _prepare(folder: _Folder, sweep: Sweep, resume: bool) -> None:
    """Check that ``out`` can take this sweep (the caller holds its lock), and mark it as started."""
    root = folder.root
    plan = _plan(sweep, root)
    if root.exists() and _entries(root):
        pending = root / SWEEP_PENDING
        if not resume:
            what = "an unfinished sweep; add --resume to finish it, or" if pending.exists() else "a complete sweep;"
            raise SagasimError(f"--out {root}: already holds {what} choose another --out")
        if (root / SWEEP_MARKER).exists() and not pending.exists():
            existing = json.loads((root / SWEEP_MARKER).read_text(encoding="utf-8"))
            check_version(existing.get("schema"), root / SWEEP_MARKER)
            if existing.get("fingerprint") != plan["fingerprint"]:
                raise SagasimError(f"--out {root}: holds a complete sweep of a different plan; choose another --out")
            return
        if not pending.exists():
            raise SagasimError(f"--out {root}: not a sweep dataset (no {SWEEP_PENDING}); choose another --out")
        started = json.loads(pending.read_text(encoding="utf-8"))
        check_version(started.get("schema"), pending)  # parts of two formats must not mix in one dataset
        if started.get("fingerprint") != plan["fingerprint"]:
            raise SagasimError(
                f"--out {root}: was started by a different plan (another grid, scenario, seeds, protocols, "
                f"sweep name or sagasim version); finish it with: {started.get('resume', 'the same sweep')}"
            )
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        _write_json(root / SWEEP_PENDING, plan)
    except OSError as exc:
        raise SagasimError(f"--out {root}: cannot write a dataset there ({exc.strerror or exc})") from None


def _finish(folder: _Folder, sweep: Sweep, tasks: list[RunTask], wall_time: float, executor: str) -> None:
    """Merge the runs' summaries and write ``sweep.json``: the dataset is complete."""
    entries = [json.loads(folder.marker(t).read_text(encoding="utf-8")) for t in tasks]
    rows = [e.pop("summary") for e in entries]
    summary = pd.DataFrame(rows)
    for axis in sweep.axes:  # one type per axis, as in the transactions files
        summary[axis.name] = pd.Series([row[axis.name] for row in rows], dtype=_dtype(axis.labels[0]))
    atomic_file(folder.root / "summary.parquet", lambda tmp: write_parquet(summary, tmp))
    meta = _plan(sweep, folder.root) | {
        "runs": entries,
        "wall_time": wall_time,
        "executor": executor,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "versions": package_versions(),
    }
    _write_json(folder.root / SWEEP_MARKER, meta)
    (folder.root / SWEEP_PENDING).unlink(missing_ok=True)
    shutil.rmtree(folder.runs, ignore_errors=True)
    # Still held by this process: a resume that opened it sees sweep.json once it gets it.
    (folder.root / _LOCK).unlink(missing_ok=True)


# ---------------------------------------------------------------- running


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: Any = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> Dataset:
    """Run every (point, protocol, seed) of ``sweep`` and write the dataset to ``out``.

    ``workers`` local processes run the runs (default: all cores; 1 runs them
    in this process); ``scheduler`` (a ``host:port`` address or a
    ``dask.distributed.Client``) runs them on a Dask cluster instead.
    ``resume`` keeps the runs an earlier call already saved in ``out``.
    ``progress(done, total, failed, last)`` is called as runs finish.

    Returns the complete :class:`~sim.dataset.Dataset`. When runs fail, the
    others are saved and :class:`SweepIncomplete` lists the failures.
    """
    if workers is not None and workers < 1:
        raise SagasimError(f"--workers must be >= 1, got {workers}")
    folder = _Folder(Path(out))
    # Connect first: a cluster that cannot be reached leaves no folder behind.
    client, own = executors.connect(scheduler) if scheduler is not None else (None, False)
    lock = None
    try:
        lock = _open(folder, sweep, resume)
        tasks = sweep.runs
        if (folder.root / SWEEP_MARKER).exists():
            return load(folder.root)
        todo = [t for t in tasks if not folder.marker(t).exists()]
        total, done, failures = len(tasks), len(tasks) - len(todo), []
        if progress is not None:
            progress(done, total, 0, None)
        if client is not None:
            results = executors.run_dask(todo, _execute_safely, client, _lost)
            executor = f"dask ({client.scheduler.address})"
        else:
            n = min(workers or os.cpu_count() or 1, max(1, len(todo)))
            if n == 1:
                results, executor = executors.run_inline(todo, _execute_safely), "this process"
            else:
                results, executor = executors.run_local(todo, _execute_safely, n, _lost), f"{n} local processes"
        started = time.perf_counter()
        # closing(): on an interrupt the executor stops its workers now, not when the generator is collected.
        with closing(results):
            for outcome in results:
                if isinstance(outcome, RunFailure):
                    failures.append(outcome)
                    folder.save_failure(outcome)
                else:
                    folder.save(outcome)
                    done += 1
                if progress is not None:
                    progress(done, total, len(failures), outcome)
        if not failures:
            _finish(folder, sweep, tasks, time.perf_counter() - started, executor)
    finally:
        if lock is not None:
            lock.close()
        if own:
            client.close()
    if failures:
        lines = "\n".join(f"  - {f.describe()}" for f in failures)
        raise SweepIncomplete(
            f"{len(failures)} of {total} runs failed; the other {done} are saved in {folder.root}:\n{lines}\n"
            f"tracebacks: {folder.runs}/*.error\n"
            f"fix the cause, then finish the sweep with: {sweep.resume_command(folder.root)}",
            failures,
        )
    return load(folder.root)


# ---------------------------------------------------------------- reading


def point_table(dataset: Dataset) -> pd.DataFrame:
    """One row per (grid point, protocol), pooled over seeds: the axis values,
    then the columns of :func:`sim.compare.protocol_table` (outcome rates with
    95% Wilson intervals, latency, messages per transaction...).

    For a plain result folder (no axes) it is ``protocol_table`` with a
    ``point`` column of zeros.
    """
    from sim.compare import protocol_table

    txns, summary = dataset.transactions, dataset.summary
    if "point" not in summary.columns:
        table = protocol_table(dataset)
        table.insert(0, "point", 0)
        return table
    frames = []
    for point, rows in summary.groupby("point", sort=True):
        part = _Tables(txns[txns["point"] == point], rows)
        table = protocol_table(part)
        table.insert(0, "point", int(point))
        for position, axis in enumerate(dataset.axes, start=1):
            table.insert(position, axis, rows[axis].iloc[0])
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


@dataclass
class _Tables:
    transactions: pd.DataFrame
    summary: pd.DataFrame
