"""Paxos Commit: the exact timeline and message count of a happy
transaction, a takeover when the leader crashes (against 2PC on the same
crash), acceptor loss (f down commits, f + 1 down blocks), the acceptors'
boundary rules, atomic commit under random faults, determinism, and bad
settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.protocols.paxos_commit.protocol import Acceptor, Ballot, P1a, P1b, P2a
from sim.runner import Model
from sim.scenario import ScenarioError, load_scenario
from sim.world.effects import ABORT, FORWARD
from sim.world.messages import Signal
from sim.world.settle import Settlement

from conftest import order_scenario, trace_rows

ROOT = Path(__file__).resolve().parents[1]

#: One transaction arriving at t = 1.0; latency 1 ms and service 10 ms (constant).
ONE = {
    "workload.interarrival": {"dist": "constant", "value": 1.0},
    "workload.limit": 1,
    "run.duration": 2.0,
    "run.drain": 20.0,
    "run.protocols": ["paxos-commit"],
}
LATENCY, SERVICE = 0.001, 0.01
PARTICIPANTS = ["payment", "inventory", "shipping"]


def timeline(overrides: dict[str, Any]) -> list[tuple[float, str, str, str, str]]:
    return trace_rows({**ONE, **overrides})


def one(overrides: dict[str, Any], protocol: str = "paxos-commit") -> pd.Series:
    scenario = order_scenario({**ONE, "run.protocols": [protocol], **overrides})
    return sim.run(scenario, seed=1).transactions.iloc[0]


# ------------------------------------------------------------------ the happy path


def test_a_happy_transaction_message_by_message() -> None:
    votes = [
        row
        for p, step in zip(PARTICIPANTS, ["charge", "reserve", "ship"], strict=True)
        for row in [
            (1.011, p, "prepared", step, "in doubt"),
            (1.011, p, "vote", step, "prepared to 3 acceptors"),
            *[(1.011, p, "send", step, f"p2a to acceptor-{k}") for k in (1, 2, 3)],
        ]
    ]
    accepts = [
        (1.012, f"acceptor-{k}", kind, "", detail)
        for p in PARTICIPANTS
        for k in (1, 2, 3)
        for kind, detail in (("accept", f"ballot 0: {p} prepared"), ("send", "p2b to leader"))
    ]
    assert timeline({}) == [
        (1.0, "leader", "begin", "", ""),
        (1.0, "leader", "send", "", "prep to payment"),
        (1.0, "leader", "send", "", "prep to inventory"),
        (1.0, "leader", "send", "", "prep to shipping"),
        *votes,
        *accepts,
        (1.013, "leader", "vote", "", "prepared for payment from acceptor-1"),
        (1.013, "leader", "vote", "", "prepared for payment from acceptor-2"),
        (1.013, "leader", "vote", "", "prepared for payment from acceptor-3"),
        (1.013, "leader", "vote", "", "prepared for inventory from acceptor-1"),
        (1.013, "leader", "vote", "", "prepared for inventory from acceptor-2"),
        (1.013, "leader", "vote", "", "prepared for inventory from acceptor-3"),
        (1.013, "leader", "vote", "", "prepared for shipping from acceptor-1"),
        # f + 1 = 2 acceptors accepted "prepared" for every instance: commit
        # (acceptor-3's phase 2b for shipping arrives after the decision).
        (1.013, "leader", "vote", "", "prepared for shipping from acceptor-2"),
        (1.013, "leader", "decide", "", "commit"),
        (1.013, "leader", "send", "", "commit to payment"),
        (1.013, "leader", "send", "", "commit to inventory"),
        (1.013, "leader", "send", "", "commit to shipping"),
        (1.013, "leader", "end", "", "committed"),
        (1.014, "payment", "commit", "charge", "forward"),
        (1.014, "inventory", "commit", "reserve", "forward"),
        (1.014, "shipping", "commit", "ship", "forward"),
    ]
    row = one({})
    assert (row["outcome"], row["coordinator"], row["retries"]) == ("committed", "committed", 0)
    # Four message delays and the work: PREPARE, phase 2a, phase 2b, COMMIT.
    assert row["consistent_at"] == pytest.approx(1.0 + 4 * LATENCY + SERVICE)
    assert row["latency"] == pytest.approx(3 * LATENCY + SERVICE)  # the leader decides after three
    # Each participant is in doubt from its vote to the COMMIT: phase 2a, 2b, COMMIT.
    assert row["blocked"] == pytest.approx(3 * 3 * LATENCY)


def test_an_acceptor_answers_once_its_state_is_forced() -> None:
    write = {"paxos_commit.log_write": {"dist": "constant", "value": 0.005}}
    events = timeline(write)
    assert {e[0] for e in events if e[2] == "accept"} == {1.017}  # 1.012 + the write
    assert [e[:3] for e in events if e[2] in ("decide", "commit")] == [
        (1.018, "leader", "decide"),
        (1.019, "payment", "commit"),
        (1.019, "inventory", "commit"),
        (1.019, "shipping", "commit"),
    ]
    # A crash while forcing loses the message: acceptor-1 crashes mid-write,
    # acceptor-2 and acceptor-3 are still a quorum.
    crash = {**write, "faults": [{"kind": "crash", "target": "acceptor-1", "at": 1.015, "duration": 1.0}]}
    events = timeline(crash)
    assert {e[1] for e in events if e[2] == "accept"} == {"acceptor-2", "acceptor-3"}
    assert [e[:3] for e in events if e[2] == "decide"] == [(1.018, "leader", "decide")]


@pytest.mark.parametrize("f", [0, 1, 2])
def test_message_counts_without_faults(f: int) -> None:
    n = 3
    acceptors = 2 * f + 1
    # PREPARE (n), phase 2a to every acceptor (n(2f+1)), a phase 2b from each
    # acceptor per instance (n(2f+1)), the decision (n): 4n(f+1).
    committed = one({"paxos_commit.f": f})
    assert committed["outcome"] == "committed"
    assert committed["messages"] == n + n * acceptors + n * acceptors + n == 4 * n * (f + 1)
    # A refusal costs the same: the refusing participant's vote is "aborted",
    # the acceptors accept it like any other, and the ABORT goes to every one.
    refused = one({"paxos_commit.f": f, "participants.inventory.business_failure": 1.0})
    assert refused["outcome"] == "aborted"
    assert refused["messages"] == 4 * n * (f + 1)


def test_with_f_zero_it_costs_what_2pc_costs() -> None:
    # One acceptor: 4n messages as 2PC (whose fourth is the ACK, where Paxos
    # Commit's are phase 2a and 2b in place of the vote).
    assert one({"paxos_commit.f": 0})["messages"] == one({}, "2pc")["messages"] == 12


def test_many_transactions_send_24_messages_each() -> None:
    scenario = order_scenario({"run.protocols": ["paxos-commit"], "run.duration": 5.0})
    result = sim.run(scenario, seed=3)
    txns = result.transactions
    assert len(txns) > 50 and (txns["outcome"] == "committed").all()
    assert (txns["messages"] == 24).all()


# ------------------------------------------------------------------ the leader crashes


LEADER_CRASH = {
    "run.duration": 12.0,
    # After the votes are sent (1.011), before they arrive: at the acceptors
    # (1.012; their phase 2b reach the leader at 1.013), at the 2PC coordinator (1.012).
    "faults": [{"kind": "crash", "target": "leader", "at": 1.0115, "duration": 10.0}],
}


def test_a_participant_in_doubt_makes_an_acceptor_take_over() -> None:
    events = [e for e in timeline(LEADER_CRASH) if e[2] != "drop" and 1.5 < e[0] < 3.0]
    assert events[:4] == [
        (2.011, "payment", "suspect", "charge", "no decision: acceptor-1 to take over"),
        (2.011, "inventory", "suspect", "reserve", "no decision: acceptor-1 to take over"),
        (2.011, "shipping", "suspect", "ship", "no decision: acceptor-1 to take over"),
        # One ballot: the two later suspicions find it under way.
        (2.012, "acceptor-1", "ballot", "", "1: leader suspected by payment"),
    ]
    kinds = [(t, node, kind, detail) for t, node, kind, _, detail in events if kind in ("propose", "decide", "commit")]
    assert kinds == [
        (2.014, "acceptor-1", "propose", "prepared, prepared, prepared"),  # phase 1 found every vote
        (2.016, "acceptor-1", "decide", "commit"),
        (2.017, "payment", "commit", "forward"),
        (2.017, "inventory", "commit", "forward"),
        (2.017, "shipping", "commit", "forward"),
    ]
    row = one(LEADER_CRASH)
    assert (row["outcome"], row["coordinator"], row["finished_at"]) == ("committed", "committed", pytest.approx(2.016))
    # Blocked for the takeover timeout and six message delays, not for the crash.
    assert row["blocked"] == pytest.approx(3 * (2.017 - 1.011))
    # 24 but the leader's 3 decisions, 3 suspicions, 3 each of phase 1a, 1b,
    # 2a and 2b, 3 decisions (39); then the restarted leader's own ballot
    # (12 and 3 decisions): two ballots above 0.
    assert (row["messages"], row["retries"]) == (21 + 3 + 12 + 3 + 15, 2)
    # 2PC on the same crash blocks for all of it.
    twopc = one({**LEADER_CRASH, "faults": [{**LEADER_CRASH["faults"][0], "target": "coordinator"}]}, "2pc")
    assert twopc["blocked"] >= 3 * 10.0


def test_a_takeover_needs_f_plus_one_acceptors_not_all() -> None:
    # acceptor-3 is down too: acceptor-1 and acceptor-2 are a quorum.
    faults = [*LEADER_CRASH["faults"], {"kind": "crash", "target": "acceptor-3", "at": 0.5, "duration": 10.0}]
    events = timeline({**LEADER_CRASH, "faults": faults})
    assert [e for e in events if e[2] == "decide" and e[0] < 3] == [(2.016, "acceptor-1", "decide", "", "commit")]


def test_a_duplicate_of_its_own_ballot_refused_does_not_stop_a_leader() -> None:
    # Every message is delivered twice: the second copy of each phase 1a is
    # refused (the acceptor promised that very ballot already), and the
    # refusal names the leader's own ballot, which it keeps.
    events = timeline({**LEADER_CRASH, "network.duplicate": 1.0})
    taken = [e for e in events if e[2] in ("refused", "decide") and e[0] < 3]
    assert taken == [(2.016, "acceptor-1", "decide", "", "commit")]


def test_a_duplicated_vote_is_counted_once() -> None:
    # Every message twice: the leader gets each phase 2b twice, and must not
    # count an instance chosen twice. Payment refuses a little later than the
    # others vote: the leader must wait for its vote and abort.
    row = one(
        {
            "network.duplicate": 1.0,
            "participants.payment.business_failure": 1.0,
            "participants.payment.service_time": {"dist": "constant", "value": 0.05},
        }
    )
    assert (row["outcome"], row["coordinator"]) == ("aborted", "aborted")


def test_the_restarted_leader_finishes_what_it_began() -> None:
    # Its votes were lost with it, and its participants all aborted on their
    # own (nobody prepared, so nobody suspects it): its begin record makes it
    # run a ballot when it is back, which proposes "aborted" everywhere.
    crash = {**LEADER_CRASH, "participants.inventory.business_failure": 1.0}
    crash["faults"] = [{"kind": "crash", "target": "leader", "at": 1.0005, "duration": 10.0}]
    crash["participants.payment.business_failure"] = 1.0
    crash["participants.shipping.business_failure"] = 1.0
    events = timeline(crash)
    assert [e for e in events if e[1] == "leader" and e[2] in ("ballot", "propose", "decide")] == [
        (11.0005, "leader", "ballot", "", "4: leader restarted"),
        (11.0025, "leader", "propose", "", "aborted, aborted, aborted"),
        (11.0045, "leader", "decide", "", "abort"),
    ]
    assert one(crash)["outcome"] == "aborted"


def test_the_leader_crash_scenario_blocks_2pc_and_not_paxos_commit() -> None:
    path = ROOT / "scenarios" / "paxos-commit-leader-crash.toml"
    scenario = load_scenario(path)
    crash = scenario.faults[0]
    assert crash.duration is not None
    start, duration = crash.at, crash.duration
    takeover = scenario.paxos_commit.takeover_timeout
    # Thinned arrivals keep the test quick; every other setting is the file's.
    thin = {"workload.interarrival": {"dist": "exponential", "mean": 0.01}, "run.duration": 40.0}
    result = sim.run(path, seed=1, overrides=thin, trace=True)
    events = result.events
    for protocol, central in (("2pc", "coordinator"), ("paxos-commit", "leader")):
        ev = events[events["run_id"].str.endswith(f"/{protocol}/1")]
        decided = set(
            ev[(ev["node"] == central) & ev["kind"].isin(["decision", "decide"]) & (ev["time"] <= start)]["txn_id"]
        )
        prepared = ev[(ev["kind"] == "prepared") & (ev["time"] <= start) & ~ev["txn_id"].isin(decided)]
        assert len(prepared), f"{protocol}: some participants were in doubt at the crash"
        outcomes = ev[ev["kind"].isin(["commit", "abort"]) & (ev["node"].isin(PARTICIPANTS))]
        for row in prepared.itertuples():
            learned = outcomes[(outcomes["txn_id"] == row.txn_id) & (outcomes["node"] == row.node)]["time"].min()
            if protocol == "2pc":
                assert learned >= start + duration  # blocked until the coordinator is back
            else:
                # An acceptor took over: a takeover timeout and six message
                # delays (suspect, phase 1a, 1b, 2a, 2b, COMMIT; each well
                # under 50 ms with this latency's p99 of 10 ms), not the crash.
                assert learned - row.time < takeover + 0.3
    txns = result.transactions
    assert set(txns["outcome"]) <= {"committed", "aborted"}
    blocked = txns.groupby("protocol")["blocked"].max()
    assert blocked["2pc"] >= duration and blocked["paxos-commit"] < 3 * (takeover + 0.3)


# ------------------------------------------------------------------ acceptors down


def test_f_acceptors_down_still_commit_as_fast() -> None:
    down = {"faults": [{"kind": "crash", "target": "acceptor-1", "at": 0.5, "duration": 1.0}]}
    row, happy = one(down), one({})
    assert row["outcome"] == "committed"
    # The quorum of acceptor-2 and acceptor-3: the same instants, the same
    # messages (those to the down acceptor are sent, and lost).
    assert (row["consistent_at"], row["blocked"], row["messages"]) == (
        happy["consistent_at"],
        happy["blocked"],
        happy["messages"] - 3,  # acceptor-1 sent no phase 2b
    )


def test_f_plus_one_acceptors_down_block_until_one_is_back() -> None:
    back = 5.5
    down = {
        "run.duration": 6.0,
        "faults": [
            {"kind": "crash", "target": "acceptor-1", "at": 0.5, "duration": back - 0.5},
            {"kind": "crash", "target": "acceptor-2", "at": 0.5, "duration": back - 0.5},
        ],
    }
    row = one(down)
    # Every participant stayed in doubt, holding its locks, until acceptor-1
    # and acceptor-2 were back: every ballot before that stopped at phase 1
    # (one promise of the two needed).
    events = timeline(down)
    assert not [e for e in events if e[2] in ("propose", "decide") and e[0] < back]
    assert row["consistent_at"] > back
    assert row["blocked"] > 3 * (back - 1.011)
    # Then the leader's ballot got its two promises from acceptor-1 and
    # acceptor-2 (first to answer), which never saw the votes: "prepared" was
    # never chosen (acceptor-3 alone accepted it), so "aborted" may be, and is.
    assert [e for e in events if e[2] in ("propose", "decide")] == [
        (6.002, "leader", "propose", "", "aborted, aborted, aborted"),
        (6.004, "leader", "decide", "", "abort"),
    ]
    assert row["outcome"] == "aborted"


def test_the_acceptor_down_scenario_commits_with_f_down_and_blocks_with_f_plus_one() -> None:
    path = ROOT / "scenarios" / "paxos-commit-acceptor-down.toml"
    scenario = load_scenario(path)
    one_down, two_down = scenario.faults
    assert one_down.duration is not None and two_down.duration is not None
    back = two_down.at + two_down.duration
    result = sim.run(path, seed=1, overrides={"run.duration": 30.0})
    txns = result.transactions
    assert set(txns["outcome"]) <= {"committed", "aborted"}
    # f down: a transaction started well inside that window and before the
    # second acceptor went (its 2a and 2b have long arrived) blocks no longer than usual.
    f_down = txns[(txns["started_at"] > one_down.at + 1) & (txns["started_at"] < two_down.at - 1)]
    before = txns[txns["started_at"] < one_down.at - 1]
    assert (f_down["outcome"] == "committed").all()
    assert f_down["blocked"].max() < 1.0 and before["blocked"].max() < 1.0
    # f + 1 down: every transaction started then and committed was decided after the second acceptor was back.
    f1_down = txns[(txns["started_at"] > two_down.at) & (txns["started_at"] < back - 1)]
    assert len(f1_down) > 100
    assert (f1_down["started_at"] + f1_down["latency"] > back).all()
    # (their participants in doubt until then: each of the three blocked
    # from its vote, within 0.5 s of the start, until after ``back``)
    voted = f1_down[f1_down["blocked"] > 0]
    assert len(voted) > 0.9 * len(f1_down)
    assert (voted["blocked"] >= back - voted["started_at"] - 0.5).all()


# ------------------------------------------------------------------ the acceptors' rules


class Sent:
    """The messages a node sends, captured."""

    def __init__(self, model: Model, monkeypatch: pytest.MonkeyPatch) -> None:
        self.messages: list[tuple[str, tuple[Any, ...]]] = []
        monkeypatch.setattr(model.network, "send", lambda src, dst, msg, *a: self.messages.append((dst, msg)))


def _acceptor(monkeypatch: pytest.MonkeyPatch) -> tuple[Model, Acceptor, Sent]:
    model = Model(order_scenario({**ONE, "workload.limit": 1}), "paxos-commit", 1)
    acceptor = model.protocol.acceptors[0]  # type: ignore[attr-defined]
    return model, acceptor, Sent(model, monkeypatch)


def test_an_acceptor_promises_only_a_ballot_above_every_one_it_promised(monkeypatch: pytest.MonkeyPatch) -> None:
    _, acceptor, sent = _acceptor(monkeypatch)
    acceptor.handle(P1a("p1a", "acceptor-2", 0, 6))
    assert sent.messages[-1] == ("acceptor-2", ("p1b", "acceptor-1", 0, 6, ()))
    # The same ballot again (a duplicate, or another leader's): refused.
    acceptor.handle(P1a("p1a", "acceptor-3", 0, 6))
    assert sent.messages[-1] == ("acceptor-3", ("nack", "acceptor-1", 0, 6))
    acceptor.handle(P1a("p1a", "acceptor-3", 0, 7))
    _, promise = sent.messages[-1]
    assert type(promise) is P1b and promise.ballot == 7


def test_an_acceptor_accepts_a_ballot_not_below_the_one_it_promised(monkeypatch: pytest.MonkeyPatch) -> None:
    _, acceptor, sent = _acceptor(monkeypatch)
    # Ballot 0 with nothing promised: accepted (every happy transaction needs it).
    acceptor.handle(P2a("p2a", "payment", 0, 0, ((0, "prepared"),)))
    assert sent.messages[-1] == ("leader", ("p2b", "acceptor-1", 0, 0, ((0, "prepared"),)))
    acceptor.handle(P1a("p1a", "acceptor-2", 0, 6))
    # The ballot it promised: accepted; its phase 2b goes to that ballot's leader.
    acceptor.handle(P2a("p2a", "acceptor-2", 0, 6, ((0, "prepared"), (1, "aborted"), (2, "aborted"))))
    assert sent.messages[-1] == (
        "acceptor-2",
        ("p2b", "acceptor-1", 0, 6, ((0, "prepared"), (1, "aborted"), (2, "aborted"))),
    )
    # A lower one: refused, and told the higher ballot; ballot 0 silently.
    acceptor.handle(P2a("p2a", "leader", 0, 4, ((1, "prepared"),)))
    assert sent.messages[-1] == ("leader", ("nack", "acceptor-1", 0, 6))
    count = len(sent.messages)
    acceptor.handle(P2a("p2a", "shipping", 0, 0, ((2, "prepared"),)))
    assert len(sent.messages) == count
    assert [(s.mbal, s.bal, s.val) for s in acceptor.slots[0]] == [
        (6, 6, "prepared"),
        (6, 6, "aborted"),
        (6, 6, "aborted"),
    ]


def test_a_ballot_is_under_way_for_less_than_the_takeover_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    model, acceptor, _ = _acceptor(monkeypatch)
    model.protocol.leader.start(0)  # type: ignore[attr-defined]
    timeout = acceptor.takeover_timeout
    now = model.world.now
    acceptor.ballots[0] = Ballot(0, 1, now - timeout / 2, 3)
    acceptor.handle(Signal("suspect", "payment", 0))
    assert acceptor.takeovers == 0  # under way: left alone
    acceptor.ballots[0] = Ballot(0, 1, now - timeout, 3)
    acceptor.highest[0] = 1
    acceptor.handle(Signal("suspect", "payment", 0))
    assert acceptor.takeovers == 1 and acceptor.ballots[0].number == 5  # a new, higher ballot


# ------------------------------------------------------------------ safety under random faults


node = st.sampled_from(["leader", "acceptor-1", "acceptor-2", "acceptor-3", "payment", "inventory", "shipping"])
fault = st.one_of(
    st.builds(
        lambda kind, target, at, duration: {"kind": kind, "target": target, "at": at, "duration": duration},
        st.sampled_from(["crash", "pause"]),
        node,
        st.floats(0.0, 4.5),
        st.floats(0.001, 3.0),
    ),
    st.builds(
        lambda kind, at, duration, p: {"kind": kind, "at": at, "duration": duration, "probability": p},
        st.sampled_from(["loss", "duplicate"]),
        st.floats(0.0, 4.5),
        st.floats(0.1, 3.0),
        st.floats(0.05, 0.5),
    ),
)


@pytest.mark.slow
@settings(derandomize=True, database=None, deadline=None, max_examples=60)
@given(faults=st.lists(fault, max_size=6), f=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_no_participant_commits_while_another_aborts(faults: list[dict], f: int, seed: int) -> None:
    scenario = order_scenario(
        {
            "run.protocols": ["paxos-commit"],
            "run.duration": 5.0,
            "run.drain": 30.0,
            "workload.interarrival": {"dist": "exponential", "mean": 0.05},
            "workload.keys": {"population": 20, "skew": 1.0},
            "network.latency": {"dist": "exponential", "mean": 0.005},
            "participants.payment.business_failure": 0.1,
            "participants.shipping.hang": 0.05,
            "paxos_commit.f": f,
            # short timeouts: many takeovers and competing ballots
            "paxos_commit.vote_timeout": 0.2,
            "paxos_commit.takeover_timeout": 0.1,
            # acceptors crash while forcing their state too
            "paxos_commit.log_write": {"dist": "exponential", "mean": 0.005},
            "faults": faults,
        }
    )
    model = Model(scenario, "paxos-commit", seed)
    out = model.run()
    # From participants' ground truth, not the checker's summary.
    for txn, _ in model.workload.started:
        ops = {(e.step, e.op) for e in model.world.effects.of(txn)}
        committed = {step for step, op in ops if op == FORWARD}
        aborted = {step for step, op in ops if op == ABORT}
        assert not (committed and aborted), f"txn {txn}: committed {committed}, aborted {aborted}"
        assert not committed or committed == {0, 1, 2}, f"txn {txn}: partial commit {committed}"
    # Faults heal when the workload ends; the drain lets every ballot finish.
    assert set(out.transactions["outcome"]) <= {"committed", "aborted"}, out.transactions["reasons"]
    assert out.summary["in_doubt_at_end"] == 0


# ------------------------------------------------------------------ judging as the run goes


def test_an_acceptors_forced_write_is_pending_work_until_done_or_lost() -> None:
    write = {"paxos_commit.log_write": {"dist": "constant", "value": 0.005}}
    crash = [{"kind": "crash", "target": "acceptor-1", "at": 1.015, "duration": 1.0}]
    model = Model(order_scenario({**ONE, **write, "faults": crash}), "paxos-commit", 1)
    settle = model.world.settle = Settlement()
    world = model.world
    world.run(until=1.0125)  # the 9 phase 2a arrived at 1.012: 9 writes under way, nothing in flight
    assert settle.pending == {0: 9}
    world.run(until=1.0175)  # 6 written at 1.017, their phase 2b in flight; acceptor-1's 3 lost in its crash
    assert settle.pending == {0: 6}
    world.run(until=1.0185)  # the leader decided at 1.018: 3 COMMITs in flight
    assert settle.pending == {0: 3}
    protocol = model.protocol
    assert protocol.view(0).terminal and not protocol.quiet(0)  # type: ignore[attr-defined]  # still prepared
    world.run(until=1.0195)
    assert settle.idle(0) and protocol.quiet(0)  # type: ignore[attr-defined]


def test_the_leaders_begin_record_keeps_a_transaction_open_until_it_decides() -> None:
    model = Model(order_scenario({**ONE, **LEADER_CRASH}), "paxos-commit", 1)
    model.world.settle = Settlement()
    protocol = model.protocol
    model.world.run(until=5.0)  # acceptor-1 decided at 2.016, every participant committed at 2.017
    assert protocol.view(0).terminal and all(side.quiet(0) for side in protocol.sides.values())  # type: ignore[attr-defined]
    assert not protocol.quiet(0)  # type: ignore[attr-defined]  # the leader, down, will run a ballot for it
    model.world.run(until=11.02)  # back at 11.0115, its ballot decided at 11.0165
    assert model.world.settle.idle(0) and protocol.quiet(0)  # type: ignore[attr-defined]
    protocol.forget(0)  # type: ignore[attr-defined]
    assert 0 not in protocol.cluster.records and all(0 not in a.slots for a in protocol.acceptors)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ determinism and settings


def test_same_seed_same_tables() -> None:
    path = ROOT / "scenarios" / "paxos-commit-acceptor-down.toml"
    runs = [sim.run(path, seed=2, overrides={"run.duration": 22.0}, trace=True) for _ in range(2)]
    a, b = runs
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.summary.drop(columns="wall_time"), b.summary.drop(columns="wall_time"))


def test_the_acceptors_are_fault_targets_as_many_as_f_gives() -> None:
    two = {**ONE, "paxos_commit.f": 2}
    scenario = order_scenario({**two, "faults": [{"kind": "crash", "target": "acceptor-5", "at": 0.5, "duration": 1}]})
    assert "acceptor-5" in scenario.nodes()
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.target.*acceptor-4"):
        order_scenario({**ONE, "faults": [{"kind": "crash", "target": "acceptor-4", "at": 0.5, "duration": 1}]})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"paxos_commit.f": -1}, "paxos_commit.f = -1: input should be greater than or equal to 0"),
        ({"paxos_commit.f": 11}, "paxos_commit.f = 11: input should be less than or equal to 10"),
        ({"paxos_commit.takeover_timeout": 0}, "paxos_commit.takeover_timeout = 0: input should be greater than 0"),
        ({"paxos_commit.leader_timeout": 1.0}, "paxos_commit.leader_timeout"),
    ],
)
def test_bad_settings_are_explained(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        order_scenario({**ONE, **overrides})
    assert expected in str(caught.value).replace('"', "")


def test_a_participant_may_not_take_an_acceptors_name() -> None:
    from sim.scenario import scenario_from_dict

    from conftest import order_dict

    raw = order_dict()
    raw["participants"]["acceptor-5"] = raw["participants"]["payment"]
    raw["run"]["protocols"] = ["paxos-commit"]
    raw["paxos_commit"] = {"f": 2}
    with pytest.raises(ScenarioError, match="participants.acceptor-5: 'acceptor-5' is a name the harness uses"):
        scenario_from_dict(raw, source="test")
