"""The checker on hand-made effect histories: every reason it can give."""

from __future__ import annotations

import math

import pytest

from sim.checker import Checker
from sim.protocols.base import CoordinatorView
from sim.world.effects import COMPENSATE, FORWARD, Effect

from conftest import order_scenario

DONE = CoordinatorView(True, 9.0, "committed", 0)
RUNNING = CoordinatorView(False, math.nan, "running", 0)
CHARGE, RESERVE, SHIP = 0, 1, 2


def history(*items: tuple[int, int]) -> list[Effect]:
    """Effects at times 1, 2, 3, ... from (step, op) pairs."""
    return [Effect(float(t + 1), step, op, "p") for t, (step, op) in enumerate(items)]


@pytest.fixture
def checker() -> Checker:
    return Checker(order_scenario().transaction.steps)


def judge(checker: Checker, effects: list[Effect], view: CoordinatorView = DONE):
    return checker.judge(effects, view, started=0.5)


def test_every_step_once_is_committed(checker: Checker) -> None:
    v = judge(checker, history((CHARGE, FORWARD), (RESERVE, FORWARD), (SHIP, FORWARD)))
    assert (v.outcome, v.consistent, v.consistent_at, v.reasons) == ("committed", True, 3.0, ())
    assert (v.steps_applied, v.compensations_applied) == (3, 0)


def test_undone_in_reverse_order_is_compensated(checker: Checker) -> None:
    v = judge(
        checker,
        history((CHARGE, FORWARD), (RESERVE, FORWARD), (RESERVE, COMPENSATE), (CHARGE, COMPENSATE)),
    )
    assert (v.outcome, v.consistent, v.consistent_at) == ("compensated", True, 4.0)
    assert (v.steps_applied, v.compensations_applied) == (2, 2)


def test_nothing_applied_is_compensated_and_consistent_from_the_start(checker: Checker) -> None:
    v = judge(checker, [])
    assert (v.outcome, v.consistent, v.consistent_at) == ("compensated", True, 0.5)


@pytest.mark.parametrize(
    ("effects", "reason", "code"),
    [
        (
            [(CHARGE, FORWARD), (CHARGE, FORWARD), (RESERVE, FORWARD), (SHIP, FORWARD)],
            "charge applied 2 times",
            "applied_twice",
        ),
        (
            [(CHARGE, FORWARD), (CHARGE, COMPENSATE), (CHARGE, COMPENSATE)],
            "refund applied 2 times",
            "compensated_twice",
        ),
        ([(CHARGE, COMPENSATE)], "refund without charge", "compensation_without_step"),
        ([(CHARGE, COMPENSATE), (CHARGE, FORWARD)], "charge applied after its refund", "step_after_compensation"),
        (
            [(CHARGE, FORWARD), (RESERVE, FORWARD), (CHARGE, COMPENSATE), (RESERVE, COMPENSATE)],
            "refund before release (compensations must run in reverse order)",
            "compensation_out_of_order",
        ),
        (
            [(CHARGE, FORWARD), (RESERVE, FORWARD), (SHIP, FORWARD), (RESERVE, COMPENSATE)],
            "release after the pivot ship",
            "compensated_after_pivot",
        ),
        (
            [(CHARGE, FORWARD), (CHARGE, COMPENSATE), (SHIP, FORWARD)],
            "the pivot ship applied after refund",
            "pivot_after_compensation",
        ),
        ([(CHARGE, FORWARD)], "charge never compensated (refund missing)", "never_compensated"),
        (
            [(CHARGE, FORWARD), (SHIP, FORWARD)],
            "reserve never applied although the pivot ship was",
            "incomplete_after_pivot",
        ),
    ],
)
def test_inconsistencies_are_named(checker: Checker, effects, reason: str, code: str) -> None:
    v = judge(checker, history(*effects))
    assert v.outcome == "inconsistent"
    assert not v.consistent
    assert math.isnan(v.consistent_at)
    assert reason in v.reasons
    assert code in v.anomalies


def test_stuck_depends_only_on_the_coordinator_and_keeps_consistency(checker: Checker) -> None:
    clean = judge(checker, history((CHARGE, FORWARD), (RESERVE, FORWARD), (SHIP, FORWARD)), RUNNING)
    assert (clean.outcome, clean.consistent) == ("stuck", True)
    half = judge(checker, history((CHARGE, FORWARD)), RUNNING)
    assert (half.outcome, half.consistent) == ("stuck", False)
    assert half.reasons == ("charge never compensated (refund missing)",)


def test_the_coordinator_belief_does_not_decide_the_outcome(checker: Checker) -> None:
    believes_compensated = CoordinatorView(True, 9.0, "compensated", 0)
    v = judge(checker, history((CHARGE, FORWARD), (RESERVE, FORWARD), (SHIP, FORWARD)), believes_compensated)
    assert v.outcome == "committed"


def test_a_saga_with_retriable_steps_after_the_pivot() -> None:
    scenario = order_scenario(
        {
            "transactions.order.steps": [
                {"name": "charge", "participant": "payment", "compensation": "refund"},
                {"name": "ship", "participant": "shipping", "kind": "pivot"},
                {"name": "notify", "participant": "inventory", "kind": "retriable"},
            ]
        }
    )
    checker = Checker(scenario.transaction.steps)
    done = checker.judge(history((0, FORWARD), (1, FORWARD), (2, FORWARD)), DONE, 0.0)
    assert done.outcome == "committed"
    missing = checker.judge(history((0, FORWARD), (1, FORWARD)), DONE, 0.0)
    assert missing.outcome == "inconsistent"
    assert missing.reasons == ("notify never applied although the pivot ship was",)
