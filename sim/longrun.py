"""``sagasim run --stream``: one long run judged as it goes, with its progress.

The progress bar (rich) shows the simulated time done, the transactions
simulated and their rate per wall second, the violations so far (inconsistent
or stuck), the wall time elapsed and an estimate of the time left.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sim.errors import SagasimError
from sim.limits import check_disk, check_settles, check_traced
from sim.runner import Model
from sim.scenario import Scenario, parse_overrides
from sim.stream import Streamer, TraceChoice, run_to_folder

__all__ = ["TraceChoice", "run_streamed"]

_err = Console(stderr=True)


def run_streamed(
    scenario: Scenario,
    protocols: list[str],
    seeds: list[int],
    target: Path,
    trace: bool,
    choice: TraceChoice,
    quiet: bool,
    overrides: list[str],
) -> dict[str, Any]:
    """Run one (protocol, seed) of ``scenario`` streamed into ``target``;
    returns its summary row. Refuses, before anything runs, more than one
    run, a whole trace above ``limits.traced_arrivals`` and a table the disk
    cannot hold."""
    if len(protocols) != 1 or len(seeds) != 1:
        raise SagasimError(
            f"--stream: runs one protocol and one seed, got {len(protocols)} protocols x {len(seeds)} seeds; "
            "choose them with --protocol and --seed"
        )
    if trace and choice.any:
        raise SagasimError(
            "--trace records every event; --trace-txn, --trace-violations and --trace-sample choose "
            "some: give one or the other"
        )
    check_traced(scenario, trace)
    check_disk(scenario, target)
    model = Model(scenario, protocols[0], seeds[0], trace or None)
    check_settles(model)
    end = model.end
    show = not quiet and _err.is_terminal
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn(
            "{task.fields[txns]:>12,} transactions  {task.fields[rate]:>9,.0f}/s  "
            "[red]{task.fields[violations]:,} violations[/red]"
        ),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=_err,
        transient=True,
        disable=not show,
    )
    started = time.perf_counter()
    with progress:
        task = progress.add_task(f"{protocols[0]} seed {seeds[0]}", total=end, txns=0, rate=0.0, violations=0)

        def tick(streamer: Streamer) -> None:
            simulated = streamer.model.world.new_transaction_count()
            wall = time.perf_counter() - started
            progress.update(
                task,
                completed=streamer.model.world.now,
                txns=simulated,
                rate=simulated / wall if wall > 0 else 0.0,
                violations=streamer.violations,
            )

        run_to_folder(model, target, progress=tick, trace=choice, overrides=dict(parse_overrides(overrides)))
    import pandas as pd

    summary = pd.read_parquet(target / "summary.parquet").iloc[0].to_dict()
    if not quiet:
        _print_summary(summary, time.perf_counter() - started)
    _err.print(f"results written to [bold]{escape(str(target))}[/bold]", soft_wrap=True)
    return summary


def _print_summary(row: dict[str, Any], wall: float) -> None:
    out = Console()
    n = int(row["transactions"])
    out.print(
        f"[bold]{row['protocol']}[/bold]: {escape(row['scenario'])} (seed {row['seed']}; {n:,} transactions "
        f"in {wall:,.0f} s)"
    )
    parts = [
        f"{o} {int(row[o]):,} ({row[o + '_rate']:.4%})"
        for o in ("committed", "compensated", "aborted", "inconsistent", "stuck")
        if row[o]
    ]
    out.print("  ".join(parts))
    out.print(
        f"latency p50 {row['latency_p50']:.4g} s  p99 {row['latency_p99']:.4g} s  "
        f"messages/txn {row['messages_per_txn']:.2f}"
    )
