"""Two-phase commit: exact timelines, message counts, blocking when the
coordinator crashes, Little's law on locks, atomic commit under faults, and
the checker's 2PC verdicts."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.checker import TwoPCChecker
from sim.protocols.base import CoordinatorView
from sim.protocols.twopc.protocol import P_PREPARED
from sim.runner import Model
from sim.scenario import load_scenario
from sim.world.effects import ABORT, FORWARD, PREPARED, Effect
from sim.world.settle import Settlement

from conftest import order_scenario, trace_rows

ROOT = Path(__file__).resolve().parents[1]

ONE = {
    "workload.interarrival": {"dist": "constant", "value": 1.0},
    "workload.limit": 1,
    "run.duration": 2.0,
    "run.drain": 20.0,
    "run.protocols": ["2pc"],
}


def timeline(overrides: dict) -> list[tuple[float, str, str, str, str]]:
    """Trace of one 2PC transaction arriving at t = 1.0 (latency 1 ms, service 10 ms)."""
    return trace_rows({**ONE, **overrides})


def one(overrides: dict) -> pd.Series:
    return sim.run(order_scenario({**ONE, **overrides}), seed=1).transactions.iloc[0]


# ------------------------------------------------------------------ timelines


def test_commit_prepares_in_parallel_then_commits_everywhere() -> None:
    assert timeline({}) == [
        (1.0, "coordinator", "begin", "", ""),
        (1.0, "coordinator", "prepare", "", "to payment"),
        (1.0, "coordinator", "prepare", "", "to inventory"),
        (1.0, "coordinator", "prepare", "", "to shipping"),
        (1.011, "payment", "prepared", "charge", "in doubt"),
        (1.011, "payment", "vote", "charge", "yes"),
        (1.011, "inventory", "prepared", "reserve", "in doubt"),
        (1.011, "inventory", "vote", "reserve", "yes"),
        (1.011, "shipping", "prepared", "ship", "in doubt"),
        (1.011, "shipping", "vote", "ship", "yes"),
        (1.012, "coordinator", "vote", "", "yes from payment"),
        (1.012, "coordinator", "vote", "", "yes from inventory"),
        (1.012, "coordinator", "vote", "", "yes from shipping"),
        (1.012, "coordinator", "decide", "", "commit"),
        (1.012, "coordinator", "logged", "", "commit"),
        (1.012, "coordinator", "decision", "", "commit to payment"),
        (1.012, "coordinator", "decision", "", "commit to inventory"),
        (1.012, "coordinator", "decision", "", "commit to shipping"),
        (1.013, "payment", "commit", "charge", "forward"),
        (1.013, "inventory", "commit", "reserve", "forward"),
        (1.013, "shipping", "commit", "ship", "forward"),
        (1.014, "coordinator", "ack", "", "from payment"),
        (1.014, "coordinator", "ack", "", "from inventory"),
        (1.014, "coordinator", "ack", "", "from shipping"),
        (1.014, "coordinator", "end", "", "committed"),
    ]


def test_a_no_vote_aborts_the_prepared_participants() -> None:
    # Presumed nothing: the abort is forced and acknowledged; the NO voter
    # aborted on its own and gets no ABORT.
    assert timeline({"participants.inventory.business_failure": 1.0, "twopc.presumed_abort": False}) == [
        (1.0, "coordinator", "begin", "", ""),
        (1.0, "coordinator", "prepare", "", "to payment"),
        (1.0, "coordinator", "prepare", "", "to inventory"),
        (1.0, "coordinator", "prepare", "", "to shipping"),
        (1.011, "payment", "prepared", "charge", "in doubt"),
        (1.011, "payment", "vote", "charge", "yes"),
        (1.011, "inventory", "abort", "reserve", "refused"),
        (1.011, "inventory", "vote", "reserve", "no"),
        (1.011, "shipping", "prepared", "ship", "in doubt"),
        (1.011, "shipping", "vote", "ship", "yes"),
        (1.012, "coordinator", "vote", "", "yes from payment"),
        (1.012, "coordinator", "vote", "", "no from inventory"),
        (1.012, "coordinator", "decide", "", "abort"),
        (1.012, "coordinator", "logged", "", "abort"),
        (1.012, "coordinator", "decision", "", "abort to payment"),
        (1.012, "coordinator", "decision", "", "abort to shipping"),
        (1.013, "payment", "abort", "charge", "abort from coordinator"),
        (1.013, "shipping", "abort", "ship", "abort from coordinator"),
        (1.014, "coordinator", "ack", "", "from payment"),
        (1.014, "coordinator", "ack", "", "from shipping"),
        (1.014, "coordinator", "end", "", "aborted"),
    ]
    row = one({"participants.inventory.business_failure": 1.0})
    assert (row["outcome"], row["steps_applied"], row["coordinator"]) == ("aborted", 0, "aborted")


def test_coordinator_crash_while_forcing_the_decision_blocks_until_it_is_back() -> None:
    # The votes are in at 1.012; forcing COMMIT takes 5 ms; the coordinator
    # crashes at 1.014 for 5 s, so the decision never reached its log.
    events = timeline(
        {
            "run.duration": 10.0,
            "twopc.log_write": {"dist": "constant", "value": 0.005},
            "faults": [{"kind": "crash", "target": "coordinator", "at": 1.014, "duration": 5.0}],
        }
    )
    coordinator = [e for e in events if e[1] == "coordinator" and e[0] > 1.012 and e[2] != "drop"]
    assert coordinator == [
        (6.014, "coordinator", "recover", "", "no decision"),
        (6.014, "coordinator", "end", "", "aborted"),  # presumed abort
        (7.012, "coordinator", "answer", "", "abort to payment"),
        (7.012, "coordinator", "answer", "", "abort to inventory"),
        (7.012, "coordinator", "answer", "", "abort to shipping"),
    ]
    # Each participant asked every second while in doubt, and aborted when told.
    assert [e[0] for e in events if e[1] == "payment" and e[2] == "query"] == [2.011, 3.011, 4.011, 5.011, 6.011, 7.011]
    assert [e[:3] for e in events if e[2] == "abort"] == [
        (7.013, "payment", "abort"),
        (7.013, "inventory", "abort"),
        (7.013, "shipping", "abort"),
    ]
    row = one(
        {
            "run.duration": 10.0,
            "twopc.log_write": {"dist": "constant", "value": 0.005},
            "faults": [{"kind": "crash", "target": "coordinator", "at": 1.014, "duration": 5.0}],
        }
    )
    assert row["outcome"] == "aborted"
    assert row["blocked"] == pytest.approx(3 * (7.013 - 1.011))


# ------------------------------------------------------------------ message counts


@pytest.mark.parametrize("presumed_abort", [True, False])
@pytest.mark.parametrize("cooperative", [True, False])
def test_message_counts_without_faults(presumed_abort: bool, cooperative: bool) -> None:
    n = 3
    variant = {"twopc.presumed_abort": presumed_abort, "twopc.cooperative_termination": cooperative}
    # Commit: PREPARE, YES, COMMIT, ACK per participant.
    assert one(variant)["messages"] == 4 * n
    # One NO (the others YES): 2n for phase one, then ABORT to the n - 1
    # prepared ones, acknowledged only without presumed abort.
    refused = one({**variant, "participants.inventory.business_failure": 1.0})
    assert refused["outcome"] == "aborted"
    assert refused["messages"] == (3 * n - 1 if presumed_abort else 4 * n - 2)


SLOW = {"dist": "constant", "value": 0.05}


@pytest.mark.parametrize("presumed_abort", [True, False])
@pytest.mark.parametrize(
    ("slow", "working"),
    [((), 0), (("shipping",), 1), (("payment", "shipping"), 2)],
    ids=["none-working", "one-working", "two-working"],
)
def test_an_abort_costs_one_message_less_per_participant_still_working(
    presumed_abort: bool, slow: tuple[str, ...], working: int
) -> None:
    # inventory refuses at 1.011, its NO reaches the coordinator at 1.012 and
    # the ABORT reaches the others at 1.013: a participant whose work takes
    # 50 ms is still working then; it aborts and never votes.
    n, k = 3, 1
    variant = {"twopc.presumed_abort": presumed_abort, "participants.inventory.business_failure": 1.0}
    variant |= {f"participants.{name}.service_time": SLOW for name in slow}
    votes = [e for e in timeline(variant) if e[2] == "vote" and e[1] != "coordinator"]
    assert sorted(e[1] for e in votes) == sorted({"payment", "inventory", "shipping"} - set(slow))
    row = one(variant)
    assert row["outcome"] == "aborted"
    # n PREPAREs, n - w votes, an ABORT to the n - k that had not voted no,
    # and (presumed nothing) an ACK from each of those.
    expected = 3 * n - k - working if presumed_abort else 4 * n - 2 * k - working
    assert row["messages"] == expected
    assert row["messages"] == {True: [8, 7, 6], False: [10, 9, 8]}[presumed_abort][working]


def _documented_abort_formulas() -> dict[bool, str]:
    """The aborted row of the message table in docs/protocols.md: presumed
    abort -> its formula, presumed nothing -> its formula."""
    text = (ROOT / "docs" / "protocols.md").read_text()
    row = re.search(r"^\s*\| aborted[^|]*\|(.*)$", text, flags=re.M)
    assert row, "docs/protocols.md has no 'aborted' row in its 2PC message table"
    formulas = re.findall(r"`([^`]+)`", row.group(1))
    return {True: formulas[0], False: formulas[1]}


def _evaluate(formula: str, **values: int) -> int:
    """``3n - k - w`` with n, k, w given: implicit products made explicit."""
    python = re.sub(r"(\d)\s*([a-z(])", r"\1*\2", formula)
    # (eval of a formula from our own docs, with no builtins: arithmetic on n, k, w only)
    return int(eval(python, {"__builtins__": {}}, values))


@pytest.mark.parametrize("presumed_abort", [True, False])
@pytest.mark.parametrize(
    ("slow", "working"),
    [((), 0), (("shipping",), 1), (("payment", "shipping"), 2)],
    ids=["none-working", "one-working", "two-working"],
)
def test_the_documented_abort_message_counts_are_exact(
    presumed_abort: bool, slow: tuple[str, ...], working: int
) -> None:
    variant = {"twopc.presumed_abort": presumed_abort, "participants.inventory.business_failure": 1.0}
    variant |= {f"participants.{name}.service_time": SLOW for name in slow}
    formula = _documented_abort_formulas()[presumed_abort]
    assert one(variant)["messages"] == _evaluate(formula, n=3, k=1, w=working), formula


@pytest.mark.parametrize("presumed_abort", [True, False])
def test_every_abort_under_contention_costs_what_the_documented_formula_gives(presumed_abort: bool) -> None:
    # Hot keys: lock timeouts vote no while other participants are still
    # waiting for their locks or working. k and w of each abort from its trace.
    out = sim.run(
        ROOT / "scenarios" / "twopc-hot-keys.toml",
        protocol="2pc",
        seed=1,
        trace=True,
        overrides={"run.duration": 5.0, "twopc.presumed_abort": presumed_abort},
    )
    formula = _documented_abort_formulas()[presumed_abort]
    aborted = out.transactions.set_index("txn_id")
    aborted = aborted[aborted["outcome"] == "aborted"]
    events = out.events[out.events["txn_id"].isin(aborted.index)]
    working_seen = set()
    for txn, ev in events.groupby("txn_id"):
        coordinator = ev[ev["node"] == "coordinator"]
        decided = coordinator.index[coordinator["kind"] == "decide"][0]
        votes = coordinator[(coordinator["kind"] == "vote") & (coordinator.index < decided)]
        k = int(votes["detail"].str.startswith("no").sum())
        w = 3 - ev.loc[(ev["kind"] == "vote") & (ev["node"] != "coordinator"), "node"].nunique()
        working_seen.add(w)
        assert aborted.loc[txn, "messages"] == _evaluate(formula, n=3, k=k, w=w), (txn, k, w)
    assert len(aborted) > 20 and {0, 1} <= working_seen  # both kinds of abort happened


def test_many_transactions_send_four_messages_per_participant() -> None:
    result = sim.run(order_scenario({"run.protocols": ["2pc"]}), seed=3)
    txns = result.transactions
    assert (txns["outcome"] == "committed").all()
    assert (txns["messages"] == 12).all()
    assert result.summary.iloc[0]["messages_per_txn"] == 12


def test_the_coordinator_resends_the_decision_until_acknowledged() -> None:
    # Payment's link to the coordinator is cut after it votes: its ACK is
    # lost until the cut heals, so COMMIT is resent every ack_timeout.
    row = one(
        {
            "faults": [
                {
                    "kind": "partition",
                    "groups": [["payment"], ["coordinator"]],
                    "one_way": True,
                    "at": 1.0115,
                    "duration": 0.9,
                }
            ]
        }
    )
    assert row["outcome"] == "committed"
    assert row["retries"] == 1  # one resend of COMMIT, at 2.012
    assert row["messages"] == 4 * 3 + 2  # the resent COMMIT and its ACK


# ------------------------------------------------------------------ blocking


def test_coordinator_crash_blocks_every_participant_in_doubt_for_the_crash() -> None:
    path = ROOT / "scenarios" / "twopc-coordinator-crash.toml"
    scenario = load_scenario(path)
    crash = scenario.faults[0]
    start, duration = crash.at, crash.duration
    assert duration is not None
    # Thinned arrivals keep the test quick; every other setting is the file's.
    thin = {"workload.interarrival": {"dist": "exponential", "mean": 0.01}, "run.duration": 40.0}
    result = sim.run(path, seed=1, overrides=thin, trace=True)
    events = result.events
    twopc = events[events["run_id"].str.endswith("/2pc/1")]
    decided_before = set(
        twopc[(twopc["node"] == "coordinator") & (twopc["kind"] == "decision") & (twopc["time"] <= start)]["txn_id"]
    )
    prepared = twopc[(twopc["kind"] == "prepared") & (twopc["time"] <= start) & ~twopc["txn_id"].isin(decided_before)]
    in_doubt = sorted(set(prepared["txn_id"]))
    assert in_doubt, "some transactions were in doubt when the coordinator crashed"
    decisions = twopc[twopc["kind"].isin(["commit", "abort"]) & (twopc["node"] != "coordinator")]
    for row in prepared.itertuples():
        decided = decisions[(decisions["txn_id"] == row.txn_id) & (decisions["node"] == row.node)]["time"]
        assert len(decided) == 1
        # Blocked from its YES vote until after the coordinator came back.
        assert decided.iloc[0] >= start + duration
        assert decided.iloc[0] - row.time >= duration
    txns = result.transactions.set_index(["protocol", "txn_id"])
    for txn in in_doubt:
        voters = (prepared["txn_id"] == txn).sum()
        assert txns.loc[("2pc", txn), "blocked"] >= voters * duration
        assert txns.loc[("2pc", txn), "lock_held"] >= voters * duration
        assert txns.loc[("2pc", txn), "outcome"] in ("aborted", "committed")
    # The saga on the same faults holds no lock and blocks nothing.
    saga = result.transactions[result.transactions["protocol"] == "orchestration"]
    assert saga["blocked"].isna().all() and saga["lock_held"].isna().all()
    assert set(saga["outcome"]) == {"committed"}
    assert (result.transactions["outcome"].isin(["committed", "aborted"])).all()


def test_participant_crash_while_prepared_keeps_its_locks_and_asks_on_restart() -> None:
    # Shipping prepares at 1.011 and crashes at 1.0115 before the COMMIT
    # arrives (1.013); it restarts at 3.0 and asks the coordinator at once.
    events = timeline(
        {"run.duration": 10.0, "faults": [{"kind": "crash", "target": "shipping", "at": 1.0115, "duration": 1.9885}]}
    )
    shipping = [e for e in events if e[1] == "shipping" and e[0] > 1.0115 and e[2] != "drop"]
    assert shipping == [
        (3.0, "shipping", "recover", "ship", "prepared: in doubt"),
        (3.0, "shipping", "query", "ship", "in doubt: asking coordinator"),
        (3.002, "shipping", "commit", "ship", "forward"),
    ]


# ------------------------------------------------------------------ locks


def hot(skew: float, protocol: str = "2pc", seed: int = 1, **more: object) -> Model:
    scenario = order_scenario(
        {
            "run.protocols": ["orchestration", "2pc"],
            "run.duration": 60.0,
            "workload.interarrival": {"dist": "exponential", "mean": 0.01},
            "workload.keys": {"population": 200, "per_step": 2, "skew": skew},
            "participants.payment.service_time": {"dist": "exponential", "mean": 0.01},
            "participants.payment.lock_timeout": 0.05,
            "participants.inventory.lock_timeout": 0.05,
            "participants.shipping.lock_timeout": 0.05,
            **more,
        }
    )
    return Model(scenario, protocol, seed)


def test_littles_law_on_locks_held() -> None:
    model = hot(1.0)
    tables = [side.locks for side in model.protocol.sides.values()]  # type: ignore[attr-defined]
    for table in tables:
        table.record_holds = True
    out = model.run()
    T = model.scenario.run.duration
    L = out.summary["locks_held_mean"]  # time-weighted level over [0, T]
    holds = [h for table in tables for h in table.holds if h[0] < T]
    assert out.summary["lock_acquisitions"] == len(holds)
    lam = len(holds) / T
    W = sum(end - start for start, end in holds) / len(holds)
    # Little's law is a sample-path identity: over [0, T] the two sides differ
    # only by holds that straddle T (the system starts empty), which count in
    # full in W but only up to T in L. So 0 <= lam*W - L <= (locks held at T)
    # * (longest such hold) / T. That bound is tiny (a few locks x 0.1 s over
    # 60 s, against L of order 10), so the tolerance we accept is 1% of L.
    straddling = [end - start for start, end in holds if end > T]
    bound = len(straddling) * max(straddling, default=0.0) / T
    assert -1e-9 <= lam * W - L <= bound + 1e-9
    assert bound < 0.01 * L
    assert L > 1.0  # the law is checked under real contention


def test_hot_keys_make_2pc_wait_and_abort_while_the_saga_does_not() -> None:
    rows = {}
    for skew in (0.0, 1.5):
        out = hot(skew).run()
        saga = hot(skew, "orchestration").run()
        txns = pd.DataFrame(out.transactions)
        rows[skew] = (txns["lock_wait"].mean(), out.summary["aborted_rate"], saga.summary["committed_rate"])
    assert rows[1.5][0] > 5 * rows[0.0][0]
    assert rows[1.5][1] > rows[0.0][1]
    assert rows[0.0][2] == rows[1.5][2] == 1.0


def test_keys_are_the_same_for_every_protocol() -> None:
    sagas, twopc = hot(1.2, "orchestration"), hot(1.2)
    sagas.run()
    twopc.run()
    assert sagas.keys.by_txn == twopc.keys.by_txn
    assert len(sagas.keys.by_txn) > 1000
    counts = pd.Series([k for keys in twopc.keys.by_txn.values() for k in keys[0]]).value_counts()
    assert counts.index[0] == 0  # key 0 is the hottest under Zipf


def test_bad_key_specs_are_explained() -> None:
    with pytest.raises(sim.ScenarioError, match=r"workload.keys.skew = -1"):
        order_scenario({"workload.keys": {"population": 10, "skew": -1}})
    with pytest.raises(sim.ScenarioError, match=r"unknown key 'populaton'"):
        order_scenario({"workload.keys": {"populaton": 10}})
    with pytest.raises(sim.ScenarioError, match=r"twopc.vote_timeout = 0"):
        order_scenario({"twopc.vote_timeout": 0})


def test_coordinator_is_a_fault_target_only_with_2pc() -> None:
    crash = [{"kind": "crash", "target": "coordinator", "at": 1.0}]
    with pytest.raises(sim.ScenarioError, match="no node of that name"):
        order_scenario({"faults": crash})
    scenario = order_scenario({"faults": crash, "run.protocols": ["orchestration", "2pc"]})
    assert "coordinator" in scenario.nodes()
    result = sim.run(scenario, seed=1)
    assert result.summary.set_index("protocol")["crashes"].to_dict() == {"orchestration": 0, "2pc": 1}


# ------------------------------------------------------------------ safety under faults

FAULT_TARGETS = ["coordinator", "payment", "inventory", "shipping"]
fault = st.one_of(
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["crash", "pause"]),
            "target": st.sampled_from(FAULT_TARGETS),
            "at": st.floats(0.0, 4.9),
            "duration": st.floats(0.01, 3.0),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["loss", "duplicate"]),
            "probability": st.floats(0.05, 0.6),
            "at": st.floats(0.0, 4.9),
            "duration": st.floats(0.1, 5.0),
        }
    ),
)


@settings(derandomize=True, database=None, deadline=None, max_examples=60)
@given(
    faults=st.lists(fault, max_size=6),
    presumed_abort=st.booleans(),
    cooperative=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_no_transaction_commits_at_one_participant_and_aborts_at_another(
    faults: list[dict], presumed_abort: bool, cooperative: bool, seed: int
) -> None:
    scenario = order_scenario(
        {
            "run.protocols": ["2pc"],
            "run.duration": 5.0,
            "run.drain": 30.0,
            "workload.interarrival": {"dist": "exponential", "mean": 0.05},
            "workload.keys": {"population": 20, "skew": 1.0},
            "network.latency": {"dist": "exponential", "mean": 0.005},
            "participants.payment.business_failure": 0.1,
            "participants.shipping.hang": 0.05,
            "twopc.presumed_abort": presumed_abort,
            "twopc.cooperative_termination": cooperative,
            "twopc.log_write": {"dist": "exponential", "mean": 0.005},
            "faults": faults,
        }
    )
    model = Model(scenario, "2pc", seed)
    out = model.run()
    # From participants' ground truth, not the checker's summary.
    for txn, _ in model.workload.started:
        ops = {(e.step, e.op) for e in model.world.effects.of(txn)}
        committed = {step for step, op in ops if op == FORWARD}
        aborted = {step for step, op in ops if op == ABORT}
        assert not (committed and aborted), f"txn {txn}: committed {committed}, aborted {aborted}"
        assert not committed or committed == {0, 1, 2}, f"txn {txn}: partial commit {committed}"
    # Faults heal when the workload ends; the drain lets everyone decide.
    outcomes = set(out.transactions["outcome"])
    assert outcomes <= {"committed", "aborted"}, out.transactions["reasons"]
    assert out.summary["in_doubt_at_end"] == 0


def test_same_seed_same_tables() -> None:
    a = sim.run(ROOT / "scenarios" / "twopc-hot-keys.toml", seed=2, overrides={"run.duration": 10.0})
    b = sim.run(ROOT / "scenarios" / "twopc-hot-keys.toml", seed=2, overrides={"run.duration": 10.0})
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    pd.testing.assert_frame_equal(a.summary.drop(columns="wall_time"), b.summary.drop(columns="wall_time"))


# ------------------------------------------------------------------ checker


STEPS = order_scenario().transaction.steps
DONE = CoordinatorView(True, 1.0, "committed", 0)
RUNNING = CoordinatorView(False, math.nan, "running", 0)
WHO = ["payment", "inventory", "shipping"]


def history(*ops: tuple[int, int]) -> list[Effect]:
    return [Effect(0.1 * (i + 1), step, op, WHO[step]) for i, (step, op) in enumerate(ops)]


def test_checker_2pc_verdicts() -> None:
    judge = TwoPCChecker(STEPS).judge
    prepared = [(0, PREPARED), (1, PREPARED), (2, PREPARED)]
    ok = judge(history(*prepared, (0, FORWARD), (1, FORWARD), (2, FORWARD)), DONE, 0.0)
    assert (ok.outcome, ok.consistent, ok.consistent_at, ok.steps_applied) == ("committed", True, pytest.approx(0.6), 3)
    aborted = judge(history((0, PREPARED), (0, ABORT), (1, ABORT)), DONE, 0.0)
    assert (aborted.outcome, aborted.consistent) == ("aborted", True)
    assert judge([], DONE, 0.5).outcome == "aborted"  # nobody ever prepared
    split = judge(history(*prepared, (0, FORWARD), (1, ABORT), (2, FORWARD)), DONE, 0.0)
    assert (split.outcome, split.anomalies) == ("inconsistent", ("commit_and_abort",))
    assert split.reasons == ("reserve aborted at inventory while charge at payment committed",)
    partial = judge(history((0, PREPARED), (0, FORWARD), (1, PREPARED), (1, FORWARD)), DONE, 0.0)
    assert partial.anomalies == ("partial_commit",)
    doubt = judge(history(*prepared, (0, ABORT), (1, ABORT)), DONE, 0.0)
    assert (doubt.outcome, doubt.anomalies) == ("inconsistent", ("in_doubt",))
    assert doubt.reasons == ("ship in doubt at shipping (prepared, never decided)",)
    assert judge(history(*prepared), RUNNING, 0.0).outcome == "stuck"
    twice = judge(history(*prepared, (0, FORWARD), (0, FORWARD), (1, FORWARD), (2, FORWARD)), DONE, 0.0)
    assert twice.anomalies == ("applied_twice",)


# ------------------------------------------------------------------ judging as the run goes


def test_a_transaction_is_quiet_only_when_no_participant_can_still_change_it() -> None:
    """What a 2PC participant keeps (work before the vote, a prepared record
    in doubt) keeps the transaction open for judging as the run goes; once
    every participant has committed it is quiet, and forgetting it drops
    every record of it."""
    model = Model(order_scenario({**ONE, "twopc.presumed_abort": True}), "2pc", 1)
    model.world.settle = Settlement()
    protocol = model.protocol
    sides = protocol.sides.values()  # type: ignore[attr-defined]
    model.world.run(until=1.005)  # PREPARE arrived at 1.001; the work ends at 1.011
    assert all(s.working for s in sides)
    assert not protocol.quiet(0)  # type: ignore[attr-defined]
    model.world.run(until=1.0115)  # prepared and voted: in doubt until the decision
    assert all(s.table == {0: P_PREPARED} for s in sides)
    assert not protocol.quiet(0)  # type: ignore[attr-defined]
    model.world.run(until=5.0)
    assert protocol.view(0).terminal and model.world.settle.idle(0)
    assert protocol.quiet(0)  # type: ignore[attr-defined]
    protocol.forget(0)  # type: ignore[attr-defined]
    assert protocol.coordinator.log == {}  # type: ignore[attr-defined]
    assert all(not s.table and not s.blocked and not s.locks.txn_held for s in sides)
