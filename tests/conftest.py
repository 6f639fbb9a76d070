"""Shared builders for tests: small scenarios as plain dicts."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sim.cli import main
from sim.scenario import Scenario, scenario_from_dict

#: The order saga: charge/refund, reserve/release, then ship as the pivot.
ORDER_STEPS: tuple[dict[str, str], ...] = (
    {"name": "charge", "participant": "payment", "compensation": "refund"},
    {"name": "reserve", "participant": "inventory", "compensation": "release"},
    {"name": "ship", "participant": "shipping", "kind": "pivot"},
)

ORDER: dict[str, Any] = {
    "name": "test-order",
    "run": {"duration": 10.0, "drain": 30.0, "seeds": [1]},
    "workload": {"transaction": "order", "interarrival": {"dist": "exponential", "mean": 0.05}},
    "network": {"latency": {"dist": "constant", "value": 0.001}},
    "participants": {
        "payment": {"service_time": {"dist": "constant", "value": 0.01}, "workers": 4},
        "inventory": {"service_time": {"dist": "constant", "value": 0.01}, "workers": 4},
        "shipping": {"service_time": {"dist": "constant", "value": 0.01}, "workers": 4},
    },
    "transactions": {"order": {"steps": [dict(step) for step in ORDER_STEPS]}},
    "orchestrator": {"timeout": 1.0, "retry": {"attempts": 3, "initial": 0.1, "jitter": False}},
}


def order_dict(**overrides: Any) -> dict[str, Any]:
    """The test order saga as a dict, with dotted-path overrides applied."""
    data = copy.deepcopy(ORDER)
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split("__") if "__" in dotted else dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return data


def order_scenario(overrides: dict[str, Any] | None = None, **raw: Any) -> Scenario:
    """The test order saga, validated; ``overrides`` use ``--set`` paths."""
    return scenario_from_dict(order_dict(**raw), source="test", overrides=overrides)


def crash_scenario() -> Scenario:
    """The test order saga as an orchestration and a 2PC, whose orchestrator and
    coordinator are down from 1 s to 3 s of a 6 s workload: about a third of
    the arrivals are rejected. Inventory refuses 10%."""
    return order_scenario(
        {"run.duration": 6.0, "run.drain": 5.0, "participants.inventory.business_failure": 0.1},
        run__protocols=["orchestration", "2pc"],
        faults=[
            {"kind": "crash", "target": "orchestrator", "at": 1.0, "duration": 2.0},
            {"kind": "crash", "target": "coordinator", "at": 1.0, "duration": 2.0},
        ],
    )


def trace_rows(overrides: dict[str, Any], *, seed: int = 1, world_events: bool = False) -> list[tuple[Any, ...]]:
    """The trace of a run of the test order saga as ``(time, node, kind, step, detail)``
    rows, times rounded to the microsecond; deliveries ("receive") left out, and
    events of no transaction too unless ``world_events``."""
    import sim

    events = sim.run(order_scenario(overrides), seed=seed, trace=True).events
    return [
        (round(e.time, 6), e.node, e.kind, "" if pd.isna(e.step) else e.step, e.detail)  # no step (null): ""
        for e in events.itertuples()
        if e.kind != "receive" and (world_events or not pd.isna(e.txn_id))
    ]


@pytest.fixture
def order() -> Scenario:
    return order_scenario()


def sagasim(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["sagasim", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err
