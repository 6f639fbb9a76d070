"""Records with values and the isolation checker (issue 19): the checker on
hand-made histories, the records' operations and countermeasures one by one,
each countermeasure against the anomaly it targets on its scenario (and what
it does not remove), 2PC showing none, validation, tracing and determinism."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sim
from sim.errors import ScenarioError
from sim.isolation import IsolationChecker, end_violations
from sim.runner import Model
from sim.scenario import load_scenario, scenario_from_dict
from sim.world.effects import COMPENSATE, FORWARD
from sim.world.records import READ, WRITE, Records

from conftest import order_dict, sagasim

ROOT = Path(__file__).resolve().parents[1]
SAGAS = ("orchestration", "choreography")
#: Short runs: the anomalies appear within seconds on these hot keys.
SHORT = {"run.duration": 8.0, "run.drain": 20.0}


# ---------------------------------------------------------------- the checker on hand-made histories


def _state(rec: Records, where: str, key: int) -> list[float]:
    """A record's [value, version]."""
    cell = rec.values[(where, key)]
    return [cell.value, cell.version]


def _iso(min_: float | None = None, conserved: bool = False) -> Any:
    """A scenario with records at ``payment`` for the test order saga."""
    data = order_dict()
    data["workload"]["keys"] = {"population": 10}
    data["isolation"] = {
        "records": {"payment": {"initial": 100, "min": min_, "conserved": conserved}},
        "steps": {"charge": {"op": "subtract", "amount": 10}},
    }
    if min_ is None:
        del data["isolation"]["records"]["payment"]["min"]
    return scenario_from_dict(data, source="test")


def _check(history: list[tuple[Any, ...]], min_: float | None = None) -> dict[int, list[Any]]:
    s = _iso(min_)
    return IsolationChecker(s.isolation, s.transaction.steps).check(history)


def R(t: float, txn: int, version: int, value: float = 0.0, step: int = 0, refused: bool = False) -> tuple:
    """A forward read of payment[1]."""
    return (t, txn, step, FORWARD, "payment", 1, READ, value, version, version, refused)


def W(t: float, txn: int, version: int, value: float = 0.0, based_on: int | None = None, op: int = FORWARD) -> tuple:
    """A write of payment[1] making ``version`` (from ``version - 1`` unless ``based_on``)."""
    base = version - 1 if based_on is None else based_on
    return (t, txn, 0, op, "payment", 1, WRITE, value, version, base, False)


def test_lost_update_names_the_overwritten_transaction_with_three_operations() -> None:
    # txn 1 charges (v1, from v0); txn 2 charges (v2); txn 1's refund by
    # value restores v0's value as v3: txn 2's write is gone.
    found = _check([W(1, 1, 1, 90), W(2, 2, 2, 80), W(3, 1, 3, 100, based_on=0, op=COMPENSATE)])
    assert [f.code for f in found[1]] == ["lost_update"]
    assert found[1][0].other == 2
    reason = found[1][0].reason
    assert "payment[1]" in reason and "txn 2 charge wrote v2" in reason and "refund wrote v3 from v0" in reason
    assert 2 not in found


def test_a_restore_over_its_own_writes_only_loses_nothing() -> None:
    found = _check([W(1, 1, 1, 90), W(2, 1, 2, 80), W(3, 1, 3, 100, based_on=0, op=COMPENSATE)])
    assert found == {}


def test_a_restore_of_the_version_another_wrote_before_the_step_loses_nothing() -> None:
    # txn 2 wrote v1 before txn 1's step (v2, from v1); txn 1's restore goes back to v1's value
    assert _check([W(0, 2, 1, 90), W(1, 1, 2, 80), W(3, 1, 3, 90, based_on=1, op=COMPENSATE)]) == {}


def test_a_delta_compensation_loses_nothing() -> None:
    found = _check([W(1, 1, 1, 90), W(2, 2, 2, 80), W(3, 1, 3, 90, op=COMPENSATE)])
    assert found == {}


def test_dirty_read_of_a_write_later_compensated() -> None:
    # txn 1 charges (v1); txn 2 reads v1; txn 1 refunds: txn 2 read a value that never was.
    found = _check([W(1, 1, 1, 90), R(2, 2, 1, 90), W(3, 1, 2, 100, op=COMPENSATE)])
    assert [f.code for f in found[2]] == ["dirty_read"]
    assert found[2][0].other == 1 and "then txn 1 compensated it" in found[2][0].reason


def test_a_dirty_read_counts_only_when_the_reader_acted_on_it() -> None:
    history = [W(1, 1, 1, 90), R(2, 2, 1, 90), W(3, 1, 2, 100, op=COMPENSATE)]
    s = _iso()
    checker = IsolationChecker(s.isolation, s.transaction.steps)
    assert checker.check(history, ended=set()) == {}  # txn 2 neither ended nor wrote after: it acted on nothing
    assert [f.code for f in checker.check(history, ended={2})[2]] == ["dirty_read"]  # it went through
    wrote = [*history[:2], (2.5, 2, 1, FORWARD, "payment", 7, WRITE, 1.0, 1, 0, False), history[2]]
    assert [f.code for f in checker.check(wrote, ended=set())[2]] == ["dirty_read"]  # it wrote after the read
    wrote_before = [(1.5, 2, 1, FORWARD, "payment", 7, WRITE, 1.0, 1, 0, False), *history]
    assert checker.check(wrote_before, ended=set()) == {}  # (only a write after the read counts)


def test_no_dirty_read_when_the_compensation_came_first_or_never() -> None:
    # read after the refund (the refund at the same instant, logged first): clean
    assert _check([W(1, 1, 1, 90), W(2, 1, 2, 100, op=COMPENSATE), R(2, 2, 2, 100)]) == {}
    # the write is never compensated: a committed read
    assert _check([W(1, 1, 1, 90), R(2, 2, 1, 90)]) == {}


def test_a_refused_read_acted_on_nothing() -> None:
    assert _check([W(1, 1, 1, 90), R(2, 2, 1, 90, refused=True), W(3, 1, 2, 100, op=COMPENSATE)]) == {}


def test_dirty_read_through_a_later_version() -> None:
    # txn 3 writes on top of txn 1's charge; txn 2 reads v2, which still holds txn 1's charge
    found = _check([W(1, 1, 1, 90), W(2, 3, 2, 80), R(3, 2, 2, 80), W(4, 1, 3, 90, op=COMPENSATE)])
    assert [f.other for f in found[2]] == [1]


def test_fuzzy_read_two_reads_with_another_write_between() -> None:
    found = _check([R(1, 1, 0, 100), W(2, 2, 1, 90), R(3, 1, 1, 90, step=2)])
    assert [f.code for f in found[1]] == ["fuzzy_read"]
    assert found[1][0].other == 2 and "saw v0" in found[1][0].reason and "read v1" in found[1][0].reason


def test_no_fuzzy_read_when_only_the_reader_wrote_between() -> None:
    assert _check([R(1, 1, 0, 100), W(2, 1, 1, 90), R(3, 1, 1, 90, step=2)]) == {}
    assert _check([R(1, 1, 0, 100), R(3, 1, 0, 100, step=2)]) == {}
    # the version both reads saw was another's write, made before the first: repeatable
    assert _check([W(0, 2, 1, 90), R(1, 1, 1, 90), R(3, 1, 1, 90, step=2)]) == {}


def test_invariant_never_below_is_checked_on_every_write_and_equal_is_allowed() -> None:
    found = _check([W(1, 1, 1, 0), W(2, 2, 2, -10), W(3, 2, 3, 0, op=COMPENSATE)], min_=0)
    assert list(found) == [2]  # the write of exactly 0 breaks nothing (flipping < to <= fails this)
    assert found[2][0].code == "invariant" and "-10" in found[2][0].reason


def test_constant_sum_is_judged_at_the_end() -> None:
    s = _iso(conserved=True)
    assert end_violations(s.isolation, {"payment": 0.0}) == []
    assert end_violations(s.isolation, {"payment": -30.0}) == [
        "the sum of payment's records moved by -30 (constant sum)"
    ]


# ---------------------------------------------------------------- the records' operations


def _model(path: str, protocol: str = "orchestration", **overrides: Any) -> Model:
    s = load_scenario(ROOT / "scenarios" / path, {**SHORT, **overrides})
    return Model(s, protocol, 1)


def test_operations_compensations_by_delta_and_by_value_and_checks() -> None:
    m = _model("isolation-lost-update.toml")
    rec = m.world.records
    m.keys.by_txn[0] = ((3,), (4,), ())
    m.keys.by_txn[1] = ((3,), (5,), ())
    assert rec.forward("bank", 0, 0)  # withdraw 10 from bank[3]: 990
    assert rec.forward("bank", 1, 0)  # another withdraw: 980
    rec.compensate("bank", 0, 0)  # by value: back to 1000, txn 1's 10 lost
    assert _state(rec, "bank", 3) == [1000, 3]
    assert rec.drift()["bank"] == 0.0
    rec.compensate("bank", 0, 0)  # nothing left to undo: nothing written
    assert rec.values[("bank", 3)].version == 3
    # by delta (commutative updates): nothing lost
    m = _model("isolation-lost-update.toml", **{"isolation.countermeasure": "commutative-updates"})
    rec = m.world.records
    m.keys.by_txn[0] = ((3,), (4,), ())
    m.keys.by_txn[1] = ((3,), (5,), ())
    rec.forward("bank", 0, 0)
    rec.forward("bank", 1, 0)
    rec.compensate("bank", 0, 0)
    assert _state(rec, "bank", 3) == [990, 3]


def test_check_min_refuses_below_and_allows_equal() -> None:
    m = _model("isolation-dirty-read.toml", **{"isolation.records.wallet.initial": 40})
    rec = m.world.records
    m.keys.by_txn[0] = ((1,), (1,), ())
    m.keys.by_txn[1] = ((2,), (1,), ())
    assert rec.forward("wallet", 0, 1)  # pay 40 of 40: leaves exactly 0 (check_min = 0): allowed
    assert _state(rec, "wallet", 1) == [0, 1]
    assert not rec.forward("wallet", 1, 1)  # 0 - 40 < 0: refused, nothing written
    assert _state(rec, "wallet", 1) == [0, 1]
    assert rec.check_refusals == 1
    assert rec.history[-1][6] == READ and rec.history[-1][10] is True  # the refused read is in the history


def test_reread_value_refuses_a_changed_record_and_restores_by_delta() -> None:
    m = _model("isolation-fuzzy-read.toml", **{"isolation.countermeasure": "reread-value"})
    rec = m.world.records
    m.keys.by_txn[0] = ((2,), (7,), (9,), ())
    m.keys.by_txn[1] = ((5,), (2,), (5,), ())
    assert rec.forward("catalog", 0, 0)  # quote reads catalog[2]
    assert rec.forward("catalog", 1, 1)  # txn 1 adjusts catalog[2]
    assert not rec.forward("catalog", 0, 2)  # bill re-reads catalog[2]: changed, refused
    assert rec.reread_aborts == 1
    # unchanged: the bill goes
    assert rec.forward("catalog", 1, 0) and rec.forward("catalog", 1, 2)
    # a restore by value whose record moved falls back to a delta
    m = _model("isolation-lost-update.toml", **{"isolation.countermeasure": "reread-value"})
    rec = m.world.records
    m.keys.by_txn[0] = ((3,), (4,), ())
    m.keys.by_txn[1] = ((3,), (5,), ())
    rec.forward("bank", 0, 0)
    rec.forward("bank", 1, 0)
    rec.compensate("bank", 0, 0)
    assert _state(rec, "bank", 3) == [990, 3] and rec.reread_fallbacks == 1
    m.keys.by_txn[2] = ((3,), (5,), ())
    rec.forward("bank", 2, 0)  # 990 - 10 = 980 (v4)
    rec.compensate("bank", 2, 0)  # unchanged since its write: by value, back to 990
    assert _state(rec, "bank", 3) == [990, 5] and rec.reread_fallbacks == 1
    assert rec.history[-1][9] == 3  # (computed from the version its step saw)


def test_semantic_lock_marks_until_the_saga_ends() -> None:
    m = _model("isolation-dirty-read.toml", **{"isolation.countermeasure": "semantic-lock"})
    rec = m.world.records
    wallet = m.participants["wallet"]
    m.world.effects.open(0)
    m.keys.by_txn[0] = ((1,), (1,), ())
    m.keys.by_txn[1] = ((1,), (2,), ())
    assert rec.forward("wallet", 0, 0) and rec.forward("wallet", 0, 1)  # two writes of wallet[1]
    assert rec.pending == {("wallet", 1): 0}
    assert rec.gate(wallet, 0, 1, print, None) == 0  # its own mark: go
    resumed: list[Any] = []
    wallet.pool.busy = wallet.workers  # (no worker free: the resubmitted job queues)
    assert rec.gate(wallet, 1, 0, resumed.append, "job") == 1  # another saga waits
    rec.compensate("wallet", 0, 1)  # one write undone, the other still holds: still pending
    assert rec.pending == {("wallet", 1): 0}
    rec.compensate("wallet", 0, 0)  # both undone: no longer pending
    assert rec.pending == {}
    rec.forward("wallet", 0, 0)
    assert rec.pending == {("wallet", 1): 0}
    m.world.effects.apply(0.0, 0, 2, FORWARD, "bank")  # its last step: the saga is over
    assert rec.pending == {}
    m.world.run(until=0.001)
    assert [w.job for w in wallet.pool.queue] == ["job"]  # resubmitted to the pool
    assert rec.waits == 1


def test_semantic_lock_refuse_mode_refuses_at_once() -> None:
    m = _model(
        "isolation-dirty-read.toml", **{"isolation.countermeasure": "semantic-lock", "isolation.pending": "refuse"}
    )
    rec = m.world.records
    m.keys.by_txn[0] = ((1,), (1,), ())
    m.keys.by_txn[1] = ((1,), (2,), ())
    rec.forward("wallet", 0, 0)
    assert rec.gate(m.participants["wallet"], 1, 0, print, None) == 2
    assert rec.pending_refusals == 1 and rec.waits == 0


# ---------------------------------------------------------------- countermeasures on their scenarios


@cache
def _summary(name: str, countermeasure: str, protocol: str) -> pd.Series:
    s = load_scenario(
        ROOT / "scenarios" / f"isolation-{name}.toml", {**SHORT, "isolation.countermeasure": countermeasure}
    )
    return sim.run(s, protocol=protocol, seed=1).summary.iloc[0]


@pytest.mark.parametrize("protocol", SAGAS)
def test_dirty_reads_and_the_semantic_lock(protocol: str) -> None:
    assert _summary("dirty-read", "none", protocol).anomaly_dirty_read > 0
    locked = _summary("dirty-read", "semantic-lock", protocol)
    assert locked.anomaly_dirty_read == 0 and locked.isolation_anomaly_rate == 0
    assert locked.isolation_waits > 0 and locked.isolation_wait_time > 0  # its cost
    assert locked.latency_p50 > _summary("dirty-read", "none", protocol).latency_p50
    # commutative updates do not remove it: the credit is refunded by delta already
    assert _summary("dirty-read", "commutative-updates", protocol).anomaly_dirty_read > 0
    # the pessimistic view removes the dirty reads of credits, not those of debits later repaid
    view = _summary("dirty-read", "pessimistic-view", protocol).anomaly_dirty_read
    assert 0 < view < _summary("dirty-read", "none", protocol).anomaly_dirty_read


@pytest.mark.parametrize("protocol", SAGAS)
def test_lost_updates_and_their_countermeasures(protocol: str) -> None:
    none = _summary("lost-update", "none", protocol)
    assert none.anomaly_lost_update > 0 and none.invariant_end_violations == 1
    for cm in ("commutative-updates", "reread-value", "semantic-lock"):
        row = _summary("lost-update", cm, protocol)
        assert row.anomaly_lost_update == 0 and row.invariant_end_violations == 0, cm
    assert _summary("lost-update", "reread-value", protocol).isolation_reread_fallbacks > 0


@pytest.mark.parametrize("protocol", SAGAS)
def test_fuzzy_reads_and_the_reread(protocol: str) -> None:
    assert _summary("fuzzy-read", "none", protocol).anomaly_fuzzy_read > 0
    reread = _summary("fuzzy-read", "reread-value", protocol)
    assert reread.anomaly_fuzzy_read == 0 and reread.isolation_reread_aborts > 0
    # the re-read does not remove the dirty reads; the semantic lock does not remove fuzzy reads
    assert reread.anomaly_dirty_read > 0
    assert _summary("fuzzy-read", "semantic-lock", protocol).anomaly_fuzzy_read > 0


@pytest.mark.parametrize("protocol", ["2pc", "tcc"])
@pytest.mark.parametrize("name", ["dirty-read", "lost-update", "fuzzy-read"])
def test_two_phase_commit_and_tcc_show_none(name: str, protocol: str) -> None:
    # 2PC: its writes are made at prepare under locks held until the decision;
    # TCC: a Try takes (reserves) under its key conflicts, a credit waits for its Confirm
    row = _summary(name, "none", protocol)
    assert row.isolation_anomaly_rate == 0 and row.invariant_end_violations == 0
    assert row.inconsistent == 0


def test_an_anomaly_makes_the_transaction_inconsistent_with_its_reason() -> None:
    s = load_scenario(ROOT / "scenarios" / "isolation-lost-update.toml", SHORT)
    tx = sim.run(s, protocol="orchestration", seed=1).transactions
    lost = tx[tx.anomalies.map(lambda a: "lost_update" in list(a))]
    assert len(lost) > 0 and (lost.outcome == "inconsistent").all() and lost.consistent_at.isna().all()
    assert all(any(r.startswith("lost_update on bank[") for r in reasons) for reasons in lost.reasons)


def test_the_cli_fails_on_dirty_reads_and_passes_with_the_semantic_lock(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = ROOT / "scenarios" / "isolation-dirty-read.toml"
    short = ["--set", "run.duration=8", "--set", "run.protocols=['orchestration']"]
    code, out, err = sagasim(capsys, "run", path, *short, "--fail-on", "inconsistent", "-o", tmp_path / "a")
    assert code == 1 and "dirty_read" in out + err
    lock = ["--set", "isolation.countermeasure=semantic-lock"]
    code, _, _ = sagasim(capsys, "run", path, *short, *lock, "--fail-on", "inconsistent", "-o", tmp_path / "b")
    assert code == 0


# ---------------------------------------------------------------- determinism, tracing, off by default


def test_same_seed_same_history() -> None:
    def history() -> list[tuple[Any, ...]]:
        m = _model("isolation-dirty-read.toml", "choreography", **{"isolation.countermeasure": "semantic-lock"})
        m.run()
        return m.world.records.history

    first = history()
    assert len(first) > 100 and first == history()


def test_tracing_shows_reads_and_writes() -> None:
    s = load_scenario(ROOT / "scenarios" / "isolation-dirty-read.toml", {**SHORT, "run.duration": 1.0})
    ev = sim.run(s, protocol="orchestration", seed=1, trace=True).events
    writes = ev[ev.kind == "write"]
    assert len(writes) > 0 and writes.detail.str.match(r"wallet\[\d+\] = -?\d+ \(v\d+").all()
    assert (ev.kind == "read").any()


def test_records_are_off_unless_declared() -> None:
    s = load_scenario(ROOT / "scenarios" / "twopc-hot-keys.toml", SHORT)
    m = Model(s, "orchestration", 1)
    assert m.world.records is None
    assert not any(c.startswith("isolation_") for c in m.run().summary)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workload.keys": None}, "isolation: records live under the keys of [workload.keys], which is missing"),
        ({"isolation.countermeasure": "lock"}, 'isolation.countermeasure = "lock": not allowed'),
        (
            {"isolation.steps.pay.keys_of": "confirm"},
            "isolation.steps.pay.keys_of = 'confirm': must name an earlier step",
        ),
        ({"isolation.steps.pay.op": "read", "isolation.steps.pay.compensation": "value"}, "a read writes nothing"),
        ({"isolation.reordered": None, "isolation.countermeasure": "pessimistic-view"}, "needs isolation.reordered"),
        ({"isolation.pending_timeout": 0}, "isolation.pending_timeout = 0"),
    ],
)
def test_bad_settings_are_named(overrides: dict[str, Any], message: str) -> None:
    import tomllib

    raw = tomllib.loads((ROOT / "scenarios" / "isolation-dirty-read.toml").read_text())
    for dotted, value in overrides.items():
        *head, last = dotted.split(".")
        node = raw
        for part in head:
            node = node[part]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(raw, source="x.toml")
    assert "x.toml" in str(info.value) and message in str(info.value)


def test_unknown_step_in_isolation_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = (
        (ROOT / "scenarios" / "isolation-dirty-read.toml")
        .read_text()
        .replace("[isolation.steps.pay]", "[isolation.steps.payy]")
    )
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = sagasim(capsys, "validate", path)
    assert code == 2 and "isolation.steps.payy" in out + err and "did you mean 'pay'" in out + err


# ---------------------------------------------------------------- the sweep and its report


def test_the_sweep_and_its_report_show_the_anomaly_rate_against_the_skew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sim.report.page
    from sim.report import build_report
    from sim.sweep import load_sweep, run_sweep

    s = load_sweep(
        ROOT / "sweeps/isolation-countermeasures.toml",
        seeds=[1],
        protocols=["orchestration", "2pc"],
        overrides={"run.duration": 5.0, "run.drain": 10.0},
    )
    ds = run_sweep(s, tmp_path / "out", workers=1)
    summary = ds.summary.set_index(["isolation.countermeasure", "workload.keys.skew", "protocol"])
    rate = summary["isolation_anomaly_rate"]
    assert rate.xs("2pc", level="protocol").eq(0).all()
    assert rate.xs("semantic-lock", level="isolation.countermeasure").eq(0).all()
    assert rate[("none", 1.5, "orchestration")] > rate[("none", 0.0, "orchestration")]
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("summary", "isolation"))
    page = build_report(ds, tmp_path / "report").read_text()
    assert (tmp_path / "report" / "isolation.png").exists()
    assert "Isolation anomalies and their cost" in page and "semantic-lock" in page


def test_a_report_without_records_leaves_the_isolation_section_unlisted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sim.report.page
    from sim.report import build_report

    s = load_scenario(ROOT / "scenarios" / "twopc-hot-keys.toml", {"run.duration": 2.0, "run.drain": 2.0})
    result = sim.run(s, protocol="orchestration", seed=1)
    result.save(tmp_path / "result")
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("summary", "isolation"))
    page = build_report(tmp_path / "result", tmp_path / "report").read_text()
    assert "Isolation anomalies" not in page and not (tmp_path / "report" / "isolation.png").exists()


def test_a_wait_lost_in_a_crash_leaves_no_refusal_behind() -> None:
    s = load_scenario(
        ROOT / "scenarios" / "isolation-dirty-read.toml",
        {
            **SHORT,
            "isolation.countermeasure": "semantic-lock",
            "workload.interarrival": {"dist": "constant", "value": 100.0},  # (no arrival: only the two below)
        },
    )
    m = Model(s, "orchestration", 1, runtime_faults=True)
    rec = m.world.records
    wallet = m.participants["wallet"]
    m.keys.by_txn[0] = ((1,), (1,), ())
    m.keys.by_txn[1] = ((1,), (2,), ())
    rec.forward("wallet", 0, 0)
    assert rec.gate(wallet, 1, 0, print, "job") == 1
    m.faults.start("crash", target="wallet", duration=0.5)
    m.world.run(until=2.0)  # past pending_timeout (1 s)
    assert rec.pending_timeouts == 0 and not rec._timed_out
    assert rec.gate(wallet, 1, 0, print, "job") == 1  # a new attempt waits again, not refused
