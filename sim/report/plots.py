"""Drawing helpers shared by the sections: curves, rate lines, axes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullLocator

from sim.metrics import wilson
from sim.palette import protocol_colour
from sim.report.cells import _fmt_value
from sim.report.parts import _CURVE_POINTS


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


def _legend_below(fig: Figure, legend: dict[str, Any], ncol: int, fontsize: float) -> None:
    """The figure's one legend, under its panels, without a frame."""
    fig.legend(
        handles=list(legend.values()),
        labels=list(legend),
        loc="outside lower center",
        ncol=ncol,
        fontsize=fontsize,
        frameon=False,
    )
