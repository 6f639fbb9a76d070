"""The Python API: ``sim.run`` and ``sim.load_scenario``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from sim.errors import SagasimError
from sim.result import Result
from sim.runner import RunOutput, run_once
from sim.scenario import PROTOCOLS, Scenario, load_scenario, parse_overrides, scenario_from_dict


def run(
    scenario: Scenario | str | Path,
    protocol: str | Iterable[str] | None = None,
    seed: int | Iterable[int] | None = None,
    overrides: Mapping[str, object] | Iterable[str] | None = None,
    trace: bool | None = None,
    progress: Callable[[RunOutput], None] | None = None,
) -> Result:
    """Run a scenario and return its :class:`~sim.result.Result`.

    ``scenario`` is a path or a loaded :class:`~sim.scenario.Scenario`;
    ``protocol`` and ``seed`` default to the scenario's ``run.protocols`` and
    ``run.seeds`` and accept one value or several; ``overrides`` uses the
    ``--set`` dotted paths (``{"participants.payment.business_failure": 0.1}``).
    ``progress`` is called after each run.
    """
    if isinstance(scenario, (str, Path)):
        loaded = load_scenario(scenario, overrides)
    elif overrides:
        loaded = scenario_from_dict(scenario.effective(), source=f"scenario {scenario.name!r}", overrides=overrides)
    else:
        loaded = scenario
    protocols = _listify(protocol, loaded.run.protocols)
    seeds = [int(s) for s in _listify(seed, loaded.run.seeds)]
    for p in protocols:
        if p not in PROTOCOLS:
            raise SagasimError(f"unknown protocol {p!r}; allowed: {', '.join(PROTOCOLS)}")
    for s in seeds:
        if s < 0:
            raise SagasimError(f"seed must be >= 0, got {s}")
    started = time.perf_counter()
    runs = []
    for p in protocols:
        for s in seeds:
            out = run_once(loaded, p, s, trace)
            runs.append(out)
            if progress is not None:
                progress(out)
    applied = dict(parse_overrides(overrides)) if overrides else {}
    source = str(scenario) if isinstance(scenario, (str, Path)) else None
    return Result(loaded, runs, applied, time.perf_counter() - started, source=source)


def _listify(value: object, default: list) -> list:
    if value is None:
        return list(default)
    if isinstance(value, (str, int)):
        return [value]
    return list(value)  # type: ignore[call-overload]
