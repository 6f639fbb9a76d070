"""How much work one command may start: refused up front, with the estimate
and the limit, when it is more than a machine can finish by accident.

Every limit can be raised on purpose (see ``docs/errors.md``): the per-run
limits in a scenario's ``[limits]`` table, the number of runs with
``--max-runs`` (``max_runs=`` in the Python API).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from sim.errors import SagasimError

if TYPE_CHECKING:
    from sim.runner import Model
    from sim.scenario import Scenario

#: Runs (grid points x protocols x seeds) one command may start unless ``--max-runs`` raises it.
MAX_RUNS = 10_000


def check_runs(count: int, limit: int, made_of: str) -> None:
    """Refuse ``count`` runs above ``limit``; ``made_of`` says how they multiply up."""
    if limit < 1:
        raise SagasimError(f"--max-runs must be >= 1, got {limit}")
    if count > limit:
        raise SagasimError(
            f"{made_of} = {count:,} runs, above the limit of {limit:,} runs per command; "
            "use fewer seeds, protocols or grid values, or raise the limit on purpose with --max-runs"
        )


#: Bytes of disk a written row of ``transactions.parquet`` may take, at most
#: (compressed rows of the reference scenario take about 20; a row with long
#: reasons takes more): what a streamed run needs free before it starts.
ROW_BYTES = 200


def _arrivals(s: Scenario) -> float:
    from sim.scenario import estimate_work

    return estimate_work(s).arrivals


def check_in_memory(s: Scenario, trace: bool) -> None:
    """Refuse a run judged at the end (every transaction's records in
    memory until then) above ``limits.in_memory_arrivals``, and a run that
    traces every event above ``limits.traced_arrivals``."""
    arrivals = _arrivals(s)
    if arrivals > s.limits.in_memory_arrivals:
        raise SagasimError(
            f"about {arrivals:.3g} transactions per run, above limits.in_memory_arrivals = "
            f"{s.limits.in_memory_arrivals:,} for a run judged at the end (it keeps every transaction in memory, "
            "about 2 KB each); run it with --stream (sagasim run), which keeps only the transactions in flight, "
            "or raise limits.in_memory_arrivals on purpose"
        )
    check_traced(s, trace)


def check_traced(s: Scenario, trace: bool) -> None:
    """Refuse a run tracing every event above ``limits.traced_arrivals``."""
    arrivals = _arrivals(s)
    if (trace or s.run.trace) and arrivals > s.limits.traced_arrivals:
        raise SagasimError(
            f"--trace (or run.trace): about {arrivals:.3g} transactions per run, above limits.traced_arrivals = "
            f"{s.limits.traced_arrivals:,}; the whole trace is kept in memory (a few KB per transaction). Trace "
            "chosen transactions instead (--trace-txn, --trace-violations, --trace-sample), or raise "
            "limits.traced_arrivals on purpose"
        )


def check_disk(s: Scenario, target: Path) -> None:
    """Refuse a streamed run whose transactions table cannot fit on the disk of ``target``."""
    if s.run.keep != "all":
        return  # violations and samples: a small share of the rows
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    need = _arrivals(s) * ROW_BYTES
    if need > free:
        raise SagasimError(
            f'--out {target}: run.keep = "all" writes about {_arrivals(s):.3g} rows, up to {need / 1e9:.1f} GB, '
            f'and only {free / 1e9:.1f} GB is free there; keep fewer rows (--set run.keep="violations" or a '
            "fraction), or choose another --out"
        )


def check_settles(model: Model) -> None:
    """Refuse a streamed run of a protocol judged at the end (it does not
    declare ``settles``: :mod:`sim.world.settle`) above ``limits.in_memory_arrivals``.
    Records with values ([isolation]) are judged as the run goes too
    (:class:`sim.isolation.FollowedHistory`): they refuse nothing here."""
    s = model.scenario
    arrivals = _arrivals(s)
    if not model.settles and arrivals > s.limits.in_memory_arrivals:
        # (a protocol that settles only in some settings says why not in this one)
        why = getattr(model.protocol, "judged_at_end_because", "") or "its pending work is not counted yet"
        raise SagasimError(
            f"--stream --protocol {model.protocol_name}: about {arrivals:.3g} transactions per run, above "
            f"limits.in_memory_arrivals = {s.limits.in_memory_arrivals:,}; this protocol's transactions are still "
            f"judged at the end of the run ({why}), so they all stay in memory. "
            "Run fewer transactions, or raise limits.in_memory_arrivals on purpose"
        )
