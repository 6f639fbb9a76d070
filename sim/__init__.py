"""sagasim: a deterministic simulator and chaos harness for distributed transactions.

>>> import sim
>>> result = sim.run("scenarios/order-flaky-payment.toml", seed=1)   # doctest: +SKIP
>>> result.summary[["protocol", "committed_rate", "inconsistent_rate"]]  # doctest: +SKIP
"""

import importlib
from types import ModuleType

from sim.api import run
from sim.errors import SagasimError, ScenarioError
from sim.result import Result
from sim.scenario import Scenario, load_scenario, scenario_from_dict

__all__ = ["Result", "SagasimError", "Scenario", "ScenarioError", "load_scenario", "run", "scenario_from_dict"]
__version__ = "0.1.0"

#: Submodules the docs use as ``sim.NAME.function`` after a bare ``import sim``;
#: imported on first use (``sim.report`` loads matplotlib, which takes a while).
_SUBMODULES = frozenset({"compare", "dataset", "metrics", "report", "sweep", "sweepfile", "testing"})


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"sim.{name}")
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
