"""The command line: results, exit codes, and every bad-input path (one message, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import sagasim

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
SHORT = ["--set", "run.duration=20", "--set", "run.drain=20"]


def test_run_prints_a_table_and_writes_a_complete_result(capsys, tmp_path: Path) -> None:
    out_dir = tmp_path / "res"
    code, out, err = sagasim(
        capsys, "run", SCENARIOS / "order-flaky-payment.toml", "--seed", "4", "--out", out_dir, *SHORT, "--trace"
    )
    assert code == 0
    assert "orchestration: order-flaky-payment (seeds 4;" in out
    for outcome in ("committed", "compensated", "inconsistent", "stuck"):
        assert outcome in out
    assert f"results written to {out_dir}" in err
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "events.parquet",
        "faults.parquet",
        "run.json",
        "summary.parquet",
        "transactions.parquet",
    ]
    txns = pd.read_parquet(out_dir / "transactions.parquet")
    summary = pd.read_parquet(out_dir / "summary.parquet")
    assert list(txns.columns[:15]) == [
        "run_id", "scenario", "protocol", "seed", "txn_id", "started_at", "finished_at", "outcome",
        "consistent", "consistent_at", "latency", "steps_applied", "compensations_applied", "retries", "messages",
    ]  # fmt: skip
    assert summary["transactions"].sum() == len(txns)
    assert summary["protocol"].tolist() == ["orchestration", "choreography"]  # the scenario's run.protocols
    assert set(txns["seed"]) == {4}
    meta = json.loads((out_dir / "run.json").read_text())
    assert meta["config"]["run"]["duration"] == 20
    assert meta["overrides"] == {"run.duration": 20, "run.drain": 20}
    assert meta["seeds"] == [4]
    assert meta["versions"]["simpy"]
    events = pd.read_parquet(out_dir / "events.parquet")
    assert list(events.columns) == [
        "run_id", "time", "node", "kind", "txn_id", "step", "detail", "peer", "message", "direction", "attempt"
    ]  # fmt: skip


def test_fail_on_gives_status_1_and_names_the_first_offender(capsys, tmp_path: Path) -> None:
    code, out, err = sagasim(
        capsys, "run", SCENARIOS / "naive-orchestrator.toml", "--seed", "1", "--out", tmp_path / "r",
        "--fail-on", "inconsistent,stuck", "--quiet",
    )  # fmt: skip
    assert code == 1
    assert out == ""
    assert "--fail-on inconsistent,stuck:" in err
    assert "inconsistent" in err and "first: transaction" in err


def test_fail_on_passes_when_nothing_matches(capsys, tmp_path: Path) -> None:
    code, _, _ = sagasim(
        capsys, "run", SCENARIOS / "robust-orchestrator.toml", "--seed", "1", "--out", tmp_path / "r",
        "--fail-on", "inconsistent,stuck", "-q",
    )  # fmt: skip
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.toml"], "missing.toml: no such file"),
        (["run", "{robust}", "--set", "participants.payment.workrs=3"], "did you mean 'workers'?"),
        (["run", "{robust}", "--set", "run.drain=-1"], "run.drain = -1: input should be greater than or equal to 0"),
        (["run", "{robust}", "--set", "novalue"], "expected dotted.key=value"),
        (["run", "{robust}", "--protocol", "3pc"], "Invalid value for '--protocol': '3pc'; allowed: orchestration"),
        (["run", "{robust}", "--seed", "-1"], "Invalid value for '--seed'"),
        (["run", "{robust}", "--fail-on", "broken"], "'broken'; allowed: committed, compensated, aborted"),
        (["run", "{robust}", "--bogus"], "No such option '--bogus'"),
        (["run"], "Missing argument 'SCENARIO'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (
            ["validate", "{bad}"],
            "participants.payment.servce_time: unknown key 'servce_time'; did you mean 'service_time'?",
        ),
        (["validate", "{nottoml}"], "is not valid TOML"),
    ],
)
def test_bad_input_is_one_message_and_status_2(capsys, tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((SCENARIOS / "order-flaky-payment.toml").read_text().replace("service_time", "servce_time", 1))
    nottoml = tmp_path / "nottoml.toml"
    nottoml.write_text("[run\n")
    names = {"robust": SCENARIOS / "robust-orchestrator.toml", "bad": bad, "nottoml": nottoml}
    argv = [a.format(**names) if a.startswith("{") else a for a in args]
    code, out, err = sagasim(capsys, *argv)
    assert code == 2
    assert message in " ".join((out + err).split())


def test_out_folder_that_exists_is_refused(capsys, tmp_path: Path) -> None:
    code, _, err = sagasim(capsys, "run", SCENARIOS / "robust-orchestrator.toml", "--out", tmp_path)
    assert code == 2
    assert "already exists" in err


def test_validate_reports_each_file(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n')
    code, out, err = sagasim(capsys, "validate", SCENARIOS / "order-flaky-payment.toml", bad)
    assert code == 2
    assert "ok " in out and "order-flaky-payment" in out
    assert "invalid" in err and "participants: required, but missing" in err


@pytest.mark.parametrize("command", [[], ["run"], ["validate"]])
def test_help_explains_with_examples(capsys, command: list[str]) -> None:
    code, out, _ = sagasim(capsys, *command, "--help")
    assert code == 0
    assert "Usage: sagasim" in out
    assert "Examples:" in out


def test_installed_entry_point_and_python_dash_m(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "sagasim"
    for argv in ([str(exe)], [sys.executable, "-m", "sim"]):
        done = subprocess.run([*argv, "--version"], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert "sagasim, version" in done.stdout
        done = subprocess.run([*argv, "validate", str(tmp_path / "x.toml")], capture_output=True, text=True)
        assert done.returncode == 2
        assert "x.toml: no such file" in done.stderr
        assert "Traceback" not in done.stderr


def test_time_to_consistency_is_over_the_transactions_that_became_consistent(capsys, tmp_path: Path) -> None:
    # The retry storm leaves most orders stuck, many with nothing applied:
    # they never became consistent, so they are not "consistent at 0 ms".
    code, out, _ = sagasim(
        capsys, "run", SCENARIOS / "retry-storm.toml", "--seed", "1", "--out", tmp_path / "r",
        "--set", "run.duration=30", "--set", "run.drain=10",
    )  # fmt: skip
    assert code == 0
    txns = pd.read_parquet(tmp_path / "r" / "transactions.parquet")
    summary = pd.read_parquet(tmp_path / "r" / "summary.parquet").iloc[0]
    ended_badly = txns["outcome"].isin(["stuck", "inconsistent"])
    stuck_clean = txns[(txns["outcome"] == "stuck") & (txns["steps_applied"] == 0)]
    assert len(stuck_clean) > 100  # the case at issue: stuck with nothing applied
    assert txns.loc[ended_badly, "time_to_consistency"].isna().all()
    assert txns.loc[ended_badly, "consistent_at"].isna().all()
    assert txns.loc[~ended_badly, "time_to_consistency"].notna().all()
    assert (summary["became_consistent"], summary["never_consistent"]) == ((~ended_badly).sum(), ended_badly.sum())
    ended_well = txns.loc[~ended_badly, "time_to_consistency"]
    assert summary["time_to_consistency_p50"] == pytest.approx(ended_well.quantile(0.5))
    assert summary["time_to_consistency_p50"] > 0.05  # a payment takes about 0.1 s
    p50 = ended_well.quantile(0.5) * 1000
    assert f"time to consistency p50 {p50:.1f} ms" in out
    assert out.count(f"({ended_badly.sum()} never consistent)") == 1


def test_the_headline_says_when_every_transaction_became_consistent(capsys, tmp_path: Path) -> None:
    code, out, _ = sagasim(capsys, "run", SCENARIOS / "happy-path.toml", "--seed", "1", "--out", tmp_path / "r", *SHORT)
    assert code == 0
    txns = pd.read_parquet(tmp_path / "r" / "transactions.parquet")
    for protocol, rows in txns.groupby("protocol"):
        assert rows["outcome"].isin(["committed", "compensated"]).all(), protocol
    for n in txns.groupby("protocol").size():
        assert f"({n} of {n} consistent)" in out
