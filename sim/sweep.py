"""Parameter sweeps: one scenario across a grid of values, seeds and protocols.

A sweep file names a scenario, a grid of values for any dotted key (the paths
of ``--set``), the seeds and the protocols. Every combination of grid values
is a *point*; every (point, protocol, seed) is one *run*. ``sagasim sweep``
runs them on local processes (all cores by default) or on a Dask
distributed cluster, and writes one dataset:

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

import hashlib
import itertools
import json
import math
import os
import shutil
import sys
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sim.compare import SEEDS_SPELLING, parse_seeds
from sim.dataset import SWEEP_MARKER, SWEEP_PENDING, Dataset, load
from sim.errors import SagasimError, ScenarioError, did_you_mean
from sim.files import atomic_file
from sim.metrics import faults_frame, transactions_frame
from sim.result import package_versions
from sim.runner import run_once
from sim.scenario import PROTOCOLS, Scenario, parse_overrides, scenario_from_dict

#: Columns of the run tables a named axis may not take.
RESERVED_COLUMNS = frozenset({"run_id", "scenario", "protocol", "seed", "point", "txn_id", "transactions"})

#: Seconds to wait for a Dask scheduler to answer before giving up.
DASK_CONNECT_TIMEOUT = 10.0

_RUNS_DIR = ".runs"

Scalar = bool | int | float | str


class SweepFileError(SagasimError):
    """A sweep file, or a point of its grid, that does not validate."""


class SweepIncomplete(SagasimError):
    """Some runs of a sweep failed; the others are saved and ``resume`` retries the rest."""

    def __init__(self, message: str, failures: list[RunFailure]) -> None:
        super().__init__(message)
        self.failures = failures


# ---------------------------------------------------------------- the file


class _SweepFile(BaseModel):
    """The TOML of a sweep file, before its points are built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)] | None = None
    description: str = ""
    scenario: str
    seeds: list[Annotated[int, Field(ge=0, lt=2**63)]] | str | None = None
    protocols: list[Literal["orchestration", "2pc", "choreography"]] | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any] | dict[str, dict[str, Any]]] = Field(default_factory=dict)

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, values: list[str] | None) -> list[str] | None:
        if values is not None and (not values or len(set(values)) != len(values)):
            raise ValueError("must list at least one protocol, each once")
        return values


@dataclass(frozen=True)
class Axis:
    """One swept parameter: a dotted key and its values, or a named axis whose
    cases each set several keys at once."""

    name: str
    #: the value shown in tables, per case
    labels: tuple[Scalar, ...]
    #: the overrides each case applies
    cases: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Point:
    """One combination of axis values."""

    index: int
    values: dict[str, Scalar]
    overrides: dict[str, Any]
    scenario: Scenario


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: every point's scenario has been built."""

    name: str
    description: str
    source: str | None
    scenario_source: str
    axes: tuple[Axis, ...]
    fixed: dict[str, Any]
    points: tuple[Point, ...]
    protocols: tuple[str, ...]
    seeds: tuple[int, ...]

    @property
    def runs(self) -> list[RunTask]:
        """Every (point, protocol, seed), in the order they are started."""
        return [
            RunTask(self.name, p.index, p.values, p.scenario.effective(), protocol, seed)
            for p in self.points
            for protocol in self.protocols
            for seed in self.seeds
        ]

    def fingerprint(self) -> str:
        """A digest of everything that decides the runs' results."""
        plan = {
            "points": [p.scenario.effective() for p in self.points],
            "values": [p.values for p in self.points],
            "protocols": self.protocols,
            "seeds": self.seeds,
        }
        return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_sweep(
    path: str | Path,
    *,
    seeds: Iterable[int] | None = None,
    protocols: Iterable[str] | None = None,
    overrides: Mapping[str, object] | Iterable[str] | None = None,
) -> Sweep:
    """Read and validate a sweep file, building the scenario of every point.

    ``seeds``, ``protocols`` and ``overrides`` (``--set`` spelling) replace the
    file's seeds and protocols and add to its ``[set]``. Raises
    :class:`SweepFileError` naming the file, the key, the value and what is
    allowed.
    """
    path = Path(path)
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepFileError(f"{source}: no such sweep file") from None
    except IsADirectoryError:
        raise SweepFileError(f"{source}: is a directory, not a sweep file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepFileError(f"{source}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepFileError(f"{source}: is not valid TOML: {exc}") from None
    raw.setdefault("name", path.stem)
    return sweep_from_dict(raw, base=path.parent, source=source, seeds=seeds, protocols=protocols, overrides=overrides)


def sweep_from_dict(
    raw: Mapping[str, Any],
    *,
    base: str | Path = ".",
    source: str | None = None,
    seeds: Iterable[int] | None = None,
    protocols: Iterable[str] | None = None,
    overrides: Mapping[str, object] | Iterable[str] | None = None,
) -> Sweep:
    """Validate a sweep given as a dict (the parsed TOML); ``scenario`` is
    read relative to ``base``, or is a loaded :class:`~sim.scenario.Scenario`."""
    where = source or "<sweep>"
    data = dict(raw)
    scenario_obj = data.get("scenario")
    if isinstance(scenario_obj, Scenario):
        data["scenario"] = scenario_obj.name
    try:
        spec = _SweepFile.model_validate(data)
    except ValidationError as exc:
        raise SweepFileError(_explain(where, exc)) from None

    if isinstance(scenario_obj, Scenario):
        base_config, scenario_source = scenario_obj.effective(), f"scenario {scenario_obj.name!r}"
    else:
        scenario_path = Path(base) / spec.scenario
        scenario_source = str(scenario_path)
        try:
            base_config = tomllib.loads(scenario_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SweepFileError(
                f"{where}: scenario = {spec.scenario!r}: no such file ({scenario_path}; relative to the sweep file)"
            ) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SweepFileError(f"{where}: scenario = {spec.scenario!r}: cannot be read: {exc}") from None

    fixed = dict(spec.set)
    if overrides:
        fixed.update(dict(parse_overrides(overrides)))
    axes = [_axis(where, name, values) for name, values in spec.grid.items()]
    swept = {key: axis.name for axis in axes for case in axis.cases for key in case}
    for key in fixed:
        if key in swept:
            raise SweepFileError(f"{where}: {key!r} is set in [set] (or --set) and swept by grid axis {swept[key]!r}")
    owners: dict[str, str] = {}
    for axis in axes:
        for key in {k for case in axis.cases for k in case}:
            if key in owners:
                raise SweepFileError(f"{where}: {key!r} is swept by two grid axes, {owners[key]!r} and {axis.name!r}")
            owners[key] = axis.name

    points = []
    for index, combo in enumerate(itertools.product(*(range(len(a.labels)) for a in axes))):
        values = {a.name: a.labels[i] for a, i in zip(axes, combo, strict=True)}
        point_overrides = dict(fixed)
        for a, i in zip(axes, combo, strict=True):
            point_overrides.update(a.cases[i])
        try:
            scenario = scenario_from_dict(base_config, source=scenario_source, overrides=point_overrides or None)
        except ScenarioError as exc:
            shown = ", ".join(f"{k} = {_show(v)}" for k, v in values.items())
            problems = "\n".join(f"  - {p}" for p in exc.problems)
            raise SweepFileError(
                f"{where}: grid point {index} ({shown}) does not make a valid scenario:\n{problems}"
            ) from None
        points.append(Point(index, values, point_overrides, scenario))
    base_scenario = points[0].scenario  # seeds, protocols and name default to the scenario's own

    chosen_protocols = (
        tuple(protocols) if protocols is not None else tuple(spec.protocols or base_scenario.run.protocols)
    )
    for p in chosen_protocols:
        if p not in PROTOCOLS:
            raise SweepFileError(
                f"{where}: protocol {p!r} is not known{did_you_mean(p, PROTOCOLS)} (allowed: {', '.join(PROTOCOLS)})"
            )
    if seeds is not None:
        chosen_seeds = tuple(int(s) for s in seeds)
    elif isinstance(spec.seeds, str):
        try:
            chosen_seeds = tuple(parse_seeds(spec.seeds))
        except ValueError as exc:
            raise SweepFileError(f"{where}: seeds = {exc}") from None
    elif spec.seeds is not None:
        chosen_seeds = tuple(dict.fromkeys(spec.seeds))
    else:
        chosen_seeds = tuple(base_scenario.run.seeds)
    if not chosen_seeds:
        raise SweepFileError(f"{where}: seeds: no seeds; expected {SEEDS_SPELLING}")
    return Sweep(
        name=str(spec.name or base_scenario.name),
        description=spec.description,
        source=source,
        scenario_source=scenario_source,
        axes=tuple(axes),
        fixed=fixed,
        points=tuple(points),
        protocols=tuple(dict.fromkeys(chosen_protocols)),
        seeds=chosen_seeds,
    )


def _axis(where: str, name: str, values: list[Any] | dict[str, dict[str, Any]]) -> Axis:
    if isinstance(values, list):
        if not values:
            raise SweepFileError(f"{where}: grid.{name!r}: an empty list; give at least one value")
        labels = [_label(v) for v in values]
        repeated = sorted({str(v) for v in labels if labels.count(v) > 1})
        if repeated:
            raise SweepFileError(f"{where}: grid.{name!r}: values repeat: {', '.join(repeated)}")
        if "." not in name:
            raise SweepFileError(
                f'{where}: grid.{name!r}: a list of values needs a dotted key (e.g. "participants.payment.workers"); '
                "to set several keys per value, give a table of named cases"
            )
        return Axis(name, _uniform(labels), tuple({name: v} for v in values))
    if not values:
        raise SweepFileError(f"{where}: grid.{name}: an empty table; give at least one named case")
    if name in RESERVED_COLUMNS or "." in name:
        raise SweepFileError(
            f"{where}: grid.{name}: a named axis needs a plain name, not one of {', '.join(sorted(RESERVED_COLUMNS))}"
        )
    for case, settings in values.items():
        if not settings:
            raise SweepFileError(f"{where}: grid.{name}.{case}: sets nothing; give dotted keys and values")
    return Axis(name, tuple(values), tuple(dict(settings) for settings in values.values()))


def _label(value: Any) -> Scalar:
    """What a table shows for a value: scalars as they are, tables as JSON."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _uniform(labels: list[Scalar]) -> tuple[Scalar, ...]:
    """One type per column: numbers stay numbers, any mix with text becomes text."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels):
        return tuple(labels)
    if all(isinstance(v, bool) for v in labels) or all(isinstance(v, str) for v in labels):
        return tuple(labels)
    return tuple(str(v) for v in labels)


def _show(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _explain(where: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            allowed = list(_SweepFile.model_fields)
            problems.append(f"unknown key {key!r}{did_you_mean(key, allowed)} (allowed: {', '.join(allowed)})")
        elif err["type"] == "missing":
            problems.append(f"{loc}: required, but missing")
        else:
            problems.append(f"{loc} = {_show(err['input'])}: {err['msg'].removeprefix('Value error, ')}")
    problems = list(dict.fromkeys(problems))
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    return f"{where}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


# ---------------------------------------------------------------- one run


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep: what a worker needs, as plain data."""

    sweep: str
    point: int
    values: dict[str, Scalar]
    config: dict[str, Any]
    protocol: str
    seed: int

    @property
    def key(self) -> str:
        return f"p{self.point:04d}-s{self.seed}"

    @property
    def run_id(self) -> str:
        return f"{self.sweep}/p{self.point}/{self.protocol}/{self.seed}"


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
    """A run that raised: its parameters and the error."""

    task: RunTask
    error: str
    detail: str = ""

    def describe(self) -> str:
        shown = ", ".join(f"{k} = {_show(v)}" for k, v in self.task.values.items()) or "no grid"
        return f"point {self.task.point} ({shown}), {self.task.protocol}, seed {self.task.seed}: {self.error}"


def execute(task: RunTask) -> RunPart:
    """Run one (point, protocol, seed) and shape its tables. Runs in a worker
    process (local or Dask), so it takes and returns plain, picklable data."""
    scenario = scenario_from_dict(task.config, source=f"sweep {task.sweep!r} point {task.point}")
    out = run_once(scenario, task.protocol, task.seed)
    txns = transactions_frame(out.transactions)
    txns["run_id"] = task.run_id
    txns = txns.drop(columns=["protocol"])
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


# ---------------------------------------------------------------- executors


Progress = Callable[[int, int, int, "RunPart | RunFailure | None"], None]


def _run_inline(tasks: list[RunTask]) -> Iterator[RunPart | RunFailure]:
    for task in tasks:
        yield _execute_safely(task)


def _run_local(tasks: list[RunTask], workers: int) -> Iterator[RunPart | RunFailure]:
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    # Not fork: the parent may have threads (the progress bar's, a Dask client's).
    # The fork server imports sagasim once; each worker is forked from it ready to run.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["sim.sweep"])
    else:
        context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        pending: dict[Future[RunPart | RunFailure], RunTask] = {}
        queue = list(reversed(tasks))
        # Keep the pool a little ahead of itself, so an interrupt abandons few runs.
        while queue or pending:
            try:
                while queue and len(pending) < 2 * workers:
                    task = queue[-1]
                    pending[pool.submit(_execute_safely, task)] = task
                    queue.pop()
            except BrokenProcessPool as exc:  # a worker died: nothing more runs in this pool
                for task in [*pending.values(), *reversed(queue)]:
                    yield RunFailure(task, f"worker process failed: {exc}")
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    yield future.result()
                except Exception as exc:  # the worker process died (out of memory, killed)
                    yield RunFailure(task, f"worker process failed: {type(exc).__name__}: {exc}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(tasks: list[RunTask], scheduler: Any) -> Iterator[RunPart | RunFailure]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:  # pragma: no cover - dask is a dependency
        raise SagasimError("--scheduler needs dask.distributed: pip install 'dask[distributed]'") from None
    if isinstance(scheduler, Client):
        client, own = scheduler, False
    else:
        try:
            client, own = Client(str(scheduler), timeout=DASK_CONNECT_TIMEOUT, set_as_default=False), True
        except (OSError, TimeoutError) as exc:
            raise SagasimError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler there ({exc})") from None
    try:
        _check_worker_versions(client)
        futures = [client.submit(_execute_safely, task, pure=False) for task in tasks]
        by_future = dict(zip(futures, tasks, strict=True))
        try:
            for future in as_completed(futures, loop=client.loop):
                task = by_future[future]
                try:
                    yield future.result()
                except Exception as exc:  # the worker died or the task was lost
                    yield RunFailure(task, f"dask worker failed: {type(exc).__name__}: {exc}")
        finally:
            client.cancel([f for f in futures if not f.done()])
    finally:
        if own:
            client.close()


def _installed_version() -> str:
    return package_versions()["sagasim"]


def _check_worker_versions(client: Any) -> None:
    """Results are identical everywhere only if every worker runs this sagasim."""
    ours = _installed_version()
    theirs = client.run(_installed_version)
    if not theirs:
        raise SagasimError(f"the Dask scheduler at {client.scheduler.address} has no workers")
    wrong = {w: v for w, v in theirs.items() if v != ours}
    if wrong:
        shown = ", ".join(f"{w} has {v}" for w, v in sorted(wrong.items()))
        raise SagasimError(f"Dask workers must run sagasim {ours} like this machine: {shown}")


# ---------------------------------------------------------------- the dataset


@dataclass
class _Folder:
    """The dataset folder while a sweep writes it."""

    root: Path
    runs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.runs = self.root / _RUNS_DIR

    def marker(self, task: RunTask) -> Path:
        return self.runs / f"{task.key}-{task.protocol}.json"

    def part(self, table: str, task: RunTask) -> Path:
        return self.root / table / f"protocol={task.protocol}" / f"{task.key}.parquet"

    def save(self, part: RunPart) -> None:
        """The run's tables first, its marker last: a marker means the run is complete."""
        for table, frame in (("transactions", part.transactions), ("faults", part.faults)):
            atomic_file(self.part(table, part.task), lambda tmp, frame=frame: frame.to_parquet(tmp, index=False))
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


def _write_json(target: Path, data: dict[str, Any], indent: int | None = 2) -> None:
    atomic_file(target, lambda tmp: tmp.write_text(json.dumps(data, indent=indent, default=_json_default)))


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _plan(sweep: Sweep) -> dict[str, Any]:
    return {
        "sweep": sweep.name,
        "description": sweep.description,
        "source": sweep.source,
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


def _prepare(folder: _Folder, sweep: Sweep, resume: bool) -> None:
    root = folder.root
    plan = _plan(sweep)
    if root.exists() and any(root.iterdir()):
        if not resume:
            raise SagasimError(
                f"{root} already exists; add --resume to finish or extend nothing, or choose another --out"
            )
        pending = root / SWEEP_PENDING
        if (root / SWEEP_MARKER).exists() and not pending.exists():
            existing = json.loads((root / SWEEP_MARKER).read_text(encoding="utf-8"))
            if existing.get("fingerprint") != plan["fingerprint"]:
                raise SagasimError(f"{root} holds a complete sweep of a different plan; choose another --out")
            return
        if not pending.exists():
            raise SagasimError(f"{root} is not a sweep dataset (no {SWEEP_PENDING}); choose another --out")
        started = json.loads(pending.read_text(encoding="utf-8"))
        if started.get("fingerprint") != plan["fingerprint"]:
            raise SagasimError(
                f"{root} was started by a different plan (other grid, scenario, seeds or protocols); "
                "resume it with the same sweep file and options, or choose another --out"
            )
        return
    root.mkdir(parents=True, exist_ok=True)
    _write_json(root / SWEEP_PENDING, plan)


def _finish(folder: _Folder, sweep: Sweep, tasks: list[RunTask], wall_time: float, executor: str) -> None:
    """Merge the runs' summaries and write ``sweep.json``: the dataset is complete."""
    entries = [json.loads(folder.marker(t).read_text(encoding="utf-8")) for t in tasks]
    rows = [e.pop("summary") for e in entries]
    summary = pd.DataFrame(rows)
    for axis in sweep.axes:  # JSON turned NaN into null; give the axis back its type
        summary[axis.name] = pd.Series([row[axis.name] for row in rows], dtype=_dtype(axis.labels[0]))
    atomic_file(folder.root / "summary.parquet", lambda tmp: summary.to_parquet(tmp, index=False))
    meta = _plan(sweep) | {
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
    _prepare(folder, sweep, resume)
    tasks = sweep.runs
    if (folder.root / SWEEP_MARKER).exists():
        return load(folder.root)
    todo = [t for t in tasks if not folder.marker(t).exists()]
    total, done, failures = len(tasks), len(tasks) - len(todo), []
    if progress is not None:
        progress(done, total, 0, None)
    if scheduler is not None:
        results, executor = _run_dask(todo, scheduler), f"dask ({getattr(scheduler, 'scheduler', scheduler)})"
    else:
        n = min(workers or os.cpu_count() or 1, max(1, len(todo)))
        if n == 1:
            results, executor = _run_inline(todo), "this process"
        else:
            results, executor = _run_local(todo, n), f"{n} local processes"
    started = time.perf_counter()
    for outcome in results:
        if isinstance(outcome, RunFailure):
            failures.append(outcome)
        else:
            folder.save(outcome)
            done += 1
        if progress is not None:
            progress(done, total, len(failures), outcome)
    if failures:
        lines = "\n".join(f"  - {f.describe()}" for f in failures)
        again = f"sagasim sweep {sweep.source} --out {folder.root} --resume" if sweep.source else "resume=True"
        raise SweepIncomplete(
            f"{len(failures)} of {total} runs failed; the other {done} are saved in {folder.root}:\n{lines}\n"
            f"fix the cause, then finish the sweep with: {again}",
            failures,
        )
    _finish(folder, sweep, tasks, time.perf_counter() - started, executor)
    return load(folder.root)


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
