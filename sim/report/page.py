"""HTML reports: a result folder or a sweep dataset as one self-contained page.

:func:`build_report` loads its input through :func:`sim.dataset.load` and
writes a folder with ``index.html`` (every image embedded as a base64 data
URI, no external CSS or JavaScript, so it opens offline and can be mailed)
and the PNGs beside it. Sections, each shown when the data allows it:

- ``summary``: the share of arrivals rejected (coordinator down) and outcome
  rates with 95% Wilson intervals per protocol (and per grid point of a
  sweep), latency and time-to-consistency percentiles, messages per
  transaction (:func:`sim.compare.protocol_table`);
- ``comparison``: the paired differences between protocols
  (:func:`sim.compare.paired_differences`) and each seed's difference;
- ``rates``: outcome rates against each swept parameter, with 95% bands (a
  dashed upper bound where the count is 0);
- ``latency``: latency CDFs per protocol, and for a sweep p50 and p99 against
  each swept parameter;
- ``consistency``: time to consistency as survival curves;
- ``messages``: messages per transaction as bars, and lock and blocked time
  for 2PC (panels that would be all zero left out);
- ``timeline``: arrivals by outcome, rejected arrivals and throughput over
  simulated time, with the fault windows shaded;
- ``swimlane``: one transaction, message by message
  (:func:`sim.swimlane.plot_swimlane`, also importable from here).

Colours come from :mod:`sim.palette`, one per protocol. The page says
which sections (and panels) were left out and why. The folder is written
into a hidden sibling and renamed into place when complete, like a result
folder, so an interrupted build never leaves a report that looks finished.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullLocator, PercentFormatter

from sim.compare import (
    HIGHER_IS_BETTER,
    PAIRED_METRICS,
    format_points,
    format_seeds,
    paired_differences,
    protocol_table,
    time_to_consistency,
    worst_transaction,
)
from sim.dataset import Dataset, load
from sim.errors import SagasimError
from sim.files import staged_folder
from sim.metrics import OUTCOMES, events_frame, format_interval, format_rate, wilson
from sim.palette import OUTCOME_COLOURS, protocol_colour
from sim.protocols import registry
from sim.sweep import point_table
from sim.swimlane import FAULT_COLORS, fmt_seconds, nice_step, plot_swimlane

#: Section ids, in page order.
SECTIONS: tuple[str, ...] = (
    "summary",
    "comparison",
    "rates",
    "latency",
    "consistency",
    "messages",
    "timeline",
    "swimlane",
)
TITLES: dict[str, str] = {
    "summary": "Summary",
    "comparison": "Which protocol is better: paired differences",
    "rates": "Outcome rates against parameters",
    "latency": "Latency",
    "consistency": "Time to consistency",
    "messages": "Messages, locks and blocking",
    "timeline": "Timeline",
    "swimlane": "One transaction",
}
#: Kept importable under this name; the colours live in :mod:`sim.palette`.
OUTCOME_COLORS: dict[str, str] = OUTCOME_COLOURS
#: Distribution panels of a sweep: at most this many values of its first axis.
_MAX_PANELS = 4
#: Curves are drawn through this many quantiles, whatever the number of transactions.
_CURVE_POINTS = 512
#: Sharp on a high-density screen and in print; text sizes are chosen for it.
_DPI = 150
#: The protocols whose transactions can end aborted, and the one whose
#: per-transaction lock and blocking columns the report draws (the owner of
#: ``lock_held`` in the registry: two-phase commit).
_ABORTING = frozenset(p.name for p in registry.protocols() if p.aborts)
_LOCKING = next(p.name for p in registry.protocols() if "lock_held" in p.transaction_columns)
#: The rates the comparison pairs: those sagasim compare prints, after the committed share.
_COMPARED: tuple[str, ...] = ("committed_rate", *PAIRED_METRICS)
#: The edge of the hatched band of rejected arrivals.
_REJECTED = "#616161"
Progress = Callable[[str], None]

__all__ = ["SECTIONS", "Choice", "build_report", "pick_transaction", "plot_swimlane", "replay_events"]


# ====================================================================== API


def build_report(
    source: str | Path | Dataset,
    out: str | Path,
    *,
    txn: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write the HTML report of a result folder or a sweep dataset; returns
    the path of its ``index.html``.

    ``source`` is a folder written by ``sagasim run``, ``compare`` or
    ``sweep``, or a loaded :class:`~sim.dataset.Dataset`. ``out`` is the
    report folder to write; it must not exist unless ``overwrite``, and even
    then only a previous report (a folder with ``index.html``) or an empty
    folder is replaced, never a result. ``txn`` picks the transaction of the
    swimlane: ``"TXN_ID"`` when the dataset holds one run, else
    ``"RUN_ID:TXN_ID"``; default: the worst one (see :func:`pick_transaction`).
    ``progress(stage)`` is called as each stage starts.

    Raises :class:`~sim.errors.SagasimError` for bad input (an unreadable or
    damaged folder, a bad ``txn``, a target that exists or where no folder
    can be made).
    """
    dataset = source if isinstance(source, Dataset) else load(source)
    target = Path(out)
    _check_target(target, overwrite)
    choice = pick_transaction(dataset, txn)  # a bad --txn fails before any work
    with ExitStack() as stack:
        try:
            staging = stack.enter_context(staged_folder(target))
        except OSError as exc:
            raise SagasimError(f"{target}: cannot write the report there: {_why_not(target, exc)}") from None
        page = _Page(dataset, staging, choice, progress or (lambda _stage: None))
        page.build()
        (staging / "index.html").write_text(_render(page), encoding="utf-8")
    return target / "index.html"


@dataclass(frozen=True)
class Choice:
    """The transaction the swimlane shows, and why it was chosen."""

    row: pd.Series | None
    why: str
    named: bool = False


def pick_transaction(dataset: Dataset, txn: str | None = None) -> Choice:
    """The transaction to draw: ``txn`` when given (``TXN_ID`` for a dataset
    of one run, else ``RUN_ID:TXN_ID``), else the worst one as
    :func:`sim.compare.worst_transaction` ranks them (inconsistent with the
    most reasons, else the oldest stuck), else the first compensated one,
    else the first transaction that needed a retry, else the first one.
    """
    txns = dataset.transactions
    runs = list(dict.fromkeys(txns["run_id"])) if len(txns) else [e["run_id"] for e in dataset.meta.get("runs", [])]
    if txn is not None:
        return Choice(_named_transaction(txns, runs, str(txn)), f"chosen with --txn {txn}", named=True)
    if txns.empty:
        return Choice(None, "no transactions")
    worst = worst_transaction(txns)
    if worst is not None:
        reasons = _reasons_text(worst.get("reasons"))
        why = f"the worst transaction: {worst['outcome']}"
        if reasons:
            why += f" ({reasons})"
        return Choice(worst, why)
    for label, mask in (
        (
            "the first compensated transaction that undid an effect (none is inconsistent or stuck)",
            (txns["outcome"] == "compensated") & (txns["compensations_applied"] > 0),
        ),
        (
            "the first compensated or aborted transaction (none is inconsistent or stuck)",
            txns["outcome"].isin(["compensated", "aborted"]),
        ),
        ("the first transaction that needed a retry (every one committed)", txns["retries"] > 0),
        ("the first transaction (every one committed without a retry)", pd.Series(True, index=txns.index)),
    ):
        found = txns[mask]
        if len(found):
            first = found.sort_values(["started_at", "txn_id"], kind="stable").iloc[0]
            return Choice(first, label)
    return Choice(None, "no transactions")


def _named_transaction(txns: pd.DataFrame, runs: list[str], text: str) -> pd.Series:
    spelling = "TXN_ID" if len(runs) == 1 else "RUN_ID:TXN_ID"
    shown = ", ".join(runs[:6]) + (f" (and {len(runs) - 6} more)" if len(runs) > 6 else "")
    run, sep, number = text.rpartition(":")
    if not sep:
        if len(runs) != 1:
            raise SagasimError(
                f"--txn {text!r}: this dataset holds {len(runs)} runs; spell it RUN_ID:TXN_ID with a run among {shown}"
            )
        run = runs[0]
    if run not in runs:
        raise SagasimError(f"--txn {text!r}: no run {run!r}; runs: {shown}")
    if not (number.isascii() and number.isdigit()):
        example = "0" if spelling == "TXN_ID" else f"{run}:0"
        raise SagasimError(f"--txn {text!r}: {number!r} is not a transaction id; expected {spelling}, e.g. {example}")
    of_run = txns[txns["run_id"] == run]
    hit = of_run[of_run["txn_id"] == int(number)]
    if hit.empty:
        ids = of_run["txn_id"]
        known = f"{int(ids.min())}..{int(ids.max())}" if len(ids) else "none"
        raise SagasimError(f"--txn {text!r}: run {run} has no transaction {int(number)}; its ids: {known}")
    return hit.iloc[0]


def replay_events(dataset: Dataset, run_id: str, txn_id: int, until: float | None = None) -> pd.DataFrame:
    """The trace of one transaction (and the node events of its run: crashes,
    restarts, faults) from a replay of its run with tracing on.

    Runs are deterministic, so the replay is the transaction that was
    recorded. Only these events are kept, so a long run fits in memory; the
    replay stops at ``until`` (default: the end of the run).
    """
    from sim.runner import Model

    entry = dataset.run(run_id)
    model = Model(dataset.scenario_for(run_id), str(entry["protocol"]), int(entry["seed"]), trace=True)
    model.world.tracer.events = _OneTransaction(txn_id)  # type: ignore[assignment]
    model.world.run(until=model.end if until is None else min(until, model.end))
    frame = events_frame(list(model.world.tracer.events))
    frame.insert(0, "run_id", run_id)
    return frame


class _OneTransaction(list):  # type: ignore[type-arg]
    """A trace list that keeps the events of one transaction and those of no
    transaction (txn_id -1: crashes, faults). The tracer only ever appends."""

    def __init__(self, txn_id: int) -> None:
        super().__init__()
        self.txn_id = txn_id

    def append(self, event: Any) -> None:
        if event[3] == self.txn_id or event[3] < 0:
            super().append(event)


def _why_not(target: Path, exc: OSError) -> str:
    """Why a folder cannot be made at ``target``, in words: a file in its way, else the system's reason."""
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            break
    return f"cannot make a folder in {target.parent} ({exc.strerror or exc})"


def _check_target(target: Path, overwrite: bool) -> None:
    if not target.exists():
        return
    if not overwrite:
        raise SagasimError(f"{target}: already exists; choose another --out, or pass --overwrite to replace it")
    if not target.is_dir():
        raise SagasimError(f"{target}: exists and is not a folder; will not replace it")
    # --overwrite replaces a previous report (or an empty folder), never a
    # result folder or a web page of the user's given by mistake.
    if any(target.iterdir()) and not _is_report(target / "index.html"):
        raise SagasimError(
            f"{target}: exists and is not a report (no index.html written by sagasim); will not replace it"
        )


#: What the head of every report page says (templates/report.html.j2).
_GENERATOR = b'<meta name="generator" content="sagasim '


def _is_report(index: Path) -> bool:
    """Whether ``index`` is a report page sagasim wrote (its head names sagasim as the generator)."""
    try:
        with open(index, "rb") as fh:
            return _GENERATOR in fh.read(4096)
    except OSError:
        return False


# ====================================================================== the page


@dataclass
class _Image:
    file: str
    alt: str
    data_uri: str


@dataclass
class _Table:
    caption: str
    header: list[str]
    rows: list[list[tuple[str, str]]]  # (text, css class) per cell


@dataclass
class _Section:
    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    images: list[_Image] = field(default_factory=list)
    tables: list[_Table] = field(default_factory=list)


class _Skip(Exception):
    """A section the data does not allow; the message says why."""


class _Page:
    """Builds the sections of one report into ``folder``."""

    def __init__(self, dataset: Dataset, folder: Path, choice: Choice, progress: Progress) -> None:
        self.ds = dataset
        self.folder = folder
        self.choice = choice
        self.progress = progress
        self.sections: list[_Section] = []
        self.left_out: list[tuple[str, str, str]] = []  # id, title, why
        self.txns = dataset.transactions
        self.protocols = [p for p in dataset.protocols if p in set(self.txns["protocol"])] or dataset.protocols
        self.empty_twopc: list[str] = []  # 2PC time columns that were zero throughout, so not drawn

    def build(self) -> None:
        builders: dict[str, Callable[[], _Section]] = {
            "summary": self._summary,
            "comparison": self._comparison,
            "rates": self._rates,
            "latency": self._latency,
            "consistency": self._consistency,
            "messages": self._messages,
            "timeline": self._timeline,
            "swimlane": self._swimlane,
        }
        for sid in SECTIONS:
            self.progress(TITLES[sid].lower())
            try:
                if self.txns.empty and sid != "summary":
                    raise _Skip("no transactions")
                section = builders[sid]()
            except _Skip as skip:
                self.left_out.append((sid, TITLES[sid], str(skip)))
                continue
            self.sections.append(section)

    # ------------------------------------------------------------ header
    def facts(self) -> list[tuple[str, str]]:
        ds = self.ds
        facts = [
            ("input", f"{'sweep dataset' if ds.kind == 'sweep' else 'result folder'} {ds.path}"),
            ("protocols", ", ".join(self.protocols) or "-"),
            ("seeds", format_seeds(ds.seeds) if len(ds.summary) else "-"),
            ("runs", str(len(ds.summary))),
            ("transactions", f"{len(self.txns):,}"),
        ]
        if ds.kind == "sweep":
            points = ds.summary.drop_duplicates("point") if "point" in ds.summary.columns else ds.summary
            facts.append(("grid points", str(len(points))))
            for axis in ds.axes:
                values = list(dict.fromkeys(ds.summary[axis]))
                facts.append((f"swept {axis}", ", ".join(_fmt_value(v) for v in values)))
        config = ds.meta.get("config") or {}
        if ds.kind == "sweep" and ds.meta.get("description"):
            facts.insert(0, ("question", str(ds.meta["description"])))
        elif isinstance(config, dict) and config.get("description"):
            facts.insert(0, ("question", str(config["description"])))
        facts.append(("traced", "yes" if ds.traced else "no (the swimlane replays its run with tracing)"))
        versions = ds.meta.get("versions")
        written_by = ds.meta.get("sagasim") or (versions.get("sagasim") if isinstance(versions, dict) else None)
        if written_by:
            facts.append(("written by", f"sagasim {written_by}"))
        return facts

    # ------------------------------------------------------------ sections
    def _summary(self) -> _Section:
        if self.txns.empty:
            raise _Skip("no transactions")
        section = _Section("summary", TITLES["summary"])
        axes = self.ds.axes if self.ds.kind == "sweep" else []
        # A sweep: sim.compare.protocol_table per grid point.
        table = _with_rejected(point_table(self.ds) if axes else protocol_table(self.ds), self.ds.summary, bool(axes))
        outcomes = [o for o in OUTCOMES if o != "aborted" or int(table["aborted"].sum()) > 0]
        blocked = "blocked_mean" in table.columns
        header = [*axes, "protocol", "seeds", "arrivals", "rejected arrivals", "transactions", *outcomes]
        header += ["latency p50", "latency p99", "consistency p99", "never consistent", "messages/txn"]
        header += ["blocked (mean)"] if blocked else []
        rows = [_summary_cells(r, axes, outcomes, blocked) for r in table.to_dict("records")]
        where = " and grid point" if axes else ""
        section.tables.append(_Table(f"Per protocol{where}, pooled over seeds", header, rows))
        rejected, arrivals = int(table["rejected"].sum()), int(table["arrivals"].sum())
        section.paragraphs.append(
            "Arrivals are the transactions the workload tried to start; a rejected arrival was refused because "
            "the orchestrator or coordinator was down (crashed), so it never became a transaction. "
            + (
                f"Here {rejected:,} of {arrivals:,} arrivals ({format_rate(rejected / arrivals)}) were rejected: "
                "the outcome shares beside them are of the transactions that started, not of all arrivals."
                if rejected
                else "No arrival was rejected here."
            )
        )
        section.paragraphs.append(
            "Each outcome's share of the transactions, with its 95% Wilson interval in brackets, pooled over "
            "the seeds. The pooled interval treats every transaction as an independent trial; the transactions "
            "of one seed share its faults, so seed-to-seed spread can be wider. Whether one protocol beats "
            "another: see the paired differences below. Latency is over finished "
            "transactions, time to consistency over the transactions that became consistent; never consistent "
            "counts the others (stuck or inconsistent), left out of it."
        )
        return section

    def _comparison(self) -> _Section:
        if len(self.protocols) < 2:
            raise _Skip(f"one protocol ({', '.join(self.protocols)}): nothing to pair")
        axes, groups = self._point_groups()
        rows_out: list[list[tuple[str, str]]] = []
        forest: list[_PairRow] = []
        for label, rows in groups:
            try:
                pairs = paired_differences(rows, self.protocols, _COMPARED)
            except ValueError as exc:
                raise _Skip(str(exc)) from None
            for pair in pairs.itertuples(index=False):
                rows_out.append(_pair_cells(label, pair))
                diffs = _seed_differences(rows, pair.protocol_a, pair.protocol_b, str(pair.metric))
                forest.append(_PairRow(label, pair.protocol_a, pair.protocol_b, str(pair.metric), pair, diffs))
        section = _Section("comparison", TITLES["comparison"])
        # A rate that was 0 everywhere has nothing to draw: its panel is left out and named.
        empty = [m for m in _COMPARED if all(self._nothing_to_compare(rows, m) for _, rows in groups)]
        drawn = [r for r in forest if r.metric not in empty]
        if drawn:
            section.images.append(self._forest(drawn, ", ".join(axes)))
        if empty:
            names = " or ".join(m.removesuffix("_rate") for m in empty)
            where = " at any grid point" if axes else ""
            panels = "that panel is" if len(empty) == 1 else "those panels are"
            section.paragraphs.append(
                f"No protocol had any {names} transaction on any seed{where}: every difference is 0, so {panels} "
                "not drawn."
            )
        header = [", ".join(axes) or "grid point", "A - B", "rate", "mean", "95% interval", "seeds", "w/b/s"]
        section.tables.append(
            _Table(
                "Paired by seed: A - B in percentage points, as sagasim compare prints it",
                *_drop_empty_first(header, rows_out),
            )
        )
        section.paragraphs.append(
            "Each protocol met the same arrivals and faults on the same seed, so the difference A - B is taken "
            "seed by seed (in percentage points: above zero, A committed more; below zero, A had fewer "
            "inconsistent or stuck transactions), then averaged, "
            "with a paired t-interval over the seeds (sim.compare.paired_differences). An interval that does "
            "not contain 0 is a difference the seeds support; with one seed there is no interval. w/b/s: on how "
            "many seeds A was worse, better, the same. In the figure, each dot is one seed's difference, the "
            "black diamond the mean and the bar its 95% interval."
            + (" One block of rows per grid point." if axes else "")
        )
        return section

    def _point_groups(self) -> tuple[list[str], list[tuple[str, pd.DataFrame]]]:
        """The swept parameters, and the summary rows of each grid point named
        by its values (a result folder: one group, unnamed)."""
        summary = self.ds.summary
        if self.ds.kind != "sweep" or "point" not in summary.columns or not self.ds.axes:
            return [], [("", summary)]
        axes = self.ds.axes
        return axes, [
            (", ".join(_fmt_value(rows[a].iloc[0]) for a in axes), rows) for _, rows in summary.groupby("point")
        ]

    @staticmethod
    def _nothing_to_compare(summary: pd.DataFrame, metric: str) -> bool:
        """Whether every run in ``summary`` had a rate of 0 (or none) for ``metric``."""
        return not (summary[metric].fillna(0) != 0).any()

    def _forest(self, rows: list[_PairRow], axis_label: str) -> _Image:
        """The per-seed differences of each pair and rate, with the mean and its
        interval: a panel per rate, a row per pair (and grid point, its values
        named by ``axis_label``)."""
        metrics = list(dict.fromkeys(r.metric for r in rows))
        labels = list(dict.fromkeys((r.point, r.a, r.b) for r in rows))
        fig = Figure(figsize=(4.2 * len(metrics) + 1.5, 0.32 * len(labels) + 1.3), dpi=_DPI, layout="constrained")
        grid = fig.subplots(1, len(metrics), squeeze=False, sharey=True)
        for c, metric in enumerate(metrics):
            ax = grid[0][c]
            ax.axvline(0, color="#9e9e9e", lw=0.8)
            for r in (r for r in rows if r.metric == metric):
                y = labels.index((r.point, r.a, r.b))
                jitter = np.linspace(-0.15, 0.15, r.diffs.size) if r.diffs.size > 1 else np.zeros(r.diffs.size)
                ax.plot(r.diffs * 100, y + jitter, ls="none", marker="o", ms=3, color="#757575", alpha=0.8)
                if r.pair.ci_low == r.pair.ci_low:
                    ax.hlines(y, r.pair.ci_low * 100, r.pair.ci_high * 100, colors="black", lw=1.4)
                if r.pair.mean == r.pair.mean:
                    ax.plot([r.pair.mean * 100], [y], ls="none", marker="D", ms=4.5, color="black")
            ax.set_yticks(range(len(labels)), [(f"{p}: " if p else "") + f"{a} - {b}" for p, a, b in labels])
            ax.set_ylim(len(labels) - 0.5, -0.5)
            ax.set_xlabel(f"{metric.removesuffix('_rate')}: A - B (percentage points)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3, axis="x")
        if axis_label:
            grid[0][0].set_ylabel(axis_label, fontsize=8)
        return self._save(fig, "comparison.png", "paired differences between protocols, per seed")

    def _rates(self) -> _Section:
        ds = self.ds
        if ds.kind != "sweep":
            raise _Skip("not a sweep (a result folder has no swept parameters)")
        if not ds.axes:
            raise _Skip("the sweep has no swept parameter")
        summary = ds.summary
        # A panel per outcome that happened somewhere; the others are named below, not drawn empty.
        outcomes = [o for o in OUTCOMES if int(summary[o].sum()) > 0]
        never = [o for o in OUTCOMES if o not in outcomes and (o != "aborted" or _ABORTING & set(self.protocols))]
        axes = ds.axes
        fig = Figure(figsize=(2.6 * len(outcomes), 2.4 * len(axes) + 0.7), dpi=_DPI, layout="constrained")
        grid = fig.subplots(len(axes), len(outcomes), squeeze=False)
        legend: dict[str, Any] = {}
        notes: list[str] = []
        for r, axis in enumerate(axes):
            view = _AxisView.of(summary, axes, axis)
            if view.pooled:
                notes.append(view.pooled)
            grouped = summary.groupby(view.keys, sort=False)[["transactions", *outcomes]].sum().reset_index()
            for c, outcome in enumerate(outcomes):
                ax = grid[r][c]
                for series in view.series(grouped, self.protocols):
                    colour = _protocol_color(series.protocol, self.protocols)
                    xs = view.x(series, self.protocols)
                    line = _RateLine(
                        xs, series.rows[outcome].to_numpy(float), series.rows["transactions"].to_numpy(float)
                    )
                    style = _STYLES[series.k]
                    _draw_rates(ax, line, colour, style, joined=view.numeric, hollow=bool(series.k))
                    view.add_legend(legend, series, colour)
                ax.yaxis.set_major_formatter(_pct_ticks())
                if r == 0:
                    ax.set_title(outcome, fontsize=9, color=OUTCOME_COLORS[outcome])
                view.decorate(ax)
        fig.legend(
            handles=list(legend.values()),
            labels=list(legend),
            loc="outside lower center",
            ncol=min(6, len(legend)),
            fontsize=8,
            frameon=False,
        )
        section = _Section("rates", TITLES["rates"])
        section.images.append(self._save(fig, "rates.png", "outcome rates against each swept parameter"))
        section.paragraphs.append(
            "One row of panels per swept parameter, one panel per outcome: the share of transactions with that "
            "outcome at each value, one line per protocol, pooled over seeds, with its 95% Wilson interval as a "
            "band. Where the sweep has another parameter with few values, each of its values gets a line style; "
            "otherwise the other parameters are pooled. Named cases are drawn as categories, in sweep order."
        )
        section.paragraphs.append(
            "A band is drawn only where the outcome happened. Where it never did at a value (a count of 0), "
            "the rate sits at 0 and a dashed line with a downward mark shows the 95% upper bound: not data, "
            "but how high the rate could be and still have given no such transaction in this many."
        )
        if never:
            section.paragraphs.append(
                "Not drawn, because no transaction of the sweep ended so at any value: "
                + ", ".join(never)
                + " (a panel of zeros)."
            )
        if notes:
            section.paragraphs.append("Pooled: " + "; ".join(notes) + ".")
        return section

    def _latency(self) -> _Section:
        panels, note = self._panels()
        log = _heavy_tailed(self.txns["latency"])
        fig, axes_ = self._figure(len(panels), 1, width=7.5, height=3.0)
        rows: list[list[tuple[str, str]]] = []
        for (title, txns), ax in zip(panels, axes_[:, 0], strict=True):
            for protocol in self.protocols:
                t = txns[txns["protocol"] == protocol]
                if t.empty:
                    continue
                finished = np.sort(t["latency"].dropna().to_numpy(float))
                if finished.size:
                    xs, ys = _curve(finished)
                    ax.step(
                        xs,
                        ys * finished.size / len(t),
                        where="post",
                        color=_protocol_color(protocol, self.protocols),
                        label=protocol,
                    )
                p = np.quantile(finished, [0.5, 0.95, 0.99]) if finished.size else [math.nan] * 3
                rows.append(
                    [
                        (title, ""),
                        (protocol, ""),
                        (f"{len(t):,}", "num"),
                        (format_rate(finished.size / len(t)), "num" if finished.size == len(t) else "num bad"),
                        *((fmt_seconds(v), "num") for v in p),
                        (fmt_seconds(finished[-1] if finished.size else math.nan), "num"),
                    ]
                )
            _log_x(ax, log)
            ax.set_ylim(0, 1.02)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_ylabel("share of transactions finished", fontsize=8)
            ax.set_xlabel("latency (simulated seconds)", fontsize=8)
            _decorate(ax, title)
        section = _Section("latency", TITLES["latency"])
        section.images.append(self._save(fig, "latency.png", "latency CDF per protocol"))
        against = self._against(
            "latency",
            [
                _Measure("latency p50", "seconds", _latency_quantile(0.5)),
                _Measure("latency p99", "seconds", _latency_quantile(0.99)),
            ],
        )
        if against is not None:
            section.images.append(against[0])
            section.paragraphs.append("Latency p50 and p99 of finished transactions. " + against[1])
        header = ["panel", "protocol", "transactions", "finished", "p50", "p95", "p99", "max"]
        section.tables.append(_Table("Latency of finished transactions", *_drop_empty_first(header, rows)))
        section.paragraphs.append(
            "The cumulative share of transactions that finished within a given latency (from arrival until "
            "the coordinator reached a terminal state), one curve per protocol. The curves are drawn over all "
            "transactions: a stuck transaction never finishes, so a curve that levels off below 100% shows the "
            "share that got stuck. Steep and far left is good; a long flat tail to the right is retries and "
            "timeouts. The x axis is logarithmic when latencies span orders of magnitude."
            + (" " + note if note else "")
        )
        return section

    def _consistency(self) -> _Section:
        panels, note = self._panels()
        log = _heavy_tailed(time_to_consistency(self.txns))
        fig, axes_ = self._figure(len(panels), 2, width=10, height=3.0)
        rows: list[list[tuple[str, str]]] = []
        for (title, txns), pair in zip(panels, axes_, strict=True):
            for protocol in self.protocols:
                t = txns[txns["protocol"] == protocol]
                if t.empty:
                    continue
                ttc = time_to_consistency(t).to_numpy(float)
                done = np.sort(ttc[~np.isnan(ttc)])
                never = 1 - done.size / len(t)
                colour = _protocol_color(protocol, self.protocols)
                if done.size:
                    xs, ys = _curve(done)
                    survival = 1 - ys * done.size / len(t)
                    for ax in pair:
                        ax.step(xs, survival, where="post", color=colour, label=protocol)
                if never > 0:
                    for ax in pair:
                        ax.axhline(never, color=colour, ls="--", lw=0.8)
                    pair[0].annotate(
                        f"never consistent: {format_rate(never)}",
                        (1, never),
                        xycoords=("axes fraction", "data"),
                        xytext=(-4, 3),
                        textcoords="offset points",
                        ha="right",
                        fontsize=7,
                        color=colour,
                    )
                p = np.quantile(done, [0.5, 0.99]) if done.size else [math.nan] * 2
                rows.append(
                    [
                        (title, ""),
                        (protocol, ""),
                        (f"{len(t):,}", "num"),
                        (format_rate(never), "num bad" if never > 0 else "num"),
                        *((fmt_seconds(v), "num") for v in p),
                        (fmt_seconds(done[-1] if done.size else math.nan), "num"),
                    ]
                )
            for ax in pair:
                _log_x(ax, log)
                ax.set_xlabel("time since the transaction started (simulated seconds)", fontsize=8)
                ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            pair[0].set_ylim(0, 1.02)
            pair[0].set_ylabel("share not yet consistent", fontsize=8)
            pair[1].set_yscale("log")
            pair[1].set_ylim(top=1.5)
            pair[1].yaxis.set_minor_locator(NullLocator())
            pair[1].yaxis.set_major_formatter(_pct_ticks())
            _decorate(pair[0], title)
            _decorate(pair[1], (title + ": " if title else "") + "the tail, log scale")
        section = _Section("consistency", TITLES["consistency"])
        section.images.append(self._save(fig, "consistency.png", "time to consistency survival curves"))
        header = ["panel", "protocol", "transactions", "never consistent", "p50", "p99", "max"]
        section.tables.append(_Table("Time to consistency", *_drop_empty_first(header, rows)))
        section.paragraphs.append(
            "Survival curves: the share of transactions whose effects were not yet consistent (committed or "
            "fully compensated), against time since the transaction started; the right panel shows the same "
            "curves on a log scale, where the tail is readable. Transactions that never became consistent "
            "(inconsistent ones, and stuck ones, whatever their effects so far: they never ended) keep a curve "
            "above zero, at the dashed line. A transaction that ended well having applied nothing is "
            "consistent from its start." + (" " + note if note else "")
        )
        return section

    def _messages(self) -> _Section:
        panels, note = self._panels()
        fig, axes_ = self._figure(len(panels), 1, width=7.5, height=2.8)
        rows: list[list[tuple[str, str]]] = []
        for (title, txns), ax in zip(panels, axes_[:, 0], strict=True):
            for protocol in self.protocols:
                t = txns[txns["protocol"] == protocol]
                if t.empty:
                    continue
                counts = t["messages"].value_counts().sort_index()
                # Counts are whole numbers: a bar each, the protocols side by side within one unit.
                share, slot = 0.8 / len(self.protocols), self.protocols.index(protocol)
                ax.bar(
                    counts.index.to_numpy(float) + (slot - (len(self.protocols) - 1) / 2) * share,
                    counts.to_numpy() / len(t),
                    width=share,
                    color=_protocol_color(protocol, self.protocols),
                    label=protocol,
                    lw=0,
                )
                m = t["messages"].to_numpy(float)
                rows.append(
                    [
                        (title, ""),
                        (protocol, ""),
                        (_fmt_number(m.mean(), ".2f"), "num"),
                        *((f"{q:g}", "num") for q in np.quantile(m, [0.5, 0.99])),
                        (f"{m.max():g}", "num"),
                        (_fmt_number(t["retries"].mean(), ".3f"), "num"),
                    ]
                )
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_formatter(_pct_ticks())
            ax.set_xlabel(
                "messages sent for one transaction (retries, replies, duplicates, lost ones included)", fontsize=8
            )
            ax.set_ylabel("share of transactions", fontsize=8)
            _decorate(ax, title)
        section = _Section("messages", TITLES["messages"])
        section.images.append(self._save(fig, "messages.png", "messages per transaction"))
        against = self._against(
            "messages",
            [
                _Measure("messages per transaction (mean)", "messages", lambda t: float(t["messages"].mean())),
                _Measure("retries per transaction (mean)", "retries", lambda t: float(t["retries"].mean())),
            ],
        )
        if against is not None:
            section.images.append(against[0])
            section.paragraphs.append("Messages and retries per transaction, means. " + against[1])
        header = ["panel", "protocol", "mean", "p50", "p99", "max", "retries/txn"]
        section.tables.append(_Table("Messages per transaction", *_drop_empty_first(header, rows)))
        section.paragraphs.append(
            "How many network messages each transaction cost, as the share of transactions per count (a bar "
            "per count and protocol, log scale, so rare retries and redeliveries show). The main peak is the "
            "protocol's happy path; "
            "peaks to the right are retries, compensations, duplicates and redeliveries." + (" " + note if note else "")
        )
        twopc = self._twopc_figure(panels)
        if twopc is not None:
            image, table = twopc
            section.images.append(image)
            section.tables.append(table)
            section.paragraphs.append(
                "Two-phase commit: per transaction, the seconds its locks were held (summed over keys and "
                "participants), the seconds spent waiting for locks, and the seconds participants spent blocked "
                "in doubt (from their yes vote until they learned the decision), as cumulative shares over the "
                "2PC transactions. A curve that starts above zero means that share of transactions had none "
                "(no wait, no blocking). Sagas take no locks and are never in doubt."
            )
        elif _LOCKING not in self.protocols:
            section.paragraphs.append("No two-phase commit run: no lock or blocked time to show.")
        if self.empty_twopc:
            names = {"lock_held": "locks held", "lock_wait": "lock wait", "blocked": "blocked in doubt"}
            section.paragraphs.append(
                "Not drawn, because it was zero for every two-phase commit transaction: "
                + ", ".join(names[c] for c in self.empty_twopc)
                + "."
            )
        return section

    def _against(self, name: str, measures: Sequence[_Measure]) -> tuple[_Image, str] | None:
        """For a sweep: each measure against each swept parameter, a line per
        protocol (and a line style per value of another parameter with few
        values; otherwise pooled over it), pooled over seeds only."""
        ds = self.ds
        axes = [a for a in ds.axes if a in self.txns.columns] if ds.kind == "sweep" else []
        if not axes:
            return None
        fig = Figure(figsize=(3.6 * len(measures), 2.5 * len(axes) + 0.6), dpi=_DPI, layout="constrained")
        grid = fig.subplots(len(axes), len(measures), squeeze=False)
        legend: dict[str, Any] = {}
        notes: list[str] = []
        for r, axis in enumerate(axes):
            view = _AxisView.of(self.txns, axes, axis)
            if view.pooled:
                notes.append(view.pooled)
            groups = self.txns.groupby(view.keys, sort=False, dropna=False)
            for c, measure in enumerate(measures):
                ax = grid[r][c]
                table = groups.apply(measure.of, include_groups=False).rename("value").reset_index()
                for series in view.series(table, self.protocols):
                    colour = _protocol_color(series.protocol, self.protocols)
                    ax.plot(
                        view.x(series, self.protocols),
                        series.rows["value"],
                        color=colour,
                        ls=_STYLES[series.k] if view.numeric else "none",
                        marker="o",
                        ms=3.5,
                        mfc="white" if series.k else colour,
                    )
                    view.add_legend(legend, series, colour)
                ax.set_ylabel(measure.unit, fontsize=8)
                if r == 0:
                    ax.set_title(measure.label, fontsize=9, loc="left")
                view.decorate(ax)
        fig.legend(
            handles=list(legend.values()),
            labels=list(legend),
            loc="outside lower center",
            ncol=min(6, len(legend)),
            fontsize=8,
            frameon=False,
        )
        image = self._save(fig, f"{name}-against.png", f"{name} against each swept parameter")
        text = (
            "Against each swept parameter: a point per value and protocol, pooled over seeds only"
            + (" (" + "; ".join(notes) + ")" if notes else "")
            + "; lines join values on a number line, named cases stand alone."
        )
        return image, text

    def _twopc_figure(self, panels: list[tuple[str, pd.DataFrame]]) -> tuple[_Image, _Table] | None:
        columns = [c for c in ("lock_held", "lock_wait", "blocked") if c in self.txns.columns]
        if not columns or _LOCKING not in set(self.txns["protocol"]):
            return None
        twopc = self.txns[self.txns["protocol"] == _LOCKING]
        # A panel of zeros (no lock wait without contention) says nothing a sentence cannot.
        self.empty_twopc = [c for c in columns if not (pd.to_numeric(twopc[c], errors="coerce").fillna(0) > 0).any()]
        columns = [c for c in columns if c not in self.empty_twopc]
        if not columns:
            return None
        fig, grid = self._figure(1, len(columns), width=3.4 * len(columns), height=2.8)
        rows: list[list[tuple[str, str]]] = []
        colour, styles = protocol_colour(_LOCKING), ["-", "--", ":", "-."]
        for c, column in enumerate(columns):
            ax = grid[0][c]
            log = _heavy_tailed(pd.to_numeric(self.txns[column], errors="coerce"))
            for i, (title, txns) in enumerate(panels):
                values = np.sort(
                    pd.to_numeric(txns.loc[txns["protocol"] == _LOCKING, column], errors="coerce")
                    .dropna()
                    .to_numpy(float)
                )
                if values.size == 0:
                    continue
                xs, ys = _curve(values)
                ax.step(xs, ys, where="post", color=colour, ls=styles[i % len(styles)], label=title or _LOCKING)
                rows.append(
                    [
                        (title, ""),
                        (column.replace("_", " "), ""),
                        (fmt_seconds(values.mean()), "num"),
                        (format_rate(float((values > 0).mean())), "num"),
                        (fmt_seconds(np.quantile(values, 0.99)), "num"),
                        (fmt_seconds(values[-1]), "num"),
                    ]
                )
            _log_x(ax, log)
            ax.set_ylim(0, 1.02)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_xlabel(f"{column.replace('_', ' ')} per transaction (s)", fontsize=8)
            _decorate(ax, {"lock_held": "locks held", "lock_wait": "lock wait", "blocked": "blocked in doubt"}[column])
        image = self._save(fig, "twopc.png", "two-phase commit lock and blocked time")
        header = ["panel", "2PC time", "mean", "share above 0", "p99", "max"]
        return image, _Table("Two-phase commit: locks and blocking", *_drop_empty_first(header, rows))

    def _timeline(self) -> _Section:
        ds = self.ds
        summary = ds.summary
        chosen: list[pd.Series] = []
        faults_per_run = ds.faults["run_id"].value_counts() if len(ds.faults) else pd.Series(dtype=int)
        for protocol in self.protocols:
            rows = summary[summary["protocol"] == protocol]
            if len(rows):
                # The run with the most trouble to show: inconsistent or stuck
                # transactions, then faults; ties go to the first run.
                trouble = rows["inconsistent"] + rows["stuck"]
                faults = rows["run_id"].map(faults_per_run).fillna(0)
                order = pd.DataFrame({"t": -trouble, "f": -faults, "i": range(len(rows))}, index=rows.index)
                chosen.append(rows.loc[order.sort_values(["t", "f", "i"]).index[0]])
        fig = Figure(figsize=(10, 3.3 * len(chosen) + 0.5), dpi=_DPI, layout="constrained")
        grid = fig.subplots(2 * len(chosen), 1, squeeze=False, gridspec_kw={"height_ratios": [2, 1] * len(chosen)})
        described: list[str] = []
        legend: dict[str, Any] = {}
        for i, run in enumerate(chosen):
            run_id = str(run["run_id"])
            txns = self.txns[self.txns["run_id"] == run_id]
            duration = float(run.get("duration", txns["started_at"].max()))
            end = duration + float(run.get("drain", 0.0))
            end = max(end, float(txns["finished_at"].max()) if txns["finished_at"].notna().any() else 0.0)
            width = nice_step(max(end, 1e-6) / 120)
            edges = np.arange(0.0, end + width, width)
            top, bottom = grid[2 * i][0], grid[2 * i + 1][0]
            base = np.zeros(len(edges) - 1)
            count = run.get("rejected", 0)
            refused = _rejected_times(txns, int(count) if count == count else 0, duration)
            rejected = np.histogram(refused, edges)[0].astype(float)
            arrivals = np.histogram(txns["started_at"], edges)[0].astype(float) + rejected
            shares_base = np.zeros(len(edges) - 1)
            for outcome in OUTCOMES:
                hit = txns.loc[txns["outcome"] == outcome, "started_at"]
                if hit.empty:
                    continue
                counts = np.histogram(hit, edges)[0].astype(float)
                colour = OUTCOME_COLORS[outcome]
                # One filled outline per outcome (not a bar per bin): fast for any number of bins.
                top.stairs(base + counts / width, edges, baseline=base.copy(), fill=True, color=colour, lw=0)
                base += counts / width
                if outcome != "committed":
                    share = np.divide(counts, arrivals, out=np.zeros_like(counts), where=arrivals > 0)
                    top_share = shares_base + share
                    bottom.stairs(top_share, edges, baseline=shares_base.copy(), fill=True, color=colour, lw=0)
                    shares_base += share
                legend.setdefault(f"arrivals that ended {outcome}", Patch(color=colour))
            if refused.size:
                # Rejected arrivals never became transactions; stacked on top, hatched, so they read as lost work.
                band = {"fill": True, "facecolor": "#e0e0e0", "edgecolor": _REJECTED, "hatch": "////", "lw": 0}
                top.stairs(base + rejected / width, edges, baseline=base.copy(), **band)
                share = np.divide(rejected, arrivals, out=np.zeros_like(rejected), where=arrivals > 0)
                bottom.stairs(shares_base + share, edges, baseline=shares_base.copy(), **band)
                legend.setdefault(
                    "arrivals rejected (coordinator down)",
                    Patch(facecolor="#e0e0e0", edgecolor=_REJECTED, hatch="////"),
                )
            done = np.histogram(txns["finished_at"].dropna(), edges)[0] / width
            top.step(edges[:-1], done, where="post", color="black", lw=1)
            legend.setdefault("finished per second (throughput)", Line2D([], [], color="black", lw=1))
            faults = ds.faults[ds.faults["run_id"] == run_id] if len(ds.faults) else ds.faults
            for ax in (top, bottom):
                ax.axvline(duration, color="#424242", ls="--", lw=0.8)
                for f in faults.itertuples(index=False):
                    ax.axvspan(
                        float(f.start), float(f.end), color=FAULT_COLORS.get(str(f.kind), "#9e9e9e"), alpha=0.15, lw=0
                    )
                ax.set_xlim(0, end)
                ax.tick_params(labelsize=7)
            for f in faults.itertuples(index=False):
                legend.setdefault(f"fault: {f.kind}", Patch(color=FAULT_COLORS.get(str(f.kind), "#9e9e9e"), alpha=0.3))
            if len(faults) <= 12:
                for f in faults.itertuples(index=False):
                    top.annotate(
                        f"{f.kind} {f.target}",
                        (float(f.start), 1),
                        xycoords=("data", "axes fraction"),
                        xytext=(2, -2),
                        textcoords="offset points",
                        va="top",
                        fontsize=6,
                        rotation=90,
                    )
            top.annotate(
                "workload ends, drain",
                (duration, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -2),
                textcoords="offset points",
                va="top",
                fontsize=7,
                color="#424242",
            )
            top.set_ylabel("per second", fontsize=8)
            top.set_title(f"{run['protocol']}: run {run_id}", fontsize=9, loc="left")
            bottom.set_ylabel("arrivals not committed", fontsize=8)
            bottom.yaxis.set_major_formatter(PercentFormatter(1.0))
            bottom.set_xlabel("simulated time (s), arrivals binned by start", fontsize=8)
            described.append(run_id)
        fig.legend(
            handles=list(legend.values()),
            labels=list(legend),
            loc="outside lower center",
            ncol=4,
            fontsize=7,
            frameon=False,
        )
        section = _Section("timeline", TITLES["timeline"])
        section.images.append(self._save(fig, "timeline.png", "outcomes and throughput over simulated time"))
        many = len(ds.summary) > len(chosen)
        section.paragraphs.append(
            "For each protocol, one run: transactions by arrival time, stacked by how they ended (bars, per "
            "second), and the throughput (transactions finished per second, black line); below, the share of "
            "each time bin's arrivals that did not commit. Arrivals rejected while the orchestrator or "
            "coordinator was down are the hatched grey band on top (in both panels); the run records how many, "
            "not when, so they are placed between the start times of the transactions around them (every "
            "arrival takes the next transaction id). Shaded: fault windows (crashes, partitions, lost or "
            "slow links, slow services). The dashed line is the end of the workload; after it, the drain window "
            "lets retries and recovery finish with every fault healed."
        )
        section.paragraphs.append(
            (
                "Runs shown, per protocol the one with the most inconsistent or stuck transactions, then the most "
                "faults (ties: the first): "
                if many
                else "Runs: "
            )
            + ", ".join(described)
            + "."
        )
        return section

    def _swimlane(self) -> _Section:
        choice = self.choice
        if choice.row is None:
            raise _Skip(choice.why)
        row = choice.row
        run_id, txn_id = str(row["run_id"]), int(row["txn_id"])
        if self.ds.traced:
            events = self.ds.events[self.ds.events["run_id"] == run_id]
            source = "from the recorded trace"
        else:
            self.progress(f"replaying {run_id} with tracing for transaction {txn_id}")
            try:
                events = replay_events(self.ds, run_id, txn_id, until=_replay_until(row))
            except SagasimError as exc:
                if choice.named:
                    raise
                raise _Skip(f"cannot replay {run_id}: {exc}") from None
            source = f"from a replay of run {run_id} with tracing (runs are deterministic: the same transaction)"
        faults = self.ds.faults[self.ds.faults["run_id"] == run_id] if len(self.ds.faults) else None
        try:
            fig = plot_swimlane(events, txn_id, faults)
        except ValueError as exc:
            raise _Skip(str(exc)) from None
        section = _Section("swimlane", f"{TITLES['swimlane']}: transaction {txn_id} of {run_id}")
        section.images.append(self._save(fig, "swimlane.png", f"swimlane of transaction {txn_id} of {run_id}"))
        reasons = _reasons_text(row.get("reasons"))
        facts = f"Outcome {row['outcome']}"
        if reasons:
            facts += f" ({reasons})"
        facts += (
            f"; the coordinator believed {row.get('coordinator', '?')}; started at {float(row['started_at']):.6g} s"
        )
        if row["latency"] == row["latency"]:
            facts += f", finished after {fmt_seconds(row['latency'])}"
        section.paragraphs.append(f"Shown: {choice.why}. {facts}. Events {source}.")
        from sim.explain import explain_transaction  # here: sim.explain imports this module

        story = explain_transaction(row, events, self.ds.scenario_for(run_id))
        section.paragraphs.append("What happened (sagasim explain): " + " ".join(story.plain()))
        section.paragraphs.append(
            "One lane per node; time runs left to right from the transaction's start. Arrows are messages "
            "(blue: compensation), labelled with their step; a cross marks a message lost on the network or at "
            "a crashed node; a dotted arrow is a message whose receipt the trace does not record (broker "
            "deliveries), drawn at the transaction's median message latency; a dashed one a message whose "
            "sending it does not record (2PC acknowledgements). Marks show effects applied (green), "
            "compensations (blue diamonds), refusals, errors, timeouts and crashes. Shaded boxes are faults "
            "over the nodes they hit; hatched bands are quiet stretches drawn shorter than their real length "
            "(the label says how long). To draw another transaction: sagasim report "
            f"{self.ds.path} --txn {'TXN_ID' if len(self.ds.summary) == 1 else 'RUN_ID:TXN_ID'}."
        )
        return section

    # ------------------------------------------------------------ helpers
    def _panels(self) -> tuple[list[tuple[str, pd.DataFrame]], str]:
        """Distribution plots: one panel for a result; for a sweep, one per
        value of its first parameter (at most four, spread over its values)."""
        ds = self.ds
        if ds.kind != "sweep" or not ds.axes or ds.axes[0] not in self.txns.columns:
            return [("", self.txns)], ""
        axis = ds.axes[0]
        values = list(dict.fromkeys(self.txns[axis]))
        pick = sorted({round(float(i)) for i in np.linspace(0, len(values) - 1, min(len(values), _MAX_PANELS))})
        panels = [(f"{axis} = {_fmt_value(values[i])}", self.txns[self.txns[axis] == values[i]]) for i in pick]
        pooled = ", ".join([*ds.axes[1:], "seeds"])
        shown = f"; {len(pick)} of its {len(values)} values shown" if len(pick) < len(values) else ""
        return panels, f"One panel per value of {axis} (pooled over {pooled}){shown}."

    def _figure(self, rows: int, cols: int, *, width: float, height: float) -> tuple[Figure, Any]:
        """Panels one above the other share their x axis, so values compare at a glance."""
        fig = Figure(figsize=(width, height * rows), dpi=_DPI, layout="constrained")
        return fig, fig.subplots(rows, cols, squeeze=False, sharex="col" if rows > 1 else "none")

    def _save(self, fig: Figure, name: str, alt: str) -> _Image:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=_DPI)
        # Plots use few colours: a 256-colour palette makes each PNG, and the
        # page that embeds them, about three times smaller; the octree method
        # keeps the few pure colours (protocols, outcomes) exact. (Pillow
        # comes with matplotlib.)
        from PIL import Image

        small = io.BytesIO()
        palette = Image.open(buffer).convert("RGB").quantize(256, Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        palette.save(small, "PNG", optimize=True)
        data = small.getvalue()
        (self.folder / name).write_bytes(data)
        return _Image(name, alt, "data:image/png;base64," + base64.b64encode(data).decode("ascii"))


def _summary_cells(r: dict[str, Any], axes: list[str], outcomes: list[str], blocked: bool) -> list[tuple[str, str]]:
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
    if blocked:
        row.append((fmt_seconds(r["blocked_mean"]), "num"))
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


def _curve(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, cumulative share) through at most ``_CURVE_POINTS`` points of an
    empirical CDF: a plot of 100k transactions costs what one of 500 does."""
    n = sorted_values.size
    if n <= _CURVE_POINTS:
        index = np.arange(n)
    else:
        index = np.unique(np.linspace(0, n - 1, _CURVE_POINTS).round().astype(int))
    return sorted_values[index], (index + 1) / n


@dataclass(frozen=True)
class _RateLine:
    """One protocol's outcome counts at each value of a swept parameter."""

    x: np.ndarray
    hits: np.ndarray
    n: np.ndarray


#: Line styles for the values of a second swept parameter.
_STYLES: tuple[str, ...] = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class _Series:
    """The rows of one line: a protocol and (``k``-th) combination of the other swept parameters."""

    protocol: str
    k: int
    combo: dict[str, Any]
    rows: pd.DataFrame  # sorted by ``_x``, the position on the x axis


@dataclass(frozen=True)
class _AxisView:
    """How a swept parameter is drawn on an x axis: a number line or named
    categories, and how the other swept parameters are shown: a line style
    per combination of their values when there are at most four, else pooled."""

    axis: str
    others: list[str]
    combos: list[dict[str, Any]]
    split: bool
    values: list[Any]
    numeric: bool

    @classmethod
    def of(cls, frame: pd.DataFrame, axes: Sequence[str], axis: str) -> _AxisView:
        others = [a for a in axes if a != axis]
        combos = frame[others].drop_duplicates().to_dict("records") if others else [{}]
        split = bool(others) and len(combos) <= len(_STYLES)
        values = list(dict.fromkeys(frame[axis]))
        return cls(axis, others, combos if split else [{}], split, values, _continuous(frame[axis]))

    @property
    def keys(self) -> list[str]:
        """The columns to group by: one group per point of a line."""
        return [self.axis, "protocol", *(self.others if self.split else [])]

    @property
    def pooled(self) -> str:
        """What the lines pool over besides seeds, in words; empty if nothing."""
        if not self.others or self.split:
            return ""
        return f"against {self.axis}: pooled over {', '.join(self.others)}"

    def series(self, table: pd.DataFrame, protocols: Sequence[str]) -> Iterator[_Series]:
        """The lines of ``table`` (grouped by :attr:`keys`), in protocol order."""
        position = {v: (float(v) if self.numeric else i) for i, v in enumerate(self.values)}
        for protocol in protocols:
            for k, combo in enumerate(self.combos):
                mask = table["protocol"] == protocol
                for name, value in combo.items():
                    mask &= table[name] == value
                rows = table[mask]
                if len(rows):
                    yield _Series(protocol, k, combo, rows.assign(_x=rows[self.axis].map(position)).sort_values("_x"))

    def x(self, series: _Series, protocols: Sequence[str]) -> np.ndarray:
        """Where the points go: on a number line the values; named cases have
        no order between them, so the lines' points stand side by side."""
        xs = series.rows["_x"].to_numpy(float)
        if self.numeric:
            return xs
        lines = [(p, k) for p in protocols for k in range(len(self.combos))]
        return xs + (lines.index((series.protocol, series.k)) - (len(lines) - 1) / 2) * 0.8 / max(len(lines), 1)

    def add_legend(self, legend: dict[str, Any], series: _Series, colour: str) -> None:
        legend.setdefault(series.protocol, Line2D([], [], color=colour, marker="o", ms=3))
        if self.split and series.combo:
            text = ", ".join(f"{name}={_fmt_value(v)}" for name, v in series.combo.items())
            legend.setdefault(text, Line2D([], [], color="#616161", ls=_STYLES[series.k]))

    def decorate(self, ax: Axes) -> None:
        """The x axis: a log scale for values spanning orders of magnitude, else categories in sweep order."""
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlabel(self.axis, fontsize=8)
        if self.numeric:
            xs = [float(v) for v in self.values]
            if min(xs) > 0 and max(xs) / min(xs) >= 50:
                ax.set_xscale("log")
        else:
            ax.set_xticks(range(len(self.values)), [_fmt_value(v) for v in self.values], rotation=30, ha="right")
            ax.set_xlim(-0.6, len(self.values) - 0.4)


@dataclass(frozen=True)
class _PairRow:
    """One pair of protocols and one rate at one grid point: the summary and the per-seed differences."""

    point: str
    a: str
    b: str
    metric: str
    pair: Any  # a row of sim.compare.paired_differences
    diffs: np.ndarray


def _seed_differences(summary: pd.DataFrame, a: str, b: str, metric: str) -> np.ndarray:
    """``metric`` of A minus that of B on each seed both ran, as paired_differences pairs them."""
    key = [c for c in ("scenario", "seed") if c in summary.columns]
    left = summary[summary["protocol"] == a].set_index(key)[metric].rename("a")
    right = summary[summary["protocol"] == b].set_index(key)[metric].rename("b")
    both = pd.concat([left, right], axis=1, join="inner").dropna()
    return (both["a"] - both["b"]).to_numpy(float)


@dataclass(frozen=True)
class _Measure:
    """A number per group of transactions, plotted against a swept parameter."""

    label: str
    unit: str
    of: Callable[[pd.DataFrame], float]


def _latency_quantile(q: float) -> Callable[[pd.DataFrame], float]:
    def of(txns: pd.DataFrame) -> float:
        finished = txns["latency"].dropna()
        return float(finished.quantile(q)) if len(finished) else math.nan

    return of


def _draw_rates(ax: Axes, line: _RateLine, colour: str, style: str, *, joined: bool, hollow: bool) -> None:
    """The rate at each value with its 95% Wilson interval: a band (a line
    joining the points) or bars (categories). Where the count is 0 the
    interval's upper bound is drawn as a dashed line with a downward mark, not
    filled from 0: a filled band there would read as data."""
    low, high = _wilson_arrays(line.hits, line.n)
    rate = line.hits / np.where(line.n > 0, line.n, np.nan)
    seen = line.hits > 0
    zero = (line.hits == 0) & (line.n > 0)
    face = "white" if hollow else colour
    if joined:
        ax.plot(line.x, rate, color=colour, ls=style, marker="o", ms=3, lw=1.2, mfc=face)
        ax.fill_between(line.x, low, high, where=seen, color=colour, alpha=0.15, lw=0, interpolate=False)
        bound = np.where(zero, high, np.nan)
        ax.plot(line.x, bound, color=colour, ls=(0, (3, 2)), lw=0.9, marker="v", ms=3.5, mfc="white")
        return
    if seen.any():
        bars = np.vstack([rate[seen] - low[seen], high[seen] - rate[seen]])
        ax.errorbar(line.x[seen], rate[seen], yerr=bars, color=colour, fmt="o", ms=3.5, capsize=2, lw=1, mfc=face)
    if zero.any():
        ax.plot(line.x[zero], rate[zero], ls="none", color=colour, marker="o", ms=3.5, mfc=face)
        ax.plot(line.x[zero], high[zero], ls="none", color=colour, marker="v", ms=4, mfc="white")
        ax.vlines(line.x[zero], 0, high[zero], colors=colour, linestyles=(0, (3, 2)), lw=0.9)


def _wilson_arrays(hits: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sim.metrics.wilson` per element (NaN where ``n`` is 0); a plot has a few dozen points."""
    bounds = [wilson(int(h), int(t)) for h, t in zip(hits, n, strict=True)]
    if not bounds:
        return np.empty(0), np.empty(0)
    low, high = np.array(bounds, dtype=float).T
    return low, high


def _continuous(values: pd.Series) -> bool:
    """Whether a swept parameter is drawn on a number line; booleans and names are categories."""
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _protocol_color(protocol: str, order: Sequence[str]) -> str:
    return protocol_colour(protocol, order)


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


def _heavy_tailed(values: pd.Series) -> bool:
    """Whether a distribution needs a log axis: its tail (retries, timeouts)
    or its head sits orders of magnitude from the median."""
    data = values.to_numpy(float)
    data = data[np.isfinite(data) & (data > 0)]
    if data.size < 2:
        return False
    p1, p50 = np.quantile(data, [0.01, 0.5])
    return bool(data.max() >= 20 * p50 or p50 >= 20 * p1)


def _log_x(ax: Axes, log: bool) -> None:
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())  # minor ticks on log axes cost a lot of drawing time


def _decorate(ax: Axes, title: str) -> None:
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False)


def _drop_empty_first(
    header: list[str], rows: list[list[tuple[str, str]]]
) -> tuple[list[str], list[list[tuple[str, str]]]]:
    """Without the "panel" column when there is one panel."""
    if rows and all(not row[0][0] for row in rows):
        return header[1:], [row[1:] for row in rows]
    return header, rows


def _pct_ticks() -> FuncFormatter:
    """Percent tick labels that stay readable on a log axis: 100%, 1%, 0.01%."""
    return FuncFormatter(lambda value, _pos: f"{value * 100:.2g}%" if value < 0.01 else f"{value * 100:g}%")


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


# ====================================================================== HTML


def _render(page: _Page) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sim", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template("report.html.j2")
    try:
        version = metadata.version("sagasim")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return template.render(
        title=f"sagasim report: {page.ds.name}",
        name=page.ds.name,
        facts=page.facts(),
        sections=page.sections,
        left_out=page.left_out,
        version=version,
    )
