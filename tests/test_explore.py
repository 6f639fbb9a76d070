"""`sagasim explore`: fault points, the search, its reduction, shrinking,
the counterexample that `sagasim run` reproduces, and the certificate."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sim.cli import main
from sim.explore import (
    KINDS,
    WINDOW,
    Budget,
    Point,
    certificate,
    explore,
    prepare,
    to_toml,
    write_counterexample,
)
from sim.protocols import registry

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
NAIVE = (
    "naive-orchestrator",
    "lost-replies-naive",
    "failing-compensations-naive",
    "duplicates-not-idempotent",
    "choreography-dual-write",
    "choreography-redelivery",
)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    sys.argv = ["sagasim", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(scope="module")
def naive() -> object:
    return prepare(SCENARIOS / "naive-orchestrator.toml", "orchestration")


def test_the_workload_is_a_few_overlapping_transactions_and_the_faults_are_left_out(naive) -> None:
    setup = naive
    workload = setup.raw["workload"]
    assert workload["limit"] == 2
    assert "faults" not in setup.raw and "nemesis" not in setup.raw
    assert setup.ignored == ["its 3 [[faults]]"]
    base = setup.run(())
    assert base.outcomes == ("committed", "committed")
    # Overlapping: the second arrives before the first has finished.
    gap = workload["interarrival"]["value"]
    assert 2 * gap < base.finished


def test_fault_points_cover_messages_nodes_and_attempts(naive) -> None:
    base = naive.run(())
    kinds = {p.kind for p in base.points}
    assert kinds == set(KINDS)
    assert list(base.points) == sorted(base.points)
    assert len(set(base.points)) == len(base.points)
    # Every message sent is three points at its send instant.
    sends = [p for p in base.points if p.kind == "drop"]
    assert {p.at for p in sends} == {p.at for p in base.points if p.kind == "delay"}
    assert all(p.target.count("->") == 1 for p in sends)


@pytest.mark.parametrize("kind", ["drop", "duplicate", "delay"])
def test_a_message_fault_hits_its_message_and_nothing_else(naive, kind: str) -> None:
    """The window [at, at + WINDOW) holds the send instant: the first request
    is dropped, duplicated or delayed, and the run changes."""
    base = naive.run(())
    point = next(p for p in base.points if p.kind == kind)
    assert point.fault(naive.settings)["duration"] == WINDOW
    model_scenario = naive.with_faults((point,))
    from sim.runner import Model

    model = Model(model_scenario, "orchestration", naive.seed, trace=True)
    model.world.run(until=model.end)
    hit = [e for e in model.world.tracer.events if e.kind in ("drop", "duplicate") and e.time == point.at]
    if kind == "delay":
        assert not hit
        assert naive.run((point,)).signature != base.signature
    else:
        assert len(hit) == 1 and hit[0].kind == kind
    # A window starting just after the send misses it: the run is the one without faults.
    late = point._replace(at=point.at + WINDOW)
    assert naive.run((late,)).signature == base.signature


def test_a_violation_is_found_shrunk_and_reproduced_by_sagasim_run(naive, tmp_path: Path, capsys) -> None:
    result = explore(naive, depth=2)
    assert result.violation is not None and result.shrunk is not None
    assert len(result.shrunk) == 1
    written = write_counterexample(naive, result.shrunk, tmp_path)
    assert written.reproduced and written.outcome in ("inconsistent", "stuck")
    assert (tmp_path / "swimlane.png").stat().st_size > 0
    assert result.shrunk[0].describe() in written.paragraph
    code, out = _cli(
        capsys, "run", str(written.scenario), "--fail-on", "inconsistent,stuck", "-q", "-o", str(tmp_path / "r")
    )
    assert code == 1, out
    data = tomllib.loads(written.scenario.read_text())
    assert len(data["faults"]) == 1 and data["run"]["protocols"] == ["orchestration"]


def test_shrinking_gives_fewest_faults_then_the_earliest(naive) -> None:
    """A pair of which one fault violates alone shrinks to that fault, moved
    to the earliest point of its kind and target that still violates."""
    from sim.explore import shrink

    base = naive.run(())
    first = explore(naive, depth=1).shrunk
    assert first is not None and len(first) == 1
    bad = first[0]
    alike = [p for p in base.points if p.kind == bad.kind and p.target == bad.target]
    # a later point like it that violates alone, and a harmless fault after it
    later = next(p for p in alike if p > bad and naive.run((p,)).bad is not None)
    harmless = next(p for p in naive.run((later,)).points if p > later and naive.run((p,)).bad is None)
    shrunk, facts = shrink(naive, (later, harmless), None)
    assert facts is not None and facts.bad is not None
    assert shrunk == (bad,)
    assert all(naive.run((p,)).bad is None for p in alike if p < bad)


def test_the_search_is_deterministic_whatever_the_workers() -> None:
    setup = prepare(SCENARIOS / "choreography-dual-write.toml", "choreography")
    one = explore(setup, depth=2, workers=1)
    two = explore(setup, depth=2, workers=2)
    assert one.shrunk == two.shrunk and one.runs == two.runs and one.naive == two.naive
    assert one.to_violation == two.to_violation


@pytest.mark.parametrize("name", NAIVE)
def test_every_naive_library_scenario_has_a_minimal_violation(name: str, tmp_path: Path) -> None:
    path = SCENARIOS / f"{name}.toml"
    protocol = tomllib.loads(path.read_text())["run"]["protocols"][0]
    setup = prepare(path, protocol)
    result = explore(setup, depth=2)
    assert result.shrunk is not None, certificate(result)
    assert 1 <= len(result.shrunk) <= 2
    assert write_counterexample(setup, result.shrunk, tmp_path).reproduced


def test_a_budget_stops_at_exactly_that_many_schedules() -> None:
    setup = prepare(SCENARIOS / "robust-orchestrator.toml", "orchestration")
    result = explore(setup, depth=2, budget=Budget(schedules=25))
    assert result.explored == 25 and result.budget_hit
    assert "NOT a certificate" in certificate(result)
    assert Budget.parse("30s") == Budget(seconds=30.0) and Budget.parse("7") == Budget(schedules=7)


def test_the_reduction_is_sound_and_counted_against_the_naive_search() -> None:
    """Depth 2 on a short saga: the reduced search reaches every outcome the
    naive one does, and the naive count it reports is what the naive search runs."""
    path = SCENARIOS / "happy-path.toml"
    setup = prepare(path, "orchestration", transactions=1)
    reduced = explore(setup, depth=2, workers=2)
    naive = explore(setup, depth=2, workers=2, reduce=False)
    assert reduced.violation is None and naive.violation is None
    assert naive.explored == sum(reduced.naive) == sum(naive.naive)
    assert reduced.explored < naive.explored
    assert set().union(*reduced.reached) == set().union(*naive.reached)
    text = certificate(reduced)
    assert f"reduced from {naive.explored}" in text and "0 violations" in text


def test_extensions_are_strictly_later_points(naive) -> None:
    """A schedule never holds one point twice, and every later point of the
    run it extends is tried (flipping > to >= repeats the point)."""
    from sim.explore import _extensions

    base = naive.run(())
    first = base.points[0]
    facts = naive.run((first,))
    ext = _extensions((first,), facts, base, naive.settings, reduce=False)
    assert first not in ext
    assert ext == [p for p in facts.points if p > first and p.at < naive.settings.horizon]


def test_cli_certifies_a_robust_design_and_writes_explore_json(capsys, tmp_path: Path) -> None:
    code, out = _cli(
        capsys, "explore", str(SCENARIOS / "robust-orchestrator.toml"), "--depth", "1", "-w", "1", "-o", str(tmp_path)
    )
    assert code == 0, out
    assert "left out: its 3 [[faults]]" in out
    assert "every single fault at" in out and "0 violations" in out
    figures = json.loads((tmp_path / "explore.json").read_text())["protocols"]["orchestration"]
    assert figures["violations"] == 0 and figures["schedules"] == 1 + figures["points"]
    assert not (tmp_path / "counterexample.toml").exists()


def test_cli_exits_1_with_a_counterexample(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sim", "explore", str(SCENARIOS / "naive-orchestrator.toml"), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "violation" in done.stdout
    for name in ("counterexample.toml", "swimlane.png", "explanation.md", "explore.json"):
        assert (tmp_path / name).exists(), name
    again = subprocess.run(
        [sys.executable, "-m", "sim", "run", str(tmp_path / "counterexample.toml"), "--fail-on", "inconsistent,stuck",
         "-q", "-o", str(tmp_path / "again")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 1, again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "soon"], "--budget soon: expected a number of schedules"),
        (["--depth", "0"], "--depth"),
        (["--protocol", "nope"], "'nope'; allowed"),
    ],
)
def test_bad_options_say_what_is_allowed(capsys, tmp_path: Path, args: list[str], message: str) -> None:
    code, out = _cli(capsys, "explore", str(SCENARIOS / "naive-orchestrator.toml"), "-o", str(tmp_path), *args)
    assert code == 2 and message in out


def test_every_registered_protocol_can_be_explored() -> None:
    """No protocol is named: the explorer runs whatever the registry lists (depth 1, a budget)."""
    for name in registry.names():
        setup = prepare(SCENARIOS / "happy-path.toml", name)
        result = explore(setup, depth=1, budget=Budget(schedules=30))
        assert result.explored >= 2, name
        assert result.reached[0] == {"committed"}, name


def test_to_toml_round_trips_a_scenario() -> None:
    data = tomllib.loads((SCENARIOS / "naive-orchestrator.toml").read_text())
    assert tomllib.loads(to_toml(data, "a comment\non two lines")) == data


def test_points_order_by_instant_then_kind() -> None:
    a = Point.make(1.0, "pause", "x", "")
    b = Point.make(1.0, "crash", "x", "")
    c = Point.make(0.5, "hang", "x", "")
    assert sorted([a, b, c]) == [c, b, a]


def test_the_reduced_extensions_stop_before_the_finish_and_after_a_no_op_fault() -> None:
    """Boundaries of the reduction: a point at the finish instant is not
    extended (`<`), and after a fault that changed nothing only points while
    it is active are (`<` its end)."""
    from sim.explore import RunFacts, Settings, _extensions

    settings = Settings(restart_after=1.0, delay=2.0, horizon=10.0)
    pause = Point.make(1.0, "pause", "payment", "")
    points = tuple(Point.make(t, "drop", "a->b", "") for t in (0.5, 1.5, 2.0, 2.5, 3.0))
    facts = RunFacts(("committed",), "same", points, finished=2.5)
    parent = RunFacts(("committed",), "other", points, finished=2.5)
    assert [p.at for p in _extensions((pause,), facts, parent, settings)] == [1.5, 2.0]
    same = parent._replace(signature="same")
    # the pause lasts until 2.0: 2.0 itself is after it ended
    assert [p.at for p in _extensions((pause,), facts, same, settings)] == [1.5]
    assert [p.at for p in _extensions((pause,), facts, parent, settings, reduce=False)] == [1.5, 2.0, 2.5, 3.0]


def test_a_budget_in_minutes(capsys, tmp_path: Path) -> None:
    """0.005 min = 0.3 s: far less than the about 4,000 schedules of depth 2 take."""
    code, out = _cli(
        capsys, "explore", str(SCENARIOS / "happy-path.toml"), "--depth", "2", "--budget", "0.005m", "-w", "1",
        "-o", str(tmp_path),
    )  # fmt: skip
    assert code == 0, out
    assert json.loads((tmp_path / "explore.json").read_text())["protocols"]["orchestration"]["budget_hit"]


def test_a_crash_is_never_taken_for_a_fault_that_changed_nothing() -> None:
    """Its lost volatile state shows only under a later fault: extended at every later point."""
    from sim.explore import RunFacts, Settings, _extensions

    settings = Settings(restart_after=1.0, delay=2.0, horizon=10.0)
    crash = Point.make(1.0, "crash", "payment", "")
    points = tuple(Point.make(t, "drop", "a->b", "") for t in (1.5, 2.0, 2.5))
    facts = RunFacts(("committed",), "same", points, finished=3.0)
    assert [p.at for p in _extensions((crash,), facts, facts, settings)] == [1.5, 2.0, 2.5]


def test_a_counterexample_of_a_choreography_on_steady_links_reproduces(tmp_path: Path) -> None:
    """The choreography on a network that loses nothing accounts for messages
    without events on its steady links; with its latencies keyed by the
    message that changes nothing of its run (the same trace as with every
    link touched), so no plan marker is needed, and `sagasim run` still
    reproduces the counterexample (duplicated events at consumers without an
    inbox) whose faults take some links off that accounting."""
    data = tomllib.loads((SCENARIOS / "choreography-happy.toml").read_text())
    for spec in data["participants"].values():
        spec["idempotent"] = False
    path = tmp_path / "fragile.toml"
    path.write_text(to_toml(data))
    setup = prepare(path, "choreography")
    assert not setup.marker
    result = explore(setup, depth=1)
    assert result.shrunk is not None and len(result.shrunk) == 1
    written = write_counterexample(setup, result.shrunk, tmp_path / "out")
    assert written.reproduced
    faults = tomllib.loads(written.scenario.read_text())["faults"]
    assert faults[: len(setup.marker)] == setup.marker


def test_cli_explores_every_protocol_of_the_scenario(capsys, tmp_path: Path) -> None:
    path = SCENARIOS / "twopc-participant-down.toml"
    code, out = _cli(capsys, "explore", str(path), "--depth", "1", "-w", "1", "-o", str(tmp_path))
    assert code == 0, out
    protocols = tomllib.loads(path.read_text())["run"]["protocols"]
    figures = json.loads((tmp_path / "explore.json").read_text())["protocols"]
    assert list(figures) == protocols and len(protocols) > 1
    for name in protocols:
        assert f"{name}: " in out and (tmp_path / name).is_dir()


def test_random_blocks_are_kept_across_runs_only_when_asked_and_change_no_run() -> None:
    from sim.runner import run_once
    from sim.world import fates

    from conftest import order_scenario

    scenario = order_scenario({"run.duration": 2.0, "participants.payment.business_failure": 0.2})
    try:
        fates.remember(0)
        fates._memo.clear()
        plain = run_once(scenario, "orchestration", 3).transactions
        assert not fates._memo
        fates.remember(3)
        kept = [run_once(scenario, "orchestration", 3).transactions for _ in range(2)]
        assert 0 < len(fates._memo) <= 3
        assert kept[0] == plain and kept[1] == plain
    finally:
        fates.remember(0)
