"""Helpers for regression tests that assert eventual consistency.

Use them in your own pytest suite, the way sagasim's tests do::

    from sim.testing import run_scenario, assert_eventually_consistent

    def test_checkout_survives_a_flaky_payment_service():
        result = run_scenario("scenarios/checkout.toml", seeds=range(1, 6),
                              overrides={"run.duration": 60})
        assert_eventually_consistent(result)

Failures raise ``AssertionError`` with the first offending transactions,
their reasons, and the command that reproduces each with a trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from sim import compare
from sim.api import run
from sim.metrics import wilson
from sim.names import joined
from sim.result import Result
from sim.scenario import Scenario

#: How many offending transactions a failure message lists.
SHOWN = 5


def run_scenario(
    path: str | Path | Scenario,
    seeds: int | Iterable[int] | None = None,
    overrides: Mapping[str, object] | Iterable[str] | None = None,
    protocols: str | Iterable[str] | None = None,
) -> Result:
    """Run a scenario file (every protocol and seed it names, unless given).

    The result remembers where it came from, so failure messages can print
    the command that reproduces a transaction.
    """
    return run(path, protocol=protocols, seed=seeds, overrides=overrides)


def reproduce_command(result: Result, row: pd.Series) -> str:
    """The ``sagasim run`` command that replays ``row``'s run with a trace."""
    return compare.reproduce_command(result.source or f"<{result.scenario.name}.toml>", result.overrides, row)


def describe(result: Result, rows: pd.DataFrame) -> str:
    """The first offending transactions, one per line, with how to replay them."""
    lines = []
    for _, row in rows.head(SHOWN).iterrows():
        why = joined(row["reasons"]) or f"coordinator still {row['coordinator']}"
        lines.append(
            f"  - {row['outcome']}: transaction {row['txn_id']} of {row['run_id']} "
            f"(started at {row['started_at']:.3f} s): {why}\n"
            f"    reproduce: {reproduce_command(result, row)}"
        )
    if len(rows) > SHOWN:
        lines.append(f"  ... and {len(rows) - SHOWN} more")
    return "\n".join(lines)


def assert_eventually_consistent(result: Result) -> None:
    """No ``inconsistent`` and no ``stuck`` transaction after the drain."""
    txns = result.transactions
    bad = txns[txns["outcome"].isin(["inconsistent", "stuck"])]
    if len(bad):
        counts = bad["outcome"].value_counts().to_dict()
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        raise AssertionError(
            f"{result.scenario.name}: not eventually consistent: {summary} of {len(txns)} transactions\n"
            + describe(result, bad)
        )


def assert_expected(result: Result) -> None:
    """Check the scenario's ``[expect]`` table, per protocol, pooled over seeds.

    A rate bound is met when the observed rate lies within it; with only a
    sample of transactions, also say the 95% Wilson interval in the message.
    """
    checks = result.scenario.expect.checks()
    if not checks:
        raise AssertionError(f"{result.scenario.name}: the scenario has no [expect] table")
    problems = []
    txns = result.transactions
    for protocol, group in txns.groupby("protocol", sort=False):
        n = len(group)
        for outcome, rule in checks.items():
            rows = group[group["outcome"] == outcome]
            k = len(rows)
            if rule == "none" and k:
                problems.append(
                    f"{protocol}: expected no {outcome} transaction, got {k} of {n}\n" + describe(result, rows)
                )
            elif rule == "some" and not k:
                problems.append(f"{protocol}: expected some {outcome} transactions, got none of {n}")
            elif isinstance(rule, dict):
                rate = k / n if n else 0.0
                if not rule["min"] <= rate <= rule["max"]:
                    low, high = wilson(k, n)
                    problems.append(
                        f"{protocol}: {outcome} rate {rate:.4f} (95% interval {low:.4f}-{high:.4f}, {k} of {n}) "
                        f"outside the expected [{rule['min']}, {rule['max']}]"
                    )
    if problems:
        raise AssertionError(f"{result.scenario.name}: expectation not met:\n" + "\n".join(problems))


def __getattr__(name: str) -> object:
    # The Hypothesis state machine needs Hypothesis (the "testing" extra):
    # imported only when asked for.
    if name == "SagaMachine":
        from sim.machine import SagaMachine

        return SagaMachine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
