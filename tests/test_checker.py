"""The checker on hand-made effect histories: every reason it can give."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.checker import ANOMALIES, Checker, TwoPCChecker, Verdict
from sim.protocols.base import CoordinatorView
from sim.scenario import StepSpec
from sim.world.effects import ABORT, COMPENSATE, FORWARD, PREPARED, Effect

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


# ------------------------------------------------------------------ every code, every protocol

#: charge (compensatable), ship (the pivot), notify (retriable, after the pivot)
RETRIABLE_STEPS = order_scenario(
    {
        "transactions.order.steps": [
            {"name": "charge", "participant": "payment", "compensation": "refund"},
            {"name": "ship", "participant": "shipping", "kind": "pivot"},
            {"name": "notify", "participant": "inventory", "kind": "retriable"},
        ]
    }
).transaction.steps
ORDER_STEPS = order_scenario().transaction.steps

#: One hand-made effect log per anomaly code the checkers can emit:
#: (checker, steps, [(step, op)], the reason, the code).
CODE_CASES: list[tuple[str, tuple[StepSpec, ...], list[tuple[int, int]], str, str]] = [
    ("saga", ORDER_STEPS, [(0, FORWARD), (0, FORWARD), (1, FORWARD), (2, FORWARD)], "charge applied 2 times",
     "applied_twice"),
    ("saga", ORDER_STEPS, [(0, FORWARD), (0, COMPENSATE), (0, COMPENSATE)], "refund applied 2 times",
     "compensated_twice"),
    ("saga", ORDER_STEPS, [(0, COMPENSATE)], "refund without charge", "compensation_without_step"),
    ("saga", ORDER_STEPS, [(0, COMPENSATE), (0, FORWARD)], "charge applied after its refund",
     "step_after_compensation"),
    ("saga", ORDER_STEPS, [(0, FORWARD), (1, FORWARD), (0, COMPENSATE), (1, COMPENSATE)],
     "refund before release (compensations must run in reverse order)", "compensation_out_of_order"),
    ("saga", ORDER_STEPS, [(0, FORWARD), (1, FORWARD), (2, FORWARD), (1, COMPENSATE)],
     "release after the pivot ship", "compensated_after_pivot"),
    ("saga", ORDER_STEPS, [(0, FORWARD), (0, COMPENSATE), (2, FORWARD)], "the pivot ship applied after refund",
     "pivot_after_compensation"),
    ("saga", ORDER_STEPS, [(0, FORWARD)], "charge never compensated (refund missing)", "never_compensated"),
    ("saga", ORDER_STEPS, [(0, FORWARD), (2, FORWARD)], "reserve never applied although the pivot ship was",
     "incomplete_after_pivot"),
    ("saga", RETRIABLE_STEPS, [(0, FORWARD), (0, COMPENSATE), (2, FORWARD)],
     "notify applied although the pivot ship was not", "retriable_without_pivot"),
    ("2pc", ORDER_STEPS, [(0, PREPARED), (1, PREPARED), (2, PREPARED), (0, FORWARD), (0, FORWARD), (1, FORWARD),
     (2, FORWARD)], "charge committed 2 times at payment", "applied_twice"),
    ("2pc", ORDER_STEPS, [(0, PREPARED), (1, PREPARED), (2, PREPARED), (0, FORWARD), (1, ABORT), (2, FORWARD)],
     "reserve aborted at inventory while charge at payment committed", "commit_and_abort"),
    ("2pc", ORDER_STEPS, [(0, PREPARED), (0, FORWARD), (1, PREPARED), (1, FORWARD)],
     "ship never prepared at shipping while charge at payment committed", "partial_commit"),
    ("2pc", ORDER_STEPS, [(0, PREPARED), (1, PREPARED), (2, PREPARED), (0, ABORT), (1, ABORT)],
     "ship in doubt at shipping (prepared, never decided)", "in_doubt"),
    ("2pc", ORDER_STEPS, [(0, PREPARED), (1, PREPARED), (0, FORWARD), (1, FORWARD), (2, FORWARD)],
     "ship committed at shipping with no prepared record before", "commit_without_prepare"),
    ("2pc", ORDER_STEPS, [(0, PREPARED), (1, PREPARED), (2, PREPARED), (0, FORWARD), (1, FORWARD), (2, FORWARD),
     (2, ABORT)], "ship aborted at shipping after it committed", "committed_and_aborted"),
]  # fmt: skip


def _checker(kind: str, steps: tuple[StepSpec, ...]) -> Checker | TwoPCChecker:
    return TwoPCChecker(steps) if kind == "2pc" else Checker(steps)


@pytest.mark.parametrize(
    ("kind", "steps", "effects", "reason", "code"),
    [pytest.param(*case, id=f"{case[0]}-{case[4]}") for case in CODE_CASES],
)
def test_every_anomaly_code_is_emitted_with_its_reason(
    kind: str, steps: tuple[StepSpec, ...], effects: list[tuple[int, int]], reason: str, code: str
) -> None:
    v = _checker(kind, steps).judge(history(*effects), DONE, 0.5)
    assert (v.outcome, v.consistent) == ("inconsistent", False)
    assert math.isnan(v.consistent_at)
    assert reason in v.reasons
    assert code in v.anomalies


def test_every_anomaly_code_has_a_case() -> None:
    assert {case[4] for case in CODE_CASES} == set(ANOMALIES)


def test_a_commit_after_an_abort_of_the_same_2pc_step_is_inconsistent() -> None:
    effects = [(0, PREPARED), (1, PREPARED), (2, PREPARED), (2, ABORT), (0, FORWARD), (1, FORWARD), (2, FORWARD)]
    v = TwoPCChecker(ORDER_STEPS).judge(history(*effects), DONE, 0.5)
    assert (v.outcome, v.anomalies) == ("inconsistent", ("committed_and_aborted",))
    assert v.reasons == ("ship committed at shipping after it aborted",)


def test_a_prepared_record_after_the_commit_does_not_excuse_it() -> None:
    effects = [(0, PREPARED), (1, PREPARED), (0, FORWARD), (1, FORWARD), (2, FORWARD), (2, PREPARED)]
    v = TwoPCChecker(ORDER_STEPS).judge(history(*effects), DONE, 0.5)
    assert (v.outcome, v.anomalies) == ("inconsistent", ("commit_without_prepare",))


# Step kinds as validation allows them: compensatable steps, then at most one
# pivot, then (only after a pivot) retriable steps.
@st.composite
def _steps_and_log(draw: st.DrawFn, ops: tuple[int, ...]) -> tuple[tuple[StepSpec, ...], list[tuple[int, int]]]:
    before = draw(st.integers(0, 3))
    pivot = draw(st.booleans())
    after = draw(st.integers(0, 2)) if pivot else 0
    kinds = ["compensatable"] * before + ["pivot"] * pivot + ["retriable"] * after
    if not kinds:
        kinds = ["compensatable"]
    steps = tuple(
        StepSpec(
            name=f"s{i}", participant=f"p{i}", kind=kind, compensation=f"u{i}" if kind == "compensatable" else None
        )
        for i, kind in enumerate(kinds)
    )
    log = draw(st.lists(st.tuples(st.integers(0, len(steps) - 1), st.sampled_from(ops)), max_size=8))
    return steps, log


def _assert_named(v: Verdict) -> None:
    if v.outcome == "inconsistent":
        assert v.reasons and v.anomalies, v
    assert set(v.anomalies) <= set(ANOMALIES)
    assert bool(v.reasons) == bool(v.anomalies)
    if v.outcome in ("stuck", "inconsistent"):
        assert math.isnan(v.consistent_at)
    else:
        assert not math.isnan(v.consistent_at) and not v.reasons


@settings(max_examples=400, deadline=None)
@given(_steps_and_log((FORWARD, COMPENSATE)), st.booleans())
def test_every_inconsistent_saga_verdict_has_a_reason_and_a_code(
    case: tuple[tuple[StepSpec, ...], list[tuple[int, int]]], terminal: bool
) -> None:
    steps, log = case
    _assert_named(Checker(steps).judge(history(*log), DONE if terminal else RUNNING, 0.5))


@settings(max_examples=400, deadline=None)
@given(_steps_and_log((PREPARED, FORWARD, ABORT)), st.booleans())
def test_every_inconsistent_2pc_verdict_has_a_reason_and_a_code(
    case: tuple[tuple[StepSpec, ...], list[tuple[int, int]]], terminal: bool
) -> None:
    steps, log = case
    _assert_named(TwoPCChecker(steps).judge(history(*log), DONE if terminal else RUNNING, 0.5))


# ------------------------------------------------------------------ time to consistency


@pytest.mark.parametrize("kind", ["saga", "2pc"])
def test_a_stuck_transaction_never_became_consistent(kind: str) -> None:
    # Nothing applied yet, the coordinator still running: the effects balance,
    # but the transaction was not "consistent at its start": it never ended.
    v = _checker(kind, ORDER_STEPS).judge([], RUNNING, 0.5)
    assert v.outcome == "stuck"
    assert math.isnan(v.consistent_at)
    ops = [(0, FORWARD), (1, FORWARD), (2, FORWARD)]
    if kind == "2pc":
        ops = [(0, PREPARED), (1, PREPARED), (2, PREPARED), *ops]
    v = _checker(kind, ORDER_STEPS).judge(history(*ops), RUNNING, 0.5)
    assert (v.outcome, v.consistent) == ("stuck", True)
    assert math.isnan(v.consistent_at)


def test_every_anomaly_code_is_documented() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "results.md").read_text()
    assert [code for code in ANOMALIES if f"`{code}`" not in text] == []


def test_a_retriable_step_in_a_hand_built_transaction_without_a_pivot_is_named_too() -> None:
    steps = (
        StepSpec(name="charge", participant="payment", compensation="refund"),
        StepSpec(name="notify", participant="inventory", kind="retriable"),
    )
    v = Checker(steps).judge(history((1, FORWARD)), DONE, 0.5)
    assert (v.outcome, v.anomalies) == ("inconsistent", ("retriable_without_pivot",))
    assert v.reasons == ("notify applied although there is no pivot",)
