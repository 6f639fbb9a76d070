"""Sweeps: grid expansion, validation, the dataset, parallel and Dask runs, resume."""

from __future__ import annotations

import json
import re
import shlex
import time
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sim
import sim.sweep as sweep_module
from sim import executors
from sim.dataset import SWEEP_MARKER, SWEEP_PENDING, load
from sim.errors import SagasimError
from sim.sweep import (
    SweepFileError,
    SweepIncomplete,
    load_sweep,
    point_table,
    run_sweep,
    sweep_from_dict,
)

from conftest import order_scenario, sagasim

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = sorted((ROOT / "sweeps").glob("*.toml"))

FAILURE = "participants.payment.business_failure"


def small(**raw: Any) -> sweep_module.Sweep:
    """A sweep of the test order saga: 2 failure rates x 2 protocols x 2 seeds."""
    spec: dict[str, Any] = {
        "name": "small",
        "scenario": order_scenario(),
        "seeds": [1, 2],
        "protocols": ["orchestration", "2pc"],
        "grid": {FAILURE: [0.0, 0.2]},
    }
    spec.update(raw)
    return sweep_from_dict(spec)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """A table without its wall-clock columns, which differ from run to run."""
    return frame.drop(columns=[c for c in frame.columns if c == "wall_time"]).reset_index(drop=True)


def assert_same_dataset(a: sim.dataset.Dataset, b: sim.dataset.Dataset) -> None:
    pd.testing.assert_frame_equal(comparable(a.summary), comparable(b.summary))
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    pd.testing.assert_frame_equal(a.faults, b.faults)


# ------------------------------------------------------------------ the grid


def test_grid_is_the_product_of_axes_in_file_order() -> None:
    s = small(
        grid={
            FAILURE: [0.0, 0.1, 0.2],
            "mode": {"fast": {"participants.shipping.workers": 8}, "slow": {"participants.shipping.workers": 1}},
        }
    )
    assert [a.name for a in s.axes] == [FAILURE, "mode"]
    assert [p.values for p in s.points] == [
        {FAILURE: 0.0, "mode": "fast"},
        {FAILURE: 0.0, "mode": "slow"},
        {FAILURE: 0.1, "mode": "fast"},
        {FAILURE: 0.1, "mode": "slow"},
        {FAILURE: 0.2, "mode": "fast"},
        {FAILURE: 0.2, "mode": "slow"},
    ]
    # Each point's scenario carries its values, and nothing else changed.
    third = s.points[3].scenario
    assert third.participants["payment"].business_failure == 0.1
    assert third.participants["shipping"].workers == 1
    assert third.participants["inventory"].model_dump() == order_scenario().participants["inventory"].model_dump()
    assert len(s.runs) == 6 * 2 * 2
    assert len({r.run_id for r in s.runs}) == len(s.runs)


def test_set_applies_to_every_point_and_no_grid_is_one_point() -> None:
    s = small(grid={}, set={"run.duration": 3.0})
    assert len(s.points) == 1 and s.points[0].values == {}
    assert s.points[0].scenario.run.duration == 3.0


def test_defaults_come_from_the_scenario() -> None:
    s = sweep_from_dict({"scenario": order_scenario(), "grid": {FAILURE: [0.1]}})
    assert s.seeds == (1,) and s.protocols == ("orchestration",)
    assert s.name == "test-order"


def test_seeds_spelled_as_a_range() -> None:
    assert small(seeds="3..5,9").seeds == (3, 4, 5, 9)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"gird": {}}, "unknown key 'gird'; did you mean 'grid'?"),
        ({"grid": {FAILURE: [0.1, 2.0]}}, f"grid point 1 ({FAILURE} = 2.0) does not make a valid scenario"),
        ({"grid": {FAILURE: []}}, "an empty list; give at least one value"),
        ({"grid": {FAILURE: [0.1, 0.1]}}, "values repeat: 0.1"),
        ({"grid": {"workers": [1, 2]}}, "a list of values needs a dotted key"),
        ({"grid": {"seed": {"a": {"run.drain": 1.0}}}}, "'seed' is a column of the run tables"),
        ({"grid": {"duration": {"a": {"run.drain": 1.0}}}}, "'duration' is a column of the run tables"),
        ({"grid": {"utilization_x": {"a": {"run.drain": 1.0}}}}, "is a column of the run tables"),
        ({"set": {"network": {"duplicate": 0.0}}}, 'did you mean the key "network.duplicate" in quotes?'),
        ({"grid": {"mode": {"a": {"run": {"drain": 1.0}}}}}, 'did you mean the key "run.drain" in quotes?'),
        ({"grid": {"run.seeds": [[1], [2]]}}, "cannot be set by a sweep: give the sweep's seeds in its `seeds` key"),
        ({"set": {"run.protocols": ["2pc"]}}, "cannot be set by a sweep"),
        ({"grid": {"expect.stuck": ["none", "some"]}}, "a sweep does not check a scenario's [expect]"),
        (
            {
                "set": {"network.latency": {"dist": "constant", "value": 0.002}},
                "grid": {"network.latency.value": [0.001]},
            },
            "'network.latency' (from [set] (or --set)) contains 'network.latency.value' (from grid axis",
        ),
        ({"seeds": [True]}, "seeds.0 = true: not allowed (allowed: a list of whole numbers >= 0"),
        ({"seeds": 3}, "seeds = 3: not allowed (allowed: a list of whole numbers >= 0"),
        ({"grid": {"mode": {"a": {}}}}, "grid.mode.a: sets nothing"),
        ({"set": {FAILURE: 0.1}}, f"{FAILURE!r} is set in [set] (or --set) and swept by grid axis"),
        ({"seeds": "5..1"}, "empty range"),
        (
            {"protocols": ["orchestration", "3pc"]},
            'protocols.1 = "3pc": not allowed (allowed: a list of protocol names',
        ),
        ({"grid": {"participants.paymnt.workers": [1]}}, "no participant 'paymnt'; did you mean 'payment'?"),
    ],
)
def test_bad_sweeps_are_named(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepFileError) as info:
        small(**raw)
    assert message in str(info.value)


def test_a_file_name_that_cannot_name_the_sweep_says_so(tmp_path: Path) -> None:
    path = tmp_path / "my sweep.toml"
    path.write_text(f'scenario = "{ROOT / "scenarios/happy-path.toml"}"\n')
    with pytest.raises(SweepFileError, match="the file name 'my sweep' cannot name the sweep"):
        load_sweep(path)


def test_sweep_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('scenario = "nowhere.toml"\n')
    with pytest.raises(SweepFileError, match=re.escape(f"{path}: scenario = 'nowhere.toml': no such file")):
        load_sweep(path)
    with pytest.raises(SweepFileError, match="no such sweep file"):
        load_sweep(tmp_path / "absent.toml")
    path.write_text("scenario = \n")
    with pytest.raises(SweepFileError, match="is not valid TOML"):
        load_sweep(path)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_shipped_sweeps_validate_and_say_what_they_ask(path: Path) -> None:
    s = load_sweep(path)
    assert s.name == path.stem
    assert len(s.runs) >= 10
    text = path.read_text()
    for heading in ("# Question:", "# What it shows:", "# Expected:"):
        assert heading in text
    assert tomllib.loads(text)["description"]


# ------------------------------------------------------------------ running


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory) -> sim.dataset.Dataset:
    return run_sweep(small(), tmp_path_factory.mktemp("inline") / "out", workers=1)


def test_dataset_layout_and_contract(inline: sim.dataset.Dataset) -> None:
    root = inline.path
    assert (root / SWEEP_MARKER).exists() and not (root / SWEEP_PENDING).exists()
    assert not (root / ".runs").exists()
    files = sorted(p.relative_to(root).as_posix() for p in (root / "transactions").rglob("*.parquet"))
    assert files == [
        f"transactions/protocol={p}/p{point:04d}-s{seed}.parquet"
        for p in ("2pc", "orchestration")
        for point in (0, 1)
        for seed in (1, 2)
    ]
    summary = inline.summary
    assert len(summary) == 8
    assert list(summary.columns[:3]) == ["run_id", "point", FAILURE]
    assert summary["run_id"].is_unique
    txns = inline.transactions
    assert {"point", FAILURE, "protocol"} <= set(txns.columns)
    assert list(txns.columns[:6]) == ["run_id", "point", FAILURE, "scenario", "protocol", "seed"]
    # Every run's transactions are there, labelled with their point's value.
    counts = txns.groupby("run_id").size()
    assert counts.to_dict() == dict(zip(summary["run_id"], summary["transactions"], strict=True))
    assert (txns.groupby("point")[FAILURE].nunique() == 1).all()
    meta = json.loads((root / SWEEP_MARKER).read_text())
    assert meta["axes"] == [FAILURE] and meta["seeds"] == [1, 2]
    assert [p["values"] for p in meta["points"]] == [{FAILURE: 0.0}, {FAILURE: 0.2}]
    # The parameter does what it says: refusals only where the payment refuses.
    # At point 1 the rate is 0.2; the two protocols share their draws, so about
    # half the transactions are independent (n ~ 380): 0.1 is 5 SE below 0.2.
    refused = txns[txns["outcome"].isin(["compensated", "aborted"])].groupby("point").size()
    assert refused.get(0, 0) == 0
    assert refused.get(1, 0) > 0.1 * (txns["point"] == 1).sum()


def test_a_point_run_is_the_same_run_as_sim_run(inline: sim.dataset.Dataset) -> None:
    direct = sim.run(order_scenario({FAILURE: 0.2}), protocol="2pc", seed=2)
    ours = inline.transactions.query("point == 1 and protocol == '2pc' and seed == 2").reset_index(drop=True)
    theirs = direct.transactions
    for column in ("txn_id", "started_at", "outcome", "latency", "messages", "blocked"):
        pd.testing.assert_series_equal(ours[column], theirs[column], check_names=False)


def test_scenario_for_rebuilds_a_runs_scenario(inline: sim.dataset.Dataset) -> None:
    run_id = inline.summary["run_id"].iloc[-1]
    scenario = inline.scenario_for(run_id)
    assert scenario.participants["payment"].business_failure == 0.2
    assert inline.run(run_id)["point"] == 1


def test_point_table_pools_seeds(inline: sim.dataset.Dataset) -> None:
    table = point_table(inline)
    assert len(table) == 4
    row = table[(table["point"] == 1) & (table["protocol"] == "orchestration")].iloc[0]
    txns = inline.transactions.query("point == 1 and protocol == 'orchestration'")
    assert row["transactions"] == len(txns)
    assert row["compensated_rate"] == pytest.approx((txns["outcome"] == "compensated").mean())
    assert row["compensated_rate_low"] < row["compensated_rate"] < row["compensated_rate_high"]


def test_local_processes_give_the_same_dataset(inline: sim.dataset.Dataset, tmp_path: Path) -> None:
    parallel = run_sweep(small(), tmp_path / "out", workers=2)
    assert "2 local processes" in parallel.meta["executor"]
    assert_same_dataset(inline, parallel)


@pytest.mark.slow
def test_a_dask_cluster_gives_the_same_dataset(inline: sim.dataset.Dataset, tmp_path: Path) -> None:
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        # By address first, while no client exists in this process: the sweep must make its own.
        by_address = run_sweep(small(), tmp_path / "address", scheduler=cluster.scheduler_address)
        with Client(cluster) as client:
            by_client = run_sweep(small(), tmp_path / "client", scheduler=client)
    assert by_address.meta["executor"].startswith("dask")
    assert_same_dataset(inline, by_address)
    assert_same_dataset(inline, by_client)


def _slow_square(x: int) -> int:
    time.sleep(0.05)
    return x * x


@pytest.mark.slow
def test_a_dask_cluster_gets_one_run_per_worker_thread_at_a_time() -> None:
    # All submitted at once, runs waited at busy workers while another could
    # idle at the end, and every result stayed in the cluster until the last.
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        submitted: list[object] = []
        real_submit = client.submit

        def counting_submit(*args: object, **kwargs: object) -> object:
            future = real_submit(*args, **kwargs)
            submitted.append(future)
            return future

        client.submit = counting_submit  # type: ignore[method-assign]
        results = []
        for result in executors.run_dask(list(range(12)), _slow_square, client, lambda t, why: -1):
            unfinished = [f for f in submitted if not f.done()]
            assert len(unfinished) <= 2, len(unfinished)  # the two worker threads
            results.append(result)
    assert sorted(results) == [x * x for x in range(12)]
    assert len(submitted) == 12


def test_unreachable_scheduler_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "DASK_CONNECT_TIMEOUT", 1.0)
    for address in ("tcp://127.0.0.1:1", "garbage", "tcp://x:notaport"):
        with pytest.raises(SagasimError, match=f"--scheduler {re.escape(address)}: cannot connect"):
            run_sweep(small(grid={}), tmp_path / "out", scheduler=address)
    assert not (tmp_path / "out").exists()  # nothing written for a cluster that was never reached


# ------------------------------------------------------------------ interruption, failure, resume


class Interrupt(KeyboardInterrupt):
    pass


def test_interrupted_sweep_looks_incomplete_and_resumes(
    inline: sim.dataset.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"

    def stop_after_three(done: int, total: int, failed: int, last: object) -> None:
        if done == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_sweep(small(), out, workers=1, progress=stop_after_three)
    assert not (out / SWEEP_MARKER).exists() and not (out / "summary.parquet").exists()
    assert (out / SWEEP_PENDING).exists()
    with pytest.raises(SagasimError, match="is not complete .* resume=True"):
        load(out)
    with pytest.raises(SagasimError, match="already holds an unfinished sweep; add --resume to finish it"):
        run_sweep(small(), out, workers=1)

    ran: list[str] = []
    real = sweep_module.execute
    monkeypatch.setattr(sweep_module, "execute", lambda task: ran.append(task.run_id) or real(task))
    resumed = run_sweep(small(), out, workers=1, resume=True)
    assert len(ran) == 8 - 3
    assert_same_dataset(inline, resumed)
    # Resuming a complete sweep runs nothing and changes nothing.
    ran.clear()
    again = run_sweep(small(), out, workers=1, resume=True)
    assert ran == []
    assert_same_dataset(inline, again)


def test_resume_refuses_another_plan(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def stop(done: int, total: int, failed: int, last: object) -> None:
        if done == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_sweep(small(), out, workers=1, progress=stop)
    with pytest.raises(SagasimError, match="started by a different plan"):
        run_sweep(small(seeds=[1, 2, 3]), out, workers=1, resume=True)


def test_resume_refuses_a_sweep_started_with_another_schema(tmp_path: Path) -> None:
    """Parts of two result formats must not mix in one dataset: an unfinished
    sweep written before the schema version (schema 1) is not resumed."""
    out = tmp_path / "out"

    def stop(done: int, total: int, failed: int, last: object) -> None:
        if done == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_sweep(small(), out, workers=1, progress=stop)
    pending = json.loads((out / SWEEP_PENDING).read_text())
    del pending["schema"]
    (out / SWEEP_PENDING).write_text(json.dumps(pending))
    with pytest.raises(SagasimError, match=r"sweep.pending.json: written with result schema 1 by an older sagasim"):
        run_sweep(small(), out, workers=1, resume=True)


def test_a_failing_run_is_reported_and_loses_nothing(
    inline: sim.dataset.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real = sweep_module.execute

    def broken(task: sweep_module.RunTask) -> sweep_module.RunPart:
        if task.point == 1 and task.protocol == "2pc" and task.seed == 2:
            raise RuntimeError("disk on fire")
        return real(task)

    monkeypatch.setattr(sweep_module, "execute", broken)
    with pytest.raises(SweepIncomplete) as info:
        run_sweep(small(), out, workers=1)
    assert len(info.value.failures) == 1
    assert f"point 1 ({FAILURE} = 0.2), 2pc, seed 2: RuntimeError: disk on fire" in str(info.value)
    assert "the other 7 are saved" in str(info.value)
    assert len(list((out / ".runs").glob("*.json"))) == 7
    assert not (out / SWEEP_MARKER).exists()

    monkeypatch.setattr(sweep_module, "execute", real)
    assert_same_dataset(inline, run_sweep(small(), out, workers=1, resume=True))


# ------------------------------------------------------------------ what the shipped sweeps claim


def test_broker_duplicates_sweep_shows_what_idempotent_consumers_buy(tmp_path: Path) -> None:
    s = load_sweep(
        ROOT / "sweeps/broker-duplicates.toml", seeds=[1], overrides={"run.duration": 20.0, "run.drain": 20.0}
    )
    table = point_table(run_sweep(s, tmp_path / "out", workers=2))
    clean = table[table["consumers"] == "idempotent"]
    assert (clean["inconsistent"] == 0).all() and (clean["stuck"] == 0).all()
    dirty = table[table["consumers"] == "not-idempotent"].set_index("network.duplicate")
    assert dirty.loc[0.0, "inconsistent"] == 0
    rates = dirty["inconsistent_rate"].drop(index=0.0)
    assert (rates > 0).all()
    # Each step double-applies with probability about the duplicate rate times
    # the deliveries it takes, so more duplicates, more damage: the 10% point's
    # interval lies above the 1% point's.
    assert dirty.loc[0.10, "inconsistent_rate_low"] > dirty.loc[0.01, "inconsistent_rate_high"]


def test_key_skew_sweep_hurts_2pc_only(tmp_path: Path) -> None:
    s = load_sweep(ROOT / "sweeps/key-skew.toml", seeds=[1], overrides={"run.duration": 10.0, "run.drain": 10.0})
    table = point_table(run_sweep(s, tmp_path / "out", workers=2)).set_index(["workload.keys.skew", "protocol"])
    assert table.loc[(1.5, "2pc"), "aborted_rate_low"] > table.loc[(0.0, "2pc"), "aborted_rate_high"]
    for protocol in ("orchestration", "choreography"):
        assert (table.xs(protocol, level="protocol")["committed_rate"] == 1.0).all()
    assert (table["inconsistent"] == 0).all() and (table["stuck"] == 0).all()


# ------------------------------------------------------------------ the command line


def test_cli_runs_a_sweep_and_prints_its_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = sagasim(
        capsys, "sweep", ROOT / "sweeps/payment-failure.toml", "--seeds", "1", "-p", "orchestration",
        "--set", "run.duration=5", "--set", "run.drain=5", "--workers", "1", "--out", out,
    )  # fmt: skip
    assert code == 0, stderr
    assert "business_failure = participants.payment.business_failure" in stdout
    assert len(re.findall(r"orchestration", stdout)) == 5
    assert f"dataset written to {out}" in stderr
    assert load(out).summary["point"].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweeps/absent.toml"], "no such sweep file"),
        (["sweeps/payment-failure.toml", "--seeds", "x"], "'x' is not a whole number"),
        (["sweeps/payment-failure.toml", "--workers", "0"], "0 is not in the range x>=1"),
        (["sweeps/payment-failure.toml", "-p", "3pc"], "protocol '3pc' is not known"),
        (
            ["sweeps/payment-failure.toml", "--set", "participants.payment.business_failure=0.1"],
            "is set in [set] (or --set) and swept",
        ),
        (
            ["sweeps/payment-failure.toml", "--workers", "2", "--scheduler", "tcp://x:1"],
            "--workers sets local processes",
        ),
    ],
)
def test_cli_bad_input_is_one_message_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(ROOT)
    code, stdout, stderr = sagasim(capsys, "sweep", *args)
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr + stdout


def test_cli_failing_run_exits_1_and_its_resume_command_finishes_the_sweep(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sweep_module.execute

    def broken(task: sweep_module.RunTask) -> sweep_module.RunPart:
        if task.point == 3:
            raise ValueError("boom")
        return real(task)

    monkeypatch.setattr(sweep_module, "execute", broken)
    out = tmp_path / "out"
    argv = ["sweep", ROOT / "sweeps/payment-failure.toml", "--seeds", "1", "-p", "2pc", "--set", "run.duration=3"]
    code, _, stderr = sagasim(capsys, *argv, "--workers", "1", "--out", out)
    assert code == 1
    assert "1 of 5 runs failed" in stderr and "ValueError: boom" in stderr
    errors = list((out / ".runs").glob("*.error"))
    assert len(errors) == 1 and 'raise ValueError("boom")' in errors[0].read_text()
    with pytest.raises(SagasimError, match="is not complete"):
        load(out)

    # The command it prints (seeds, protocol and --set included) finishes the sweep.
    command = stderr.split("finish the sweep with: ")[1].split("\n")[0]
    monkeypatch.setattr(sweep_module, "execute", real)
    code, _, stderr = sagasim(capsys, *shlex.split(command)[1:], "--workers", "1")
    assert code == 0, stderr
    dataset = load(out)
    assert len(dataset.summary) == 5 and dataset.summary["duration"].eq(3.0).all()
    assert not (out / ".runs").exists()


def test_mixed_whole_and_decimal_values_make_one_float_axis(tmp_path: Path) -> None:
    s = small(grid={FAILURE: [0, 0.2]}, seeds=[1], protocols=["orchestration"])
    assert [type(v) for v in s.axes[0].labels] == [float, float]
    dataset = run_sweep(s, tmp_path / "out", workers=1)
    assert dataset.summary[FAILURE].dtype == "float64"
    assert dataset.transactions[FAILURE].dtype == "float64"
    assert pd.read_parquet(tmp_path / "out" / "transactions")[FAILURE].dtype == "float64"


def test_bad_out_is_one_clear_error(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("hi")
    with pytest.raises(SagasimError, match="is a file; give a folder"):
        run_sweep(small(grid={}), afile, workers=1)
    with pytest.raises(SagasimError, match="cannot write a dataset there"):
        run_sweep(small(grid={}), afile / "sub", workers=1)


def test_a_sweep_keeping_the_violations_loads_and_counts_every_transaction(tmp_path: Path) -> None:
    kept = run_sweep(small(scenario=order_scenario({"run.keep": "violations"})), tmp_path / "v", workers=1)
    every = run_sweep(small(), tmp_path / "all", workers=1)
    assert kept.summary.drop(columns=["wall_time"]).equals(every.summary.drop(columns=["wall_time"]))
    bad = every.transactions[
        every.transactions.outcome.isin(["inconsistent", "stuck"]) | ~every.transactions.consistent
    ]
    assert len(kept.transactions) == len(bad) < len(every.transactions)
