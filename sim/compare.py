"""Comparing protocols run on the same scenario, seeds and faults.

``sagasim compare`` prints what these functions compute; they work on the
tables of a :class:`~sim.result.Result` (or of a result folder), so notebooks
and tests use them directly:

- :func:`protocol_table`: one row per protocol, pooled over seeds: outcome
  rates with 95% Wilson intervals, latency and time-to-consistency
  percentiles, messages per transaction, blocked time (2PC).
- :func:`paired_differences`: per pair of protocols, the mean over seeds of
  the per-seed difference in inconsistent and stuck rates, with a paired
  t-interval.
- :func:`worst_transaction` and :func:`reproduce_command`: the transaction to
  replay, and the ``sagasim run ... --trace`` line that replays it.
- :func:`parse_seeds` and :func:`format_seeds`: the ``1..10,20`` spelling of
  a set of seeds.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from sim.errors import SagasimError
from sim.metrics import OUTCOMES, wilson
from sim.names import listed
from sim.protocols import registry

# The seed spelling lives in sim.seeds (the CLI reads it without pandas); still importable from here.
from sim.seeds import SEED_LIMIT as SEED_LIMIT
from sim.seeds import SEEDS_SPELLING as SEEDS_SPELLING
from sim.seeds import format_seeds as format_seeds
from sim.seeds import parse_seeds as parse_seeds

#: The summary columns :func:`paired_differences` compares by default.
PAIRED_METRICS: tuple[str, ...] = ("inconsistent_rate", "stuck_rate")
#: Summary columns where a higher value is better (for every other column, higher is worse).
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {"committed_rate", "compensated_rate", "aborted_rate", "throughput", "committed_per_second"}
)


# ------------------------------------------------------------------ tables


def protocol_table(result: Any) -> pd.DataFrame:
    """One row per protocol, pooled over its seeds.

    ``result`` is a :class:`~sim.result.Result`, anything with
    ``transactions`` and ``summary`` DataFrames, or a result folder's path.

    Columns: ``protocol``, ``seeds`` (how many), ``transactions``; for each
    outcome (committed, compensated, aborted, inconsistent, stuck) its count,
    ``<outcome>_rate`` and the 95% Wilson interval ``<outcome>_rate_low`` /
    ``_high`` of the pooled rate; ``latency_p50``, ``latency_p99`` (finished
    transactions), ``time_to_consistency_p99`` (over the transactions that
    became consistent), ``never_consistent`` (how many did not: stuck or
    inconsistent), ``messages_per_txn``; and ``<column>_mean`` and ``<column>_max`` for each
    column a protocol registers as compared (:func:`sim.protocols.registry.compared`:
    two-phase commit's ``blocked``, TCC's ``reserved_time``) that the
    transactions have, NaN for protocols without it.

    The pooled interval treats every transaction as an independent trial. The
    transactions of one seed share its faults, so the spread between seeds
    can be wider than this interval suggests; :func:`paired_differences`
    works across seeds and is the one to read when comparing protocols.
    """
    txns, summary = _frames(result)
    means = [column for column, _ in registry.compared() if column in txns.columns]
    rows: list[dict[str, Any]] = []
    for protocol in _protocols(summary, txns):
        t = txns[txns["protocol"] == protocol]
        s = summary[summary["protocol"] == protocol] if "protocol" in summary.columns else summary.iloc[0:0]
        n = len(t)
        seeds = s["seed"].nunique() if len(s) else t["seed"].nunique()
        row: dict[str, Any] = {"protocol": protocol, "seeds": int(seeds), "transactions": n}
        counts = t["outcome"].value_counts()
        for outcome in OUTCOMES:
            k = int(counts.get(outcome, 0))
            low, high = wilson(k, n)
            row[outcome] = k
            row[f"{outcome}_rate"] = k / n if n else math.nan
            row[f"{outcome}_rate_low"] = low
            row[f"{outcome}_rate_high"] = high
        latency = t["latency"].dropna()
        ttc = time_to_consistency(t).dropna()
        row["latency_p50"] = _quantile(latency, 0.50)
        row["latency_p99"] = _quantile(latency, 0.99)
        row["time_to_consistency_p99"] = _quantile(ttc, 0.99)
        row["never_consistent"] = n - len(ttc)
        row["messages_per_txn"] = float(t["messages"].mean()) if n else math.nan
        for column in means:
            values = pd.to_numeric(t[column], errors="coerce").dropna()
            row[f"{column}_mean"] = float(values.mean()) if len(values) else math.nan
            # The mean hides the few transactions a crash holds up: the worst one shows them.
            row[f"{column}_max"] = float(values.max()) if len(values) else math.nan
        rows.append(row)
    columns = ["protocol", "seeds", "transactions"]
    for outcome in OUTCOMES:
        columns += [outcome, f"{outcome}_rate", f"{outcome}_rate_low", f"{outcome}_rate_high"]
    columns += ["latency_p50", "latency_p99", "time_to_consistency_p99", "never_consistent", "messages_per_txn"]
    columns += [f"{column}_{stat}" for column in means for stat in ("mean", "max")]
    return pd.DataFrame(rows, columns=columns)


def paired_differences(
    summary: pd.DataFrame,
    protocols: Sequence[str] | None = None,
    metrics: Sequence[str] = PAIRED_METRICS,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per pair of protocols (A, B) and per metric: A minus B, paired by seed.

    ``summary`` has one row per (scenario, protocol, seed), as
    ``summary.parquet``. Pairs are taken in the order of ``protocols``
    (default: the order the protocols first appear in ``summary``): for
    protocols P1, P2, P3 the pairs are (P1, P2), (P1, P3), (P2, P3).

    Columns: ``protocol_a``, ``protocol_b``, ``metric``, ``mean`` (the mean
    over seeds of ``metric(A) - metric(B)``), ``ci_low``, ``ci_high`` (its
    ``confidence`` interval), ``seeds`` (how many seeds both ran),
    ``a_worse``, ``a_better``, ``equal`` (how many of those seeds A did worse,
    better or the same; for rates of bad outcomes, latencies and messages,
    higher is worse) and ``note`` (why an interval is missing, or empty).

    Why paired by seed: with the same seed every protocol meets exactly the
    same arrivals and faults, and each transaction the same fate at each
    participant and the same losses of its commands and their answers (the
    draws are keyed by transaction, step, attempt and operation: see
    :mod:`sim.world.fates`). A seed with a nasty crash is bad for everyone;
    differencing A and B within each seed removes that shared variation and
    leaves only how the protocols react to the same trouble. The seeds are
    the independent replications, so the interval is the paired t-interval
    over the per-seed differences d_1..d_n::

        mean(d) +/- t(1 - alpha/2, n - 1) * sd(d) / sqrt(n)

    (``sd`` with n - 1 degrees of freedom). This is valid for a handful of
    seeds without assuming each transaction is an independent trial, which
    pooled binomial intervals do. With one seed there is no spread to
    estimate, so the interval is NaN (``note`` says so); seeds where either
    rate is NaN (no transactions) are left out.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    order = list(protocols) if protocols is not None else _protocols(summary, None)
    order = list(dict.fromkeys(order))
    key = [c for c in ("scenario", "seed") if c in summary.columns]
    if "seed" not in key:
        raise ValueError("summary needs a 'seed' column to pair protocols by seed")
    for metric in metrics:
        if metric not in summary.columns:
            raise ValueError(f"summary has no column {metric!r}")
    duplicated = summary.duplicated(subset=["protocol", *key])
    if duplicated.any():
        first = summary[duplicated].iloc[0]
        raise ValueError(f"summary has more than one row for protocol {first['protocol']!r}, seed {first['seed']}")
    rows: list[dict[str, Any]] = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            left = summary[summary["protocol"] == a].set_index(key)
            right = summary[summary["protocol"] == b].set_index(key)
            for metric in metrics:
                a_values = left[metric].rename("a")
                both = pd.concat([a_values, right[metric].rename("b")], axis=1, join="inner").dropna()
                diff = (both["a"] - both["b"]).to_numpy(dtype=float)
                rows.append({"protocol_a": a, "protocol_b": b, "metric": metric, **_paired(diff, metric, confidence)})
    columns = ["protocol_a", "protocol_b", "metric", "mean", "ci_low", "ci_high", "seeds"]
    columns += ["a_worse", "a_better", "equal", "note"]
    return pd.DataFrame(rows, columns=columns)


def _paired(diff: np.ndarray, metric: str, confidence: float) -> dict[str, Any]:
    n = len(diff)
    same = np.isclose(diff, 0.0, rtol=0.0, atol=1e-12)
    higher = int(np.sum((diff > 0) & ~same))
    lower = int(np.sum((diff < 0) & ~same))
    worse, better = (lower, higher) if metric in HIGHER_IS_BETTER else (higher, lower)
    out: dict[str, Any] = {"seeds": n, "a_worse": worse, "a_better": better, "equal": int(np.sum(same))}
    if n == 0:
        return {**out, "mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "note": "no seed in common"}
    mean = float(diff.mean())
    if n == 1:
        return {**out, "mean": mean, "ci_low": math.nan, "ci_high": math.nan, "note": "1 seed: no interval"}
    sd = float(diff.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):
        sd = 0.0  # the same difference on every seed, up to rounding
    half = _t_quantile((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    note = "same difference on every seed" if sd == 0 else ""
    return {**out, "mean": mean, "ci_low": mean - half, "ci_high": mean + half, "note": note}


def format_points(x: float) -> str:
    """A difference of rates in percentage points, signed, as ``sagasim
    compare`` prints it: ``+1.25``, ``-0.0031``, ``0``; ``-`` for NaN."""
    if x != x:
        return "-"
    points = x * 100
    if abs(points) < 5e-5:
        return "0"
    return f"{points:+.2f}" if abs(points) >= 0.01 else f"{points:+.4f}"


def _t_quantile(q: float, dof: int) -> float:
    return float(stats.t.ppf(q, dof))


# ------------------------------------------------------------------ replay


def worst_transaction(result: Any) -> pd.Series | None:
    """The transaction most worth replaying, or None when all are fine.

    An ``inconsistent`` one first: the one with the most checker reasons,
    ties broken by the earliest start (then protocol order, seed, id). Else
    the ``stuck`` one that started first. ``result`` is a Result, a result
    folder's path, or a transactions DataFrame.
    """
    txns = result if isinstance(result, pd.DataFrame) else _frames(result)[0]
    if txns.empty:
        return None
    rank = {p: i for i, p in enumerate(dict.fromkeys(txns["protocol"]))}
    frame = txns.assign(
        _reasons=txns["reasons"].map(lambda r: len(listed(r))) if "reasons" in txns.columns else 0,
        _protocol=txns["protocol"].map(rank),
    )
    tiebreak = ["started_at", "_protocol", "seed", "txn_id"]
    bad = frame[frame["outcome"] == "inconsistent"]
    if len(bad):
        pick = bad.sort_values(["_reasons", *tiebreak], ascending=[False, True, True, True, True], kind="stable")
    else:
        pick = frame[frame["outcome"] == "stuck"].sort_values(tiebreak, kind="stable")
    if pick.empty:
        return None
    return txns.loc[pick.index[0]]


def reproduce_command(
    scenario_path: str | Path,
    overrides: Mapping[str, object] | Iterable[str] | Iterable[tuple[str, object]] | None,
    row: Mapping[str, Any] | pd.Series,
) -> str:
    """``sagasim run PATH --seed N --protocol P --trace`` plus the same ``--set``
    overrides, shell-quoted: the run that holds ``row``'s transaction, traced.

    ``overrides`` are the ``--set`` strings as given (``["run.drain=60"]``),
    or a ``{dotted.key: value}`` mapping, whose values are written as TOML.
    """
    argv = ["sagasim", "run", str(scenario_path), "--seed", str(int(row["seed"])), "--protocol", str(row["protocol"])]
    argv.append("--trace")
    for item in override_strings(overrides):
        argv += ["--set", item]
    return shlex.join(argv)


def override_strings(overrides: Any) -> list[str]:
    """Overrides as ``--set`` arguments: strings kept, ``{key: value}`` and pairs written as TOML."""
    if not overrides:
        return []
    if isinstance(overrides, Mapping):
        return [f"{key}={_toml(value)}" for key, value in overrides.items()]
    out = []
    for item in overrides:
        if isinstance(item, str):
            out.append(item)
        else:
            key, value = item
            out.append(f"{key}={_toml(value)}")
    return out


def _toml(value: object) -> str:
    """A value in TOML's inline spelling, as ``--set`` parses it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(str(k))} = {_toml(v)}" for k, v in value.items())
        return f"{{ {items} }}" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as a TOML value")


def _toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else json.dumps(key)


# ------------------------------------------------------------------ helpers


def _frames(result: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(transactions, summary) of a Result, a result-like object or a result folder."""
    if isinstance(result, (str, Path)):
        folder = Path(result)
        if not (folder / "run.json").exists():
            raise SagasimError(f"{folder}: not a result folder (no run.json)")
        from sim.dataset import load  # checks the schema version, reads list columns as lists

        dataset = load(folder)
        return dataset.transactions, dataset.summary
    return result.transactions, result.summary


def _protocols(summary: pd.DataFrame, txns: pd.DataFrame | None) -> list[str]:
    """Protocols in the order they were run (first appearance)."""
    names: list[str] = []
    if "protocol" in summary.columns:
        names += list(summary["protocol"])
    if txns is not None:
        names += list(txns["protocol"])
    return list(dict.fromkeys(str(n) for n in names))


def time_to_consistency(txns: pd.DataFrame) -> pd.Series:
    """Each transaction's time to consistency, NaN for those that never
    became consistent. ``stuck`` and ``inconsistent`` ones are masked here
    too: result folders written before that rule gave a stuck transaction
    that had applied nothing a time of 0."""
    if "time_to_consistency" in txns.columns:
        ttc = txns["time_to_consistency"]
    else:
        ttc = txns["consistent_at"] - txns["started_at"]
    return ttc.where(~txns["outcome"].isin(["stuck", "inconsistent"]))


def _quantile(values: pd.Series, q: float) -> float:
    return float(values.quantile(q)) if len(values) else math.nan
