"""The isolation section: anomaly rates between concurrent sagas (records with
values, ``docs/isolation.md``), against the swept parameters, per protocol."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sim.isolation import ISOLATION_ANOMALIES
from sim.metrics import format_rate
from sim.report.parts import _DPI, TITLES, _Section, _Table
from sim.report.plots import _STYLES, _decorate, _legend_below, _pct_ticks, _protocol_color

#: The summary's column that says a run had records with values.
RATE = "isolation_anomaly_rate"
_COUNTS = [f"anomaly_{code}" for code in ISOLATION_ANOMALIES]


def has_isolation(summary: pd.DataFrame) -> bool:
    """Whether the runs had records with values (the section applies)."""
    return RATE in summary.columns and bool(summary[RATE].notna().any())


def _pooled(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group: transactions, transactions with an anomaly, each anomaly, waits, committed, p50 latency."""
    frame = frame.assign(_anomalous=frame[RATE] * frame["transactions"])
    sums = ["transactions", "_anomalous", "committed", "isolation_waits", *_COUNTS]
    out = frame.groupby(keys, sort=False).agg({**{c: "sum" for c in sums}, "latency_p50": "mean"}).reset_index()
    out["rate"] = out["_anomalous"] / out["transactions"]
    out["committed_rate"] = out["committed"] / out["transactions"]
    return out


class IsolationSections:
    """The ``isolation`` section of a :class:`~sim.report.page._Page`."""

    def _isolation(self) -> _Section:
        summary = self.ds.summary[self.ds.summary[RATE].notna()]
        axes = [a for a in self.ds.axes if a in summary.columns] if self.ds.kind == "sweep" else []
        numeric = [a for a in axes if pd.api.types.is_numeric_dtype(summary[a])]
        x = numeric[0] if numeric else None
        lines = next((a for a in axes if a != x), None)
        keys = ["protocol", *([lines] if lines else []), *([x] if x else [])]
        pooled = _pooled(summary, keys)
        section = _Section("isolation", TITLES["isolation"])
        if x is not None:
            section.images.append(self._isolation_figure(pooled, x, lines))
        section.tables.append(self._isolation_table(pooled, keys))
        others = [a for a in axes if a not in (x, lines)]
        section.paragraphs.append(
            "Isolation anomalies between concurrent transactions, found by the isolation checker from the "
            "history of every read and write of the participants' records (docs/isolation.md): the share of "
            "transactions with at least one (lost update, dirty read, fuzzy read, a broken invariant)"
            + (f" against {x}" if x else "")
            + (f", one line style per {lines}" if lines else "")
            + ", one panel per protocol, pooled over seeds"
            + (f" and {', '.join(others)}" if others else "")
            + ". Below: what each costs, the committed share and the median latency."
        )
        return section

    def _isolation_figure(self, pooled: pd.DataFrame, x: str, lines: str | None) -> Any:
        protocols = [p for p in self.protocols if p in set(pooled["protocol"])]
        fig = Figure(figsize=(3.2 * len(protocols), 5.6), dpi=_DPI, layout="constrained")
        grid = fig.subplots(2, len(protocols), squeeze=False, sharex=True)
        legend: dict[str, Any] = {}
        cases = list(dict.fromkeys(pooled[lines])) if lines else [None]
        for c, protocol in enumerate(protocols):
            colour = _protocol_color(protocol, self.protocols)
            for k, case in enumerate(cases):
                rows = pooled[(pooled["protocol"] == protocol) & ((pooled[lines] == case) if lines else True)]
                rows = rows.sort_values(x)
                style = _STYLES[k % len(_STYLES)]
                marker = "osv^Dx"[k % 6]
                label = str(case) if lines else protocol
                (h,) = grid[0][c].plot(rows[x], rows["rate"], style, marker=marker, color=colour, ms=4, label=label)
                grid[1][c].plot(rows[x], rows["committed_rate"], style, marker=marker, color=colour, ms=4)
                legend.setdefault(label, h)
            grid[0][c].yaxis.set_major_formatter(_pct_ticks())
            grid[1][c].yaxis.set_major_formatter(_pct_ticks())
            grid[1][c].set_xlabel(x, fontsize=8)
            _decorate(grid[0][c], f"{protocol}: anomaly rate")
            _decorate(grid[1][c], f"{protocol}: committed")
            for ax in (grid[0][c], grid[1][c]):
                legend_ = ax.get_legend()
                if legend_ is not None:
                    legend_.remove()
        _legend_below(fig, legend, min(6, len(legend)), 8)
        return self._save(fig, "isolation.png", "isolation anomaly rate against the swept parameter")

    def _isolation_table(self, pooled: pd.DataFrame, keys: list[str]) -> _Table:
        header = [*keys, "transactions", "anomaly rate", *ISOLATION_ANOMALIES, "waits", "committed", "p50 latency"]
        rows = []
        for d in pooled.to_dict("records"):
            rows.append(
                [
                    *((str(d[k]), "") for k in keys),
                    (f"{int(d['transactions']):,}", "num"),
                    (format_rate(d["rate"]), "num bad" if d["rate"] > 0 else "num"),
                    *((f"{int(d[c]):,}", "num") for c in _COUNTS),
                    (f"{int(d['isolation_waits']):,}", "num"),
                    (format_rate(d["committed_rate"]), "num"),
                    (f"{d['latency_p50'] * 1000:.1f} ms", "num"),
                ]
            )
        return _Table("Isolation anomalies and their cost", header, rows)
