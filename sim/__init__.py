"""sagasim: a deterministic simulator and chaos harness for distributed transactions.

>>> import sim
>>> result = sim.run("scenarios/order-flaky-payment.toml", seed=1)   # doctest: +SKIP
>>> result.summary[["protocol", "committed_rate", "inconsistent_rate"]]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sim.errors import SagasimError, ScenarioError

if TYPE_CHECKING:
    from sim.api import run
    from sim.result import Result
    from sim.scenario import Scenario, load_scenario, scenario_from_dict

__all__ = ["Result", "SagasimError", "Scenario", "ScenarioError", "load_scenario", "run", "scenario_from_dict"]
__version__ = "0.1.0"

# Everything below loads on first use: `import sim` (and so `sagasim --help`,
# which imports sim.cli) must not pay for pandas, scipy, pydantic or matplotlib.
#: Names of the public API, and the module each comes from.
_NAMES = {
    "run": "sim.api",
    "Result": "sim.result",
    "Scenario": "sim.scenario",
    "load_scenario": "sim.scenario",
    "scenario_from_dict": "sim.scenario",
}
#: Submodules the docs use as ``sim.NAME.function`` after a bare ``import sim``.
_SUBMODULES = frozenset({"compare", "dataset", "explain", "metrics", "report", "sweep", "sweepfile", "testing"})


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value  # once loaded, a plain attribute
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"sim.{name}")
    raise AttributeError(f"module 'sim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAMES, *_SUBMODULES})
