"""`sagasim compare` and sim.compare: the statistics on hand-made tables with
known answers, the replay command, and the command line end to end."""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from scipy import stats

import sim.cli
import sim.runner
from sim.compare import (
    format_seeds,
    paired_differences,
    parse_seeds,
    protocol_table,
    reproduce_command,
    worst_transaction,
)
from sim.metrics import wilson
from sim.runner import Model
from sim.scenario import load_scenario, parse_overrides

from conftest import sagasim

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
NAIVE = SCENARIOS / "naive-orchestrator.toml"
ROBUST = SCENARIOS / "robust-orchestrator.toml"
THIN_VALUE = 'workload.interarrival={ dist = "exponential", mean = 0.2 }'
THIN = ["--set", THIN_VALUE]  # a quarter of the arrivals: same faults, faster


# ------------------------------------------------------------------ seeds


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("1..3", [1, 2, 3]),
        ("4", [4]),
        ("1,2,5", [1, 2, 5]),
        ("1..3,7,10..11", [1, 2, 3, 7, 10, 11]),
        (" 2 .. 3 , 0 ", [2, 3, 0]),
        ("3,1..4", [3, 1, 2, 4]),  # duplicates dropped, order kept
        ("0..0", [0]),
    ],
)
def test_parse_seeds(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("3..1", "empty range (3 > 1)"),
        ("a..b", "'a' is not a whole number in 'a..b'"),
        ("1..", "missing number in '1..'"),
        ("-1", "negative seed -1"),
        ("", "empty seed"),
        ("1,,2", "empty seed"),
        ("1.5", "'1.5' is not a whole number"),
        ("99999999999999999999", "too large"),
    ],
)
def test_parse_seeds_rejects_with_the_allowed_spelling(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_seeds(text)
    assert problem in str(err.value)
    assert repr(text) in str(err.value)


def test_format_seeds_is_the_short_spelling() -> None:
    assert format_seeds([3, 1, 2, 7, 9, 10]) == "1..3,7,9,10"
    assert format_seeds(range(1, 31)) == "1..30"
    assert parse_seeds(format_seeds([5, 0, 1, 2, 3, 8])) == [0, 1, 2, 3, 5, 8]


# ------------------------------------------------------------------ paired differences


def summary_of(rates: dict[str, dict[int, tuple[float, float]]]) -> pd.DataFrame:
    """A summary table: protocol -> seed -> (inconsistent_rate, stuck_rate)."""
    rows = [
        {"scenario": "s", "protocol": p, "seed": seed, "inconsistent_rate": inc, "stuck_rate": stuck}
        for p, by_seed in rates.items()
        for seed, (inc, stuck) in by_seed.items()
    ]
    return pd.DataFrame(rows)


def test_paired_difference_is_the_mean_over_seeds_with_a_t_interval() -> None:
    summary = summary_of(
        {
            "a": {1: (0.3, 0.0), 2: (0.5, 0.0), 3: (0.4, 0.0)},
            "b": {1: (0.2, 0.0), 2: (0.2, 0.1), 3: (0.2, 0.0)},
        }
    )
    pairs = paired_differences(summary)
    assert list(pairs[["protocol_a", "protocol_b", "metric"]].itertuples(index=False, name=None)) == [
        ("a", "b", "inconsistent_rate"),
        ("a", "b", "stuck_rate"),
    ]
    inc, stuck = pairs.iloc[0], pairs.iloc[1]
    # differences 0.1, 0.3, 0.2: mean 0.2, sd 0.1
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert inc["mean"] == pytest.approx(0.2)
    assert inc["ci_low"] == pytest.approx(0.2 - half)
    assert inc["ci_high"] == pytest.approx(0.2 + half)
    assert (inc["seeds"], inc["a_worse"], inc["a_better"], inc["equal"], inc["note"]) == (3, 3, 0, 0, "")
    # differences 0, -0.1, 0: a is better on one seed, equal on two
    sd = math.sqrt(((1 / 30) ** 2 * 2 + (0.1 - 1 / 30) ** 2) / 2)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert stuck["mean"] == pytest.approx(-0.1 / 3)
    assert stuck["ci_high"] == pytest.approx(-0.1 / 3 + half)
    assert (stuck["a_worse"], stuck["a_better"], stuck["equal"]) == (0, 1, 2)


def test_pairs_follow_the_given_order_and_only_common_seeds() -> None:
    summary = summary_of(
        {
            "a": {1: (0.1, 0.0), 2: (0.2, 0.0), 3: (0.3, 0.0)},
            "b": {1: (0.1, 0.0), 2: (0.1, 0.0), 3: (0.1, 0.0)},
            "c": {2: (0.0, 0.05), 3: (0.1, 0.05)},
        }
    )
    pairs = paired_differences(summary, metrics=["inconsistent_rate"])
    assert list(zip(pairs["protocol_a"], pairs["protocol_b"], strict=True)) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert pairs["seeds"].tolist() == [3, 2, 2]
    # a - c on seeds 2 and 3: 0.2 and 0.2, no spread: a zero-width interval, said so
    ac = pairs.iloc[1]
    assert ac["mean"] == pytest.approx(0.2)
    assert ac["ci_low"] == pytest.approx(0.2) and ac["ci_high"] == pytest.approx(0.2)
    assert ac["note"] == "same difference on every seed"
    reverse = paired_differences(summary, protocols=["c", "a"], metrics=["inconsistent_rate"])
    assert reverse[["protocol_a", "protocol_b"]].values.tolist() == [["c", "a"]]
    assert reverse["mean"].iloc[0] == pytest.approx(-0.2)
    assert reverse["a_better"].iloc[0] == 2


def test_one_seed_has_no_interval_and_says_so() -> None:
    pairs = paired_differences(summary_of({"a": {7: (0.5, 0.25)}, "b": {7: (0.25, 0.25)}}))
    row = pairs.iloc[0]
    assert row["mean"] == pytest.approx(0.25)
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert row["note"] == "1 seed: no interval"
    assert pairs.iloc[1]["equal"] == 1


def test_no_common_seed_and_nan_rates() -> None:
    summary = summary_of({"a": {1: (0.1, 0.0), 2: (math.nan, math.nan)}, "b": {2: (0.0, 0.0), 3: (0.0, 0.0)}})
    row = paired_differences(summary).iloc[0]
    assert row["seeds"] == 0 and math.isnan(row["mean"]) and row["note"] == "no seed in common"


def test_one_protocol_has_no_pairs_and_higher_is_better_metrics_flip() -> None:
    assert paired_differences(summary_of({"a": {1: (0.1, 0.0)}})).empty
    summary = summary_of({"a": {1: (0, 0), 2: (0, 0)}, "b": {1: (0, 0), 2: (0, 0)}})
    summary["committed_rate"] = [0.9, 0.8, 0.7, 0.8]  # a: 0.9, 0.8; b: 0.7, 0.8
    row = paired_differences(summary, metrics=["committed_rate"]).iloc[0]
    assert (row["a_worse"], row["a_better"], row["equal"]) == (0, 1, 1)


def test_paired_differences_refuses_ambiguous_tables() -> None:
    summary = summary_of({"a": {1: (0.1, 0.0)}, "b": {1: (0.1, 0.0)}})
    with pytest.raises(ValueError, match="more than one row for protocol 'a'"):
        paired_differences(pd.concat([summary, summary.iloc[:1]]))
    with pytest.raises(ValueError, match="no column 'latency_p99'"):
        paired_differences(summary, metrics=["latency_p99"])


# ------------------------------------------------------------------ protocol table


def txn(protocol: str, seed: int, txn_id: int, outcome: str, **cols: object) -> dict[str, object]:
    row: dict[str, object] = {
        "run_id": f"s/{protocol}/{seed}",
        "scenario": "s",
        "protocol": protocol,
        "seed": seed,
        "txn_id": txn_id,
        "started_at": float(txn_id),
        "outcome": outcome,
        "latency": math.nan if outcome == "stuck" else 0.1 * (txn_id + 1),
        "time_to_consistency": 0.1 if outcome in ("committed", "compensated") else math.nan,
        "messages": 6,
        "reasons": [],
    }
    row.update(cols)
    return row


def test_a_folder_that_gave_stuck_transactions_a_time_to_consistency_is_read_right() -> None:
    # Folders written before the rule: a stuck transaction that had applied
    # nothing was "consistent at its start" (0 s), which dragged the tail down.
    rows = [txn("a", 1, i, "committed", time_to_consistency=1.0) for i in range(3)]
    rows += [txn("a", 1, 3 + i, "stuck", time_to_consistency=0.0) for i in range(5)]
    rows += [txn("a", 1, 8, "inconsistent", time_to_consistency=0.0)]
    transactions = pd.DataFrame(rows)
    summary = pd.DataFrame({"protocol": ["a"], "seed": [1]})
    a = protocol_table(SimpleNamespace(transactions=transactions, summary=summary)).iloc[0]
    assert (a["time_to_consistency_p99"], a["never_consistent"]) == (1.0, 6)


def test_protocol_table_pools_seeds_per_protocol() -> None:
    rows = [txn("a", 1, i, "committed") for i in range(6)]
    rows += [txn("a", 2, 0, "inconsistent", reasons="x; y"), txn("a", 2, 1, "stuck"), txn("a", 2, 2, "compensated")]
    rows += [txn("b", 1, i, "committed", blocked=0.5) for i in range(4)]
    transactions = pd.DataFrame(rows)
    summary = pd.DataFrame({"protocol": ["a", "a", "b"], "seed": [1, 2, 1]})
    table = protocol_table(SimpleNamespace(transactions=transactions, summary=summary)).set_index("protocol")
    assert table.index.tolist() == ["a", "b"]
    a = table.loc["a"]
    assert (a["seeds"], a["transactions"], a["committed"], a["inconsistent"], a["stuck"]) == (2, 9, 6, 1, 1)
    assert a["inconsistent_rate"] == pytest.approx(1 / 9)
    assert (a["inconsistent_rate_low"], a["inconsistent_rate_high"]) == pytest.approx(wilson(1, 9))
    finished = pd.Series([0.1 * (i + 1) for i in range(6)] + [0.1, 0.3])  # the stuck one has no latency
    assert a["latency_p50"] == pytest.approx(finished.quantile(0.5))
    assert a["latency_p99"] == pytest.approx(finished.quantile(0.99))
    assert a["time_to_consistency_p99"] == pytest.approx(0.1)
    assert (a["never_consistent"], table.loc["b", "never_consistent"]) == (2, 0)  # the inconsistent and the stuck
    assert a["messages_per_txn"] == 6
    assert math.isnan(a["blocked_mean"])  # a has no blocked time; b (think 2PC) has
    assert table.loc["b", "blocked_mean"] == 0.5
    assert math.isnan(a["blocked_max"])
    assert table.loc["b", "blocked_max"] == transactions[transactions["protocol"] == "b"]["blocked"].max()
    assert table.loc["b", "committed_rate"] == 1.0 and table.loc["b", "committed_rate_high"] == 1.0
    assert (
        "blocked_mean"
        not in protocol_table(
            SimpleNamespace(transactions=transactions.drop(columns="blocked"), summary=summary)
        ).columns
    )


# ------------------------------------------------------------------ worst transaction and replay


def test_worst_is_the_inconsistent_one_with_most_reasons_then_earliest() -> None:
    frame = pd.DataFrame(
        [
            txn("a", 1, 5, "stuck"),
            txn("a", 1, 9, "inconsistent", reasons=["charge applied 2 times", "ship applied 2 times"]),
            txn("a", 1, 3, "inconsistent", reasons=["charge applied 2 times"]),
            txn("a", 2, 7, "inconsistent", reasons=["refund never applied", "reserve applied 2 times"]),
            txn("a", 2, 1, "committed"),
        ]
    )
    worst = worst_transaction(frame)
    assert (worst["seed"], worst["txn_id"]) == (2, 7)  # two reasons, started at 7 < 9
    only_stuck = frame[frame["outcome"] != "inconsistent"]
    stuck = pd.concat([only_stuck, pd.DataFrame([txn("a", 3, 2, "stuck")])], ignore_index=True)
    worst = worst_transaction(stuck)
    assert (worst["outcome"], worst["seed"], worst["txn_id"]) == ("stuck", 3, 2)
    assert worst_transaction(frame[frame["outcome"] == "committed"]) is None
    assert worst_transaction(frame.iloc[0:0]) is None


def test_reproduce_command_quotes_and_keeps_the_overrides() -> None:
    row = pd.Series({"seed": 12, "protocol": "orchestration", "txn_id": 3})
    assert (
        reproduce_command("scenarios/x.toml", [], row)
        == "sagasim run scenarios/x.toml --seed 12 --protocol orchestration --trace"
    )
    overrides = [THIN_VALUE, "run.drain=60", "participants.payment.business_failure=0.1"]
    command = reproduce_command("my scenarios/x.toml", overrides, row)
    assert command == (
        "sagasim run 'my scenarios/x.toml' --seed 12 --protocol orchestration --trace "
        "--set 'workload.interarrival={ dist = \"exponential\", mean = 0.2 }' --set run.drain=60 "
        "--set participants.payment.business_failure=0.1"
    )
    argv = shlex.split(command)
    assert argv[argv.index("--set") + 1] == THIN_VALUE
    # a mapping (the API's spelling) is written as TOML that --set parses back to the same values
    mapping = {
        "workload.interarrival": {"dist": "exponential", "mean": 0.2},
        "orchestrator.recovery": True,
        "run.seeds": [1, 2],
        "workload.transaction": "it's",
    }
    argv = shlex.split(reproduce_command("x.toml", mapping, row))
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert dict(parse_overrides(sets)) == mapping


# ------------------------------------------------------------------ the command line


def run_compare(capsys, *args: str | Path) -> tuple[int, str, str]:
    return sagasim(capsys, "compare", *args)


def test_compare_naive_prints_the_table_and_a_replay_that_reproduces(capsys, tmp_path: Path) -> None:
    out_dir = tmp_path / "cmp"
    code, out, err = run_compare(capsys, NAIVE, "--seeds", "1..2", "--out", out_dir, *THIN)
    assert code == 0, err
    assert f"results written to {out_dir}" in err
    assert out.startswith("compare: naive-orchestrator (seeds 1,2; ")
    cells = {}
    for line in out.splitlines():
        if line.startswith("│") and not line.startswith("│   95%"):
            label, value = (c.strip() for c in line.strip("│").split("│"))
            cells[label] = value
    assert list(cells) == [
        "transactions",
        "committed",
        "compensated",
        "inconsistent",
        "stuck",
        "latency p50",
        "latency p99",
        "time to consistency p99",
        "never consistent",
        "messages/txn",
    ]
    assert out.count("│   95% interval ") == 4
    assert "one protocol (orchestration): nothing to pair" in out
    assert "results written" not in out and "wall" not in out

    # the same folder as `run`, and the printed numbers are the table's
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "faults.parquet",
        "run.json",
        "summary.parquet",
        "transactions.parquet",
    ]
    summary = pd.read_parquet(out_dir / "summary.parquet")
    assert summary["seed"].tolist() == [1, 2]
    table = protocol_table(out_dir).iloc[0]
    assert table["inconsistent"] > 0 and table["stuck"] > 0
    assert cells["transactions"] == str(table["transactions"])
    assert cells["inconsistent"] == f"{table['inconsistent_rate']:.2%}"
    assert cells["messages/txn"] == f"{table['messages_per_txn']:.2f}"

    # the worst transaction and the command that replays it
    worst = worst_transaction(out_dir)
    line = re.search(r"^worst transaction: (\d+) of (\S+), (\w+)", out, flags=re.M)
    assert line is not None, out
    assert (int(line[1]), line[2], line[3]) == (worst["txn_id"], worst["run_id"], "inconsistent")
    command = re.search(r"^replay it: (.*)$", out, flags=re.M)[1]
    assert command == reproduce_command(NAIVE, THIN[1:], worst)
    argv = shlex.split(command)
    assert argv[:2] == ["sagasim", "run"] and "--trace" in argv
    replay = tmp_path / "replay"
    code, _, _ = sagasim(capsys, *argv[1:], "--out", replay, "--quiet")
    assert code == 0
    txns = pd.read_parquet(replay / "transactions.parquet").set_index("txn_id")
    assert txns.loc[worst["txn_id"], "outcome"] == worst["outcome"]
    assert list(txns.loc[worst["txn_id"], "reasons"]) == list(worst["reasons"])
    events = pd.read_parquet(replay / "events.parquet")
    assert (events["txn_id"] == worst["txn_id"]).any()

    # stdout is the same for the same inputs
    code, again, _ = run_compare(capsys, NAIVE, "--seeds", "1..2", "--out", tmp_path / "again", *THIN)
    assert again == out


def test_compare_robust_has_nothing_to_replay(capsys, tmp_path: Path) -> None:
    code, out, err = run_compare(
        capsys, ROBUST, "--seeds", "1", "--out", tmp_path / "r", "--fail-on", "inconsistent,stuck", *THIN
    )
    assert code == 0, err
    assert "seeds 1;" in out
    assert re.search(r"^│ inconsistent +│ +0% │$", out, flags=re.M)
    assert re.search(r"^│ stuck +│ +0% │$", out, flags=re.M)
    assert "one protocol (orchestration): nothing to pair" in out
    assert "worst transaction" not in out and "replay it" not in out


def test_compare_fail_on_exits_1_and_names_the_replay(capsys, tmp_path: Path) -> None:
    code, out, err = run_compare(
        capsys, NAIVE, "-s", "1", "--out", tmp_path / "r", "--fail-on", "inconsistent", "--quiet", *THIN
    )
    assert code == 1
    assert out == ""
    assert "--fail-on inconsistent:" in err
    assert "replay the worst transaction: sagasim run " in " ".join(err.split())


def test_compare_pairs_protocols_by_seed(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two protocols, before a second one exists: a stand-in 'robust' protocol
    that is orchestration with the robust settings, on the naive scenario's
    seeds and faults (the two files share everything else)."""
    robust = load_scenario(ROBUST, THIN[1:]).model_copy(update={"name": "naive-orchestrator"})

    class TwoProtocols(Model):
        def __init__(self, scenario, protocol, seed, trace=None):
            if protocol == "robust":
                super().__init__(robust, "orchestration", seed, trace)
                self.protocol_name = "robust"
            else:
                super().__init__(scenario, protocol, seed, trace)

    monkeypatch.setattr(sim.cli, "PROTOCOLS", (*sim.cli.PROTOCOLS, "robust"))
    monkeypatch.setattr(sim.runner, "Model", TwoProtocols)  # the CLI imports it when it runs
    out_dir = tmp_path / "pair"
    code, out, err = run_compare(
        capsys, NAIVE, "--seeds", "1..3", "-p", "orchestration", "-p", "robust", "--out", out_dir, *THIN
    )
    assert code == 0, err
    assert "protocols orchestration, robust" in out
    assert "nothing to pair" not in out
    assert "paired by seed" in out
    pairs = paired_differences(pd.read_parquet(out_dir / "summary.parquet"))
    assert pairs["metric"].tolist() == ["inconsistent_rate", "stuck_rate"]
    inc = pairs.iloc[0]
    assert (inc["seeds"], inc["a_worse"]) == (3, 3)  # naive is worse on every seed
    assert inc["ci_low"] > 0
    printed = out.split("paired by seed")[1].splitlines()
    assert [line for line in printed if line.startswith("│")] == [
        f"│ orchestration │ inconsistent │ {inc['mean'] * 100:+.2f} │ [{inc['ci_low'] * 100:+.2f}, "
        f"{inc['ci_high'] * 100:+.2f}] │     3 │ 3/0/0 │",
        f"│ - robust      │ stuck        │ {pairs.iloc[1]['mean'] * 100:+.2f} │ [{pairs.iloc[1]['ci_low'] * 100:+.2f}, "
        f"{pairs.iloc[1]['ci_high'] * 100:+.2f}] │     3 │ {pairs.iloc[1]['a_worse']}/0/"
        f"{pairs.iloc[1]['equal']} │",
    ]
    # the worst transaction is the naive one's; robust has none to show
    assert "of naive-orchestrator/orchestration/" in out


@pytest.mark.parametrize("value", ["3..1", "a..b", "1..", "-1", "", "1,,2"])
def test_bad_seeds_are_one_message_and_status_2(capsys, tmp_path: Path, value: str) -> None:
    code, out, err = run_compare(capsys, ROBUST, "--seeds", value, "--out", tmp_path / "r")
    assert code == 2
    message = " ".join((out + err).split())
    assert "Invalid value for '--seeds'" in message
    assert repr(value) in message
    assert "A..B" in message and "1,2,5" in message
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--protocol", "3pc"], "Invalid value for '--protocol': '3pc'; allowed: orchestration"),
        (["--fail-on", "broken"], "'broken'; allowed: committed, compensated, aborted"),
        (["--set", "participants.payment.workrs=3"], "did you mean 'workers'?"),
    ],
)
def test_compare_bad_input(capsys, tmp_path: Path, args: list[str], message: str) -> None:
    code, out, err = run_compare(capsys, ROBUST, *args, "--out", tmp_path / "r")
    assert code == 2
    assert message in " ".join((out + err).split())


def test_compare_refuses_an_existing_out_and_has_help(capsys, tmp_path: Path) -> None:
    code, _, err = run_compare(capsys, ROBUST, "--out", tmp_path)
    assert code == 2 and "already exists" in err
    code, out, _ = run_compare(capsys, "--help")
    assert code == 0
    assert "Usage: sagasim compare" in out and "Examples:" in out and "--seeds" in out
