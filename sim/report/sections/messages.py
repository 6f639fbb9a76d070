"""The messages section, with two-phase commit's lock and blocked time, and
the per-transaction time columns other protocols register (TCC's
reservation time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator, PercentFormatter

from sim.metrics import format_rate
from sim.palette import protocol_colour
from sim.protocols import registry
from sim.report.cells import _fmt_number
from sim.report.parts import _DPI, _LOCKING, TITLES, _Image, _labels, _Section, _Table
from sim.report.plots import (
    _STYLES,
    _AxisView,
    _curve,
    _decorate,
    _drop_empty_first,
    _heavy_tailed,
    _legend_below,
    _log_x,
    _Measure,
    _pct_ticks,
    _protocol_color,
)
from sim.swimlane import fmt_seconds


class MessagesSections:
    """The ``messages`` section of a :class:`~sim.report.page._Page`."""

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
            image, text = against
            section.images.append(image)
            section.paragraphs.append("Messages and retries per transaction, means. " + text)
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
            locking = self._locking()
            section.images.append(image)
            section.tables.append(table)
            labels = _labels(locking)
            section.paragraphs.append(
                f"{labels[0].upper()}{labels[1:]}: per transaction, the seconds its locks were held (summed over "
                "keys and participants), the seconds spent waiting for locks, and the seconds participants spent "
                "blocked in doubt (from their yes vote until they learned the decision), as cumulative shares over "
                f"the {labels} transactions"
                + (" (a colour per protocol)" if len(locking) > 1 else "")
                + ". A curve that starts above zero means that share of transactions had none "
                "(no wait, no blocking). Sagas take no locks and are never in doubt."
            )
        elif not self._locking():
            section.paragraphs.append(f"No {_labels(_LOCKING, ' or ')} run: no lock or blocked time to show.")
        if self.empty_twopc:
            names = {"lock_held": "locks held", "lock_wait": "lock wait", "blocked": "blocked in doubt"}
            section.paragraphs.append(
                f"Not drawn, because it was zero for every {_labels(self._locking(), ' or ')} transaction: "
                + ", ".join(names[c] for c in self.empty_twopc)
                + "."
            )
        for protocol in self.protocols:
            own = self._own_times(protocol, panels) if protocol not in _LOCKING else None
            if own is not None:
                image, table, text = own
                section.images.append(image)
                section.tables.append(table)
                section.paragraphs.append(text)
        return section

    def _own_times(self, protocol: str, panels: list[tuple[str, pd.DataFrame]]) -> tuple[_Image, _Table, str] | None:
        """The time columns (seconds per transaction) a protocol other than
        2PC registers, as cumulative shares over its transactions, a panel
        per column; ``None`` when it registers none or they are all zero."""
        if protocol not in registry.names():
            return None
        info = registry.get(protocol)
        mine = self.txns[self.txns["protocol"] == protocol]
        columns = [
            c
            for c in info.transaction_columns
            if c in mine.columns and (pd.to_numeric(mine[c], errors="coerce").fillna(0) > 0).any()
        ]
        if not columns:
            return None
        fig, grid = self._figure(1, len(columns), width=3.4 * max(2, len(columns)), height=2.8)
        rows: list[list[tuple[str, str]]] = []
        colour, styles = protocol_colour(protocol), ["-", "--", ":", "-."]
        for c, column in enumerate(columns):
            ax, label = grid[0][c], column.replace("_", " ")
            log = _heavy_tailed(pd.to_numeric(mine[column], errors="coerce"))
            for i, (title, txns) in enumerate(panels):
                values = np.sort(
                    pd.to_numeric(txns.loc[txns["protocol"] == protocol, column], errors="coerce")
                    .dropna()
                    .to_numpy(float)
                )
                if values.size == 0:
                    continue
                xs, ys = _curve(values)
                ax.step(xs, ys, where="post", color=colour, ls=styles[i % len(styles)], label=title or protocol)
                rows.append(
                    [
                        (title, ""),
                        (label, ""),
                        (fmt_seconds(values.mean()), "num"),
                        (format_rate(float((values > 0).mean())), "num"),
                        (fmt_seconds(np.quantile(values, 0.99)), "num"),
                        (fmt_seconds(values[-1]), "num"),
                    ]
                )
            _log_x(ax, log)
            ax.set_ylim(0, 1.02)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_xlabel(f"{label} per transaction (s)", fontsize=8)
            _decorate(ax, label)
        image = self._save(fig, f"{protocol}-times.png", f"{info.label}: {', '.join(columns)}")
        header = ["panel", f"{protocol} time", "mean", "share above 0", "p99", "max"]
        text = (
            f"{info.label[:1].upper()}{info.label[1:]}: per transaction, "
            + ", ".join(columns)
            + " in seconds (docs/results.md says what each measures), as cumulative shares over its "
            "transactions. A curve that starts above zero means that share of transactions had none."
        )
        return image, _Table(f"{info.label}: time per transaction", *_drop_empty_first(header, rows)), text

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
        _legend_below(fig, legend, min(6, len(legend)), 8)
        image = self._save(fig, f"{name}-against.png", f"{name} against each swept parameter")
        text = (
            "Against each swept parameter: a point per value and protocol, pooled over seeds only"
            + (" (" + "; ".join(notes) + ")" if notes else "")
            + "; lines join values on a number line, named cases stand alone."
        )
        return image, text

    def _locking(self) -> list[str]:
        """The protocols of the data that lock (``lock_held`` in their registration), in order."""
        present = set(self.txns["protocol"])
        return [p for p in _LOCKING if p in present]

    def _twopc_figure(self, panels: list[tuple[str, pd.DataFrame]]) -> tuple[_Image, _Table] | None:
        """The lock and blocked time of the protocols that lock: a panel per
        column, a colour per protocol, a line style per panel of the page."""
        columns = [c for c in ("lock_held", "lock_wait", "blocked") if c in self.txns.columns]
        locking = self._locking()
        if not columns or not locking:
            return None
        locked = self.txns[self.txns["protocol"].isin(locking)]
        # A panel of zeros (no lock wait without contention) says nothing a sentence cannot.
        self.empty_twopc = [c for c in columns if not (pd.to_numeric(locked[c], errors="coerce").fillna(0) > 0).any()]
        columns = [c for c in columns if c not in self.empty_twopc]
        if not columns:
            return None
        fig, grid = self._figure(1, len(columns), width=3.4 * len(columns), height=2.8)
        rows: list[list[tuple[str, str]]] = []
        several = len(locking) > 1
        for c, column in enumerate(columns):
            ax = grid[0][c]
            log = _heavy_tailed(pd.to_numeric(self.txns[column], errors="coerce"))
            for protocol in locking:
                rows += self._lock_curves(ax, panels, protocol, column, several)
            _log_x(ax, log)
            ax.set_ylim(0, 1.02)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_xlabel(f"{column.replace('_', ' ')} per transaction (s)", fontsize=8)
            _decorate(ax, {"lock_held": "locks held", "lock_wait": "lock wait", "blocked": "blocked in doubt"}[column])
        image = self._save(fig, "twopc.png", f"{_labels(locking)} lock and blocked time")
        header = ["panel", *(["protocol"] if several else []), "time"]
        header += ["mean", "share above 0", "p99", "max"]
        title = f"{_labels(locking)[0].upper()}{_labels(locking)[1:]}: locks and blocking"
        return image, _Table(title, *_drop_empty_first(header, rows))

    def _lock_curves(
        self, ax: Any, panels: list[tuple[str, pd.DataFrame]], protocol: str, column: str, several: bool
    ) -> list[list[tuple[str, str]]]:
        """One protocol's curve of ``column`` per panel on ``ax``, and its table rows."""
        colour, styles = protocol_colour(protocol), ["-", "--", ":", "-."]
        rows = []
        for i, (title, txns) in enumerate(panels):
            values = np.sort(
                pd.to_numeric(txns.loc[txns["protocol"] == protocol, column], errors="coerce").dropna().to_numpy(float)
            )
            if values.size == 0:
                continue
            xs, ys = _curve(values)
            label = f"{protocol} {title}".strip() if several else title or protocol
            ax.step(xs, ys, where="post", color=colour, ls=styles[i % len(styles)], label=label)
            rows.append(
                [
                    (title, ""),
                    *([(protocol, "")] if several else []),
                    (column.replace("_", " "), ""),
                    (fmt_seconds(values.mean()), "num"),
                    (format_rate(float((values > 0).mean())), "num"),
                    (fmt_seconds(np.quantile(values, 0.99)), "num"),
                    (fmt_seconds(values[-1]), "num"),
                ]
            )
        return rows
