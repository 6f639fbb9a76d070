"""Results as tidy pandas tables (column names are public API, see docs/architecture.md).

Rows are gathered as flat records during the run and turned into a DataFrame
once. Tally statistics (one value per transaction: latency) and level
statistics (time-weighted: worker utilisation) are kept apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sim.checker import ANOMALIES
from sim.names import OUTCOMES as OUTCOMES  # defined without pandas/pydantic for the CLI
from sim.protocols import registry
from sim.world.faults import FaultRecord
from sim.world.trace import TraceEvent

#: The contract columns of ``transactions.parquet``, in order.
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "run_id", "scenario", "protocol", "seed", "txn_id", "started_at", "finished_at",
    "outcome", "consistent", "consistent_at", "latency", "steps_applied",
    "compensations_applied", "retries", "messages",
)  # fmt: skip
#: Extra columns: the coordinator's belief, the checker's reasons and anomaly codes.
TRANSACTION_EXTRA: tuple[str, ...] = ("time_to_consistency", "coordinator", "reasons", "anomalies", "flagged_at")
#: Protocol columns (each registered protocol's, e.g. two-phase commit's locks
#: and blocking), present when any run of the frame has them, NaN on the rows
#: of runs without them.
TRANSACTION_PROTOCOL: tuple[str, ...] = tuple(
    dict.fromkeys(c for p in registry.protocols() for c in p.transaction_columns)
)
EVENT_COLUMNS: tuple[str, ...] = TraceEvent._fields
FAULT_COLUMNS: tuple[str, ...] = FaultRecord._fields


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0
    and n successes, which are the interesting cases here (no violations).
    """
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The bounds are exact at the edges; rounding must not move them inside.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def format_rate(x: float) -> str:
    """A rate as people read it: ``97.43%``, ``0.0112%`` for small ones, ``0%``, ``-`` for NaN."""
    if x != x:  # NaN: no transactions
        return "-"
    if x < 5e-7:
        return "0%"
    if x >= 0.001:
        return f"{x:.2%}"
    return f"{x:.4%}"


def format_interval(low: float, high: float) -> str:
    """``[0.13%, 0.52%]``: an interval of rates, each as :func:`format_rate` writes it."""
    return f"[{format_rate(low)}, {format_rate(high)}]"


def transactions_frame(columns: dict[str, list[Any]] | Sequence[dict[str, list[Any]]]) -> pd.DataFrame:
    """One DataFrame from one or more runs' column lists."""
    runs = [columns] if isinstance(columns, dict) else list(columns)
    order = TRANSACTION_COLUMNS + TRANSACTION_EXTRA
    order += tuple(c for c in TRANSACTION_PROTOCOL if any(c in run for run in runs))
    if not runs:
        return pd.DataFrame({c: [] for c in order})
    merged = {c: [v for run in runs for v in (run[c] if c in run else [math.nan] * len(run["txn_id"]))] for c in order}
    frame = pd.DataFrame(merged, columns=list(order))
    return frame.astype(
        {
            "seed": "int64",
            "txn_id": "int64",
            "steps_applied": "int64",
            "compensations_applied": "int64",
            "retries": "int64",
            "messages": "int64",
            "consistent": "bool",
            "started_at": "float64",
            "finished_at": "float64",
            "consistent_at": "float64",
            "latency": "float64",
            "time_to_consistency": "float64",
            "flagged_at": "float64",
        }
    )


def protocol_anomalies(protocol: str) -> tuple[str, ...]:
    """The anomaly codes ``protocol`` registers beyond :data:`ANOMALIES`
    (none for a name no protocol has)."""
    return registry.get(protocol).anomalies if protocol in registry.names() else ()


def summarize(
    *,
    run_id: str,
    scenario: str,
    protocol: str,
    seed: int,
    duration: float,
    outcomes: Sequence[str],
    latency: Sequence[float],
    time_to_consistency: Sequence[float],
    messages: Sequence[int],
    retries: Sequence[int],
    anomalies: Iterable[tuple[str, ...]],
    extra: dict[str, Any],
    outcome_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One row of ``summary.parquet`` for one (scenario, protocol, seed).

    ``outcome_counts`` (outcome -> transactions) stands for ``outcomes`` when
    the run tallied them as it went (:mod:`sim.stream`); the numeric columns
    may be numpy arrays, and ``messages`` and ``retries`` are only averaged.
    """
    n = len(outcomes) if outcome_counts is None else sum(outcome_counts.values())
    row: dict[str, Any] = {
        "run_id": run_id,
        "scenario": scenario,
        "protocol": protocol,
        "seed": seed,
        "transactions": n,
    }
    counts = {o: 0 for o in OUTCOMES}
    if outcome_counts is not None:
        counts.update(outcome_counts)
    for outcome in outcomes:
        counts[outcome] += 1
    for outcome in OUTCOMES:
        low, high = wilson(counts[outcome], n)
        row[outcome] = counts[outcome]
        row[f"{outcome}_rate"] = counts[outcome] / n if n else math.nan
        row[f"{outcome}_rate_low"] = low
        row[f"{outcome}_rate_high"] = high
    row.update(_percentiles("latency", latency))
    # Over the transactions that became consistent; how many never did
    # (stuck or inconsistent: NaN) is said beside the percentiles.
    row.update(_percentiles("time_to_consistency", time_to_consistency))
    became = int(np.count_nonzero(~np.isnan(np.asarray(time_to_consistency, dtype=float))))
    row["became_consistent"] = became
    row["never_consistent"] = n - became
    finished = n - counts["stuck"]
    row["throughput"] = finished / duration
    row["committed_per_second"] = counts["committed"] / duration
    row["messages_per_txn"] = float(np.mean(messages)) if n else math.nan
    row["retries_per_txn"] = float(np.mean(retries)) if n else math.nan
    own = protocol_anomalies(protocol)
    tally = {code: 0 for code in ANOMALIES + own}
    for codes in anomalies:
        for code in codes:
            tally[code] += 1
    for code in ANOMALIES:
        row[f"anomaly_{code}"] = tally[code]
    # A protocol's own codes, and their shares (only in its summaries).
    for code in own:
        row[f"anomaly_{code}"] = tally[code]
        row[f"anomaly_{code}_share"] = tally[code] / n if n else math.nan
    if counts["inconsistent"]:
        row["verdict"] = "invalid"
    elif counts["stuck"]:
        row["verdict"] = "unknown"
    else:
        row["verdict"] = "valid"
    row.update(extra)
    return row


def _percentiles(name: str, values: Sequence[float]) -> dict[str, float]:
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return {f"{name}_mean": math.nan, f"{name}_p50": math.nan, f"{name}_p95": math.nan, f"{name}_p99": math.nan}
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return {
        f"{name}_mean": float(data.mean()),
        f"{name}_p50": float(p50),
        f"{name}_p95": float(p95),
        f"{name}_p99": float(p99),
    }


def summary_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def events_frame(events: Sequence[TraceEvent] | Iterable[Sequence[Any]]) -> pd.DataFrame:
    """The trace as a table: ``txn_id`` and ``attempt`` nullable integers
    (``Int64``: null for events of no transaction, or without an attempt),
    ``step``, ``peer``, ``message``, ``direction`` null (None) where they do
    not apply. Rows may stop after ``detail`` (the structured fields are then null)."""
    width = len(EVENT_COLUMNS)
    rows = [tuple(e) + (None,) * (width - len(e)) for e in events]
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    return frame.astype({"time": "float64", "txn_id": "Int64", "attempt": "Int64"})


def faults_frame(records: Sequence[FaultRecord] | Iterable[Sequence[Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(records), columns=list(FAULT_COLUMNS))
