"""sim.testing.SagaMachine: Hypothesis finds the naive designs' violations,
shrinks them to a [[faults]] timeline, and passes the robust designs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from sim.machine import effect_problems
from sim.scenario import scenario_from_dict
from sim.testing import SagaMachine
from sim.world.effects import COMPENSATE, FORWARD, Effect

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def _machine(name: str, protocol: str | None = None, horizon: float = 30.0) -> type[SagaMachine]:
    attributes = {"scenario": str(SCENARIOS / f"{name}.toml"), "protocol": protocol, "horizon": horizon}
    return type(name.title().replace("-", ""), (SagaMachine,), attributes)


def _settings(examples: int, shrink: bool = True) -> settings:
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])]
    return settings(
        max_examples=examples,
        stateful_step_count=15,
        derandomize=True,  # the same examples everywhere: CI is deterministic
        database=None,
        deadline=None,
        report_multiple_bugs=False,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )


def _failure(name: str, examples: int, shrink: bool = True) -> str:
    with pytest.raises(AssertionError) as caught:
        run_state_machine_as_test(_machine(name), settings=_settings(examples, shrink))
    return str(caught.value)


def test_the_naive_orchestrator_fails_and_the_failure_is_a_faults_timeline() -> None:
    """Found within 100 generated sequences (derandomized: the same ones on
    every machine; it takes a handful), shrunk by Hypothesis, printed as a
    [[faults]] timeline that validates in a scenario."""
    message = _failure("naive-orchestrator", 100)
    assert "not eventually consistent" in message or "applied twice" in message
    timeline = message.split("the faults, to paste into a scenario:\n", 1)[1]
    faults = tomllib.loads(timeline)["faults"]
    assert 1 <= len(faults) <= 2  # shrunk: one or two faults
    data = tomllib.loads((SCENARIOS / "naive-orchestrator.toml").read_text())
    data["faults"] = faults
    scenario_from_dict(data)  # pastes into the scenario it came from


def test_the_dual_write_choreography_fails() -> None:
    """Found within 100 generated sequences (not shrunk here, to keep the test quick)."""
    message = _failure("choreography-dual-write", 100, shrink=False)
    assert re.search(r"transaction \d+", message)


@pytest.mark.parametrize(
    ("name", "protocol"),
    [("robust-orchestrator", None), ("choreography-redelivery-idempotent", None), ("twopc-participant-down", "2pc")],
)
def test_robust_designs_pass(name: str, protocol: str | None) -> None:
    """50 sequences of up to 15 steps each, derandomized, with faults in the
    first 10 s: less than the choreography's redelivery budget
    (max_deliveries 10 x ack_timeout 2 s), past which an event is
    dead-lettered and its saga stuck (see the next test)."""
    run_state_machine_as_test(_machine(name, protocol, horizon=10.0), settings=_settings(50))


def test_a_partition_longer_than_the_redelivery_budget_leaves_sagas_stuck() -> None:
    """A finding on the robust choreography: with 30 s of faults, cutting the
    broker from a consumer for longer than 10 deliveries x 2 s dead-letters
    the event, and the saga is stuck (bounded redelivery is a liveness limit)."""
    with pytest.raises(AssertionError, match="stuck") as caught:
        run_state_machine_as_test(_machine("choreography-redelivery-idempotent"), settings=_settings(50))
    assert 'kind = "partition"' in str(caught.value)


def test_the_readme_example_is_the_example_test_file() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "tests" / "test_saga_machine_example.py").read_text()
    assert f"```python\n{example}```" in readme


def test_effect_rules() -> None:
    def e(t: float, step: int, op: int) -> Effect:
        return Effect(t, step, op, "p")

    assert effect_problems([e(1, 0, FORWARD), e(2, 0, COMPENSATE)]) == []
    assert effect_problems([e(1, 0, FORWARD), e(2, 0, FORWARD)]) == ["step 0 applied twice"]
    assert effect_problems([e(1, 1, COMPENSATE)]) == ["step 1 compensated without being applied"]
    assert effect_problems([e(1, 0, FORWARD), e(2, 0, COMPENSATE), e(3, 0, FORWARD)]) == [
        "step 0 applied after its compensation",
        "step 0 applied twice",
    ]
    assert effect_problems([e(1, 0, FORWARD), e(2, 0, COMPENSATE), e(3, 0, COMPENSATE)]) == ["step 0 compensated twice"]


def test_a_machine_without_a_scenario_says_so() -> None:
    from sim.errors import SagasimError

    with pytest.raises(SagasimError, match="set scenario ="):
        SagaMachine()


def test_drop_next_drops_one_message_and_ends_at_its_instant() -> None:
    """The armed one-way cut ends right after the instant its first message
    met it: one message lost (the first command), the fault's window from
    when it was armed to that instant; the retry after the timeout goes through."""
    machine = _machine("robust-orchestrator")()
    assert machine.nodes[:2] == ["orchestrator", "payment"]
    machine.drop_next(0, 1)  # orchestrator -> payment, armed at 0 s
    machine.advance(0.001)
    machine.start_transaction()  # its first command meets the cut at 0.001 s
    machine.advance(0.1)
    network = machine.live.model.network
    assert network.lost == 1 and machine.armed is None
    record = machine.live.model.faults.records[-1]
    assert record.start == 0.0 and record.end == pytest.approx(0.001)
    machine.teardown()  # committed after a retry: consistent


def test_an_armed_advance_stops_at_its_instant_without_running_what_is_due_then() -> None:
    """Like LiveRun.advance: events due exactly at the target instant are not
    run (flipping `due >= to` to `>` runs them and moves the clock past it)."""
    machine = _machine("robust-orchestrator")()
    machine.start_transaction()
    machine.duplicate_next(1, 0)  # payment -> orchestrator: the first reply
    due = machine.live.next_event
    machine._advance(due)
    assert machine.live.now == due and machine.live.next_event == due
    assert machine.armed is not None  # nothing has met it yet
    machine.teardown()
