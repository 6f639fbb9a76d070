"""Let Hypothesis choose the faults: a state machine over a scenario file."""

from hypothesis import settings

from sim.testing import SagaMachine


class RobustOrderMachine(SagaMachine):
    scenario = "scenarios/robust-orchestrator.toml"


# Same examples on every machine (CI); 40 sequences of up to 20 steps.
RobustOrderMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=20, derandomize=True, database=None, deadline=None
)
TestRobustOrder = RobustOrderMachine.TestCase
