"""Sweep files: a scenario, a grid of values, seeds and protocols, validated.

A sweep file (TOML, see ``docs/sweeps.md``) names a scenario, fixed overrides
in ``[set]`` and the ``[grid]``: per dotted key a list of values, or a named
axis whose cases set several keys at once. Every combination of grid values
is a :class:`Point`; every point's scenario is built and validated here,
before anything runs, so a bad value is reported with the sweep file, the
point and the scenario's complaint. :mod:`sim.sweep` runs what this module
plans.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import shlex
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from sim.compare import SEEDS_SPELLING, format_seeds, override_strings, parse_seeds
from sim.errors import SagasimError, ScenarioError, did_you_mean, show_value
from sim.files import InputFileError, read_input_text
from sim.limits import MAX_RUNS, check_runs
from sim.metrics import (
    EVENT_COLUMNS,
    FAULT_COLUMNS,
    TRANSACTION_COLUMNS,
    TRANSACTION_EXTRA,
    TRANSACTION_PROTOCOL,
    summarize,
)
from sim.protocols import registry
from sim.result import package_versions
from sim.scenario import PROTOCOLS, ProtocolName, Scenario, parse_overrides, scenario_from_dict

Scalar = bool | int | float | str

#: Summary columns beyond the outcome figures: the runner's, then every
#: registered protocol's. (A new one missing here is still caught when the
#: first run returns.)
_SUMMARY_EXTRA = [
    "duration",
    "drain",
    "rejected",
    "network_messages",
    "network_lost",
    "network_duplicated",
    "crashes",
    "dropped_at_down_nodes",
    "lost_in_crashes",
    "wall_time",
    "alerts",
    "true_alerts",
    "false_alerts",
    "false_alerts_dead_lettered",
    "missed_alerts",
    "alerts_not_due",
    "alerts_hidden_dead_lettered",
    "detection_delay_mean",
    "detection_delay_max",
    *sorted({c for p in registry.protocols() for c in p.summary_columns}),
]
#: Names a named axis may not take: the columns of the run tables it joins.
RESERVED_COLUMNS: frozenset[str] = frozenset(
    {
        "point",
        *TRANSACTION_COLUMNS,
        *TRANSACTION_EXTRA,
        *TRANSACTION_PROTOCOL,
        *FAULT_COLUMNS,
        *EVENT_COLUMNS,
        *summarize(
            run_id="", scenario="", protocol="", seed=0, duration=1.0, outcomes=[], latency=[],
            time_to_consistency=[], messages=[], retries=[], anomalies=[], extra={},
        ),
        *_SUMMARY_EXTRA,
    }
)  # fmt: skip
#: Prefixes of summary columns named after the scenario's participants.
RESERVED_PREFIXES = ("utilization_", "anomaly_")
#: Keys a sweep decides itself (seeds, protocols) or does not use (expectations).
NOT_SWEPT = {
    "run.seeds": "give the sweep's seeds in its `seeds` key (or --seeds)",
    "run.protocols": "give the sweep's protocols in its `protocols` key (or --protocol)",
    "expect": "a sweep does not check a scenario's [expect]; read the dataset instead",
}

_ALLOWED = {
    "name": "letters, digits, '.', '_' or '-', starting with a letter or digit",
    "seeds": f'a list of whole numbers >= 0, or a string such as "1..10,20" ({SEEDS_SPELLING})',
    "protocols": f"a list of protocol names ({', '.join(PROTOCOLS)}), each once",
    "set": 'a table of quoted dotted keys and values, e.g. "run.duration" = 60.0',
    "grid": 'a table: quoted dotted keys with a list of values ("run.drain" = [10.0, 60.0]), '
    "or named axes (a table of cases, each a table of quoted dotted keys)",
    "scenario": "the scenario file's path, relative to the sweep file",
    "description": "one line of text",
}


class SweepFileError(SagasimError):
    """A sweep file, or a point of its grid, that does not validate."""


class _SweepFile(BaseModel):
    """The TOML of a sweep file, before its points are built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)] | None = None
    description: str = ""
    scenario: str
    seeds: list[Annotated[StrictInt, Field(ge=0, lt=2**63)]] | str | None = None
    protocols: list[ProtocolName] | None = None
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
    #: the value shown in tables, per case (one type per axis)
    labels: tuple[Scalar, ...]
    #: the overrides each case applies
    cases: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Point:
    """One combination of axis values, and the scenario it makes."""

    index: int
    values: dict[str, Scalar]
    overrides: dict[str, Any]
    scenario: Scenario


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep: what a worker needs, as plain, picklable data."""

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

    def describe(self) -> str:
        shown = ", ".join(f"{k} = {show_value(v, 60)}" for k, v in self.values.items()) or "no grid"
        return f"point {self.point} ({shown}), {self.protocol}, seed {self.seed}"


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
    #: the overrides given on top of the file (``--set``), for the resume command
    extra: dict[str, Any] = field(default_factory=dict)
    #: the limit on runs the sweep was loaded with (``--max-runs``), for the resume command
    max_runs: int = MAX_RUNS

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
        """A digest of everything that decides the runs' results and their ids."""
        plan = {
            "name": self.name,
            "sagasim": package_versions()["sagasim"],
            "points": [p.scenario.effective() for p in self.points],
            "values": [p.values for p in self.points],
            "protocols": self.protocols,
            "seeds": self.seeds,
        }
        return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def resume_command(self, out: str | Path) -> str:
        """The command that finishes this sweep into ``out``."""
        if self.source is None:
            return f"run_sweep(..., {str(out)!r}, resume=True) with the same sweep"
        argv = ["sagasim", "sweep", self.source, "--out", str(out), "--seeds", format_seeds(self.seeds)]
        for protocol in self.protocols:
            argv += ["-p", protocol]
        for item in override_strings(self.extra):
            argv += ["--set", item]
        if self.max_runs != MAX_RUNS:
            argv += ["--max-runs", str(self.max_runs)]
        return shlex.join([*argv, "--resume"])


def load_sweep(
    path: str | Path,
    *,
    seeds: Iterable[int] | None = None,
    protocols: Iterable[str] | None = None,
    overrides: Mapping[str, object] | Iterable[str] | None = None,
    max_runs: int = MAX_RUNS,
) -> Sweep:
    """Read and validate a sweep file, building the scenario of every point.

    ``seeds``, ``protocols`` and ``overrides`` (``--set`` spelling) replace the
    file's seeds and protocols and add to its ``[set]``. Raises
    :class:`SweepFileError` naming the file, the key, the value and what is
    allowed, and :class:`~sim.errors.SagasimError` when the sweep would start
    more than ``max_runs`` runs (points x protocols x seeds).
    """
    path = Path(path)
    source = str(path)
    try:
        raw = tomllib.loads(read_input_text(path, "sweep file"))
    except InputFileError as exc:
        problem = "no such sweep file" if exc.problem == "no such file" else exc.problem
        raise SweepFileError(f"{source}: {problem}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepFileError(f"{source}: is not valid TOML: {exc}") from None
    if "name" not in raw:
        raw["name"] = path.stem
        if not _name_ok(path.stem):
            raise SweepFileError(
                f"{source}: the file name {path.stem!r} cannot name the sweep ({_ALLOWED['name']}); "
                'give one with name = "..."'
            )
    return sweep_from_dict(
        raw, base=path.parent, source=source, seeds=seeds, protocols=protocols, overrides=overrides, max_runs=max_runs
    )


def _name_ok(name: str) -> bool:
    try:
        _SweepFile.model_validate({"name": name, "scenario": "x"})
    except ValidationError:
        return False
    return True


def sweep_from_dict(
    raw: Mapping[str, Any],
    *,
    base: str | Path = ".",
    source: str | None = None,
    seeds: Iterable[int] | None = None,
    protocols: Iterable[str] | None = None,
    overrides: Mapping[str, object] | Iterable[str] | None = None,
    max_runs: int = MAX_RUNS,
) -> Sweep:
    """Validate a sweep given as a dict (the parsed TOML); ``scenario`` is
    read relative to ``base``, or is a loaded :class:`~sim.scenario.Scenario`.
    Refuses more than ``max_runs`` runs before building the points' scenarios."""
    where = source or "<sweep>"
    data = dict(raw)
    scenario_obj = data.get("scenario")
    if isinstance(scenario_obj, Scenario):
        data["scenario"] = scenario_obj.name
    try:
        spec = _SweepFile.model_validate(data)
    except ValidationError as exc:
        raise SweepFileError(_explain(where, exc)) from None
    base_config, scenario_source = _scenario(where, spec, scenario_obj, Path(base))

    _check_dotted(where, "set", spec.set)
    extra = dict(parse_overrides(overrides)) if overrides else {}
    fixed = {**spec.set, **extra}
    axes = [_axis(where, name, values) for name, values in spec.grid.items()]
    _check_owners(where, fixed, axes)

    combos = itertools.product(*(range(len(a.labels)) for a in axes))
    # The grid's size is known before any point is built: a 1000 x 1000 grid is refused at once.
    n_points = math.prod(len(a.labels) for a in axes)
    check_runs(n_points, max_runs, f"{where}: the grid's {' x '.join(str(len(a.labels)) for a in axes) or '1'} points")
    first = _point(where, 0, next(combos), axes, fixed, base_config, scenario_source)
    base_scenario = first.scenario  # seeds, protocols and name default to the scenario's own

    chosen_protocols = list(protocols) if protocols is not None else list(spec.protocols or base_scenario.run.protocols)
    for p in chosen_protocols:
        if p not in PROTOCOLS:
            raise SweepFileError(
                f"{where}: protocol {p!r} is not known{did_you_mean(p, PROTOCOLS)} (allowed: {', '.join(PROTOCOLS)})"
            )
    chosen_seeds = _seeds(where, seeds, spec.seeds, base_scenario, max_runs)
    n_protocols = len(set(chosen_protocols))
    check_runs(
        n_points * n_protocols * len(chosen_seeds),
        max_runs,
        f"{where}: {n_points} grid points x {n_protocols} protocols x {len(chosen_seeds)} seeds",
    )
    points = [first]
    for index, combo in enumerate(combos, start=1):
        points.append(_point(where, index, combo, axes, fixed, base_config, scenario_source))
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
        extra=extra,
        max_runs=max_runs,
    )


def _point(
    where: str,
    index: int,
    combo: tuple[int, ...],
    axes: list[Axis],
    fixed: dict[str, Any],
    base_config: dict[str, Any],
    scenario_source: str,
) -> Point:
    """Grid point ``index``: the case ``combo`` picks on each axis, on top of ``fixed``, validated."""
    values = {a.name: a.labels[i] for a, i in zip(axes, combo, strict=True)}
    point_overrides = dict(fixed)
    for a, i in zip(axes, combo, strict=True):
        point_overrides.update(a.cases[i])
    try:
        scenario = scenario_from_dict(base_config, source=scenario_source, overrides=point_overrides or None)
    except ScenarioError as exc:
        shown = ", ".join(f"{k} = {show_value(v, 60)}" for k, v in values.items())
        problems = "\n".join(f"  - {p}" for p in exc.problems)
        raise SweepFileError(
            f"{where}: grid point {index} ({shown}) does not make a valid scenario:\n{problems}"
        ) from None
    return Point(index, values, point_overrides, scenario)


def _scenario(where: str, spec: _SweepFile, given: object, base: Path) -> tuple[dict[str, Any], str]:
    """The scenario's raw configuration and how to name it."""
    if isinstance(given, Scenario):
        return given.effective(), f"scenario {given.name!r}"
    path = base / spec.scenario
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), str(path)
    except FileNotFoundError:
        problem = f"no such file ({path}; relative to the sweep file)"
    except IsADirectoryError:
        problem = f"{path} is a directory, not a scenario file"
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problem = f"cannot be read: {exc}"
    raise SweepFileError(f"{where}: scenario = {spec.scenario!r}: {problem}")


def _seeds(
    where: str, given: Iterable[int] | None, in_file: list[int] | str | None, scenario: Scenario, max_runs: int
) -> tuple[int, ...]:
    if given is not None:
        chosen = list(given)
        bad = [s for s in chosen if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**63]
        if bad:
            raise SweepFileError(f"{where}: seeds: {show_value(bad[0])} is not a seed; expected {SEEDS_SPELLING}")
    elif isinstance(in_file, str):
        try:
            chosen = parse_seeds(in_file, limit=max_runs)
        except ValueError as exc:
            raise SweepFileError(f"{where}: seeds = {exc}") from None
    elif in_file is not None:
        chosen = in_file
    else:
        chosen = list(scenario.run.seeds)
    if not chosen:
        raise SweepFileError(f"{where}: seeds: no seeds; expected {SEEDS_SPELLING}")
    return tuple(dict.fromkeys(int(s) for s in chosen))


def _check_dotted(where: str, table: str, settings: Mapping[str, Any]) -> None:
    """Keys of ``[set]`` and of a case are quoted dotted paths; unquoted, TOML
    reads ``a.b = 1`` as a table ``a`` that would replace all of ``a``."""
    for key, value in settings.items():
        if "." not in key:
            hint = ""
            if isinstance(value, dict) and value:
                inner = next(iter(value))
                hint = f'; did you mean the key "{key}.{inner}" in quotes? Unquoted, TOML reads it as a table {key!r}'
            raise SweepFileError(
                f'{where}: {table}: {key!r} is not a dotted path such as "run.duration"{hint} '
                f"(allowed: {_ALLOWED['set']})"
            )
        for banned, why in NOT_SWEPT.items():
            if key == banned or key.startswith(banned + "."):
                raise SweepFileError(f"{where}: {table}: {key!r} cannot be set by a sweep: {why}")


def _check_owners(where: str, fixed: Mapping[str, Any], axes: list[Axis]) -> None:
    """Each key is decided in one place; a key under another would be lost."""
    owners: dict[str, str] = {key: "[set] (or --set)" for key in fixed}
    for axis in axes:
        for key in dict.fromkeys(k for case in axis.cases for k in case):
            if key in owners:
                other = owners[key]
                if other.startswith("["):
                    raise SweepFileError(f"{where}: {key!r} is set in {other} and swept by grid axis {axis.name!r}")
                raise SweepFileError(f"{where}: {key!r} is swept by two grid axes, {other!r} and {axis.name!r}")
            owners[key] = axis.name
    keys = sorted(owners)
    for a, b in itertools.pairwise(keys):
        if b.startswith(a + "."):
            raise SweepFileError(
                f"{where}: {a!r} (from {_owner(owners[a])}) contains {b!r} (from {_owner(owners[b])}): "
                "setting both would lose one; set only the inner keys"
            )


def _owner(name: str) -> str:
    return name if name.startswith("[") else f"grid axis {name!r}"


def _axis(where: str, name: str, values: list[Any] | dict[str, dict[str, Any]]) -> Axis:
    if isinstance(values, list):
        if "." not in name:
            raise SweepFileError(
                f"{where}: grid.{name}: a list of values needs a dotted key in quotes "
                '(e.g. "participants.payment.workers"); to set several keys per value, give a table of named cases'
            )
        if not values:
            raise SweepFileError(f"{where}: grid.{name!r}: an empty list; give at least one value")
        _check_dotted(where, "grid", {name: values[0]})
        labels = _uniform([_label(v) for v in values])
        repeated = sorted({str(v) for v in labels if labels.count(v) > 1})
        if repeated:
            raise SweepFileError(f"{where}: grid.{name!r}: values repeat: {', '.join(repeated)}")
        return Axis(name, labels, tuple({name: v} for v in values))
    if not values:
        raise SweepFileError(f"{where}: grid.{name}: an empty table; give at least one named case")
    if name in RESERVED_COLUMNS or name.startswith(RESERVED_PREFIXES):
        raise SweepFileError(
            f"{where}: grid.{name}: {name!r} is a column of the run tables; give the named axis another name"
        )
    for case, settings in values.items():
        if not settings:
            raise SweepFileError(f"{where}: grid.{name}.{case}: sets nothing; give dotted keys and values")
        _check_dotted(where, f"grid.{name}.{case}", settings)
    return Axis(name, tuple(values), tuple(dict(settings) for settings in values.values()))


def _label(value: Any) -> Scalar:
    """What a table shows for a value: scalars as they are, tables as JSON."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _uniform(labels: list[Scalar]) -> tuple[Scalar, ...]:
    """One type per axis: whole numbers mixed with decimals become decimals,
    any other mix becomes text."""
    if all(isinstance(v, bool) for v in labels) or all(isinstance(v, str) for v in labels):
        return tuple(labels)
    numbers = [v for v in labels if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == len(labels):
        if all(isinstance(v, int) for v in numbers):
            return tuple(numbers)
        return tuple(float(v) for v in numbers)
    return tuple(str(v) for v in labels)


def _explain(where: str, exc: ValidationError) -> str:
    """One line per field, in the user's words (a union's alternatives are one problem)."""
    problems: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        top = str(loc[0]) if loc else "<top>"
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            allowed = list(_SweepFile.model_fields)
            problems[key] = f"unknown key {key!r}{did_you_mean(key, allowed)} (allowed: {', '.join(allowed)})"
        elif err["type"] == "missing":
            problems[top] = f"{top}: required, but missing ({_ALLOWED.get(top, '')})"
        elif top == "protocols" and err["type"] == "value_error":
            problems[top] = f"{top} = {show_value(err['input'])}: {err['msg'].removeprefix('Value error, ')}"
        elif top not in problems:
            where_in = ".".join(str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in ("str", "list"))))
            shown = show_value(err["input"])
            problems[top] = f"{where_in} = {shown}: not allowed (allowed: {_ALLOWED.get(top, err['msg'])})"
    lines = list(problems.values())
    if len(lines) == 1:
        return f"{where}: {lines[0]}"
    return f"{where}: {len(lines)} problems:\n" + "\n".join(f"  - {p}" for p in lines)
