"""The rates, latency and consistency sections."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator, PercentFormatter

from sim.compare import time_to_consistency
from sim.metrics import OUTCOMES, format_rate
from sim.report.parts import _ABORTING, _DPI, OUTCOME_COLORS, TITLES, _Section, _Skip, _Table
from sim.report.plots import (
    _STYLES,
    _AxisView,
    _curve,
    _decorate,
    _draw_rates,
    _drop_empty_first,
    _heavy_tailed,
    _latency_quantile,
    _legend_below,
    _log_x,
    _Measure,
    _pct_ticks,
    _protocol_color,
    _RateLine,
)
from sim.swimlane import fmt_seconds


class RatesSections:
    """The ``rates``, ``latency`` and ``consistency`` sections of a :class:`~sim.report.page._Page`."""

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
        _legend_below(fig, legend, min(6, len(legend)), 8)
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
            image, text = against
            section.images.append(image)
            section.paragraphs.append("Latency p50 and p99 of finished transactions. " + text)
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
