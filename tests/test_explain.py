"""sim.explain and `sagasim explain`: the story of one transaction, from its
trace and its scenario; the same from a replay as from a recorded trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sim
import sim.report.page
from sim.explain import Explanation, events_of, explain, explain_transaction, step_table
from sim.metrics import events_frame
from sim.report import build_report
from sim.scenario import load_scenario

from conftest import sagasim

ROOT = Path(__file__).resolve().parent.parent
NAIVE = ROOT / "scenarios" / "naive-orchestrator.toml"
ROBUST = ROOT / "scenarios" / "robust-orchestrator.toml"
THIN = {"workload.interarrival": {"dist": "exponential", "mean": 0.2}}  # fewer arrivals, same faults


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The naive scenario (orchestration, seed 1) saved untraced and traced."""
    base = tmp_path_factory.mktemp("explain")
    plain = sim.run(NAIVE, protocol="orchestration", seed=1, overrides=THIN).save(base / "plain")
    traced = sim.run(NAIVE, protocol="orchestration", seed=1, overrides=THIN, trace=True).save(base / "traced")
    return {"plain": plain, "traced": traced}


def test_a_replay_tells_the_same_story_as_the_recorded_trace(folders: dict[str, Path]) -> None:
    replayed, recorded = explain(folders["plain"]), explain(folders["traced"])
    assert (replayed.run_id, replayed.txn_id) == (recorded.run_id, recorded.txn_id)
    assert replayed.sentences == recorded.sentences
    pd.testing.assert_frame_equal(replayed.steps, recorded.steps)


def test_the_story_follows_the_trace(folders: dict[str, Path]) -> None:
    story = explain(folders["traced"])
    txns = pd.read_parquet(folders["traced"] / "transactions.parquet")
    row = txns[txns["txn_id"] == story.txn_id].iloc[0]
    assert story.outcome == row["outcome"] == "inconsistent"  # the naive scenario leaves some: the worst is one
    assert story.chosen.startswith("the worst transaction: inconsistent")
    assert story.sentences[0].startswith(f"The orchestrator believed the transaction **{row['coordinator']}**")
    assert f"the checker says **{row['outcome']}**: {'; '.join(row['reasons'])}" in story.sentences[0]
    events = pd.read_parquet(folders["traced"] / "events.parquet")
    mine = events_of(events, story.txn_id)
    effects = mine[mine["kind"] == "effect"]
    # Every step applied more than once has its sentence, with the count from the trace.
    for step, n in effects[effects["detail"] == "forward"]["step"].value_counts().items():
        said = [s for s in story.sentences if s.startswith(f"`{step}` was applied")]
        assert said == ([f"`{step}` was applied {n} times" + said[0].partition(" times")[2]] if n > 1 else [])
    # The step table counts the same events.
    assert story.steps["effect"].sum() == len(effects[effects["step"].notna()])
    assert story.markdown().splitlines() == [f"- {s}" for s in story.sentences]
    assert all("`" not in s and "**" not in s for s in story.plain())


def events(*rows: tuple[Any, ...]) -> pd.DataFrame:
    """A trace of transaction 7: (time, node, kind, step, detail[, peer, message, direction, attempt])
    per event; a step "" is none (null)."""
    return events_frame([(t, node, kind, 7, step or None, *rest) for t, node, kind, step, *rest in rows])


def row(**values: object) -> pd.Series:
    base = {"run_id": "r", "txn_id": 7, "protocol": "orchestration", "coordinator": "committed"}
    base |= {"outcome": "inconsistent", "reasons": "", "anomalies": "", "consistent": False, "flagged_at": None}
    return pd.Series(base | values)


@pytest.mark.parametrize(("applied_at", "said"), [(1.3, True), (1.2, False), (1.1, False)])
def test_a_timeout_before_the_effect_is_called_out(applied_at: float, said: bool) -> None:
    """Only an effect applied after the timeout shows the timeout proved nothing."""
    scenario = load_scenario(NAIVE)
    trace = events(
        (1.0, "orchestrator", "begin", "", ""),
        (1.0, "orchestrator", "command", "charge", "req to payment"),
        (1.2, "orchestrator", "timeout", "charge", ""),
        (applied_at, "payment", "effect", "charge", "forward"),
    )
    story = explain_transaction(row(), trace, scenario)
    claims = [s for s in story.sentences if "a timeout does not prove that nothing happened" in s]
    assert claims == (
        ["`charge` timed out at +200.0 ms, yet payment applied it at +300.0 ms: " + claims[0].split(": ", 1)[1]]
        if said
        else []
    )


@pytest.mark.parametrize(("path", "blamed"), [(NAIVE, True), (ROBUST, False)])
def test_settings_are_blamed_only_when_they_are_set(path: Path, blamed: bool) -> None:
    """A retried step applied twice: the missing idempotency key is named only
    when the scenario runs without one; a crash forgets the saga only without recovery."""
    scenario = load_scenario(path)
    trace = events(
        (1.0, "orchestrator", "begin", "", ""),
        (1.0, "orchestrator", "command", "charge", "req to payment"),
        (1.1, "payment", "effect", "charge", "forward"),
        (1.5, "orchestrator", "command", "charge", "req to payment"),
        (1.6, "payment", "effect", "charge", "forward"),
        (1.7, "orchestrator", "crash", "", ""),
    )
    crash = trace.iloc[[-1]].assign(txn_id=pd.NA)
    story = explain_transaction(row(), pd.concat([trace.iloc[:-1], crash]), scenario)
    text = " ".join(story.sentences)
    assert "`charge` was applied 2 times: the orchestrator sent 2 attempt(s)" in text
    assert ("`orchestrator.idempotency_keys = false`" in text) is blamed
    assert "The orchestrator crashed at +700.0 ms" in text
    assert ("`orchestrator.recovery = false`" in text) is blamed


@pytest.mark.parametrize(("ended", "said"), [(False, True), (True, False)])
def test_a_crash_after_the_last_event_counts_only_for_a_transaction_that_never_ended(ended: bool, said: bool) -> None:
    trace = events(
        (1.0, "orchestrator", "begin", "", ""),
        (1.0, "orchestrator", "command", "charge", "req to payment"),
        *([(1.1, "orchestrator", "end", "", "committed")] if ended else []),
        (1.7, "orchestrator", "crash", "", ""),
        (1.9, "orchestrator", "crash", "", ""),
    )
    crash = trace[trace["kind"] == "crash"].assign(txn_id=pd.NA)
    story = explain_transaction(row(), pd.concat([trace[trace["kind"] != "crash"], crash]), load_scenario(NAIVE))
    crashes = [s for s in story.sentences if "crashed" in s]
    assert crashes == (["The orchestrator crashed at +700.0 ms; " + crashes[0].split("; ", 1)[1]] if said else [])


@pytest.mark.parametrize("copies", [1, 3])
def test_messages_dropped_at_a_down_node_make_one_sentence_per_node(copies: int) -> None:
    trace = events(
        (1.0, "orchestrator", "begin", "", ""),
        *[(1.1 + i / 10, "orchestrator", "drop", "", "node down: rep", "payment", "rep", "in") for i in range(copies)],
    )
    story = explain_transaction(row(), trace, load_scenario(NAIVE))
    dropped = [s for s in story.sentences if "while it was down" in s]
    if copies == 1:
        assert dropped == ["A reply reached the orchestrator at +100.0 ms while it was down: dropped."]
    else:
        assert dropped == [
            "3 messages (reply x3) reached the orchestrator while it was down, from +100.0 ms to +300.0 ms: dropped."
        ]


def test_a_transaction_without_events_is_refused() -> None:
    with pytest.raises(ValueError, match="transaction 7: no events in the trace"):
        explain_transaction(row(), events(), load_scenario(NAIVE))


def test_step_table_orders_steps_as_the_transaction_does() -> None:
    trace = events(
        (1.0, "orchestrator", "command", "ship", "req to shipping"),
        (1.1, "orchestrator", "command", "charge", "req to payment"),
        (1.2, "payment", "effect", "charge", "forward"),
    )
    table = step_table(trace, load_scenario(NAIVE))
    assert list(table.index) == ["charge", "ship"]
    assert table.loc["charge"].to_dict() == {"command": 1, "effect": 1}


# ------------------------------------------------------------------ the command and the report


def test_explain_command_prints_the_story(capsys: pytest.CaptureFixture[str], folders: dict[str, Path]) -> None:
    story: Explanation = explain(folders["plain"])
    code, out, err = sagasim(capsys, "explain", folders["plain"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"transaction {story.txn_id} of {story.run_id}: {story.chosen}"
    assert lines[1 : 1 + len(story.sentences)] == [f"- {s.replace('**', '')}" for s in story.sentences]
    assert "events per step" in out


def test_explain_command_takes_a_transaction(capsys: pytest.CaptureFixture[str], folders: dict[str, Path]) -> None:
    code, out, _ = sagasim(capsys, "explain", folders["traced"], "--txn", "3")
    assert code == 0
    assert out.startswith("transaction 3 of naive-orchestrator/orchestration/1: chosen with --txn 3")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--txn", "999999"], "--txn '999999': run naive-orchestrator/orchestration/1 has no transaction 999999"),
        (["--txn", "x"], "--txn 'x': 'x' is not a transaction id"),
    ],
)
def test_explain_bad_input_is_one_message(
    capsys: pytest.CaptureFixture[str], folders: dict[str, Path], args: list[str], message: str
) -> None:
    code, _, err = sagasim(capsys, "explain", folders["traced"], *args)
    assert code == 2
    assert message in " ".join(err.split())


def test_explain_command_refuses_what_is_not_a_result(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = sagasim(capsys, "explain", tmp_path / "nothing")
    assert code == 2 and "nothing" in err


def test_the_report_tells_the_story_of_its_transaction(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("swimlane",))
    page = build_report(folders["traced"], tmp_path / "report").read_text()
    story = explain(folders["traced"])
    assert f"What happened (sagasim explain): {story.plain()[0]}" in page.replace("&#39;", "'")


def test_an_atomic_commits_participants_apply_their_steps_when_they_commit() -> None:
    """A committed 2PC (or Paxos Commit) transaction's participants apply
    their steps at their commit: the story lists them (it said no
    participant applied any effect)."""
    scenario = load_scenario(ROOT / "scenarios" / "happy-path.toml", {"run.duration": 2.0})
    for protocol in ("2pc", "paxos-commit"):
        result = sim.run(scenario, protocol=protocol, seed=1, trace=True)
        row = result.transactions[result.transactions["outcome"] == "committed"].iloc[0]
        story = " ".join(explain_transaction(row, result.events, scenario).sentences)
        assert "No participant applied any effect" not in story
        assert "Effects the participants applied: " in story and "`ship` x1" in story, story
