"""The summary and comparison sections."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.compare import (
    paired_differences,
    protocol_table,
)
from sim.metrics import OUTCOMES, format_rate
from sim.protocols import registry
from sim.report.cells import _fmt_value, _pair_cells, _summary_cells, _with_rejected
from sim.report.parts import _COMPARED, _DPI, TITLES, _Image, _Section, _Skip, _Table
from sim.report.plots import _drop_empty_first, _PairRow, _seed_differences
from sim.sweep import point_table


class SummarySections:
    """The ``summary`` and ``comparison`` sections of a :class:`~sim.report.page._Page`."""

    def _summary(self) -> _Section:
        if self.txns.empty:
            raise _Skip("no transactions")
        section = _Section("summary", TITLES["summary"])
        axes = self.ds.axes if self.ds.kind == "sweep" else []
        # A sweep: sim.compare.protocol_table per grid point.
        table = _with_rejected(point_table(self.ds) if axes else protocol_table(self.ds), self.ds.summary, bool(axes))
        outcomes = [o for o in OUTCOMES if o != "aborted" or int(table["aborted"].sum()) > 0]
        means = [column for column, _ in registry.compared() if f"{column}_mean" in table.columns]
        header = [*axes, "protocol", "seeds", "arrivals", "rejected arrivals", "transactions", *outcomes]
        header += ["latency p50", "latency p99", "consistency p99", "never consistent", "messages/txn"]
        header += [f"{column.replace('_', ' ')} (mean)" for column in means]
        rows = [_summary_cells(r, axes, outcomes, means) for r in table.to_dict("records")]
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
