"""The Python API: ``sim.run`` and ``sim.load_scenario``.

``sim.run`` checks its arguments as the command line checks its flags, and
raises :class:`~sim.errors.SagasimError` with the same messages: a wrong
argument is one clear error, never a bare ``TypeError`` from deep inside.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sim.compare import SEED_LIMIT
from sim.errors import SagasimError, show_value
from sim.limits import MAX_RUNS, check_in_memory, check_runs
from sim.result import Result
from sim.runner import RunOutput, run_once
from sim.scenario import PROTOCOLS, Scenario, load_scenario, parse_overrides, scenario_from_dict

Overrides = Mapping[str, object] | Iterable[str] | str


def run(
    scenario: Scenario | str | Path | Mapping[str, Any],
    protocol: str | Iterable[str] | None = None,
    seed: int | Iterable[int] | None = None,
    overrides: Overrides | None = None,
    trace: bool | None = None,
    progress: Callable[[RunOutput], None] | None = None,
    *,
    max_runs: int = MAX_RUNS,
) -> Result:
    """Run a scenario and return its :class:`~sim.result.Result`.

    - ``scenario``: a scenario file's path (``str`` or ``Path``), a loaded
      :class:`~sim.scenario.Scenario`, or the scenario as a dict (the parsed
      TOML).
    - ``protocol``: one name or several, each a registered protocol
      (:data:`sim.names.PROTOCOLS`); default: the scenario's ``run.protocols``.
    - ``seed``: one whole number or several, each in ``[0, 2**63)``; default:
      the scenario's ``run.seeds``. Repeats run once.
    - ``overrides``: ``--set`` values, as ``{"dotted.key": value}``, a list of
      ``"dotted.key=value"`` strings (values read as TOML), or one such string.
    - ``trace``: record every event (``Result.events``); default: the
      scenario's ``run.trace``.
    - ``progress``: called with each run's output as it finishes.
    - ``max_runs``: refuse more runs (protocols x seeds) than this.

    Raises :class:`~sim.errors.SagasimError` for any bad argument, with the
    command line's message.
    """
    checked = _overrides(overrides)
    loaded = _scenario(scenario, checked)
    protocols = _protocols(protocol, loaded)
    seeds = _seeds(seed, loaded)
    if trace is not None and not isinstance(trace, bool):
        raise SagasimError(f"trace = {show_value(trace)}: expected True, False or None")
    check_runs(len(protocols) * len(seeds), max_runs, f"{len(protocols)} protocols x {len(seeds)} seeds")
    check_in_memory(loaded, bool(trace))
    started = time.perf_counter()
    runs = []
    for p in protocols:
        for s in seeds:
            out = run_once(loaded, p, s, trace)
            runs.append(out)
            if progress is not None:
                progress(out)
    applied = dict(parse_overrides(checked)) if checked else {}
    source = str(scenario) if isinstance(scenario, (str, Path)) else None
    return Result(loaded, runs, applied, time.perf_counter() - started, source=source)


def _overrides(overrides: Overrides | None) -> Mapping[str, object] | list[str] | None:
    """The overrides as a mapping or a list of ``key=value`` strings."""
    if overrides is None or isinstance(overrides, Mapping):
        return overrides
    if isinstance(overrides, str):
        return [overrides]  # one "key=value", not a sequence of letters
    if not isinstance(overrides, Iterable):
        raise SagasimError(
            f"overrides = {show_value(overrides)}: expected a dict of dotted keys, or a list of "
            '"dotted.key=value" strings, e.g. ["run.duration=5"]'
        )
    items = list(overrides)
    for item in items:
        if not isinstance(item, str):
            raise SagasimError(
                f"overrides: {show_value(item)} is not a \"dotted.key=value\" string, e.g. 'run.duration=5'"
            )
    return items


def _scenario(scenario: object, overrides: Mapping[str, object] | list[str] | None) -> Scenario:
    if isinstance(scenario, (str, Path)):
        return load_scenario(scenario, overrides)
    if isinstance(scenario, Scenario):
        if not overrides:
            return scenario
        return scenario_from_dict(scenario.effective(), source=f"scenario {scenario.name!r}", overrides=overrides)
    if isinstance(scenario, Mapping):
        return scenario_from_dict(scenario, source="<scenario dict>", overrides=overrides)
    raise SagasimError(
        f"scenario: expected a scenario file's path, a sim.Scenario or a dict, got {type(scenario).__name__}"
    )


def _protocols(protocol: str | Iterable[str] | None, scenario: Scenario) -> list[str]:
    """The protocols to run, each once, checked like ``--protocol``."""
    chosen = _listify(protocol, scenario.run.protocols, "protocol")
    for name in chosen:
        if name not in PROTOCOLS:
            raise SagasimError(f"protocol {show_value(name)}: not a protocol; allowed: {', '.join(PROTOCOLS)}")
    if not chosen:
        raise SagasimError(f"protocol: an empty list; give at least one of {', '.join(PROTOCOLS)}")
    return list(dict.fromkeys(chosen))


def _seeds(seed: int | Iterable[int] | None, scenario: Scenario) -> list[int]:
    """The seeds to run, each once, checked like ``--seed``."""
    chosen = _listify(seed, scenario.run.seeds, "seed")
    for value in chosen:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
            raise SagasimError(
                f"seed {show_value(value)}: not a seed; seeds are whole numbers >= 0 and < 2**63 ({SEED_LIMIT})"
            )
    if not chosen:
        raise SagasimError("seed: an empty list; give at least one seed (a whole number >= 0)")
    return list(dict.fromkeys(chosen))


def _listify(value: object, default: Iterable[Any], what: str) -> list[Any]:
    if value is None:
        return list(default)
    if isinstance(value, (str, int, float)):
        return [value]
    if not isinstance(value, Iterable):
        raise SagasimError(f"{what} = {show_value(value)}: expected one value or a list of them")
    return list(value)
