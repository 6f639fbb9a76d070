"""Table cells and text: how values are written in the report's tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sim.compare import (
    HIGHER_IS_BETTER,
    format_points,
)
from sim.metrics import format_interval, format_rate, wilson
from sim.swimlane import fmt_seconds


def _summary_cells(r: dict[str, Any], axes: list[str], outcomes: list[str], means: list[str]) -> list[tuple[str, str]]:
    """One row of the summary table: the swept values, the protocol, arrivals and rejected, outcomes and times."""
    row = [(_fmt_value(r[a]), "") for a in axes]
    row += [(str(r["protocol"]), ""), (str(r["seeds"]), "num"), (f"{r['arrivals']:,}", "num")]
    row.append(_rate_cell(int(r["rejected"]), int(r["arrivals"]), bad=True))
    row.append((f"{r['transactions']:,}", "num"))
    for outcome in outcomes:
        rate, low, high = (r[f"{outcome}_rate{s}"] for s in ("", "_low", "_high"))
        bad = outcome in ("inconsistent", "stuck") and r[outcome] > 0
        text = f"{format_rate(rate)} {format_interval(low, high)}" if rate == rate else "-"
        row.append((text, "num bad" if bad else "num"))
    for column in ("latency_p50", "latency_p99", "time_to_consistency_p99"):
        row.append((fmt_seconds(r[column]), "num"))
    never = int(r["never_consistent"])
    row.append((f"{never:,}", "num bad" if never else "num"))
    row.append((_fmt_number(r["messages_per_txn"], ".2f"), "num"))
    for column in means:  # the protocols' compared columns (2PC's blocked time, TCC's reserved time)
        row.append((fmt_seconds(r[f"{column}_mean"]), "num"))
    return row


def _pair_cells(label: str, pair: Any) -> list[tuple[str, str]]:
    """One row of the comparison table from a row of paired_differences; the
    mean in red when its interval shows A worse (it excludes 0 on the bad side)."""
    interval = pair.note or "-"
    if pair.ci_low == pair.ci_low:
        interval = f"[{format_points(pair.ci_low)}, {format_points(pair.ci_high)}]"
    worse = pair.ci_high < 0 if pair.metric in HIGHER_IS_BETTER else pair.ci_low > 0  # False for NaN
    return [
        (label, ""),
        (f"{pair.protocol_a} - {pair.protocol_b}", ""),
        (str(pair.metric).removesuffix("_rate"), ""),
        (format_points(pair.mean), "num bad" if worse else "num"),
        (interval, "num"),
        (str(pair.seeds), "num"),
        (f"{pair.a_worse}/{pair.a_better}/{pair.equal}", "num"),
    ]


def _with_rejected(table: pd.DataFrame, summary: pd.DataFrame, by_point: bool) -> pd.DataFrame:
    """``table`` (per protocol, or per grid point and protocol) with the
    arrivals the workload tried to start and how many of them were rejected,
    summed over seeds from the runs' ``rejected`` counts (0 for results
    written before they were counted)."""
    keys = ["point", "protocol"] if by_point else ["protocol"]
    counts = summary.assign(rejected=summary["rejected"] if "rejected" in summary.columns else 0)
    rejected = counts.groupby(keys, sort=False)["rejected"].sum().astype(int).rename("rejected").reset_index()
    out = table.drop(columns=["rejected"], errors="ignore").merge(rejected, on=keys, how="left")
    out["rejected"] = out["rejected"].fillna(0).astype(int)
    out["arrivals"] = out["transactions"].astype(int) + out["rejected"]
    return out


def _rejected_times(txns: pd.DataFrame, rejected: int, duration: float) -> np.ndarray:
    """When a run's rejected arrivals came, estimated from the gaps in its
    transaction ids.

    Every arrival takes the next id, rejected or not (``World.new_transaction``),
    but only started ones are recorded with a time; an id missing between two
    started transactions arrived between their start times, so the missing
    ones are spread evenly over that gap (and over the end of the workload for
    the ids after the last started one). Exact to within one interarrival gap.
    """
    if rejected <= 0:
        return np.empty(0)
    known = txns[["txn_id", "started_at"]].sort_values("txn_id").to_numpy(float)
    ids = np.concatenate([[-1.0], known[:, 0], [known[-1, 0] + 1 if len(known) else 0.0]])
    times = np.concatenate([[0.0], known[:, 1], [duration]])
    missing = np.diff(ids) - 1
    # The ids after the last started one: whatever the recorded count leaves over.
    missing[-1] = max(0.0, rejected - missing[:-1].sum())
    out = [np.linspace(times[i], times[i + 1], int(m) + 2)[1:-1] for i, m in enumerate(missing) if m > 0]
    return np.concatenate(out) if out else np.empty(0)


def _rate_cell(hits: int, n: int, *, bad: bool) -> tuple[str, str]:
    """A share with its 95% Wilson interval, as the summary's outcome cells; red when ``bad`` and above zero."""
    if n == 0:
        return "-", "num"
    low, high = wilson(hits, n)
    return f"{format_rate(hits / n)} {format_interval(low, high)}", "num bad" if bad and hits else "num"


def _replay_until(row: pd.Series) -> float | None:
    """Where a replay may stop: a little after a finished transaction's last
    known moment (late duplicates and redeliveries included); never early for
    an inconsistent or stuck one, whose effects may come at any time."""
    if row["outcome"] in ("inconsistent", "stuck"):
        return None
    moments = [float(row[c]) for c in ("finished_at", "consistent_at", "flagged_at") if c in row and row[c] == row[c]]
    if not moments:
        return None
    latency = float(row["latency"]) if row["latency"] == row["latency"] else 0.0
    return max(moments) + max(5.0, 2 * latency)


def _reasons_text(value: Any) -> str:
    """A transaction's reasons (or anomalies) as one line, whether the table
    stores them as one ``"a; b"`` string or as a list column."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and value != value):
        return ""
    try:
        return "; ".join(str(v) for v in value)
    except TypeError:
        return str(value)


def _fmt_number(value: float, spec: str) -> str:
    """A number in ``spec``, ``-`` for NaN (as the command line prints it)."""
    return "-" if value != value else format(value, spec)


def _fmt_value(value: Any) -> str:
    """A parameter value as the sweep file spells it: ``0.2``, ``3``, ``true``, ``robust``; ``-`` for NaN."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
