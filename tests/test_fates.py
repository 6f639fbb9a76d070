"""The protocols meet the same fate for the same transaction: a refusal is
final everywhere, and (with one seed) each participant-side draw is keyed by
the transaction, step, attempt and operation it decides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

import sim
from sim.scenario import Scenario, scenario_from_dict

from conftest import order_dict

ROOT = Path(__file__).resolve().parent.parent


def with_retriable_notify(business_failure: float, idempotent: bool = True, **extra: Any) -> Scenario:
    """The order saga plus a retriable ``notify`` step after the pivot, on a
    participant that refuses with ``business_failure``."""
    data = order_dict(**extra)
    data["participants"]["email"] = {
        "service_time": {"dist": "constant", "value": 0.01},
        "workers": 4,
        "business_failure": business_failure,
        "idempotent": idempotent,
    }
    data["transactions"]["order"]["steps"].append({"name": "notify", "participant": "email", "kind": "retriable"})
    data["run"]["protocols"] = ["orchestration", "choreography"]
    return scenario_from_dict(data)


def test_a_refused_retriable_step_cannot_complete_in_either_protocol() -> None:
    for idempotent in (True, False):
        scenario = with_retriable_notify(0.05, idempotent)
        result = sim.run(scenario, seed=1)
        txns = result.transactions
        for protocol, rows in txns.groupby("protocol"):
            # refused once, the step is never asked again: nothing is stuck
            assert (rows["outcome"] != "stuck").all(), (protocol, idempotent)
            bad = rows[rows["outcome"] == "inconsistent"]
            assert len(bad) > 0, (protocol, idempotent)
            assert (bad["anomalies"].map(tuple) == ("incomplete_after_pivot",)).all(), protocol
            assert (bad["coordinator"] == "failed").all(), protocol  # not "compensated"
            assert bad["reasons"].map(lambda r: r[0]).str.startswith("notify never applied").all(), protocol
        by = {p: set(rows.loc[rows.outcome == "inconsistent", "txn_id"]) for p, rows in txns.groupby("protocol")}
        assert by["orchestration"] == by["choreography"]


# ------------------------------------------------------------------ keyed draws


def test_keyed_draws_are_the_same_in_any_order_and_after_a_block_is_dropped() -> None:
    import numpy as np

    from sim.world.fates import KEEP, uniform
    from sim.world.rng import Streams

    n = 64 * (KEEP + 3)  # more blocks than a stream keeps
    in_order = Streams(7).keyed("s", uniform, 64)
    first = [in_order.at(i) for i in range(n)]
    shuffled = Streams(7).keyed("s", uniform, 64)
    order = np.random.default_rng(0).permutation(n).tolist()
    assert {i: shuffled.at(i) for i in order} == dict(enumerate(first))
    assert [in_order.at(i) for i in range(n)] == first  # the early blocks were dropped and made again
    assert len(set(first)) == n and all(0.0 <= u < 1.0 for u in first)
    other = Streams(8).keyed("s", uniform, 64)
    assert [other.at(i) for i in range(64)] != first[:64]


PAIRED = ROOT / "scenarios" / "paired-fates.toml"
SHORT = {"run.duration": 30.0, "run.drain": 60.0}


def _by_txn(result: sim.Result, protocol: str) -> pd.DataFrame:
    txns = result.transactions
    return txns[txns.protocol == protocol].set_index(["seed", "txn_id"]).sort_index()


def test_both_saga_protocols_meet_the_same_fate_per_transaction() -> None:
    # Business and transient failures at every step, lognormal latencies:
    # the requests reach each participant in different orders under the two
    # protocols, yet every transaction ends the same way, with the same steps
    # applied and compensated. (Drawn in order per participant, 83% did.)
    for overrides in (SHORT, {**SHORT, "network.loss": 0.01}):
        result = sim.run(PAIRED, seed=[1, 2], overrides=overrides)
        orch, chor = _by_txn(result, "orchestration"), _by_txn(result, "choreography")
        assert len(orch) > 2000 and orch.index.equals(chor.index)
        columns = ["outcome", "steps_applied", "compensations_applied"]
        pd.testing.assert_frame_equal(orch[columns], chor[columns])
        assert set(orch["outcome"]) == {"committed", "compensated"}


def test_two_phase_commit_meets_the_same_refusals() -> None:
    # Without transient failures a 2PC participant votes no exactly where the
    # saga's step is refused: committed in one, committed in the other, and
    # every compensated saga an aborted 2PC transaction.
    overrides = {**SHORT, "run.protocols": ["orchestration", "2pc"]}
    for name in ("payment", "inventory", "shipping"):
        overrides[f"participants.{name}.transient_failure"] = 0.0
    result = sim.run(PAIRED, seed=1, overrides=overrides)
    orch, twopc = _by_txn(result, "orchestration"), _by_txn(result, "2pc")
    mapped = orch["outcome"].replace({"compensated": "aborted"})
    assert (mapped == twopc["outcome"]).all()
    assert (orch["outcome"] == "compensated").sum() > 100


def test_a_retry_meets_a_fate_of_its_own() -> None:
    # Every first attempt at payment fails transiently; its retries are
    # drawn afresh (attempt 2, 3, ...), so the orders still commit, and the
    # same number of retries is needed in both saga protocols.
    overrides = {
        **SHORT,
        "participants.payment.transient_failure": 0.5,
        "participants.payment.business_failure": 0.0,
    }
    result = sim.run(PAIRED, seed=3, overrides=overrides)
    orch, chor = _by_txn(result, "orchestration"), _by_txn(result, "choreography")
    assert (orch["retries"] > 0).mean() > 0.4
    pd.testing.assert_series_equal(orch["outcome"], chor["outcome"])


def test_a_command_and_the_event_that_triggers_the_same_step_are_lost_together() -> None:
    # With 5% loss on every link, the orchestration's lost commands and the
    # choreography's lost deliveries to the participants are mostly the same
    # (transaction, participant) pairs: their loss draws are keyed by role.
    # They differ only where the attempts stop corresponding (a lost reply
    # makes the orchestrator send the command again; a lost publish makes the
    # choreography publish again, not redeliver), about 10% of them here;
    # drawn independently the overlap would be about 5%.
    result = sim.run(PAIRED, seed=1, overrides={"run.duration": 30.0, "network.loss": 0.05}, trace=True)
    drops = result.events.query("kind == 'drop'")
    participants = {"payment", "inventory", "shipping"}

    def lost(protocol: str, kind: str, by_sender: bool) -> set[tuple[int, str]]:
        rows = drops[drops.run_id.str.contains(protocol) & drops.detail.str.startswith(f"lost: {kind} to ")]
        where = rows.node if by_sender else rows.detail.str.split(" to ").str[1]
        return {(t, w) for t, w in zip(rows.txn_id, where, strict=True) if w in participants}

    for orch, chor, by_sender in (("req", "evt", False), ("rep", "pub", True)):
        a, b = lost("orchestration", orch, by_sender), lost("choreography", chor, by_sender)
        assert len(a) > 150 and len(b) > 150
        assert len(a & b) / len(a | b) > 0.8, (orch, chor, len(a), len(b), len(a & b))


def test_the_attempt_counter_counts_past_a_byte() -> None:
    from sim.world.fates import Counter

    counter = Counter()
    assert [counter.next(5, 3) for _ in range(300)] == list(range(1, 301))
    assert counter.next(5, 2) == 1 and counter.next(4, 3) == 1 and counter.next(10_000, 3) == 1
    assert counter.next(5, 3) == 301


def test_a_republish_after_a_restart_meets_a_loss_draw_of_its_own() -> None:
    # Inventory crashes every 2 s and republishes its outbox on restart, with
    # 20% loss: whether a republish is lost must not repeat whether the first
    # publish of that event was (it did, 236 times in 236, when the publish
    # count restarted at 1 with each new publish of the id). Independent
    # draws lose about 20% either way; 0.6 leaves room for 100-odd samples.
    faults = [{"kind": "crash", "target": "inventory", "at": float(a), "duration": 0.3} for a in range(2, 20, 2)]
    overrides = {"run.duration": 20.0, "run.drain": 30.0, "network.loss": 0.2, "faults": faults}
    result = sim.run(PAIRED, protocol="choreography", seed=1, overrides=overrides, trace=True)
    events = result.events
    rows = events[(events.node == "inventory") & (events.kind.isin(["publish", "drop"]))]
    rows = rows[(rows.kind == "publish") | rows.detail.str.startswith("lost: pub")]
    restarts = set(events[(events.node == "inventory") & (events.kind == "restart")].time.round(9))
    repeated = republished = 0
    for _, seq in rows.groupby("txn_id"):
        marks = list(zip(seq.time.round(9), seq.kind, strict=True))
        first_lost = len(marks) > 1 and marks[1] == (marks[0][0], "drop")
        for i, (at, kind) in enumerate(marks[1:], start=1):
            if kind == "publish" and at in restarts and first_lost:
                republished += 1
                repeated += i + 1 < len(marks) and marks[i + 1] == (at, "drop")
    assert republished > 50
    assert repeated / republished < 0.6, (repeated, republished)
