"""The ``version-file`` countermeasure (issue 19): the participant records the
operations it received per step of a transaction so that out-of-order ones
commute. Its rule on hand-made cases (a compensation before its step, at the
same instant in both orders, twice; a restore by value turned into a delta;
an absolute write since the step), then on ``isolation-out-of-order.toml``
where compensations overtake a slow step: what it removes and what it does not."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sim
from sim.errors import ScenarioError
from sim.isolation import IsolationChecker
from sim.runner import Model
from sim.scenario import load_scenario, scenario_from_dict
from sim.world.effects import COMPENSATE, FORWARD
from sim.world.records import Recorded, Records

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "isolation-out-of-order.toml"
#: Ten seconds of orders: about 500, enough for dozens of overtaken reserves.
SHORT = {"run.duration": 10.0, "run.drain": 20.0}
CHARGE, RESERVE = 0, 1


def _state(rec: Records, where: str, key: int) -> list[float]:
    """A record's [value, version]."""
    cell = rec.values[(where, key)]
    return [cell.value, cell.version]


def _model(**overrides: Any) -> Model:
    s = load_scenario(SCENARIO, {**SHORT, "isolation.countermeasure": "version-file", **overrides})
    m = Model(s, "orchestration", 1)
    for txn in range(4):
        m.keys.by_txn[txn] = ((3,), (5,), ())  # every order: account 3, stock item 5
    return m


# ---------------------------------------------------------------- the rule on hand-made cases


def test_a_compensation_before_its_step_applies_nothing_and_the_step_is_skipped() -> None:
    m = _model()
    rec = m.world.records
    assert not rec.compensate("warehouse", 0, RESERVE)  # nothing to undo: no effect at all
    assert not rec.forward("warehouse", 0, RESERVE)  # the reserve arriving later: not applied
    assert ("warehouse", 5) not in rec.values and rec.history == []  # the stock never touched
    assert rec.version_nulls == 1 and rec.version_skips == 1 and rec.version_ops == 2
    assert [(r.op, r.applied) for r in rec.version_file[(0, RESERVE)]] == [(COMPENSATE, False), (FORWARD, False)]
    assert rec.skips(0, RESERVE)  # and so is every later copy
    assert rec.version_skips == 2
    # another order's reserve is not concerned
    assert not rec.skips(1, RESERVE) and rec.forward("warehouse", 1, RESERVE)
    assert _state(rec, "warehouse", 5) == [99999, 1]


def test_at_the_same_instant_the_order_of_arrival_decides() -> None:
    m = _model()
    rec = m.world.records
    assert m.world.env.now == 0.0  # every operation below at the same instant
    # the step first, then its compensation: applied, then undone
    assert rec.forward("warehouse", 0, RESERVE)
    assert rec.compensate("warehouse", 0, RESERVE)
    assert _state(rec, "warehouse", 5) == [100000, 2] and rec.version_skips == 0
    # the compensation first, then its step: nothing applied, the step skipped
    assert not rec.compensate("warehouse", 1, RESERVE)
    assert not rec.forward("warehouse", 1, RESERVE)
    assert _state(rec, "warehouse", 5) == [100000, 2] and rec.version_skips == 1
    times = {r.time for entries in rec.version_file.values() for r in entries}
    assert times == {0.0}


def test_a_second_compensation_finds_nothing_left_to_undo() -> None:
    m = _model()
    rec = m.world.records
    assert rec.forward("warehouse", 0, RESERVE)
    assert rec.compensate("warehouse", 0, RESERVE)
    assert not rec.compensate("warehouse", 0, RESERVE)  # (a retried release): no effect
    assert _state(rec, "warehouse", 5) == [100000, 2] and rec.version_nulls == 1


def test_duplicates_before_the_compensation_are_still_applied_each() -> None:
    # the version file orders a step and its compensation; a step applied
    # twice is the idempotency table's business: one compensation undoes one
    m = _model()
    rec = m.world.records
    assert rec.forward("warehouse", 0, RESERVE) and rec.forward("warehouse", 0, RESERVE)
    assert rec.compensate("warehouse", 0, RESERVE)
    assert rec.values[("warehouse", 5)].value == 99999


def test_a_restore_by_value_becomes_the_steps_delta() -> None:
    m = _model()
    rec = m.world.records
    assert rec.forward("payment", 0, CHARGE)  # 100000 - 30 (v1)
    assert rec.forward("payment", 1, CHARGE)  # another order: - 30 (v2)
    assert rec.compensate("payment", 0, CHARGE)  # by value it would restore 100000
    assert _state(rec, "payment", 3) == [99970, 3]  # txn 1's charge kept
    assert rec.version_rebased == 1
    assert rec.history[-1][9] == 2  # computed from the version it replaced
    s = m.scenario
    found = IsolationChecker(s.isolation, s.transaction.steps).check(rec.history)
    # no lost update; txn 1's check read txn 0's charge, refunded since: a dirty read it does not remove
    assert {txn: [f.code for f in fs] for txn, fs in found.items()} == {1: ["dirty_read"]}
    # unchanged since its step: the same value as a restore, and not counted
    assert rec.forward("payment", 2, CHARGE)
    assert rec.compensate("payment", 2, CHARGE)
    assert _state(rec, "payment", 3) == [99970, 5] and rec.version_rebased == 1


def test_none_loses_the_update_the_version_file_keeps() -> None:
    m = _model(**{"isolation.countermeasure": "none"})
    rec = m.world.records
    rec.forward("payment", 0, CHARGE)
    rec.forward("payment", 1, CHARGE)
    assert rec.compensate("payment", 0, CHARGE)  # (every other countermeasure: always an effect)
    assert _state(rec, "payment", 3) == [100000, 3]
    assert rec.compensate("warehouse", 0, RESERVE) is True  # nothing to undo, yet an effect
    assert rec.forward("warehouse", 0, RESERVE)  # and the step lands after it
    assert "isolation_version_ops" not in rec.summary()


def _as(m: Model, op: str, amount: float = 7.0) -> None:
    """From now on the reserve step does ``op`` (another order's step of another kind, on the same record)."""
    rec = m.world.records
    rec.ops[RESERVE] = rec.ops[RESERVE].model_copy(update={"op": op, "amount": amount})


def test_a_set_is_undone_with_the_operations_since_kept() -> None:
    m = _model()
    rec = m.world.records
    _as(m, "set")
    assert rec.forward("warehouse", 0, RESERVE)  # 100000 -> 7 (v1): its own absolute write
    _as(m, "subtract")
    assert rec.forward("warehouse", 1, RESERVE)  # 7 - 7 = 0 (v2)
    assert rec.compensate("warehouse", 0, RESERVE)  # as if the set never was: 100000 - 7
    assert _state(rec, "warehouse", 5) == [99993, 3]


def test_a_step_overwritten_by_a_later_set_leaves_nothing_to_undo() -> None:
    m = _model()
    rec = m.world.records
    _as(m, "subtract")
    assert rec.forward("warehouse", 0, RESERVE)  # 100000 - 7 (v1)
    _as(m, "set")
    assert rec.forward("warehouse", 1, RESERVE)  # another order sets 7 (v2): replaces it
    assert rec.compensate("warehouse", 0, RESERVE)
    assert _state(rec, "warehouse", 5) == [7, 3]  # the set stands, nothing of txn 0 is left


def test_a_step_without_records_has_no_version_file() -> None:
    m = _model()
    rec = m.world.records
    assert not rec.skips(0, 2) and rec.compensate("shipping", 0, 2) and rec.forward("shipping", 0, 2)
    assert rec.version_file == {} and rec.version_ops == 0


# ---------------------------------------------------------------- on the scenario


@cache
def _summary(countermeasure: str, protocol: str) -> pd.Series:
    s = load_scenario(SCENARIO, {**SHORT, "isolation.countermeasure": countermeasure})
    return sim.run(s, protocol=protocol, seed=1).summary.iloc[0]


def test_orchestration_compensations_overtake_their_step_and_the_version_file_orders_them() -> None:
    none = _summary("none", "orchestration")
    assert none.anomaly_step_after_compensation > 0  # the release first, the reserve after it
    assert none.anomaly_lost_update > 0 and none.anomaly_dirty_read > 0
    vf = _summary("version-file", "orchestration")
    assert vf.anomaly_step_after_compensation == 0 and vf.anomaly_lost_update == 0
    assert vf.isolation_version_skips > 0 and vf.isolation_version_nulls > 0
    assert vf.isolation_version_rebased > 0
    assert vf.inconsistent < none.inconsistent
    # what it does not remove: a check still reads a charge refunded later
    assert vf.anomaly_dirty_read > 0
    # paired fates: the same orders shipped, the overtaken ones now compensated
    assert vf.committed == none.committed and vf.compensated > none.compensated
    # commutative updates remove the lost updates, not the steps after their compensation
    commutative = _summary("commutative-updates", "orchestration")
    assert commutative.anomaly_lost_update == 0 and commutative.anomaly_step_after_compensation > 0


def test_choreography_redelivered_copies_after_the_release_are_skipped() -> None:
    none = _summary("none", "choreography")
    assert none.anomaly_step_after_compensation > 0 and none.anomaly_applied_twice > 0
    vf = _summary("version-file", "choreography")
    assert vf.anomaly_step_after_compensation == 0 and vf.anomaly_lost_update == 0
    assert vf.isolation_version_skips > 0
    assert vf.anomaly_applied_twice > 0  # copies before the release: the idempotency table's business
    assert vf.stuck == 0


@pytest.mark.parametrize("protocol", ["2pc", "tcc"])
def test_locks_and_reservations_leave_the_version_file_nothing_to_order(protocol: str) -> None:
    # 2PC writes at prepare and undoes at abort only what it prepared, under
    # locks; TCC's Cancel and Try of one step are ordered by its coordinator here
    none, vf = _summary("none", protocol), _summary("version-file", protocol)
    assert vf.isolation_version_ops > 0
    assert vf.isolation_version_skips == vf.isolation_version_nulls == vf.isolation_version_rebased == 0
    assert vf.isolation_anomaly_rate == none.isolation_anomaly_rate == 0
    assert (vf.committed, vf.inconsistent) == (none.committed, none.inconsistent)


def test_a_tcc_try_after_its_cancel_is_refused_by_the_version_file() -> None:
    # (no barrier: the Cancel of a Try still in flight is a null release; the version file records it)
    m = _model()
    rec = m.world.records
    assert not rec.compensate("warehouse", 0, RESERVE)
    assert not rec.forward("warehouse", 0, RESERVE)  # what TCC's Try calls: refused, nothing reserved


def test_same_seed_same_version_file() -> None:
    def run() -> dict[tuple[int, int], list[Recorded]]:
        s = load_scenario(SCENARIO, {**SHORT, "run.duration": 3.0, "isolation.countermeasure": "version-file"})
        m = Model(s, "orchestration", 1)
        m.run()
        return m.world.records.version_file

    first = run()
    assert len(first) > 100 and first == run()


def test_the_bad_countermeasure_message_lists_the_version_file() -> None:
    import tomllib

    raw = tomllib.loads(SCENARIO.read_text())
    raw["isolation"]["countermeasure"] = "versionfile"
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(raw, source="x.toml")
    text = str(info.value)
    assert (
        "x.toml" in text
        and 'isolation.countermeasure = "versionfile"' in text
        and "pessimistic-view, version-file)" in text
    )
    raw["isolation"]["countermeasure"] = "none"
    raw["isolation"]["steps"]["reserve"]["countermeasure"] = "version-file"  # the per-step override
    s = scenario_from_dict(raw, source="x.toml")
    assert s.isolation.steps["reserve"].countermeasure == "version-file"


def test_the_trace_shows_the_null_release_and_the_skipped_reserve() -> None:
    s = load_scenario(SCENARIO, {**SHORT, "run.duration": 3.0, "isolation.countermeasure": "version-file"})
    ev = sim.run(s, protocol="orchestration", seed=1, trace=True).events
    nulls = ev[(ev.kind == "null-compensation") & ev.detail.str.startswith("version file")]
    skips = ev[(ev.kind == "refuse") & ev.detail.str.startswith("version file")]
    assert len(nulls) > 0 and len(skips) > 0
    # each skipped reserve comes after the null release of its order
    for txn in skips.txn_id:
        assert nulls[nulls.txn_id == txn].time.min() <= skips[skips.txn_id == txn].time.min()
    assert set(skips.step) == {"reserve"} and set(nulls.step) == {"release"}
    # neither the reserve nor its release of those orders left an effect: they ended compensated
    late = ev[ev.txn_id.isin(skips.txn_id) & (ev.kind == "effect")]
    assert len(late) > 0 and not late.step.isin(["reserve", "release"]).any()


def test_a_read_step_applied_is_compensated_as_an_effect() -> None:
    # the version file counts applications, not writes: a read wrote nothing, yet was applied
    s = load_scenario(
        ROOT / "scenarios" / "isolation-fuzzy-read.toml", {**SHORT, "isolation.countermeasure": "version-file"}
    )
    m = Model(s, "orchestration", 1)
    rec = m.world.records
    m.keys.by_txn[0] = ((2,), (7,), (9,), ())
    assert rec.forward("catalog", 0, 0)  # quote reads catalog[2]
    assert rec.compensate("catalog", 0, 0)  # an effect: its step was applied
    assert not rec.compensate("catalog", 0, 0)  # once only
    assert rec.version_nulls == 1


@pytest.mark.parametrize("name", ["dirty-read", "lost-update", "fuzzy-read"])
def test_on_the_three_isolation_scenarios_it_does_what_deltas_do(name: str) -> None:
    # nothing arrives out of order there (idempotent participants, generous
    # timeouts): the version file's only act is turning restores by value into deltas
    def row(cm: str) -> pd.Series:
        s = load_scenario(ROOT / "scenarios" / f"isolation-{name}.toml", {**SHORT, "isolation.countermeasure": cm})
        return sim.run(s, protocol="orchestration", seed=1).summary.iloc[0]

    vf, delta, none = row("version-file"), row("commutative-updates"), row("none")
    counts = ["inconsistent", "committed", "anomaly_lost_update", "anomaly_dirty_read", "anomaly_fuzzy_read"]
    assert vf[counts].tolist() == delta[counts].tolist()
    assert vf.isolation_version_skips == vf.isolation_version_nulls == 0
    assert vf.anomaly_lost_update == 0
    assert (vf.isolation_version_rebased > 0) == (none.anomaly_lost_update > 0)
    if name != "lost-update":  # what it does not remove
        assert vf.anomaly_dirty_read > 0
    if name == "fuzzy-read":
        assert vf.anomaly_fuzzy_read > 0


def test_the_sweep_measures_it() -> None:
    import tomllib

    sweep = tomllib.loads((ROOT / "sweeps" / "isolation-countermeasures.toml").read_text())
    assert "version-file" in sweep["grid"]["isolation.countermeasure"]
