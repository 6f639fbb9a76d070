"""The protocols meet the same fate for the same transaction: a refusal is
final everywhere, and (with one seed) each participant-side draw is keyed by
the transaction, step, attempt and operation it decides."""

from __future__ import annotations

from typing import Any

import sim
from sim.scenario import Scenario, scenario_from_dict

from conftest import order_dict


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
            assert (bad["anomalies"] == "incomplete_after_pivot").all(), protocol
            assert bad["reasons"].str.startswith("notify never applied").all(), protocol
        by = {p: set(rows.loc[rows.outcome == "inconsistent", "txn_id"]) for p, rows in txns.groupby("protocol")}
        assert by["orchestration"] == by["choreography"]
