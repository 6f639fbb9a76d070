"""The timeline and swimlane sections."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from sim.errors import SagasimError
from sim.metrics import OUTCOMES
from sim.report.cells import _reasons_text, _rejected_times, _replay_until
from sim.report.parts import _DPI, _REJECTED, OUTCOME_COLORS, TITLES, _Section, _Skip
from sim.report.pick import replay_events
from sim.report.plots import _legend_below
from sim.swimlane import FAULT_COLORS, fmt_seconds, nice_step, plot_swimlane


class TimelineSections:
    """The ``timeline`` and ``swimlane`` sections of a :class:`~sim.report.page._Page`."""

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
        _legend_below(fig, legend, 4, 7)
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
