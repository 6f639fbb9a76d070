"""The ``sagasim`` command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# Only light modules at the top: `sagasim --help` and `--version` must not wait
# for pandas, scipy or pydantic (seconds on a cold start); each command imports
# what it runs on.
from sim.errors import SagasimError
from sim.files import folder_problem
from sim.limits import MAX_RUNS, check_in_memory, check_runs
from sim.names import OUTCOMES, PROTOCOLS, joined, listed
from sim.protocols import registry
from sim.seeds import SEED_LIMIT, SEEDS_SPELLING, format_seeds, parse_seeds

if TYPE_CHECKING:
    import pandas as pd

    from sim.result import Result
    from sim.runner import RunOutput
    from sim.scenario import Scenario

EXIT_OK = 0
EXIT_FAIL_ON = 1
EXIT_BAD_INPUT = 2

# No emoji codes: user text such as --txn a:b:c must print as written.
_out = Console(highlight=False, emoji=False)
_err = Console(stderr=True, highlight=False, emoji=False)

_RUN_EXAMPLES = """
\b
Examples:
  sagasim run scenarios/order-flaky-payment.toml
  sagasim run scenarios/naive-orchestrator.toml --seed 7 --trace
  sagasim run scenarios/robust-orchestrator.toml --set run.duration=60 \\
      --set participants.payment.business_failure=0.1 --fail-on inconsistent,stuck
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sagasim", prog_name="sagasim")
def cli() -> None:
    """Simulate distributed transactions (sagas) under failures, deterministically.

    A scenario file (TOML) describes the services, the transaction, the
    workload and the faults; see docs/scenarios.md. Each run is judged from
    the effects participants actually applied: committed, compensated,
    inconsistent or stuck.

    \b
    Examples:
      sagasim run scenarios/order-flaky-payment.toml
      sagasim validate scenarios/*.toml
    """


# Options shared by `run` and `compare`.
_protocol_option = click.option(
    "--protocol",
    "-p",
    "protocols",
    multiple=True,
    metavar="NAME",
    help=f"Protocol to run (repeatable; default: the scenario's run.protocols). Known: {', '.join(PROTOCOLS)}.",
)
_set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a scenario value by its dotted path, e.g. participants.payment.workers=8 "
    "(value parsed as TOML; validated like the file). Repeatable.",
)


def _out_folder(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--out/-o``: the folder a command writes, ``what`` says which and where by default."""
    return click.option("--out", "-o", type=click.Path(path_type=Path), default=None, help=what)


_out_option = _out_folder("Result folder to write (must not exist). Default: results/<scenario>/<timestamp>.")
_fail_on_option = click.option(
    "--fail-on",
    "fail_on",
    default="",
    metavar="OUTCOMES",
    help="Exit with status 1 if any transaction ends with one of these comma-separated outcomes "
    f"({', '.join(OUTCOMES)}), e.g. inconsistent,stuck. For CI.",
)
_quiet_option = click.option("--quiet", "-q", is_flag=True, help="Print no tables and no progress bar.")
_max_runs_option = click.option(
    "--max-runs",
    "max_runs",
    type=click.IntRange(min=1),
    default=MAX_RUNS,
    show_default=True,
    metavar="N",
    help="Refuse to start more runs than this (protocols x seeds, x grid points for a sweep); raise it on purpose.",
)


def _seed_options(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--seed N`` (repeatable) and ``--seeds SPEC`` (repeatable), the same on
    ``run``, ``compare`` and ``sweep``; ``default`` says where the seeds come
    from when neither is given. Read by :func:`_chosen_seeds` once
    ``--max-runs`` is known."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--seeds",
            "-s",
            "seeds",
            multiple=True,
            metavar="SEEDS",
            help=f"Seeds to run: {SEEDS_SPELLING}. Repeatable, and combines with --seed: every seed "
            f"named by either runs once, those of --seeds first, then those of --seed. Default: {default}.",
        )(command)
        return click.option(
            "--seed",
            "seed",
            multiple=True,
            type=click.IntRange(min=0, max=SEED_LIMIT - 1),
            metavar="N",
            help="One seed to run (repeatable); --seed 3 --seed 7 is --seeds 3,7.",
        )(command)

    return decorate


def _chosen_seeds(seed: tuple[int, ...], seeds: tuple[str, ...], max_runs: int) -> list[int] | None:
    """The seeds of ``--seeds`` then ``--seed``, each once, in order; None when
    neither was given. A spelling that names more than ``max_runs`` seeds is
    refused before any list is built."""
    if not seed and not seeds:
        return None
    chosen: list[int] = []
    for text in seeds:
        try:
            chosen.extend(parse_seeds(text, limit=max_runs))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--seeds'") from None
    chosen.extend(seed)
    return list(dict.fromkeys(chosen))


@cli.command("run", epilog=_RUN_EXAMPLES)
@click.argument("scenario", type=click.Path(path_type=Path))
@_protocol_option
@_seed_options("the scenario's run.seeds")
@_set_option
@_out_option
@click.option("--trace", is_flag=True, help="Record every event into events.parquet (slower).")
@click.option(
    "--stream",
    is_flag=True,
    help="For long runs: judge each transaction once it is settled and write its row as the run goes, "
    "in memory that grows with the transactions in flight (one protocol and one seed; a protocol that does not "
    "settle its transactions early is judged at the end: see docs/protocols.md).",
)
@click.option(
    "--trace-txn",
    "trace_txns",
    type=click.IntRange(min=0),
    multiple=True,
    metavar="ID",
    help="Trace this transaction (repeatable); implies --stream.",
)
@click.option(
    "--trace-violations", is_flag=True, help="Trace the inconsistent and stuck transactions; implies --stream."
)
@click.option(
    "--trace-sample",
    type=click.FloatRange(min=0.0, max=1.0, min_open=True),
    default=None,
    metavar="FRACTION",
    help="Trace this fraction of the other transactions (drawn per transaction); implies --stream.",
)
@_fail_on_option
@_quiet_option
@_max_runs_option
def run_command(
    scenario: Path,
    protocols: tuple[str, ...],
    seed: tuple[int, ...],
    seeds: tuple[str, ...],
    overrides: tuple[str, ...],
    out: Path | None,
    trace: bool,
    stream: bool,
    trace_txns: tuple[int, ...],
    trace_violations: bool,
    trace_sample: float | None,
    fail_on: str,
    quiet: bool,
    max_runs: int,
) -> None:
    """Run SCENARIO for each protocol and seed, print a table per protocol and
    write the result folder (transactions, summary, faults, events, run.json).

    With --stream (for runs of millions of transactions) the run keeps only
    the transactions in flight in memory; [run] keep in the scenario chooses
    the rows written ("all", "violations" or a fraction), and --trace-txn,
    --trace-violations and --trace-sample the transactions traced so that
    `sagasim explain` can tell their story. See docs/results.md.

    Exit status: 0 when done, 1 when --fail-on matched, 2 on bad input.
    """
    from sim.scenario import load_scenario

    failing = _parse_fail_on(fail_on)
    given_seeds = _chosen_seeds(seed, seeds, max_runs)
    loaded = load_scenario(scenario, list(overrides))
    chosen = _choose_protocols(loaded, protocols)
    chosen_seeds = given_seeds or list(loaded.run.seeds)
    check_runs(len(chosen) * len(chosen_seeds), max_runs, f"{len(chosen)} protocols x {len(chosen_seeds)} seeds")
    if stream or trace_txns or trace_violations or trace_sample is not None:
        from sim.longrun import TraceChoice, run_streamed

        choice = TraceChoice(frozenset(trace_txns), trace_violations, trace_sample or 0.0)
        target = _target_folder(loaded, out)
        summary = run_streamed(loaded, chosen, chosen_seeds, target, trace, choice, quiet, list(overrides))
        _exit_if_streamed_fail_on(summary, failing)
        return
    check_in_memory(loaded, trace)
    target = _target_folder(loaded, out)

    result = _run_with_progress(loaded, chosen, chosen_seeds, trace, list(overrides), quiet)
    result.save(target)
    if not quiet:
        for name in chosen:
            _print_protocol_table(result, name)
    _err.print(f"results written to [bold]{escape(str(target))}[/bold]", soft_wrap=True)
    _exit_if_fail_on(result, failing)


def _exit_if_streamed_fail_on(summary: dict[str, Any], failing: list[str]) -> None:
    """Exit with status 1 when --fail-on matches the counts of a streamed run."""
    counts = {o: int(summary[o]) for o in failing if int(summary[o])}
    if counts:
        detail = ", ".join(f"{k} {o}" for o, k in counts.items())
        _err.print(f"[red]--fail-on {','.join(failing)}: {detail}[/red] (see transactions.parquet)", soft_wrap=True)
        sys.exit(EXIT_FAIL_ON)


def _choose_protocols(scenario: Scenario, protocols: tuple[str, ...]) -> list[str]:
    """The --protocol values (default: the scenario's run.protocols), checked, without repeats."""
    chosen = list(protocols) or list(scenario.run.protocols)
    for name in chosen:
        if name not in PROTOCOLS:
            raise click.BadParameter(f"{name!r}; allowed: {', '.join(PROTOCOLS)}", param_hint="'--protocol'")
    return list(dict.fromkeys(chosen))


def _target_folder(scenario: Scenario, out: Path | None) -> Path:
    """The result folder to write, checked before anything runs: a run must
    not be lost for want of a place to save it."""
    target = out if out is not None else _default_out(scenario)
    if target.exists():
        raise SagasimError(f"--out {target}: already exists; choose another folder or remove it")
    problem = folder_problem(target)
    if problem:
        raise SagasimError(f"--out {target}: {problem}; choose another --out")
    return target


def _exit_if_fail_on(result: Result, failing: list[str], hint: str | None = None) -> None:
    """Exit with status 1, naming the first offender (and ``hint``), when --fail-on matches."""
    if not failing:
        return
    hits = result.transactions[result.transactions["outcome"].isin(failing)]
    if len(hits):
        counts = hits["outcome"].value_counts().to_dict()
        detail = ", ".join(f"{counts[o]} {o}" for o in failing if o in counts)
        first = hits.iloc[0]
        _err.print(
            f"[red]--fail-on {','.join(failing)}: {detail}[/red]; first: transaction {first['txn_id']} "
            f"of {first['run_id']} ({escape(joined(first['reasons']) or first['outcome'])})",
            soft_wrap=True,
        )
        if hint:
            _err.print(escape(hint), soft_wrap=True)
        sys.exit(EXIT_FAIL_ON)


@cli.command("validate")
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override values before validating.")
def validate_command(scenarios: tuple[Path, ...], overrides: tuple[str, ...]) -> None:
    """Check scenario files without running them: every problem is reported
    with its file, field path, value and what is allowed.

    \b
    Examples:
      sagasim validate scenarios/*.toml
      sagasim validate my.toml --set participants.payment.workers=0

    Exit status: 0 when every file is valid, 2 otherwise.
    """
    from sim.scenario import load_scenario

    bad = 0
    for path in scenarios:
        try:
            s = load_scenario(path, list(overrides))
        except SagasimError as exc:
            bad += 1
            _err.print(f"[red]invalid[/red] {escape(str(exc))}", soft_wrap=True)
            continue
        for warning in s.warnings():
            _err.print(f"[yellow]warning[/yellow] {escape(str(path))}: {escape(warning)}", soft_wrap=True)
        steps = " -> ".join(step.name for step in s.transaction.steps)
        _out.print(
            f"[green]ok[/green] {path}: {s.name}, {len(s.participants)} participants, "
            f"transaction {s.workload.transaction} ({steps}), protocols {', '.join(s.run.protocols)}, "
            f"seeds {', '.join(map(str, s.run.seeds))}",
            soft_wrap=True,
        )
    if bad:
        sys.exit(EXIT_BAD_INPUT)


_LIST_EXAMPLES = """
\b
Examples:
  sagasim list
  sagasim list my-scenarios/
"""


@cli.command("list", epilog=_LIST_EXAMPLES)
@click.argument("directory", required=False, default="scenarios", type=click.Path(path_type=Path))
def list_command(directory: Path) -> None:
    """List the scenario files (*.toml) in DIRECTORY (default: scenarios), one
    line each, sorted by file name: the file and the question it answers (its
    description, else the "# Question:" of its header comment). A file that
    does not validate is listed as "invalid:" with the first line of the
    problem; `sagasim validate FILE` shows all of it.

    Exit status: 0 when every file is valid, 2 when one is invalid or
    DIRECTORY does not exist.
    """
    from sim.scenario import load_scenario

    if not directory.exists():
        default = directory == Path("scenarios")
        hint = "; run sagasim list from the project folder, or name a directory" if default else ""
        raise SagasimError(f"{directory}: no such directory{hint}")
    if not directory.is_dir():
        raise SagasimError(f"{directory}: not a directory")
    files = sorted(p for p in directory.glob("*.toml") if p.is_file())
    if not files:
        _err.print(f"no scenario files (*.toml) in {escape(str(directory))}", soft_wrap=True)
        return
    width = max(len(p.name) for p in files)
    bad = 0
    for path in files:
        try:
            scenario = load_scenario(path)
        except SagasimError as exc:
            bad += 1
            problems = getattr(exc, "problems", None) or [str(exc).splitlines()[0].removeprefix(f"{path}: ")]
            first = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            _out.print(f"{path.name:<{width}}  invalid: {first}", markup=False, soft_wrap=True)
            continue
        question = " ".join(scenario.description.split()) or _header_question(path) or "-"
        _out.print(f"{path.name:<{width}}  {question}", markup=False, soft_wrap=True)
    if bad:
        sys.exit(EXIT_BAD_INPUT)


def _header_question(path: Path) -> str:
    """The "# Question:" paragraph of a scenario file's leading comment, on one line."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if words:
            if not text or text.split(":", 1)[0] in ("What it shows", "Expected"):
                break
            words.append(text)
        elif text.startswith("Question:"):
            words.append(text.removeprefix("Question:").strip())
    return " ".join(" ".join(words).split())


_COMPARE_EXAMPLES = """
\b
Examples:
  sagasim compare scenarios/naive-orchestrator.toml --seeds 1..30
  sagasim compare scenarios/robust-orchestrator.toml --seeds 1..10,20 --fail-on inconsistent,stuck
  sagasim compare my.toml --protocol orchestration --set run.duration=60 --quiet
"""


@cli.command("compare", epilog=_COMPARE_EXAMPLES)
@click.argument("scenario", type=click.Path(path_type=Path))
@_seed_options("the scenario's run.seeds")
@_protocol_option
@_set_option
@_out_option
@_fail_on_option
@_quiet_option
@_max_runs_option
def compare_command(
    scenario: Path,
    seed: tuple[int, ...],
    seeds: tuple[str, ...],
    protocols: tuple[str, ...],
    overrides: tuple[str, ...],
    out: Path | None,
    fail_on: str,
    quiet: bool,
    max_runs: int,
) -> None:
    """Run every protocol of SCENARIO on the same seeds (so the same arrivals
    and faults) and print one comparison: per protocol, each outcome's rate
    with its 95% interval, latency p50/p99, time to consistency p99, messages
    per transaction (and, for the protocols that lock, blocked time: mean and
    max); per pair of protocols, the
    difference in inconsistent and stuck rates, paired by seed, with its 95%
    t-interval. When a transaction ended inconsistent or stuck, prints the
    `sagasim run ... --trace` command that replays the worst one.

    Protocols default to the scenario's run.protocols: list them there, or
    repeat --protocol, to compare several. Writes the same result folder as
    `run`.

    Exit status: 0 when done, 1 when --fail-on matched, 2 on bad input.
    """
    from sim.compare import reproduce_command, worst_transaction
    from sim.scenario import load_scenario

    failing = _parse_fail_on(fail_on)
    given_seeds = _chosen_seeds(seed, seeds, max_runs)
    loaded = load_scenario(scenario, list(overrides))
    chosen = _choose_protocols(loaded, protocols)
    chosen_seeds = given_seeds or list(loaded.run.seeds)
    check_runs(len(chosen) * len(chosen_seeds), max_runs, f"{len(chosen)} protocols x {len(chosen_seeds)} seeds")
    target = _target_folder(loaded, out)

    check_in_memory(loaded, False)
    result = _run_with_progress(loaded, chosen, chosen_seeds, False, list(overrides), quiet)
    result.save(target)
    worst = worst_transaction(result)
    command = reproduce_command(scenario, overrides, worst) if worst is not None else None
    if not quiet:
        _print_comparison(result, chosen, chosen_seeds, worst, command)
    _err.print(f"results written to [bold]{escape(str(target))}[/bold]", soft_wrap=True)
    _exit_if_fail_on(result, failing, f"replay the worst transaction: {command}" if command else None)


_SWEEP_EXAMPLES = """
\b
Examples:
  sagasim sweep sweeps/payment-failure.toml
  sagasim sweep sweeps/payment-failure.toml --seeds 1..2 --set run.duration=30 --workers 2
  sagasim sweep sweeps/payment-failure.toml --out results/sweeps/payment-failure --resume
  sagasim sweep sweeps/key-skew.toml --scheduler tcp://10.0.0.5:8786
"""


@cli.command("sweep", epilog=_SWEEP_EXAMPLES)
@click.argument("sweep_file", metavar="SWEEP", type=click.Path(path_type=Path))
@_seed_options("the sweep file's seeds")
@_protocol_option
@_set_option
@_out_folder(
    "Dataset folder to write (must not exist or be empty, unless --resume). Default: results/sweeps/<sweep name>."
)
@click.option(
    "--workers",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Local processes to run on (default: all cores; 1 runs everything in this process).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run on a Dask distributed cluster: the scheduler's address, e.g. tcp://10.0.0.5:8786. "
    "Every worker needs this version of sagasim installed.",
)
@click.option("--resume", is_flag=True, help="Keep the runs already saved in --out and run only the missing ones.")
@_quiet_option
@_max_runs_option
def sweep_command(
    sweep_file: Path,
    seed: tuple[int, ...],
    seeds: tuple[str, ...],
    protocols: tuple[str, ...],
    overrides: tuple[str, ...],
    out: Path | None,
    workers: int | None,
    scheduler: str | None,
    resume: bool,
    quiet: bool,
    max_runs: int,
) -> None:
    """Run SWEEP: a scenario across a grid of parameter values, seeds and
    protocols, in parallel, into one dataset (see docs/sweeps.md).

    A sweep file names the scenario (relative to the sweep file), the seeds,
    the protocols, fixed overrides in [set] and the [grid]: a list of values
    per dotted key (the paths of --set), or named cases that set several keys
    at once. Every combination of grid values is a point; every point runs
    every protocol on every seed. Each point is validated before anything
    runs.

    The dataset (summary.parquet, transactions/ and faults/ partitioned by
    protocol, sweep.json) is complete only when sweep.json is written: an
    interrupted sweep, or one where a run failed, keeps the runs it finished
    and --resume runs the rest. Results are the same, seed for seed, on local
    processes and on a Dask cluster. `sagasim report` turns the dataset into
    an HTML report with plots.

    Exit status: 0 when done, 1 when a run failed, 2 on bad input, 130 when
    interrupted.
    """
    from sim.sweep import SweepIncomplete, load_sweep, point_table, run_sweep

    if scheduler is not None and workers is not None:
        raise click.UsageError("--workers sets local processes; with --scheduler the cluster's workers run the sweep")
    sweep = load_sweep(
        sweep_file,
        seeds=_chosen_seeds(seed, seeds, max_runs),
        protocols=protocols or None,
        overrides=list(overrides) or None,
        max_runs=max_runs,
    )
    target = out or Path("results") / "sweeps" / sweep.name
    total = len(sweep.runs)
    show = not quiet and _err.is_terminal
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs"),
        *_time_columns(),
        console=_err,
        transient=True,
        disable=not show,
    )

    def tick(done: int, total: int, failed: int, last: object) -> None:
        note = f" ({failed} failed)" if failed else ""
        progress.update(task, completed=done + failed, description=f"{sweep.name}{note}")

    if not quiet:
        _out.print(
            f"sweep [bold]{escape(sweep.name)}[/bold]: {len(sweep.points)} points x {len(sweep.protocols)} "
            f"protocols x {len(sweep.seeds)} seeds = {total} runs -> {escape(str(target))}",
            soft_wrap=True,
        )
    try:
        with progress:
            task = progress.add_task(sweep.name, total=total)
            dataset = run_sweep(sweep, target, workers=workers, scheduler=scheduler, resume=resume, progress=tick)
    except SweepIncomplete as exc:
        _err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(EXIT_FAIL_ON)
    except KeyboardInterrupt:
        _sweep_interrupted(sweep.resume_command(target), target)
    except Exception as exc:
        if not caused_by_interrupt(exc):
            raise
        _sweep_interrupted(sweep.resume_command(target), target)
    if not quiet:
        _print_sweep_table(point_table(dataset), dataset.axes)
    _err.print(f"dataset written to [bold]{escape(str(target))}[/bold]", soft_wrap=True)


def _sweep_interrupted(command: str, target: Path) -> None:
    """Say where the finished runs are and the command that finishes the sweep; exit 130."""
    _err.print(
        f"interrupted: the finished runs are saved in {escape(str(target))}; finish the sweep with: {escape(command)}",
        soft_wrap=True,
    )
    sys.exit(130)


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a Ctrl-C is in the chain of ``exc``: a library may wrap the
    KeyboardInterrupt raised inside its code (pydantic does, in a serializer)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _print_sweep_table(table: pd.DataFrame, axes: list[str]) -> None:
    """One row per grid point and protocol, pooled over seeds."""
    from sim.metrics import format_rate

    # Dotted keys are long: the header shows the last part, a line above names the key.
    headers = {a: a.rsplit(".", 1)[-1] for a in axes}
    for axis, header in headers.items():
        if header != axis:
            _out.print(f"{escape(header)} = {escape(axis)}", soft_wrap=True)
    short = {"committed": "commit", "compensated": "comp", "aborted": "abort", "inconsistent": "incons"}
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 1), collapse_padding=True)
    for header in headers.values():
        grid.add_column(escape(header), justify="right", no_wrap=True)
    grid.add_column("protocol", no_wrap=True)
    grid.add_column("txns", justify="right", no_wrap=True)
    shown = [o for o in OUTCOMES if o != "aborted" or table["aborted"].any()]
    for outcome in shown:
        grid.add_column(short.get(outcome, outcome), justify="right", no_wrap=True)
    grid.add_column("p99", justify="right", no_wrap=True)
    grid.add_column("msgs", justify="right", no_wrap=True)
    previous: tuple[object, ...] | None = None
    for row in table.to_dict("records"):  # axis names are dotted keys: no attribute access
        values = tuple(row[a] for a in axes)
        cells = [escape(str(v)) if values != previous else "" for v in values]
        rates = []
        for outcome in shown:
            rate = format_rate(row[f"{outcome}_rate"])
            bad = outcome in ("inconsistent", "stuck") and row[outcome] > 0
            rates.append(f"[red]{rate}[/red]" if bad else rate)
        grid.add_row(
            *cells,
            escape(str(row["protocol"])),
            str(row["transactions"]),
            *rates,
            _seconds(row["latency_p99"]),
            f"{row['messages_per_txn']:.2f}" if row["messages_per_txn"] == row["messages_per_txn"] else "-",
        )
        previous = values
    # Into a file or a pipe, keep the rows whole rather than fit 80 columns.
    wide = _out if _out.is_terminal else Console(highlight=False, emoji=False, width=max(_out.width, 160))
    wide.print(grid)
    wide.print("rates pooled over seeds; comp = compensated, incons = inconsistent, p99 = latency p99,")
    wide.print("msgs = messages per transaction; `sagasim report` adds 95% intervals and plots")


def _parse_fail_on(text: str) -> list[str]:
    names = [w.strip() for w in text.split(",") if w.strip()]
    for name in names:
        if name not in OUTCOMES:
            raise click.BadParameter(f"{name!r}; allowed: {', '.join(OUTCOMES)}", param_hint="'--fail-on'")
    return names


def _default_out(scenario: Scenario) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("results") / scenario.name / stamp
    candidate, n = base, 1
    while candidate.exists():
        candidate = base.with_name(f"{stamp}-{n}")
        n += 1
    return candidate


def _time_columns() -> list[ProgressColumn]:
    """Progress columns that say which time is which: ``elapsed 0:00:20 left 0:00:08``
    (unlabelled, the two clocks read as one duration)."""
    return [TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()]


def _run_with_progress(
    scenario: Scenario,
    protocols: list[str],
    seeds: list[int],
    trace: bool,
    overrides: list[str],
    quiet: bool,
) -> Result:
    from sim.result import Result
    from sim.runner import Model
    from sim.scenario import parse_overrides

    end = scenario.run.duration + scenario.run.drain
    outputs: list[RunOutput] = []
    show = not quiet and _err.is_terminal
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        *_time_columns(),
        console=_err,
        transient=True,
        disable=not show,
    )
    wall = 0.0
    with progress:
        task = progress.add_task("simulating", total=end * len(protocols) * len(seeds))
        done = 0.0
        for protocol in protocols:
            for seed in seeds:
                progress.update(task, description=f"{protocol} seed {seed}")
                model = Model(scenario, protocol, seed, trace or None)
                base = done

                def tick(now: float, base: float = base) -> None:
                    progress.update(task, completed=base + now)

                out = model.run(progress=tick if show else None)
                outputs.append(out)
                wall += out.wall_time
                done += end
                progress.update(task, completed=done)
    return Result(scenario, outputs, dict(parse_overrides(overrides)) if overrides else {}, wall)


def _print_protocol_table(result: Result, protocol: str) -> None:
    from sim.metrics import format_interval, format_rate, wilson

    txns = result.transactions[result.transactions["protocol"] == protocol]
    summary = result.summary[result.summary["protocol"] == protocol]
    n = len(txns)
    seeds = ", ".join(str(s) for s in summary["seed"])
    _out.print(f"[bold]{protocol}[/bold]: {escape(result.scenario.name)} (seeds {seeds}; {n} transactions)")
    table = Table()
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_column("rate", justify="right")
    table.add_column("95% interval", justify="right")
    counts = txns["outcome"].value_counts()
    for outcome in OUTCOMES:
        k = int(counts.get(outcome, 0))
        if outcome == "aborted" and k == 0:
            continue  # only the protocols that abort (2PC, TCC) have any
        low, high = wilson(k, n)
        style = "red" if outcome in ("inconsistent", "stuck") and k else ""
        rate = k / n if n else float("nan")
        table.add_row(outcome, str(k), format_rate(rate), escape(format_interval(low, high)), style=style)
    _out.print(table)
    finished = txns["latency"].dropna()
    ttc = txns["time_to_consistency"].dropna()
    duration = result.scenario.run.duration * max(1, len(summary))
    lines = [
        f"latency p50 {_q(finished, 0.5)}  p95 {_q(finished, 0.95)}  p99 {_q(finished, 0.99)}",
        f"time to consistency p50 {_q(ttc, 0.5)}  p99 {_q(ttc, 0.99)}  {_consistent_share(len(ttc), n)}",
        f"messages/txn {txns['messages'].mean():.2f}  retries/txn {txns['retries'].mean():.3f}  "
        f"throughput {len(finished) / duration:.1f} txn/s (simulated)",
    ]
    rejected = int(summary["rejected"].sum())
    if rejected:
        lines.append(f"arrivals rejected while the coordinator was down: {rejected}")
    _out.print("\n".join(lines))
    reasons = txns["reasons"].map(listed).explode().dropna()
    if len(reasons):
        reasons = reasons.value_counts().head(8)
        _out.print("[bold]inconsistencies by reason[/bold] (stuck ones included):")
        for reason, count in reasons.items():
            _out.print(f"  {count:>6}  {escape(reason)}")
    _out.print()


def _consistent_share(became: int, n: int) -> str:
    """What the time-to-consistency percentiles are over: ``(2973 of 2973
    consistent)``, or how many transactions never became consistent (stuck
    or inconsistent) and are left out of them: ``(1020 never consistent)``."""
    never = n - became
    return f"({became} of {n} consistent)" if never == 0 else f"({never} never consistent)"


def _q(values: pd.Series, q: float) -> str:
    if values.empty:
        return "-"
    seconds = float(values.quantile(q))
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _print_comparison(
    result: Result, protocols: list[str], seeds: list[int], worst: pd.Series | None, command: str | None
) -> None:
    """The `compare` output: the protocol table, the pairs table, the replay line."""
    from sim.compare import paired_differences, protocol_table

    table = protocol_table(result).set_index("protocol").loc[protocols]
    _out.print(
        f"[bold]compare[/bold]: {escape(result.scenario.name)} (seeds {format_seeds(seeds)}; "
        f"{int(table['transactions'].sum())} transactions; protocols {', '.join(protocols)})",
        soft_wrap=True,
    )
    grid = Table()
    grid.add_column("")
    for name in protocols:
        grid.add_column(escape(name), justify="right")
    grid.add_row("transactions", *(str(int(n)) for n in table["transactions"]))
    _add_outcome_rows(grid, table, protocols)
    grid.add_row("latency p50", *(_seconds(x) for x in table["latency_p50"]))
    grid.add_row("latency p99", *(_seconds(x) for x in table["latency_p99"]))
    grid.add_row("time to consistency p99", *(_seconds(x) for x in table["time_to_consistency_p99"]))
    # The p99 above is over the transactions that became consistent: say how many did not.
    grid.add_row("  never consistent", *(str(int(x)) for x in table["never_consistent"]), style="dim")
    grid.add_row("messages/txn", *(f"{x:.2f}" if x == x else "-" for x in table["messages_per_txn"]))
    for column, label in registry.compared():
        if f"{column}_mean" in table.columns:
            grid.add_row(f"{label} (mean)", *(_seconds(x) for x in table[f"{column}_mean"]))
            grid.add_row(f"{label} (max)", *(_seconds(x) for x in table[f"{column}_max"]))
    _out.print(grid)

    if len(protocols) < 2:
        _out.print(f"one protocol ({escape(protocols[0])}): nothing to pair", soft_wrap=True)
    else:
        _print_pairs(paired_differences(result.summary, protocols))

    if worst is not None and command is not None:
        reasons = joined(worst.get("reasons"))
        _out.print(
            f"worst transaction: {worst['txn_id']} of {escape(str(worst['run_id']))}, {worst['outcome']}"
            + (f" ({escape(reasons)})" if reasons else ""),
            soft_wrap=True,
        )
        _out.print(f"replay it: {escape(command)}", soft_wrap=True)


def _add_outcome_rows(grid: Table, table: pd.DataFrame, protocols: list[str]) -> None:
    """Per outcome, a row of rates (red where inconsistent or stuck happened) and a row of 95% intervals."""
    from sim.metrics import format_interval, format_rate

    for outcome in OUTCOMES:
        if outcome == "aborted" and not table["aborted"].any():
            continue  # only the protocols that abort (2PC, TCC) have any
        rates, intervals = [], []
        for name in protocols:
            row = table.loc[name]
            bad = outcome in ("inconsistent", "stuck") and row[outcome] > 0
            rate = format_rate(row[f"{outcome}_rate"])
            rates.append(f"[red]{rate}[/red]" if bad else rate)
            intervals.append(escape(format_interval(row[f"{outcome}_rate_low"], row[f"{outcome}_rate_high"])))
        grid.add_row(outcome, *rates)
        grid.add_row("  95% interval", *intervals, style="dim")


def _print_pairs(pairs: pd.DataFrame) -> None:
    """One section per pair of protocols, one row per compared rate."""
    _out.print(
        "[bold]paired by seed[/bold]: A - B on the same seeds and faults, in percentage points; "
        "w/b/s: seeds where A was worse/better/the same",
        soft_wrap=True,
    )
    diff = Table()
    for header in ("A - B", "rate", "mean", "95% interval", "seeds", "w/b/s"):
        diff.add_column(header, justify="left" if header in ("A - B", "rate") else "right")
    groups = list(pairs.groupby(["protocol_a", "protocol_b"], sort=False))
    for number, ((a, b), rows) in enumerate(groups):
        names = [a, f"- {b}"] if len(rows) > 1 else [f"{a} - {b}"]
        names += [""] * (len(rows) - len(names))
        for i, row in enumerate(rows.itertuples(index=False)):
            if row.ci_low != row.ci_low:  # NaN: no interval, the note says why
                interval = row.note or "-"
            else:
                interval = escape(f"[{_points(row.ci_low)}, {_points(row.ci_high)}]")
            diff.add_row(
                escape(names[i]),
                escape(str(row.metric).removesuffix("_rate")),
                _points(row.mean),
                interval,
                str(row.seeds),
                f"{row.a_worse}/{row.a_better}/{row.equal}",
                end_section=i == len(rows) - 1 and number < len(groups) - 1,
            )
    _out.print(diff)


def _points(x: float) -> str:
    """A difference of rates in percentage points, signed."""
    if x != x:
        return "-"
    points = x * 100
    if abs(points) < 5e-5:
        return "0"
    return f"{points:+.2f}" if abs(points) >= 0.01 else f"{points:+.4f}"


def _seconds(x: float) -> str:
    if x != x:
        return "-"
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


_REPORT_EXAMPLES = """
\b
Examples:
  sagasim report results/order-flaky-payment/20250101-120000
  sagasim report results/naive --txn naive-orchestrator/orchestration/1:42 -o reports/naive-txn-42
  sagasim report sweeps/payment-failure-out --out reports/payment-failure --overwrite
"""


@cli.command("report", epilog=_REPORT_EXAMPLES)
@click.argument("results", type=click.Path(path_type=Path))
@_out_folder("Report folder to write (must not exist unless --overwrite). Default: reports/<scenario or sweep name>.")
@click.option(
    "--txn",
    default=None,
    metavar="TXN",
    help="Transaction to draw as a swimlane: TXN_ID when RESULTS holds one run, else RUN_ID:TXN_ID "
    "(RUN_ID as in transactions.parquet, e.g. order-flaky-payment/choreography/2:17). Default: the worst one.",
)
@click.option("--overwrite", is_flag=True, help="Replace the report folder if it exists (only a previous report).")
@click.option("--quiet", "-q", is_flag=True, help="Show no progress.")
def report_command(results: Path, out: Path | None, txn: str | None, overwrite: bool, quiet: bool) -> None:
    """Turn RESULTS, a result folder (from run or compare) or a sweep dataset
    (from sweep), into one self-contained HTML page, index.html (images
    embedded, opens offline), with its PNGs beside it. Sections: the summary
    table with 95% intervals and the share of arrivals rejected; the paired
    differences between protocols, seed by seed (as compare prints them);
    outcome rates against each swept parameter (sweeps); latency CDFs; time
    to consistency as survival curves; messages per transaction, and lock and
    blocked time for the protocols that lock; outcomes, rejected arrivals and throughput over
    time with faults shaded; and a swimlane diagram of one
    transaction (the worst, or --txn), replayed with tracing when the runs
    were not traced. The page lists the sections the data does not allow.
    See docs/reports.md.

    Prints the path of index.html. Exit status: 0 when written, 2 on bad
    input (not a result or sweep, a damaged one, a bad --txn, an existing
    folder, an --out where no folder can be made).
    """
    from contextlib import nullcontext

    from sim.dataset import load
    from sim.report import build_report

    dataset = load(results)
    target = out if out is not None else Path("reports") / dataset.name
    show = not quiet and _err.is_terminal
    status = _err.status("report: loading", spinner="dots") if show else nullcontext()
    with status as live:

        def progress(stage: str) -> None:
            if live is not None:
                live.update(f"report: {escape(stage)}")

        try:
            index = build_report(dataset, target, txn=txn, overwrite=overwrite, progress=progress)
        except KeyboardInterrupt:
            _err.print("interrupted: no report was written")
            sys.exit(130)
    _out.print(escape(str(index)), soft_wrap=True)


_EXPLAIN_EXAMPLES = """
\b
Examples:
  sagasim explain results/naive-orchestrator/20250101-120000
  sagasim explain results/naive --txn 42
  sagasim explain results/sweeps/payment-failure --txn payment-failure/p0/orchestration/1:17
"""


@cli.command("explain", epilog=_EXPLAIN_EXAMPLES)
@click.argument("results", type=click.Path(path_type=Path))
@click.option(
    "--txn",
    default=None,
    metavar="TXN",
    help="Transaction to explain: TXN_ID when RESULTS holds one run, else RUN_ID:TXN_ID "
    "(RUN_ID as in transactions.parquet). Default: the worst one, as `sagasim report` picks it.",
)
def explain_command(results: Path, txn: str | None) -> None:
    """Say what happened to one transaction of RESULTS (a result folder or a
    sweep dataset), in words: what the coordinator believed and what the
    checker found, the effects applied, and the events and scenario settings
    behind each anomaly (a timeout that did not prove nothing happened, a
    retry without an idempotency key, a crash that forgot the saga, a lost
    message); then how many events of each kind each step had. Untraced runs
    are replayed with tracing (runs are deterministic: the same transaction).

    Exit status: 0 when explained, 2 on bad input (not a result, a bad --txn).
    """
    from sim.explain import explain

    story = explain(results, txn)
    _out.print(
        f"[bold]transaction {story.txn_id}[/bold] of {escape(story.run_id)}: {escape(story.chosen)}", soft_wrap=True
    )
    for sentence in story.sentences:  # Markdown, bold marks left out: `settings` stay easy to spot
        _out.print("- " + escape(sentence.replace("**", "")), soft_wrap=True)
    if len(story.steps) and len(story.steps.columns):
        _out.print("events per step:")
        table = Table()
        table.add_column("step")
        for kind in story.steps.columns:
            table.add_column(str(kind), justify="right")
        for step, counts in story.steps.iterrows():
            table.add_row(escape(str(step)), *(str(int(n)) for n in counts))
        _out.print(table)


_EXPORT_EXAMPLES = """
\b
Examples:
  sagasim export results/naive --format csv
  sagasim export results/naive --format jsonl --txn 42 --out naive-42.jsonl
  sagasim export results/naive --format perfetto --out naive.json   (open in ui.perfetto.dev)
  sagasim export results/naive --format jepsen --run naive/orchestration/1 --out history.edn
"""


@cli.command("export", epilog=_EXPORT_EXAMPLES)
@click.argument("results", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["csv", "jsonl", "perfetto", "jepsen"]),
    help="csv: one CSV file per table in a folder; jsonl: one JSON object per row, with a 'table' field; "
    "perfetto: Trace Event Format JSON for ui.perfetto.dev and chrome://tracing; jepsen: an EDN history, "
    "one :invoke and one :ok/:fail/:info op per step. perfetto and jepsen need a traced result (--trace).",
)
@click.option(
    "--txn",
    "txns",
    multiple=True,
    metavar="TXN",
    help="Export only this transaction (repeat for more): TXN_ID (in every run) or RUN_ID:TXN_ID. Default: all.",
)
@click.option(
    "--run",
    default=None,
    metavar="RUN_ID",
    help="Export only this run (RUN_ID as in transactions.parquet). Needed by jepsen when RESULTS holds several runs.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="File (a folder for csv) to write; must not exist unless --overwrite. "
    "Default: beside RESULTS, named <results>-<format> (.jsonl, .perfetto.json, .edn).",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace --out if it exists (a csv folder only if it holds CSV files only)."
)
def export_command(
    results: Path, fmt: str, txns: tuple[str, ...], run: str | None, out: Path | None, overwrite: bool
) -> None:
    """Write RESULTS (a result folder or a sweep dataset) in a format other
    tools read: CSV or JSON lines of every table, a Perfetto trace of the
    messages, or a Jepsen-style history (see docs/export.md).

    Exit status: 0 when written, 2 on bad input (not a result, no trace for
    perfetto or jepsen, a bad --txn or --run, --out in the way).
    """
    from sim.dataset import load
    from sim.export import export

    target = export(load(results), fmt, out, txns, run=run, overwrite=overwrite)
    _out.print(f"wrote {escape(str(target))}", soft_wrap=True)


_EXPLORE_EXAMPLES = """
\b
Examples:
  sagasim explore scenarios/naive-orchestrator.toml
  sagasim explore scenarios/robust-orchestrator.toml --depth 2 --workers 2
  sagasim explore scenarios/robust-orchestrator.toml --depth 3 --budget 10m
"""


@cli.command("explore", epilog=_EXPLORE_EXAMPLES)
@click.argument("scenario", type=click.Path(path_type=Path))
@_protocol_option
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=SEED_LIMIT - 1),
    default=None,
    metavar="N",
    help="The seed of every schedule's run (default: the scenario's first).",
)
@click.option(
    "--transactions",
    "-n",
    type=click.IntRange(min=1, max=20),
    default=2,
    show_default=True,
    help="Transactions per schedule, arriving half a transaction's latency apart (they overlap).",
)
@click.option(
    "--depth",
    "-d",
    type=click.IntRange(min=1, max=4),
    default=2,
    show_default=True,
    help="Faults per schedule at most: 1 tries every single fault, 2 every pair too, ...",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Processes running schedules. Default: every core.",
)
@click.option(
    "--budget",
    default=None,
    metavar="N|SECONDS",
    help="Stop after N schedules (5000) or seconds (30s, 10m); a cut search certifies nothing.",
)
@click.option(
    "--restart-after",
    type=click.FloatRange(min=0.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds a crashed node stays down (and a paused one paused).",
)
@click.option(
    "--delay",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Extra seconds of a delayed message. Default: twice the scenario's longest timeout.",
)
@_out_folder(
    "Folder to write explore.json and, on a violation, counterexample.toml, swimlane.png and "
    "explanation.md into (one subfolder per protocol when several). Default: results/<scenario>/explore."
)
@_quiet_option
def explore_command(
    scenario: Path,
    protocols: tuple[str, ...],
    seed: int | None,
    transactions: int,
    depth: int,
    workers: int | None,
    budget: str | None,
    restart_after: float,
    delay: float | None,
    out: Path | None,
    quiet: bool,
) -> None:
    """Run SCENARIO under every single fault, every pair, ... (up to --depth)
    and look for an inconsistent or stuck transaction.

    The scenario's services, transaction and protocols are kept; its workload
    becomes a few overlapping transactions, and its own [[faults]] and
    [nemesis] are left out. The run without faults gives the fault points:
    each message (drop, duplicate, delay it past its timeout), each node
    between two of its events (crash, pause), each participant attempt
    (refusal, transient failure, hang); each faulted run gives the points of
    the next fault. Every schedule is a run judged by the checker.

    On a violation the schedule is shrunk (fewest faults, then earliest) and
    written as counterexample.toml, a scenario that `sagasim run
    counterexample.toml --fail-on inconsistent,stuck` reproduces, with the
    failing transaction's swimlane and a one-paragraph explanation. Without
    one, a certificate says what was explored. See docs/explore.md.

    Exit status: 0 when no violation was found, 1 on a violation, 2 on bad input.
    """
    import json

    from sim.explore import Budget, certificate, default_workers, explore, prepare, reachable, write_counterexample
    from sim.scenario import load_scenario

    loaded = load_scenario(scenario)
    chosen = _choose_protocols(loaded, protocols)
    limit = Budget.parse(_budget_text(budget))
    target = out if out is not None else Path("results") / loaded.name / "explore"
    problem = folder_problem(target)
    if problem:
        raise SagasimError(f"--out {target}: {problem}; choose another --out")
    workers = workers or default_workers()
    show = not quiet and _err.is_terminal
    found = False
    figures = {}
    for name in chosen:
        setup = prepare(scenario, name, seed, transactions, restart_after, delay)
        gap = setup.raw["workload"]["interarrival"]["value"]
        if not quiet:
            ignored = f"; left out: {escape(', '.join(setup.ignored))}" if setup.ignored else ""
            _out.print(
                f"exploring [bold]{escape(loaded.name)}[/bold] under {name}: {transactions} transactions "
                f"{gap:.3g} s apart, seed {setup.seed}, up to {depth} faults, {workers} workers{ignored}",
                soft_wrap=True,
            )
        progress = Progress(
            TextColumn(name),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} schedules"),
            *_time_columns(),
            console=_err,
            transient=True,
            disable=not show,
        )
        with progress:
            task = progress.add_task(name, total=None)
            result = explore(setup, depth, workers, limit, _ticker(progress, task))
        folder = target if len(chosen) == 1 else target / name
        folder.mkdir(parents=True, exist_ok=True)
        figures[name] = result.summary()
        if result.shrunk is None:
            _out.print(certificate(result), soft_wrap=True)
            for line in reachable(result):
                _out.print(f"  {line}", soft_wrap=True)
            continue
        found = True
        written = write_counterexample(setup, result.shrunk, folder)
        figures[name]["counterexample"] = str(written.scenario)
        figures[name]["reproduced"] = written.reproduced
        _out.print(
            f"[red]{name}: violation[/red] after {result.to_violation} schedules "
            f"({result.seconds_to_violation:.2f} s), shrunk to {len(result.shrunk)} fault"
            f"{'s' if len(result.shrunk) != 1 else ''}:",
            soft_wrap=True,
        )
        _out.print(escape(written.paragraph.replace("**", "")), soft_wrap=True)
        _out.print(
            f"reproduce: sagasim run {escape(str(written.scenario))} --fail-on inconsistent,stuck", soft_wrap=True
        )
    (target / "explore.json").write_text(json.dumps({"scenario": loaded.name, "protocols": figures}, indent=2) + "\n")
    _err.print(f"written to [bold]{escape(str(target))}[/bold]", soft_wrap=True)
    if found:
        sys.exit(EXIT_FAIL_ON)


def _ticker(progress: Progress, task: Any) -> Callable[[int, int], None]:
    """The exploration's progress callback for one bar."""

    def tick(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return tick


def _budget_text(budget: str | None) -> str | None:
    """``--budget 10m`` as ``600s``; other spellings unchanged."""
    if budget and budget.endswith("m") and budget[:-1].replace(".", "", 1).isdigit():
        return f"{float(budget[:-1]) * 60:g}s"
    return budget


def main() -> None:
    """Entry point: turns bad input into one message and exit status 2."""
    try:
        cli.main(standalone_mode=False, prog_name="sagasim")
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_BAD_INPUT)
    except click.exceptions.Abort:
        _err.print("aborted")
        sys.exit(130)
    except SagasimError as exc:
        _err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        _err.print("interrupted: no result folder was written")
        sys.exit(130)
    except Exception as exc:
        if not caused_by_interrupt(exc):
            raise
        _err.print("interrupted: no result folder was written")
        sys.exit(130)
