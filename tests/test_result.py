"""Result folders: complete or absent, never half-written; run.json reproduces the run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import sim
from sim.scenario import scenario_from_dict

from conftest import order_scenario


@pytest.fixture
def result() -> sim.Result:
    return sim.run(order_scenario({"run.duration": 5.0}), seed=[1, 2])


def test_save_writes_every_table(result: sim.Result, tmp_path: Path) -> None:
    folder = result.save(tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == [
        "faults.parquet",
        "run.json",
        "summary.parquet",
        "transactions.parquet",
    ]
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "transactions.parquet"), result.transactions)
    summary = pd.read_parquet(folder / "summary.parquet")
    assert summary["seed"].tolist() == [1, 2]
    assert list(tmp_path.iterdir()) == [folder]  # no staging folder left behind


def test_an_interrupted_write_leaves_no_folder(
    result: sim.Result, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(KeyboardInterrupt):
        result.save(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_result_is_replaced_only_when_asked(result: sim.Result, tmp_path: Path) -> None:
    target = result.save(tmp_path / "out")
    (target / "stale").write_text("x")
    with pytest.raises(sim.SagasimError, match="already exists"):
        result.save(target)
    assert (target / "stale").exists()
    result.save(target, overwrite=True)
    assert not (target / "stale").exists()
    assert (target / "run.json").is_file()


def test_overwrite_never_deletes_a_folder_sagasim_did_not_write(result: sim.Result, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "ideas.txt").write_text("mine")
    with pytest.raises(sim.SagasimError, match=r"notes: exists and is not a result folder \(no run.json\)"):
        result.save(notes, overwrite=True)
    assert (notes / "ideas.txt").read_text() == "mine"
    file = tmp_path / "a-file"
    file.write_text("mine")
    with pytest.raises(sim.SagasimError, match="exists and is not a folder"):
        result.save(file, overwrite=True)
    assert file.read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (result.save(empty, overwrite=True) / "run.json").is_file()


def test_run_json_reproduces_the_run(result: sim.Result, tmp_path: Path) -> None:
    meta = json.loads((result.save(tmp_path / "out") / "run.json").read_text())
    assert meta["seeds"] == [1, 2]
    assert meta["protocols"] == ["orchestration"]
    assert meta["overrides"] == {}
    assert {"python", "simpy", "numpy", "pandas", "pyarrow", "pydantic"} <= set(meta["versions"])
    assert meta["runs"][0]["random_streams"]
    again = sim.run(scenario_from_dict(meta["config"]), seed=meta["seeds"])
    pd.testing.assert_frame_equal(again.transactions, result.transactions)


def test_summary_rates_and_intervals_are_consistent(result: sim.Result) -> None:
    for _, row in result.summary.iterrows():
        total = sum(row[o] for o in ("committed", "compensated", "aborted", "inconsistent", "stuck"))
        assert total == row["transactions"]
        for outcome in ("committed", "compensated", "inconsistent", "stuck"):
            assert row[f"{outcome}_rate_low"] <= row[f"{outcome}_rate"] <= row[f"{outcome}_rate_high"]
        assert row["verdict"] == "valid"
