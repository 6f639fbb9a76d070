"""sagasim export: each format read back with an independent reader and
compared with the result's tables; the schema version; bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import edn_format
import pandas as pd
import pyarrow.parquet as pq
import pytest

import sim
from sim.dataset import load
from sim.schema import PARQUET_KEY, SCHEMA_VERSION

from conftest import order_scenario, sagasim

SHORT = {"run.duration": 3.0, "run.drain": 3.0, "participants.inventory.business_failure": 0.2}


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Orchestration and 2PC, traced, with refusals (compensations, aborts)."""
    result = sim.run(order_scenario(SHORT), protocol=["orchestration", "2pc"], seed=1, trace=True)
    return result.save(tmp_path_factory.mktemp("export") / "traced")


@pytest.fixture(scope="module")
def untraced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = sim.run(order_scenario(SHORT), protocol="orchestration", seed=1)
    return result.save(tmp_path_factory.mktemp("export") / "untraced")


def run_ids(folder: Path) -> list[str]:
    return list(dict.fromkeys(load(folder).summary["run_id"]))


# ------------------------------------------------------------------ csv, jsonl


def test_csv_holds_every_table_row_for_row(capsys: pytest.CaptureFixture[str], traced: Path, tmp_path: Path) -> None:
    code, out, _ = sagasim(capsys, "export", traced, "--format", "csv", "--out", tmp_path / "csv")
    assert code == 0 and "wrote" in out
    dataset = load(traced)
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == [
        "events.csv", "faults.csv", "summary.csv", "transactions.csv"
    ]  # fmt: skip
    with open(tmp_path / "csv" / "transactions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    txns = dataset.transactions
    assert len(rows) == len(txns) > 0
    assert [(r["run_id"], int(r["txn_id"]), r["outcome"]) for r in rows] == list(
        zip(txns["run_id"], txns["txn_id"], txns["outcome"], strict=True)
    )
    # list columns as JSON arrays
    assert [json.loads(r["reasons"]) for r in rows] == [list(v) for v in txns["reasons"]]
    events = pd.read_csv(tmp_path / "csv" / "events.csv")
    assert len(events) == len(dataset.events)
    # a null txn_id (events of no transaction) is an empty cell
    assert events["txn_id"].isna().sum() == dataset.events["txn_id"].isna().sum() > 0


def test_jsonl_is_one_object_per_row_with_its_table(
    capsys: pytest.CaptureFixture[str], traced: Path, tmp_path: Path
) -> None:
    target = tmp_path / "all.jsonl"
    assert sagasim(capsys, "export", traced, "--format", "jsonl", "--out", target)[0] == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    dataset = load(traced)
    counts = pd.Series([r["table"] for r in rows]).value_counts().to_dict()
    assert (
        counts
        == {
            "transactions": len(dataset.transactions),
            "summary": len(dataset.summary),
            "faults": len(dataset.faults),
            "events": len(dataset.events),
        }
        | ({} if len(dataset.faults) else {"faults": 0})
        or counts
    )
    outcomes = [r["outcome"] for r in rows if r["table"] == "transactions"]
    assert outcomes == list(dataset.transactions["outcome"])
    assert all(r["txn_id"] is None for r in rows if r["table"] == "events" and r["kind"] == "heal-all")


def test_txn_restricts_to_the_chosen_transactions(
    capsys: pytest.CaptureFixture[str], traced: Path, tmp_path: Path
) -> None:
    first = run_ids(traced)[0]
    target = tmp_path / "one.jsonl"
    assert sagasim(capsys, "export", traced, "--format", "jsonl", "--txn", f"{first}:3", "--out", target)[0] == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    txns = [r for r in rows if r["table"] == "transactions"]
    assert [(r["run_id"], r["txn_id"]) for r in txns] == [(first, 3)]
    events = [r for r in rows if r["table"] == "events"]
    assert events and {r["txn_id"] for r in events} <= {3, None}
    assert {r["run_id"] for r in rows if "run_id" in r} == {first}


# ------------------------------------------------------------------ perfetto


def test_perfetto_is_trace_event_format_with_a_track_per_node(
    capsys: pytest.CaptureFixture[str], traced: Path, tmp_path: Path
) -> None:
    target = tmp_path / "t.json"
    assert sagasim(capsys, "export", traced, "--format", "perfetto", "--out", target)[0] == 0
    data = json.loads(target.read_text())
    events = data["traceEvents"]
    for e in events:  # the Trace Event Format's required fields, per phase
        assert e["ph"] in ("M", "X", "i")
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int) and isinstance(e["name"], str)
        if e["ph"] == "X":
            assert e["ts"] >= 0 and e["dur"] >= 0
        if e["ph"] == "i":
            assert e["s"] in ("t", "p", "g") and e["ts"] >= 0
    dataset = load(traced)
    processes = {e["args"]["name"]: e["pid"] for e in events if e["name"] == "process_name"}
    assert sorted(processes) == sorted(run_ids(traced))
    for run_id, pid in processes.items():
        threads = {e["args"]["name"] for e in events if e["name"] == "thread_name" and e["pid"] == pid}
        assert threads == set(dataset.events.loc[dataset.events["run_id"] == run_id, "node"])
        spans = [e for e in events if e["ph"] == "X" and e["cat"] == "transaction" and e["pid"] == pid]
        txns = dataset.transactions[dataset.transactions["run_id"] == run_id]
        assert sorted(e["args"]["txn_id"] for e in spans) == sorted(txns["txn_id"])
        by_id = {e["args"]["txn_id"]: e for e in spans}
        for row in txns.itertuples():
            assert by_id[row.txn_id]["args"]["outcome"] == row.outcome
            assert by_id[row.txn_id]["ts"] == pytest.approx(row.started_at * 1e6, abs=1e-3)
        # an instant per message end
        sent = dataset.events[(dataset.events["run_id"] == run_id) & dataset.events["message"].notna()]
        assert sum(1 for e in events if e["ph"] == "i" and e["cat"] == "message" and e["pid"] == pid) == len(sent)
    # a span per participant attempt: each request received (orchestration)
    orch = processes[run_ids(traced)[0]]
    received = dataset.events[(dataset.events["run_id"] == run_ids(traced)[0]) & (dataset.events["kind"] == "receive")]
    assert sum(1 for e in events if e["ph"] == "X" and e["cat"] == "attempt" and e["pid"] == orch) == len(received)


# ------------------------------------------------------------------ jepsen


def test_jepsen_history_reads_with_an_edn_reader(
    capsys: pytest.CaptureFixture[str], traced: Path, tmp_path: Path
) -> None:
    run_id = run_ids(traced)[0]  # orchestration
    target = tmp_path / "h.edn"
    assert sagasim(capsys, "export", traced, "--format", "jepsen", "--run", run_id, "--out", target)[0] == 0
    ops = edn_format.loads(target.read_text())
    K = edn_format.Keyword
    assert [op[K("index")] for op in ops] == list(range(len(ops)))
    assert [op[K("time")] for op in ops] == sorted(op[K("time")] for op in ops)
    txns = load(traced).transactions
    txns = txns[txns["run_id"] == run_id]
    assert {op[K("process")] for op in ops} == set(txns["txn_id"])
    invokes = [op for op in ops if op[K("type")] == K("invoke")]
    assert len(invokes) * 2 == len(ops)  # one completion per invoke
    for txn in txns.itertuples():
        mine = [op for op in ops if op[K("process")] == txn.txn_id]
        types = [op[K("type")].name for op in mine]
        if txn.outcome == "committed":  # every step applied: charge, reserve, ship
            assert [(op[K("type")].name, op[K("f")].name) for op in mine] == [
                ("invoke", "charge"), ("ok", "charge"), ("invoke", "reserve"), ("ok", "reserve"),
                ("invoke", "ship"), ("ok", "ship"),
            ]  # fmt: skip
        if txn.outcome == "compensated":  # inventory refused: reserve fails, the charge is refunded
            assert ("fail", "reserve") in [(op[K("type")].name, op[K("f")].name) for op in mine]
            assert "info" not in types or txn.retries > 0


def test_jepsen_needs_one_run_and_the_trace(
    capsys: pytest.CaptureFixture[str], traced: Path, untraced: Path, tmp_path: Path
) -> None:
    code, _, err = sagasim(capsys, "export", traced, "--format", "jepsen", "--out", tmp_path / "h.edn")
    assert code == 2 and "holds 2 runs" in err and "--run" in err
    for fmt in ("jepsen", "perfetto"):
        code, _, err = sagasim(capsys, "export", untraced, "--format", fmt, "--out", tmp_path / "x")
        assert code == 2
        assert f"{untraced}: has no trace (events.parquet), which --format {fmt} needs" in " ".join(err.split())
        assert "--trace" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "h.edn").exists()


# ------------------------------------------------------------------ bad input, never overwrite


def test_export_never_overwrites_without_overwrite(
    capsys: pytest.CaptureFixture[str], traced: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine.jsonl"
    mine.write_text("precious")
    code, _, err = sagasim(capsys, "export", traced, "--format", "jsonl", "--out", mine)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert mine.read_text() == "precious"
    assert sagasim(capsys, "export", traced, "--format", "jsonl", "--out", mine, "--overwrite")[0] == 0
    assert mine.read_text().startswith('{"table": "transactions"')
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    code, _, err = sagasim(capsys, "export", traced, "--format", "csv", "--out", folder, "--overwrite")
    assert code == 2 and "notes.txt" in err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_export_bad_input_exits_2(capsys: pytest.CaptureFixture[str], traced: Path, tmp_path: Path) -> None:
    for args, message in (
        (("--txn", "x"), "--txn 'x': 'x' is not a transaction id"),
        (("--txn", "999999"), "--txn 999999: no such transaction"),
        (("--run", "nope"), "--run 'nope': no such run"),
    ):
        code, _, err = sagasim(capsys, "export", traced, "--format", "jsonl", "--out", tmp_path / "o.jsonl", *args)
        assert code == 2 and message in " ".join(err.split())
    code, _, err = sagasim(capsys, "export", tmp_path / "missing", "--format", "csv")
    assert code == 2 and "no such folder" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_default_out_is_beside_the_result(capsys: pytest.CaptureFixture[str], traced: Path) -> None:
    code, _, _ = sagasim(capsys, "export", traced, "--format", "perfetto", "--overwrite")
    assert code == 0
    assert (traced.parent / f"{traced.name}-perfetto.perfetto.json").is_file()


# ------------------------------------------------------------------ schema version


def test_every_file_names_the_schema_version(traced: Path) -> None:
    assert json.loads((traced / "run.json").read_text())["schema"] == SCHEMA_VERSION
    for name in ("transactions", "summary", "faults", "events"):
        metadata = pq.read_schema(traced / f"{name}.parquet").metadata
        assert metadata[PARQUET_KEY] == str(SCHEMA_VERSION).encode()


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (SCHEMA_VERSION + 1, f"written with result schema {SCHEMA_VERSION + 1}, newer than this sagasim reads"),
        (1, "written with result schema 1 by an older sagasim"),
        (None, "written with result schema 1 by an older sagasim"),
        ("two", "damaged: its schema version 'two' is not a version number"),
    ],
)
def test_another_schema_version_is_refused_clearly(
    capsys: pytest.CaptureFixture[str], untraced: Path, tmp_path: Path, schema: object, message: str
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(untraced, copy)
    meta = json.loads((copy / "run.json").read_text())
    if schema is None:
        del meta["schema"]  # written before the version: schema 1
    else:
        meta["schema"] = schema
    (copy / "run.json").write_text(json.dumps(meta))
    code, _, err = sagasim(capsys, "explain", copy)
    assert code == 2
    assert f"{copy / 'run.json'}: {message}" in " ".join(err.split())
