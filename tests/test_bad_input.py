"""The bad inputs of issue 15: each is refused with one clear message and exit
status 2 (or handled safely), and none costs the user data or a finished run.
The table in docs/errors.md lists them."""

from __future__ import annotations

import fcntl
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sim
import sim.cli
from sim.errors import SagasimError, ScenarioError
from sim.files import MAX_INPUT_BYTES
from sim.limits import MAX_RUNS, check_runs
from sim.runner import RunTooBusy, run_once
from sim.scenario import LimitsSpec, estimate_work
from sim.sweep import SWEEP_PENDING, run_sweep, sweep_from_dict
from sim.world import core
from sim.world.core import EventBudgetExceeded, World

from conftest import order_dict, order_scenario, sagasim

ROOT = Path(__file__).resolve().parent.parent
HAPPY = ROOT / "scenarios" / "happy-path.toml"
SHORT = ["--set", "run.duration=2", "--set", "run.drain=2"]
STORM = [
    "--set",
    "orchestrator.timeout=1e-9",
    "--set",
    'orchestrator.retry={attempts="unlimited", initial=0.0, max=5.0}',
]


def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any simulation fail the test: refusals must come before the work."""

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("simulated although the input was refused")

    monkeypatch.setattr(sim.cli, "_run_with_progress", boom)


def one_line(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------ data loss


@pytest.mark.parametrize("command", ["run", "compare"])
def test_an_out_that_cannot_be_made_is_refused_before_simulating(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    no_simulation(monkeypatch)
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    for out, problem in ((a_file / "res", f"{a_file} is a file, not a folder"), ("/proc/x", "cannot make a folder")):
        code, _, err = sagasim(capsys, command, HAPPY, "--out", out, *SHORT)
        assert code == 2
        assert f"--out {out}: {problem}" in one_line(err)
    assert a_file.read_text() == "mine"


# ------------------------------------------------------------------ unbounded work, refused up front


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("run.duration=inf", "run.duration = Infinity: input should be a finite number"),
        ("run.drain=nan", "run.drain = NaN: input should be a finite number"),
        ("orchestrator.timeout=inf", "orchestrator.timeout = Infinity: input should be a finite number"),
        ("monitor.stuck_after=inf", "monitor.stuck_after = Infinity: input should be a finite number"),
        (
            'faults=[{kind="crash", target="payment", at=1.0, duration=inf}]',
            "faults[0].duration = Infinity: input should be a finite number",
        ),
        (
            "run.duration=1e12",
            "about 2e+13 transactions per run, above limits.arrivals = 20,000,000",
        ),
        (
            'workload.interarrival={dist="exponential", mean=1e-9}',
            "mean 1e-09 s over run.duration = 300 s makes about 3e+11 transactions per run, "
            "above limits.arrivals = 20,000,000; use a larger mean, a shorter run.duration or workload.limit, "
            "or raise limits.arrivals on purpose",
        ),
        (
            'workload.interarrival={dist="constant", value=0.0}',
            "mean 0 s over run.duration = 300 s makes an unbounded number of transactions per run",
        ),
        (
            'nemesis.crash={target="payment", mtbf=1e-6, duration={dist="constant", value=0.0}}',
            "nemesis: about 3e+08 faults per run expected",
        ),
        (
            'faults=[{kind="failure_rate", target="payment", at=1.0, business_failure=0.7, transient_failure=0.6}]',
            "faults[0]: business_failure + transient_failure must be <= 1 (they are per-attempt probabilities "
            "of exclusive outcomes), got 1.3",
        ),
        (
            'nemesis.failure_rate={target="payment", mtbf=5.0, business_failure=0.5, transient_failure=0.51}',
            "nemesis: failure_rate: business_failure + transient_failure must be <= 1",
        ),
    ],
)
def test_validate_refuses_what_would_never_finish(
    capsys: pytest.CaptureFixture[str], setting: str, message: str
) -> None:
    code, out, err = sagasim(capsys, "validate", HAPPY, "--set", setting)
    assert code == 2
    assert out == ""
    assert message in one_line(err)


def test_nemesis_faults_of_a_swarm_are_estimated_at_their_fastest() -> None:
    plain = order_scenario(
        {"nemesis.crash": {"target": "payment", "mtbf": 1.0, "duration": {"dist": "constant", "value": 1.0}}}
    )
    assert estimate_work(plain).nemesis_faults == pytest.approx(10.0 / 2.0)
    swarm = order_scenario(
        {
            "nemesis.swarm": True,
            "nemesis.crash": {"target": "payment", "mtbf": 1.0, "duration": {"dist": "constant", "value": 1.0}},
        }
    )
    assert estimate_work(swarm).nemesis_faults == pytest.approx(10.0 / 1.25)


def test_work_limits_are_inclusive_and_can_be_raised() -> None:
    # 10 s of arrivals every 0.01 s: 1000 expected.
    constant = {"workload.interarrival": {"dist": "constant", "value": 0.01}}
    assert estimate_work(order_scenario(constant)).arrivals == pytest.approx(1000)
    order_scenario({**constant, "limits.arrivals": 1000})
    with pytest.raises(ScenarioError, match="above limits.arrivals = 999"):
        order_scenario({**constant, "limits.arrivals": 999})
    # workload.limit bounds the arrivals, even with no time between them.
    bounded = order_scenario({"workload.interarrival": {"dist": "constant", "value": 0.0}, "workload.limit": 50})
    assert estimate_work(bounded).arrivals == 50
    # 2 faults per run on one target (10 s / (4 s + 1 s)).
    crash = {"nemesis.crash": {"target": "payment", "mtbf": 4.0, "duration": {"dist": "constant", "value": 1.0}}}
    order_scenario({**crash, "limits.nemesis_faults": 2})
    with pytest.raises(ScenarioError, match="above limits.nemesis_faults = 1;"):
        order_scenario({**crash, "limits.nemesis_faults": 1})


def test_run_json_never_holds_infinity(tmp_path: Path) -> None:
    folder = sim.run(order_scenario({"run.duration": 2.0, "run.drain": 2.0})).save(tmp_path / "r")

    def refuse(word: str) -> None:
        raise AssertionError(f"run.json holds {word}")

    json.loads((folder / "run.json").read_text(), parse_constant=refuse)


def test_a_sweep_axis_of_infinity_is_refused() -> None:
    spec = {"name": "s", "scenario": order_scenario(), "grid": {"run.duration": [10.0, math.inf]}}
    with pytest.raises(SagasimError, match=r"grid point 1 \(run.duration = Infinity\) does not make a valid scenario"):
        sweep_from_dict(spec)


def test_max_runs_is_inclusive() -> None:
    check_runs(MAX_RUNS, MAX_RUNS, "x")
    with pytest.raises(
        SagasimError, match=r"x = 10,001 runs, above the limit of 10,000 runs per command; .* --max-runs"
    ):
        check_runs(MAX_RUNS + 1, MAX_RUNS, "x")


def test_a_huge_seed_range_is_refused_without_listing_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_simulation(monkeypatch)
    code, _, err = sagasim(capsys, "compare", HAPPY, "--seeds", "0..100000000000")
    assert code == 2
    assert "'0..100000000000': 100,000,000,001 seeds, above the limit of 10,000 runs per command" in one_line(err)
    code, _, err = sagasim(capsys, "compare", HAPPY, "--seeds", "1..3", "--protocol", "2pc", "--max-runs", "2")
    assert code == 2
    assert "above the limit of 2 runs" in one_line(err)
    code, _, err = sagasim(capsys, "run", HAPPY, "-p", "2pc", "-p", "orchestration", "--seed", "1", "--max-runs", "1")
    assert code == 2
    assert "2 protocols x 1 seeds = 2 runs, above the limit of 1 runs" in one_line(err)


def test_a_huge_sweep_grid_is_refused_before_its_points_are_built(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    values = ", ".join(str(v) for v in range(1, 1001))
    sweep = tmp_path / "big.toml"
    sweep.write_text(
        f'scenario = "{HAPPY}"\n[grid]\n"participants.payment.workers" = [{values}]\n'
        f'"participants.shipping.workers" = [{values}]\n'
    )
    code, _, err = sagasim(capsys, "sweep", sweep, "--out", tmp_path / "out")
    assert code == 2
    assert "the grid's 1000 x 1000 points = 1,000,000 runs, above the limit of 10,000" in one_line(err)
    assert not (tmp_path / "out").exists()
    seeds = tmp_path / "seeds.toml"
    seeds.write_text(f'scenario = "{HAPPY}"\nprotocols = ["orchestration", "2pc"]\n[grid]\n"run.drain" = [1.0, 2.0]\n')
    # Exactly the limit passes the check, and stops at the next one: --out is a file.
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    code, _, err = sagasim(capsys, "sweep", seeds, "--seeds", "1..2500", "--out", a_file, "--quiet")
    assert code == 2
    assert f"--out {a_file}: is a file" in one_line(err)
    code, _, err = sagasim(capsys, "sweep", seeds, "--seeds", "1..2501", "--out", tmp_path / "out", "--quiet")
    assert code == 2
    assert "2 grid points x 2 protocols x 2501 seeds = 10,004 runs, above the limit of 10,000" in one_line(err)


# ------------------------------------------------------------------ the event budget


def test_a_retry_storm_stops_at_the_event_budget_and_leaves_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "storm"
    code, _, err = sagasim(
        capsys, "run", HAPPY, "--seed", "1", "--out", out, *STORM, "--set", "limits.events=200000", "--quiet"
    )
    assert code == 2
    text = one_line(err)
    assert "run happy-path/orchestration/1 passed its budget of 200,000 simulation events (limits.events)" in text
    assert "and was stopped; nothing of it was saved" in text
    assert "a retry storm: orchestrator.retry retries without limit and with zero back-off (initial = 0)" in text
    assert "orchestrator.timeout = 1e-09 s times out before any reply can arrive" in text
    assert "raise limits.events on purpose" in text
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_event_budget_without_a_known_cause_says_so() -> None:
    # About 100,000 events: more than one chunk of the event loop, where the budget is checked.
    scenario = order_scenario({"limits.events": 1000, "workload.interarrival": {"dist": "exponential", "mean": 0.001}})
    with pytest.raises(RunTooBusy, match="Likely cause: the workload and faults make far more events"):
        run_once(scenario, "orchestration", 1)


def chain_world(events: int, budget: int | None) -> World:
    """A world that runs exactly ``events`` events (a chain, one per microsecond) before ``until``."""
    world = World(1)
    world.max_events = budget
    left = [events]

    def step(_: object) -> None:
        left[0] -= 1
        if left[0]:
            world.at(1e-6, step)

    world.at(1e-6, step)
    world.run(until=1.0)
    return world


def test_the_event_budget_counts_every_event_and_allows_exactly_the_budget() -> None:
    n = 3 * core._CHUNK
    assert chain_world(n, n).events_run == n
    assert chain_world(n + 5, None).events_run == n + 5
    with pytest.raises(EventBudgetExceeded):
        chain_world(n, n - 1)


def test_the_default_event_budget_is_far_above_the_shipped_scenarios() -> None:
    # The busiest shipped scenario makes about 10 events per arrival.
    assert LimitsSpec().events >= 10 * 10 * max(
        estimate_work(sim.load_scenario(p)).arrivals for p in (ROOT / "scenarios").glob("*.toml")
    )


# ------------------------------------------------------------------ files that are not scenario files


@pytest.mark.parametrize("command", ["validate", "run", "sweep"])
def test_a_device_is_not_read(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, _, err = sagasim(capsys, command, "/dev/zero")
    assert code == 2
    kind = "sweep file" if command == "sweep" else "scenario file"
    assert f"/dev/zero: is not a regular file (a device, pipe or socket); a {kind} must be a regular file" in one_line(
        err
    )


def test_a_file_over_the_size_cap_is_not_read(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text(HAPPY.read_text() + "#" * (MAX_INPUT_BYTES - len(HAPPY.read_bytes()) - 1) + "\n")
    assert big.stat().st_size == MAX_INPUT_BYTES
    code, _, _ = sagasim(capsys, "validate", big)
    assert code == 0  # exactly the cap is read
    big.write_text(big.read_text() + "#")
    code, _, err = sagasim(capsys, "validate", big)
    assert code == 2
    assert "is larger than 1,000,000 bytes; a scenario file is a small text file" in one_line(err)


# ------------------------------------------------------------------ smaller holes


@pytest.mark.parametrize(
    "args",
    [
        ["run", str(HAPPY), "--seed", str(2**63)],
        ["compare", str(HAPPY), "--seeds", str(2**63)],
        ["sweep", str(ROOT / "sweeps" / "payment-failure.toml"), "--seeds", f"1,{2**63}"],
    ],
)
def test_seeds_at_2_63_are_refused_up_front(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    no_simulation(monkeypatch)
    code, _, err = sagasim(capsys, *args)
    assert code == 2
    assert "9223372036854775808" in err and "seed" in err.lower()


def test_a_seed_just_below_2_63_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, _ = sagasim(capsys, "run", HAPPY, "--seed", str(2**63 - 1), *SHORT, "--out", tmp_path / "r", "-q")
    assert code == 0
    assert json.loads((tmp_path / "r" / "run.json").read_text())["seeds"] == [2**63 - 1]


def test_a_malformed_set_value_is_not_read_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = sagasim(capsys, "validate", HAPPY, "--set", "run.seeds=[1,2")
    assert code == 2
    assert "--set 'run.seeds=[1,2': [1,2 is not a valid TOML value" in one_line(err)
    # A bare word is still a string.
    code, out, _ = sagasim(capsys, "validate", HAPPY, "--set", "workload.transaction=order")
    assert code == 0 and out.startswith("ok")


@pytest.fixture
def result_folder(tmp_path: Path) -> Path:
    return sim.run(order_scenario({"run.duration": 2.0, "run.drain": 2.0}), seed=[1, 2]).save(tmp_path / "result")


def test_report_refuses_a_table_of_the_wrong_schema(
    capsys: pytest.CaptureFixture[str], result_folder: Path, tmp_path: Path
) -> None:
    file = result_folder / "transactions.parquet"
    pd.DataFrame({"something": [1, 2]}).to_parquet(file)
    code, _, err = sagasim(capsys, "report", result_folder, "--out", tmp_path / "rep", "-q")
    assert code == 2
    assert f"{file}: damaged: the table lacks the columns run_id, scenario, protocol, seed, txn_id and 10 more" in (
        one_line(err)
    )


def test_report_refuses_a_result_with_missing_transactions(
    capsys: pytest.CaptureFixture[str], result_folder: Path, tmp_path: Path
) -> None:
    file = result_folder / "transactions.parquet"
    txns = pd.read_parquet(file)
    txns[txns["seed"] == 1].to_parquet(file, index=False)
    code, _, err = sagasim(capsys, "report", result_folder, "--out", tmp_path / "rep", "-q")
    assert code == 2
    assert f"{file}: damaged: it holds" in one_line(err)
    assert "but summary.parquet counts" in one_line(err)


def tiny_sweep() -> Any:
    return sweep_from_dict(
        {
            "name": "tiny",
            "scenario": order_scenario({"run.duration": 2.0, "run.drain": 2.0}),
            "seeds": [1, 2],
            "grid": {"participants.payment.business_failure": [0.0, 0.2]},
        }
    )


def test_report_refuses_a_sweep_with_a_run_file_deleted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    dataset = run_sweep(tiny_sweep(), tmp_path / "sweep", workers=1)
    victim = dataset.path / "transactions" / "protocol=orchestration" / "p0001-s2.parquet"
    victim.unlink()
    code, _, err = sagasim(capsys, "report", dataset.path, "--out", tmp_path / "rep", "-q")
    assert code == 2
    assert f"{victim}: damaged: the file of run tiny/p1/orchestration/2 is missing" in one_line(err)


def test_a_second_resume_of_one_sweep_is_refused_while_the_first_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "sweep"

    class Stop(KeyboardInterrupt):
        pass

    def stop(done: int, *_: object) -> None:
        if done == 1:
            raise Stop

    with pytest.raises(Stop):
        run_sweep(tiny_sweep(), out, workers=1, progress=stop)
    assert (out / SWEEP_PENDING).exists()
    # Another process holds the lock, as a first `sweep --resume` does while it runs.
    with open(out / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SagasimError, match="another sagasim process is running or resuming this sweep"):
            run_sweep(tiny_sweep(), out, workers=1, resume=True)
        assert (out / SWEEP_PENDING).exists()
        # The command line says so with exit status 2 (a sweep file of its own, on a folder of its own).
        cli_out = tmp_path / "cli"
        cli_out.mkdir()
        (cli_out / SWEEP_PENDING).write_text("{}")
        with open(cli_out / ".lock", "a") as cli_held:
            fcntl.flock(cli_held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            sweep_file = tmp_path / "s.toml"
            sweep_file.write_text(f'scenario = "{HAPPY}"\nseeds = [1]\n')
            code, _, err = sagasim(capsys, "sweep", sweep_file, "--out", cli_out, "--resume", "--quiet")
            assert code == 2
            assert f"--out {cli_out}: another sagasim process is running or resuming this sweep" in one_line(err)
    dataset = run_sweep(tiny_sweep(), out, workers=1, resume=True)
    assert len(dataset.summary) == 4
    assert sorted(p.name for p in out.iterdir()) == ["faults", "summary.parquet", "sweep.json", "transactions"]


def test_a_folder_that_is_not_a_sweep_is_not_told_to_resume(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "ideas.txt").write_text("mine")
    for resume in (False, True):
        with pytest.raises(SagasimError, match="is not empty and is not a sweep dataset") as caught:
            run_sweep(tiny_sweep(), notes, workers=1, resume=resume)
        assert "--resume" not in str(caught.value)
    assert sorted(p.name for p in notes.iterdir()) == ["ideas.txt"]


@pytest.mark.parametrize("txn", ["a:b:c", "[red]x[/red]:1", ":thumbs_up:"])
def test_user_text_in_messages_prints_as_written(
    capsys: pytest.CaptureFixture[str], result_folder: Path, tmp_path: Path, txn: str
) -> None:
    code, _, err = sagasim(capsys, "report", result_folder, "--txn", txn, "--out", tmp_path / "rep", "-q")
    assert code == 2
    assert txn in one_line(err)
    assert "\N{THUMBS UP SIGN}" not in err


# ------------------------------------------------------------------ the Python API


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": []}, "seed: an empty list; give at least one seed"),
        ({"protocol": []}, "protocol: an empty list; give at least one of orchestration, 2pc, choreography"),
        ({"seed": 1.7}, "seed 1.7: not a seed; seeds are whole numbers >= 0 and < 2**63"),
        ({"seed": -1}, "seed -1: not a seed"),
        ({"seed": 2**63}, "seed 9223372036854775808: not a seed"),
        ({"seed": True}, "seed true: not a seed"),
        ({"seed": "1"}, 'seed "1": not a seed'),
        ({"protocol": "3pc"}, 'protocol "3pc": not a protocol; allowed: orchestration, 2pc, choreography'),
        ({"overrides": [3]}, 'overrides: 3 is not a "dotted.key=value" string'),
        ({"overrides": 5}, "overrides = 5: expected a dict of dotted keys"),
        ({"overrides": "run.duration=inf"}, "run.duration = Infinity: input should be a finite number"),
        ({"trace": "yes"}, 'trace = "yes": expected True, False or None'),
        ({"seed": [1, 2, 3], "max_runs": 2}, "1 protocols x 3 seeds = 3 runs, above the limit of 2"),
    ],
)
def test_the_api_checks_its_arguments_like_the_cli(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SagasimError) as caught:
        sim.run(order_scenario(), **kwargs)
    assert message in str(caught.value)


def test_the_api_takes_a_path_a_scenario_or_a_dict_and_one_override_string() -> None:
    short = "run.duration=2"
    by_dict = sim.run(order_dict(), seed=[1, 1], overrides=short)
    assert [r.run_id for r in by_dict.runs] == ["test-order/orchestration/1"]  # a repeated seed runs once
    assert by_dict.scenario.run.duration == 2
    by_scenario = sim.run(order_scenario(), seed=1, overrides=[short])
    pd.testing.assert_frame_equal(by_dict.transactions, by_scenario.transactions)
    with pytest.raises(
        SagasimError, match="scenario: expected a scenario file's path, a sim.Scenario or a dict, got int"
    ):
        sim.run(42)  # type: ignore[arg-type]


def test_import_sim_exposes_the_submodules_the_docs_use() -> None:
    import subprocess
    import sys

    code = "import sim; print(sim.dataset.load.__name__, sim.compare.protocol_table.__name__, sim.sweep.run_sweep.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["load", "protocol_table", "run_sweep"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        sim.nothing  # noqa: B018


def test_a_huge_seed_range_in_a_sweep_file_is_refused() -> None:
    spec = {"name": "s", "scenario": order_scenario(), "seeds": "0..100000000000"}
    with pytest.raises(SagasimError, match=r"seeds = '0..100000000000': 100,000,000,001 seeds, above the limit"):
        sweep_from_dict(spec)


def test_the_resume_command_keeps_a_raised_max_runs(tmp_path: Path) -> None:
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text(f'scenario = "{HAPPY}"\nseeds = [1]\n')
    assert "--max-runs" not in sim.sweep.load_sweep(sweep_file).resume_command("out")
    raised = sim.sweep.load_sweep(sweep_file, max_runs=MAX_RUNS * 2).resume_command("out")
    assert raised.endswith("--max-runs 20000 --resume")
