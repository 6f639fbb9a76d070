"""sagasim: a deterministic simulator and chaos harness for distributed transactions.

>>> import sim
>>> result = sim.run("scenarios/order-flaky-payment.toml", seed=1)   # doctest: +SKIP
>>> result.summary[["protocol", "committed_rate", "inconsistent_rate"]]  # doctest: +SKIP
"""

from sim.api import run
from sim.errors import SagasimError, ScenarioError
from sim.result import Result
from sim.scenario import Scenario, load_scenario

__all__ = ["Result", "SagasimError", "Scenario", "ScenarioError", "load_scenario", "run"]
__version__ = "0.1.0"
