"""Judging as the run goes (sim.stream) against judging at the end
(sim.runner.Model.run): every scenario file, every protocol, every table."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pyarrow.parquet as pq
import pytest
from golden.digests import ROOT, _scenario

from sim.errors import SagasimError
from sim.metrics import events_frame, faults_frame, transactions_frame
from sim.runner import Model
from sim.scenario import PROTOCOLS, load_scenario, scenario_from_dict
from sim.stream import ROW_GROUP, Streamer, TraceChoice, run_to_folder, stream_run

from conftest import ORDER_STEPS, sagasim

FILES = sorted((ROOT / "scenarios").glob("*.toml"))


def _summary(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "wall_time"}


def _same(a: dict, b: dict) -> list[str]:
    """The keys whose values differ (NaN equals NaN)."""
    return [
        k for k in a.keys() | b.keys() if not (a.get(k) == b.get(k) or (a.get(k) != a.get(k) and b.get(k) != b.get(k)))
    ]


def _judged_into(counts: list[int]) -> Callable[[Streamer], None]:
    return lambda streamer: counts.append(streamer.judged)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_judging_as_it_goes_gives_the_tables_of_judging_at_the_end(path: Path, tmp_path: Path) -> None:
    scenario = _scenario(path)  # the golden digests' runs: 30 s + 30 s, traced
    for protocol in PROTOCOLS:
        at_end = Model(scenario, protocol, 1, trace=True).run()
        model = Model(scenario, protocol, 1, trace=True)
        early: list[int] = []
        done = stream_run(model, tmp_path / f"{protocol}.parquet", keep="all", progress=_judged_into(early))
        streamed = pd.read_parquet(tmp_path / f"{protocol}.parquet").sort_values("txn_id", ignore_index=True)
        pd.testing.assert_frame_equal(streamed, transactions_frame(at_end.transactions), obj=f"{path.stem}/{protocol}")
        assert _same(_summary(done.output.summary), _summary(at_end.summary)) == [], f"{path.stem}/{protocol}"
        pd.testing.assert_frame_equal(events_frame(done.output.events), events_frame(at_end.events))
        pd.testing.assert_frame_equal(faults_frame(done.output.faults), faults_frame(at_end.faults))
        if model.settles:
            # Judged before the end: the test compares the early path, not the
            # end one. The runs drain for 30 s and a transaction that ends
            # does so within seconds, so by the last look before the end all
            # of those not stuck are judged; 10% room for any that settle in
            # the last slice.
            finished = len(streamed) - done.output.summary["stuck"]
            assert early[-2] >= 0.9 * finished, f"{path.stem}/{protocol}: {early[-2]} of {finished} judged early"


def _reference(limit: int, keep: object = "all", protocol: str = "orchestration") -> Model:
    scenario = load_scenario(
        ROOT / "scenarios" / "happy-path.toml",
        {
            "workload.limit": limit,
            "workload.interarrival.mean": 0.01,
            "run.duration": limit * 0.012 + 10.0,  # room for `limit` arrivals
            "run.drain": 10.0,
            "run.keep": keep,
        },
    )
    return Model(scenario, protocol, 1)


def _records(model: Model) -> int:
    """Per-transaction records the protocol keeps now (the largest of its tables)."""
    protocol = model.protocol
    if model.protocol_name == "orchestration":
        return len(protocol.orchestrator.log)  # type: ignore[attr-defined]
    sides = protocol.sides.values()  # type: ignore[attr-defined]
    if model.protocol_name == "tcc":
        return max(
            len(protocol.coordinator.log),  # type: ignore[attr-defined]
            *(len({txn for txn, _ in s.barrier}) for s in sides),
            *(len(s.reserved_time) for s in sides),
            *(len(s.locks.txn_held) for s in sides),
        )
    return max(
        len(protocol.coordinator.log),  # type: ignore[attr-defined]
        *(len(s.table) for s in sides),
        *(len(s.locks.txn_held) for s in sides),
    )


@pytest.mark.parametrize("protocol", ["orchestration", "2pc", "tcc"])
def test_records_of_settled_transactions_are_freed_as_the_run_goes(protocol: str, tmp_path: Path) -> None:
    model = _reference(3000, protocol=protocol)
    in_memory: list[int] = []
    done = stream_run(model, tmp_path / "t.parquet", progress=lambda _: in_memory.append(_records(model)))
    assert done.output.summary["transactions"] == 3000
    # A few hundred in flight at most (100 arrivals/s, transactions of well
    # under a second, judged at most a slice later), never the whole run.
    assert max(in_memory) < 300, max(in_memory)
    assert sum(e is not None for e in model.world.effects.by_txn) < 50


def test_a_job_lost_in_a_crash_is_released_and_its_transaction_judged_before_the_end(tmp_path: Path) -> None:
    """A participant crash loses the jobs in service (Node.after's ``lost``
    callback releases them): their transactions, and those of 2PC whose
    prepare was lost, settle and are judged early, not kept to the end."""
    scenario = load_scenario(ROOT / "scenarios" / "participant-crash-under-load.toml")
    model = Model(scenario, "orchestration", 1)
    inventory = model.participants["inventory"]
    lost: list[int] = []
    release = inventory._lost
    inventory._lost = lambda job: (lost.append(job[0][2]), release(job))[1]  # type: ignore[method-assign]
    stream_run(model, tmp_path / "o.parquet", keep="violations")
    assert lost, "no job was in service at a crash: the test tests nothing"
    settle = model.world.settle
    assert settle is not None
    assert all(settle.is_forgotten(t) for t in lost), [t for t in lost if not settle.is_forgotten(t)]

    model = Model(scenario, "2pc", 1)
    side = model.protocol.sides["inventory"]  # type: ignore[attr-defined]
    preparing: list[int] = []
    crash = side.on_crash
    side.on_crash = lambda: (preparing.extend(side.working), crash())[1]  # type: ignore[method-assign]
    stream_run(model, tmp_path / "t.parquet", keep="violations")
    assert preparing, "no prepare was under way at a crash: the test tests nothing"
    settle = model.world.settle
    assert settle is not None
    assert all(settle.is_forgotten(t) for t in preparing), [t for t in preparing if not settle.is_forgotten(t)]


#: TCC under everything that leaves work at its participants once the
#: coordinator is done: hot keys with Trys waiting for them (conflict =
#: "wait", lock_timeout as long as the coordinator's timeout), reservations
#: that expire (reservation_ttl), a Confirm given up after two attempts, a
#: crash of inventory (two workers, mostly busy: jobs in service and queued
#: are lost, reservations survive it), a pause of payment, a coordinator crash
#: and recovery, and a crash of shipping; messages lost and duplicated.
TCC_STRESS: dict[str, Any] = {
    "name": "tcc-stress",
    "run": {"duration": 40.0, "drain": 30.0, "seeds": [1], "protocols": ["tcc"]},
    "workload": {
        "transaction": "order",
        "interarrival": {"dist": "exponential", "mean": 0.025},
        "keys": {"population": 1000, "per_step": 2, "skew": 1.1},
    },
    "network": {"latency": {"dist": "lognormal", "median": 0.002, "p99": 0.02}, "loss": 0.01, "duplicate": 0.02},
    "participants": {
        "payment": {"service_time": {"dist": "exponential", "mean": 0.02}, "workers": 4, "lock_timeout": 0.5},
        "inventory": {
            "service_time": {"dist": "lognormal", "median": 0.01, "p99": 0.1},
            "workers": 2,
            "lock_timeout": 0.5,
        },
        "shipping": {"service_time": {"dist": "exponential", "mean": 0.01}, "workers": 8, "lock_timeout": 0.5},
    },
    "transactions": {"order": {"steps": [dict(step) for step in ORDER_STEPS]}},
    "tcc": {
        "conflict": "wait",
        "timeout": 0.5,
        "reservation_ttl": 2.0,
        "confirm_retry": {"attempts": 2, "initial": 0.05},
    },
    "faults": [
        {"kind": "crash", "target": "inventory", "at": 10.0, "duration": 2.0},
        {"kind": "pause", "target": "payment", "at": 20.0, "duration": 0.4},
        {"kind": "crash", "target": "coordinator", "at": 25.0, "duration": 1.0},
        {"kind": "crash", "target": "shipping", "at": 30.0, "duration": 0.5},
    ],
}


class _Lost(NamedTuple):
    """What one TCC participant held when it crashed, and the jobs it lost."""

    in_service: list[int]
    queued: list[int]
    waiting_for_keys: list[int]
    reserved: list[int]


def _watch_crashes(side: Any) -> _Lost:
    """Record, on ``side`` (a TCC participant), the transactions of its jobs
    lost in a crash and what it held when it crashed."""
    seen = _Lost([], [], [], [])
    lost, lost_waiting, on_crash = side._lost, side._lost_waiting, side.on_crash

    def in_service(job: Any) -> None:
        seen.in_service.append(job[0].txn)
        lost(job)

    def queued(msg: Any) -> None:
        seen.queued.append(msg.txn)
        lost_waiting(msg)

    def crash() -> None:
        seen.waiting_for_keys.extend(side.waiting)
        seen.reserved.extend(txn for txn, _ in side.reserved)
        on_crash()

    side._lost, side._lost_waiting, side.on_crash = in_service, queued, crash
    return seen


@pytest.mark.parametrize("barrier", [True, False])
def test_a_tcc_participant_crash_mid_reservation_is_judged_as_at_the_end(barrier: bool, tmp_path: Path) -> None:
    """TCC judged as it goes gives the tables of judging at the end under
    crashes, a pause, lock waits, expiry and give-ups; the transactions whose
    jobs a crash lost (a Try, a Confirm or a Cancel in service or queued) are
    released and judged early, and so are those that held a reservation
    through the crash (it expires or is confirmed or cancelled later)."""
    scenario = scenario_from_dict(TCC_STRESS, source="test", overrides={"tcc.barrier": barrier})
    at_end = Model(scenario, "tcc", 1).run()
    model = Model(scenario, "tcc", 1)
    seen = _watch_crashes(model.protocol.sides["inventory"])  # type: ignore[attr-defined]
    early: list[int] = []
    done = stream_run(model, tmp_path / "t.parquet", keep="all", progress=_judged_into(early))
    streamed = pd.read_parquet(tmp_path / "t.parquet").sort_values("txn_id", ignore_index=True)
    pd.testing.assert_frame_equal(streamed, transactions_frame(at_end.transactions))
    assert _same(_summary(done.output.summary), _summary(at_end.summary)) == []
    summary = done.output.summary
    # The run meets what the test is about (else it tests nothing): lock
    # waits, expiries, a give-up, a recovery, and at the crash jobs in service
    # and queued, Trys waiting for keys and reservations held.
    assert summary["reservations_expired"] > 0 and summary["gave_up"] > 0 and summary["recovered"] > 0
    assert seen.in_service and seen.queued and seen.waiting_for_keys and seen.reserved, seen
    settle = model.world.settle
    assert settle is not None
    touched = {*seen.in_service, *seen.queued, *seen.waiting_for_keys, *seen.reserved}
    assert [t for t in sorted(touched) if not settle.is_forgotten(t)] == []
    # None stuck: every transaction ends within seconds of the last fault and
    # the run drains 30 s, so all but those ending in the last slice are
    # judged before the end (10% room, as in the test of every scenario).
    assert summary["stuck"] == 0
    assert early[-2] >= 0.9 * len(streamed), f"{early[-2]} of {len(streamed)} judged early"


def test_row_groups_are_written_as_the_run_goes(tmp_path: Path) -> None:
    model = _reference(2 * ROW_GROUP + 10)
    stream_run(model, tmp_path / "t.parquet")
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.num_row_groups == 3


@pytest.mark.parametrize("keep", ["violations", 0.25])
def test_keep_writes_fewer_rows_but_the_summary_counts_every_transaction(keep: object, tmp_path: Path) -> None:
    scenario = load_scenario(ROOT / "scenarios" / "lost-replies-naive.toml", {"run.keep": keep})
    everything = Model(
        scenario.model_copy(update={"run": scenario.run.model_copy(update={"keep": "all"})}), "orchestration", 1
    ).run()
    done = stream_run(Model(scenario, "orchestration", 1), tmp_path / "t.parquet")
    kept = pd.read_parquet(tmp_path / "t.parquet")
    full = transactions_frame(everything.transactions)
    violations = full[(full.outcome.isin(["inconsistent", "stuck"])) | ~full.consistent | (full.anomalies.map(len) > 0)]
    assert len(violations) > 0  # the scenario has violations to keep
    assert set(violations.txn_id) <= set(kept.txn_id)
    assert _same(_summary(done.output.summary), _summary(everything.summary)) == []
    if keep == "violations":
        assert set(kept.txn_id) == set(violations.txn_id)
    else:
        others = len(full) - len(violations)
        sampled = len(kept) - len(violations)
        # Binomial(others, 0.25): within 5 standard deviations of its mean.
        sd = math.sqrt(others * 0.25 * 0.75)
        assert abs(sampled - 0.25 * others) < 5 * sd, (sampled, others)
        again = Model(scenario, "orchestration", 1)
        stream_run(again, tmp_path / "again.parquet")
        assert pd.read_parquet(tmp_path / "again.parquet").equals(kept)  # the same sample every time


def test_keep_applies_to_the_in_memory_table_too() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "lost-replies-naive.toml", {"run.keep": "violations"})
    out = Model(scenario, "orchestration", 1).run()
    frame = transactions_frame(out.transactions)
    assert out.summary["transactions"] > len(frame) > 0
    assert ((frame.outcome.isin(["inconsistent", "stuck"])) | ~frame.consistent | (frame.anomalies.map(len) > 0)).all()


def test_a_folder_appears_only_when_the_run_completes(tmp_path: Path) -> None:
    target = tmp_path / "out"

    def interrupt(streamer: Streamer) -> None:
        if streamer.judged > 100:
            assert not target.exists()
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_to_folder(_reference(1000), target, progress=interrupt)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    run_to_folder(_reference(1000), target)
    meta = json.loads((target / "run.json").read_text())
    assert meta["runs"][0]["transactions"] == meta["runs"][0]["kept"] == 1000
    assert len(pd.read_parquet(target / "transactions.parquet")) == 1000
    with pytest.raises(SagasimError, match="already exists"):
        run_to_folder(_reference(10), target)


def test_a_long_run_traces_the_chosen_transactions_and_the_violations_and_explain_reads_them(tmp_path: Path) -> None:
    from sim.explain import explain

    scenario = load_scenario(ROOT / "scenarios" / "lost-replies-naive.toml")
    traced = Model(scenario, "orchestration", 1, trace=True).run()
    full = events_frame(traced.events)
    table = transactions_frame(traced.transactions)
    violations = set(table[table.outcome.isin(["inconsistent", "stuck"]) | ~table.consistent].txn_id)
    assert violations
    chosen = int(table[~table.txn_id.isin(violations)].txn_id.iloc[3])
    folder = run_to_folder(
        Model(scenario, "orchestration", 1), tmp_path / "out", trace=TraceChoice(frozenset({chosen}), violations=True)
    )
    events = pd.read_parquet(folder / "events.parquet")
    traced_txns = set(events.txn_id.dropna())
    assert traced_txns == violations | {chosen}
    # each kept transaction's events, and the node events, are those of a fully traced run
    wanted = full[full.txn_id.isin(traced_txns) | full.txn_id.isna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(events.drop(columns=["run_id"]), wanted)
    story = explain(folder, str(min(violations)))
    assert str(min(violations)) in story.markdown()


# ------------------------------------------------------------------ the command line and the limits


HAPPY = ROOT / "scenarios" / "happy-path.toml"
NAIVE = ROOT / "scenarios" / "lost-replies-naive.toml"


def test_run_stream_writes_the_folder_and_fail_on_reads_the_counts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "soak"
    code, _, err = sagasim(
        capsys, "run", NAIVE, "--stream", "--seed", "1", "--out", out, "--set", 'run.keep="violations"',
        "--trace-violations", "--fail-on", "inconsistent", "--quiet",
    )  # fmt: skip
    assert code == 1, err
    summary = pd.read_parquet(out / "summary.parquet").iloc[0]
    assert f"--fail-on inconsistent: {summary['inconsistent']} inconsistent" in " ".join(err.split())
    kept = pd.read_parquet(out / "transactions.parquet")
    assert len(kept) == json.loads((out / "run.json").read_text())["runs"][0]["kept"] < summary["transactions"]
    assert set(pd.read_parquet(out / "events.parquet").txn_id.dropna()) == set(kept.txn_id)


def test_run_stream_refuses_several_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = sagasim(capsys, "run", HAPPY, "--stream", "--seeds", "1..2", "--out", tmp_path / "x", "--quiet")
    assert code == 2
    assert "--stream: runs one protocol and one seed, got 1 protocols x 2 seeds" in " ".join(err.split())
    assert not (tmp_path / "x").exists()


def test_a_run_judged_at_the_end_is_refused_above_in_memory_arrivals(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    big = ["--set", "run.duration=100", "--set", "limits.in_memory_arrivals=1999"]  # 20 arrivals/s: 2,000 expected
    code, _, err = sagasim(capsys, "run", HAPPY, "--seed", "1", *big, "--out", tmp_path / "x", "--quiet")
    assert code == 2
    text = " ".join(err.split())
    assert "about 2e+03 transactions per run, above limits.in_memory_arrivals = 1,999" in text
    assert "run it with --stream" in text
    code, _, err = sagasim(
        capsys,
        "run",
        HAPPY,
        "--seed",
        "1",
        *big[:2],
        "--set",
        "limits.in_memory_arrivals=2000",
        "--out",
        tmp_path / "y",
        "--quiet",
    )
    assert code == 0, err  # at the limit: allowed
    code, _, _ = sagasim(capsys, "run", HAPPY, "--seed", "1", "--stream", *big, "--out", tmp_path / "z", "--quiet")
    assert code == 0  # streamed: not bounded by it


def test_a_whole_trace_is_refused_above_traced_arrivals(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = sagasim(
        capsys, "run", HAPPY, "--stream", "--seed", "1", "--trace", "--set", "run.duration=100",
        "--set", "limits.traced_arrivals=1999", "--out", tmp_path / "x", "--quiet",
    )  # fmt: skip
    assert code == 2
    assert "above limits.traced_arrivals = 1,999" in " ".join(err.split())


def test_keep_all_needs_room_on_the_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import shutil

    from sim import limits

    scenario = load_scenario(HAPPY)  # 20 arrivals/s for 300 s: 6,000 expected
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(limits.shutil, "disk_usage", lambda _p: usage._replace(free=6000 * limits.ROW_BYTES - 1))
    with pytest.raises(SagasimError, match="writes about 6e\\+03 rows"):
        limits.check_disk(scenario, tmp_path / "out")
    monkeypatch.setattr(limits.shutil, "disk_usage", lambda _p: usage._replace(free=6000 * limits.ROW_BYTES))
    limits.check_disk(scenario, tmp_path / "out")


def test_the_event_budget_grows_with_the_arrivals_unless_set() -> None:
    scenario = load_scenario(HAPPY)
    assert scenario.limits.event_budget(1e7) == 10**9  # 100 per arrival
    assert scenario.limits.event_budget(10) == scenario.limits.events  # never below the default
    assert load_scenario(HAPPY, {"limits.events": 5}).limits.event_budget(1e7) == 5


@pytest.mark.parametrize(
    ("protocol", "refused"),
    [("choreography", True), ("orchestration", False), ("2pc", False), ("paxos-commit", False), ("tcc", False)],
)
def test_only_a_streamed_run_judged_at_the_end_is_bounded_like_one_in_memory(
    protocol: str, refused: bool, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A protocol that is judged at the end (choreography) keeps every
    record, so a streamed run of it is refused above ``in_memory_arrivals``;
    one that settles (orchestration, 2PC, Paxos Commit, TCC) is not."""
    big = ["--set", "run.duration=100", "--set", "limits.in_memory_arrivals=1999"]  # 2,000 expected
    command = ["run", HAPPY, "--stream", "--seed", "1", "--protocol", protocol, *big, "--out", tmp_path / "x"]
    code, _, err = sagasim(capsys, *command, "--quiet")
    if refused:
        assert code == 2
        assert f"--stream --protocol {protocol}: about 2e+03 transactions per run" in " ".join(err.split())
    else:
        assert code == 0, err


def test_a_kept_fraction_keeps_a_row_whose_draw_is_below_it_and_no_other() -> None:
    """``keep = f`` keeps a row with probability ``f``: its uniform draw in
    [0, 1) must be below ``f``, so a draw equal to ``f`` is not kept (with
    ``<=`` the share kept would be slightly above ``f``); violations are kept
    whatever the draw."""
    from sim.keep import Keep
    from sim.world.rng import Streams

    keep = Keep(0.25, Streams(1))
    fine = {"txn_id": 7, "outcome": "committed", "consistent": True, "anomalies": []}
    keep._draw = lambda txn: 0.25  # type: ignore[assignment]
    assert not keep(fine)
    assert keep({**fine, "outcome": "stuck"})
    keep._draw = lambda txn: math.nextafter(0.25, 0.0)  # type: ignore[assignment]
    assert keep(fine)
