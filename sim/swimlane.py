"""Swimlane diagrams: one transaction, message by message, from a trace.

:func:`plot_swimlane` draws a lane per node (the coordinator, orchestrator or
broker and tracker, then the participants), each message as an arrow from
its sending to its receipt, the effects, compensations, refusals, timeouts
and crashes as marks, and the faults shaded over the lanes and times they
hit. Reports (:mod:`sim.report`) and notebooks use it.

The trace records a message's two ends as separate events (a ``command``
and the participant's ``receive``, a ``publish`` and the broker's ``store``,
a ``vote`` and the coordinator's ``vote ... from``); :func:`pair_messages`
pairs them. Some ends are not traced (a broker delivery's receipt, a 2PC
acknowledgement's sending); those are drawn differently and the legend says
so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter

from sim.world.trace import IN, OUT

#: Shading of each fault kind, here and in the report's timeline.
FAULT_COLORS: dict[str, str] = {
    "crash": "#e53935",
    "pause": "#fb8c00",
    "partition": "#8e24aa",
    "loss": "#6d4c41",
    "duplicate": "#00897b",
    "delay": "#3949ab",
    "slow": "#f9a825",
    "failure_rate": "#d81b60",
}
_DPI = 80

#: Lanes drawn first (top) and last (bottom); participants go in between, in
#: the order they first appear in the transaction.
_LANES_FIRST = ("client", "orchestrator", "coordinator", "broker")
_LANES_LAST = ("tracker", "monitor")
_NODE_KINDS = ("crash", "restart", "pause", "resume")


@dataclass
class Message:
    src: str
    dst: str
    sent: float
    step: str
    label: str
    received: float = math.nan
    #: "traced" (both ends), "lost" (dropped by the network or at a down
    #: node), "send-inferred" (only its receipt is traced: drawn from the
    #: sender's previous event), "receipt-inferred" (only its sending is traced).
    how: str = "traced"
    copies: int = 1
    #: the kind of message on the wire (``req``, ``rep``, ``vote``...: see sim.world.trace)
    message: str = ""


#: What an ``effect`` trace event's ``detail`` says was applied: one word of
#: these, which :meth:`draw_marks` reads as it is (every protocol writes one).
EFFECT_WORDS = ("forward", "compensation", "reserved", "released", "expired")

# marker, colour, filled, legend text, annotate with the step
_MARKS: dict[str, tuple[str, str, bool, str, bool]] = {
    "effect:forward": ("o", "#2e7d32", True, "effect applied", True),
    "effect:compensation": ("D", "#1565c0", True, "compensation applied", True),
    "effect:reserved": ("o", "#2e7d32", False, "reserved", True),
    "effect:released": ("D", "#1565c0", False, "reservation released", True),
    "effect:expired": ("X", "#ef6c00", False, "reservation expired", True),
    "commit": ("o", "#2e7d32", True, "commit applied", True),
    "abort": ("X", "#8d6e63", True, "aborted here", True),
    "prepared": ("s", "#7e57c2", True, "prepared (in doubt)", False),
    "refuse": ("s", "#c62828", True, "refused (business failure)", True),
    "error": ("x", "#c62828", True, "transient error", False),
    "exhausted": ("X", "#c62828", True, "attempts exhausted", True),
    "hang": ("P", "#ef6c00", True, "hang (no answer)", True),
    "dedup": ("o", "#616161", False, "duplicate skipped", False),
    "null-compensation": ("D", "#1565c0", False, "nothing to undo", True),
    "timeout": ("v", "#ef6c00", True, "timeout", True),
    "give-up": ("X", "#b71c1c", True, "compensation given up", True),
    "compensate": ("<", "#1565c0", True, "compensation starts", False),
    "begin": ("|", "#000000", True, "begin / end", False),
    "end": ("|", "#000000", True, "begin / end", True),
    "terminal": ("|", "#000000", True, "begin / end", True),
    "decide": ("*", "#000000", True, "decision", True),
    "recover": ("^", "#00838f", True, "resumed after a restart", False),
    "alert": ("$!$", "#c62828", True, "stuck alert", True),
    "dead-letter": ("X", "#6a1b9a", True, "dead-lettered", True),
    "publish-gave-up": ("X", "#6a1b9a", True, "publish abandoned", True),
    "publish-lost": ("X", "#6a1b9a", True, "publish lost in a crash", True),
    "lock-wait": ("|", "#9e9e9e", True, "waits for a lock", False),
    "conflict": ("$!$", "#b71c1c", True, "conflicting decision", True),
    "crash": ("X", "#e53935", True, "node crash", True),
    "restart": ("^", "#2e7d32", False, "node restart", True),
    "pause": ("|", "#fb8c00", True, "node pause / resume", False),
    "resume": ("|", "#fb8c00", True, "node pause / resume", False),
}


def plot_swimlane(
    events: pd.DataFrame,
    txn_id: int,
    faults: pd.DataFrame | None = None,
    ax: Axes | None = None,
) -> Figure:
    """A swimlane diagram of one transaction: a lane per node (coordinator,
    orchestrator or broker and tracker, then the participants), messages as
    arrows, effects, compensations, refusals and timeouts marked, faults
    shaded over the lanes and times they hit.

    ``events`` is a trace (``events.parquet``: ``time, node, kind, txn_id,
    step, detail``, with ``run_id`` when it holds several runs; it must then
    hold the transaction in one run only: filter it first). Events of no
    transaction (crashes, restarts) are drawn on the lanes of the nodes they
    hit. ``faults`` is the run's ``faults.parquet`` (``kind, target, start,
    end``, filtered to the same run when it has ``run_id``).

    Times are shown from the transaction's start; long quiet gaps (a crashed
    coordinator that comes back 30 s later) are cut short and labelled, so
    the millisecond exchanges on either side stay readable. A message whose
    receipt the trace does not record (a broker delivery) is dotted and drawn
    at the transaction's median message latency; a lost one ends in a cross.

    Returns the figure (``ax.figure`` when ``ax`` is given). Raises
    :class:`ValueError` when the transaction has no events.
    """
    frame, faults, run_id = _one_run(events, txn_id, faults)
    mine = frame[frame["txn_id"] == txn_id]
    if mine.empty:
        raise ValueError(f"no events of transaction {txn_id}: was the run traced? (sagasim run --trace)")
    mine = mine.sort_values("time", kind="stable")
    t0 = float(mine["time"].iloc[0])
    t_end = float(mine["time"].iloc[-1])
    messages = pair_messages(mine)
    lanes = _lane_order(mine, messages)
    nodes = frame[frame["txn_id"].isna() & frame["node"].isin(lanes) & frame["kind"].isin(_NODE_KINDS)]
    seen = nodes[(nodes["time"] >= t0) & (nodes["time"] <= t_end)]
    times = [*mine["time"], *seen["time"]]
    times += [m.received for m in messages if m.received == m.received]
    scale = _TimeScale([t - t0 for t in times])
    left, right = scale.forward(0.0), scale.forward(max(times) - t0)
    pad = 0.03 * (right - left) or 1e-4
    lo, hi = t0 + scale.inverse(left - pad), t0 + scale.inverse(right + pad)

    if ax is None:
        fig = Figure(figsize=(11, 1.6 + 0.62 * len(lanes)), dpi=_DPI, layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure  # type: ignore[assignment]
    canvas = _Canvas(ax, scale, t0, {name: -i for i, name in enumerate(lanes)}, {})
    canvas.draw_lanes(left - pad, right + pad)
    # Faults first, under everything else.
    canvas.draw_faults(_fault_windows(faults, nodes, lanes, lo, hi), lo, hi)
    canvas.draw_gaps(right - left)
    canvas.draw_messages(messages, _compensation_steps(mine), pad)
    canvas.draw_marks(pd.concat([mine, seen]).sort_values("time", kind="stable"))
    canvas.finish(fig, f"transaction {txn_id}" + (f" of {run_id}" if run_id else ""))
    return fig  # type: ignore[return-value]


def _one_run(
    events: pd.DataFrame, txn_id: int, faults: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame | None, Any]:
    """The events and faults of the one run that holds ``txn_id`` (all of
    them when there is no ``run_id`` column), and that run's id (or None)."""
    if "run_id" not in events.columns:
        return events, faults, None
    runs = list(dict.fromkeys(events.loc[events["txn_id"] == txn_id, "run_id"]))
    if not runs:
        return events, faults, None
    if len(runs) > 1:
        raise ValueError(
            f"transaction {txn_id} is in {len(runs)} runs of these events ({', '.join(map(str, runs[:4]))}); "
            "keep one run: events[events['run_id'] == RUN_ID]"
        )
    run_id = runs[0]
    if faults is not None and "run_id" in faults.columns:
        faults = faults[faults["run_id"] == run_id]
    return events[events["run_id"] == run_id], faults, run_id


#: How each kind of message is drawn (matplotlib line styles).
_MESSAGE_STYLES = {"traced": "-", "lost": "-", "send-inferred": "--", "receipt-inferred": ":"}
#: The legend's entries for messages drawn, by how they were found.
_MESSAGE_LEGEND = (
    ("traced", "message"),
    ("send-inferred", "message, send not traced"),
    ("receipt-inferred", "message, receipt not traced"),
)


@dataclass
class _Canvas:
    """One swimlane being drawn: the axes, the time scale (``x`` maps a time
    since ``t0`` to the axis), each lane's height, and the legend so far."""

    ax: Axes
    scale: _TimeScale
    t0: float
    lane_y: dict[str, int]
    legend: dict[str, Any]

    def x(self, since_t0: float) -> float:
        return self.scale.forward(since_t0)

    def draw_lanes(self, xmin: float, xmax: float) -> None:
        ax = self.ax
        ax.set_ylim(-len(self.lane_y) + 0.45, 0.75)
        ax.set_xlim(xmin, xmax)
        for y in self.lane_y.values():
            ax.axhline(y, color="#bdbdbd", lw=0.8, zorder=0)
        ax.set_yticks(list(self.lane_y.values()), list(self.lane_y))
        ax.tick_params(axis="y", length=0)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)

    def draw_faults(self, windows: list[Any], lo: float, hi: float) -> None:
        """Shade each fault over the lanes it hit (the whole height when it hit
        no lane shown)."""
        for kind, start, end, targets in windows:
            colour = FAULT_COLORS.get(kind, "#9e9e9e")
            a, b = self.x(max(start, lo) - self.t0), self.x(min(end, hi) - self.t0)
            hit = [self.lane_y[t] for t in targets if t in self.lane_y]
            if hit:
                for y in hit:
                    self.ax.fill_between([a, b], y - 0.38, y + 0.38, color=colour, alpha=0.18, lw=0, zorder=0.5)
            else:
                self.ax.axvspan(a, b, color=colour, alpha=0.10, lw=0, zorder=0.5)
            self.legend.setdefault(f"fault: {kind}", Patch(color=colour, alpha=0.3))

    def draw_gaps(self, width: float) -> None:
        """Hatch the quiet gaps the scale shrank, labelled when there is room."""
        for start, end in self.scale.gaps:
            a, b = self.x(start), self.x(end)
            self.ax.axvspan(a, b, fc="none", hatch="///", ec="#d6d6d6", lw=0, zorder=0.6)
            if b - a > 0.035 * width:
                self.ax.text(
                    (a + b) / 2,
                    0.5,
                    f"{fmt_seconds(end - start)}\nshrunk",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    color="#616161",
                )

    def draw_messages(self, messages: list[Message], compensations: set[str], pad: float) -> None:
        """An arrow per message (a receipt not traced drawn at the median
        latency of those traced), labelled when there are few, and their
        legend entries."""
        typical = float(np.median([m.received - m.sent for m in messages if m.how == "traced"] or [pad]))
        for m in messages:
            if m.src in self.lane_y and m.dst in self.lane_y:
                self._draw_message(m, _is_compensation(m.step, compensations), typical, len(messages) <= 60)
        for how, text in _MESSAGE_LEGEND:
            if any(m.how == how for m in messages):
                style = {"traced": "-"}.get(how, "--" if "send" in how else ":")
                self.legend.setdefault(text, Line2D([], [], color="#424242", ls=style))
        if any(_is_compensation(m.step, compensations) for m in messages):
            self.legend.setdefault("compensation message", Line2D([], [], color="#1565c0"))

    def _draw_message(self, m: Message, compensation: bool, typical: float, labelled: bool) -> None:
        colour = "#1565c0" if compensation else "#424242"
        if m.how == "receipt-inferred":
            m.received = m.sent + typical
        xa, xb = self.x(m.sent - self.t0), self.x(m.received - self.t0)
        ya, yb = self.lane_y[m.src], self.lane_y[m.dst]
        if m.how == "lost":
            # A lost message stops half-way (or where the down node dropped it).
            if m.received != m.received:
                xb, yb = (xa + self.x(m.sent - self.t0 + typical)) / 2, (ya + yb) / 2
            self.ax.plot([xb], [yb], marker="x", color="#c62828", ms=7, mew=2, zorder=4)
            self.legend.setdefault("message lost", Line2D([], [], color="#c62828", marker="x", ls="", mew=2))
        self.ax.annotate(
            "",
            xy=(xb, yb),
            xytext=(xa, ya),
            zorder=2,
            arrowprops={
                "arrowstyle": "-|>",
                "color": colour,
                "lw": 0.9,
                "ls": _MESSAGE_STYLES[m.how],
                "shrinkA": 0,
                "shrinkB": 0,
                "mutation_scale": 8,
            },
        )
        if labelled and "tracker" not in (m.src, m.dst):
            label = m.label + (" (x2)" if m.copies > 1 else "")
            self.ax.text(
                (xa + xb) / 2,
                (ya + yb) / 2,
                label,
                fontsize=6,
                color=colour,
                ha="center",
                va="center",
                zorder=3,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )

    def draw_marks(self, rows: pd.DataFrame) -> None:
        """A marker per event worth one (effects, refusals, timeouts, crashes),
        annotated above and below the lane in turn where it says something."""
        flip: dict[str, int] = {}
        for row in rows.itertuples(index=False):
            # an effect by what was applied: its detail, one word of EFFECT_WORDS
            key = f"effect:{row.detail}" if row.kind == "effect" else row.kind
            mark = _MARKS.get(key)
            if mark is None or row.node not in self.lane_y:
                continue
            marker, colour, filled, text, annotate = mark
            y = self.lane_y[row.node]
            xs = self.x(float(row.time) - self.t0)
            self.ax.plot(
                [xs],
                [y],
                marker=marker,
                ms=8 if marker == "|" else 6,
                color=colour,
                ls="",
                mfc=colour if filled else "white",
                mec=colour,
                zorder=5,
            )
            entry = Line2D([], [], marker=marker, color=colour, ls="", mfc=colour if filled else "white")
            self.legend.setdefault(text, entry)
            if annotate:
                n = flip[row.node] = flip.get(row.node, 0) + 1
                self.ax.annotate(
                    _annotation(row),
                    (xs, y),
                    xytext=(2, 7 if n % 2 else -11),
                    textcoords="offset points",
                    fontsize=6.5,
                    color=colour,
                    zorder=6,
                )

    def finish(self, fig: Figure, title: str) -> None:
        """The time axis, the title and the legend."""
        ax, scale = self.ax, self.scale
        ax.xaxis.set_major_locator(FixedLocator([self.x(t) for t in scale.ticks()]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_seconds(scale.inverse(v), signed=True)))
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel(f"time since the transaction started (at t = {self.t0:.6g} s, simulated)", fontsize=8)
        ax.set_title(title, fontsize=10, loc="left")
        fig.legend(
            handles=list(self.legend.values()),
            labels=list(self.legend),
            loc="outside lower center",
            ncol=min(5, max(1, len(self.legend))),
            fontsize=7,
            frameon=False,
        )


class _Receipt(NamedTuple):
    """A traced receiving end: at ``time`` ``node`` got ``message`` from ``src``
    (``down``: it was down and dropped it); ``before`` is the time of the
    sender's latest event so far (where a send that was not traced is drawn from)."""

    time: float
    node: str
    src: str
    step: str
    message: str
    kind: str
    down: bool
    before: float


def pair_messages(mine: pd.DataFrame) -> list[Message]:
    """Messages of one transaction from its trace's structured fields: each
    sending end (``direction`` out) paired with the receiving end (``in``)
    of the same message (sender, receiver and message kind, and the same step
    when both name one; first in, first out); losses from ``drop`` events,
    copies from ``duplicate`` events, and messages of which only one end is
    traced."""
    sends: list[Message] = []
    receipts: list[_Receipt] = []
    previous: dict[str, float] = {}  # node -> time of its latest event so far
    for row in mine.itertuples(index=False):
        t, node, peer = float(row.time), str(row.node), _text(row.peer)
        if peer and row.direction == OUT:
            if row.kind in ("drop", "duplicate"):
                _mark_send(sends, node, peer, t, lost=row.kind == "drop")
            else:
                sends.append(Message(node, peer, t, _text(row.step), _label(row), message=_text(row.message)))
        elif peer and row.direction == IN:
            down = row.kind == "drop"
            receipts.append(
                _Receipt(t, node, peer, _text(row.step), _text(row.message), str(row.kind), down, previous.get(peer, t))
            )
        previous[node] = t
    used: dict[int, int] = {}
    extra = [m for r in receipts if (m := _receive(sends, used, r)) is not None]
    for j, m in enumerate(sends):
        if m.how == "traced" and j not in used:
            m.how = "receipt-inferred"
    return sends + extra


def _text(value: Any) -> str:
    """A nullable text cell as text ("" for null)."""
    return "" if value is None or value is pd.NA or (isinstance(value, float) and value != value) else str(value)


def _label(row: Any) -> str:
    """What an arrow says: the step (with the attempt beyond the first), the
    reply's status, the vote, or the message kind."""
    step, message, attempt = _text(row.step), _text(row.message), row.attempt
    again = f" #{int(attempt)}" if attempt is not None and attempt is not pd.NA and int(attempt) > 1 else ""
    if row.kind in ("command", "deliver"):
        return step + again
    if row.kind == "respond":
        return f"{step} {row.detail}"
    if row.kind == "vote":
        return f"vote {row.detail}"
    if row.kind == "prepare":
        return "prepare"
    if row.kind == "publish":
        return step
    return message


def _mark_send(sends: list[Message], src: str, dst: str, t: float, *, lost: bool) -> None:
    """The send at ``t`` from ``src`` to ``dst`` was lost on the way, or sent twice."""
    for m in reversed(sends):
        if m.src == src and m.dst == dst and abs(m.sent - t) < 1e-9 and (m.how == "traced" or not lost):
            if lost:
                m.how = "lost"
            else:
                m.copies += 1
            return


def _receive(sends: list[Message], used: dict[int, int], r: _Receipt) -> Message | None:
    """Pair receipt ``r`` with the first send it can be the receipt of; a
    message whose sending is not traced when there is none."""
    for j, m in enumerate(sends):
        if m.dst != r.node or m.src != r.src or m.sent > r.time or m.how == "lost" or used.get(j, 0) >= m.copies:
            continue
        if (m.message and r.message and m.message != r.message) or (r.step and m.step and m.step != r.step):
            continue
        used[j] = used.get(j, 0) + 1
        if r.down:
            m.how, m.received = "lost", r.time
        elif used[j] == 1:
            m.received = r.time
        return None
    if r.down:
        return None
    return Message(r.src, r.node, r.before, r.step, r.step or r.kind, r.time, "send-inferred", message=r.message)


def _lane_order(mine: pd.DataFrame, messages: Sequence[Message]) -> list[str]:
    names = list(dict.fromkeys([*mine["node"], *(n for m in messages for n in (m.src, m.dst))]))
    names = [n for n in names if n not in ("network", "faults")]
    first = [n for n in _LANES_FIRST if n in names]
    last = [n for n in _LANES_LAST if n in names]
    return first + [n for n in names if n not in first and n not in last] + last


def _fault_windows(
    faults: pd.DataFrame | None, nodes: pd.DataFrame, lanes: list[str], lo: float, hi: float
) -> list[tuple[str, float, float, list[str]]]:
    """(kind, start, end, target lanes) of the faults overlapping [lo, hi]:
    from the faults table when given, else crash-restart and pause-resume
    windows from the trace. A fault on every link has no target lanes."""
    out: list[tuple[str, float, float, list[str]]] = []
    if faults is not None and len(faults):
        for f in faults.itertuples(index=False):
            start, end = float(f.start), float(f.end)
            if end < lo or start > hi:
                continue
            targets = [t for t in re.split(r"[,| ]+", str(f.target)) if t and t != "*"]
            out.append((str(f.kind), start, end, targets))
        return out
    opened: dict[tuple[str, str], float] = {}
    for row in nodes.sort_values("time", kind="stable").itertuples(index=False):
        if row.kind in ("crash", "pause"):
            opened[(row.node, row.kind)] = float(row.time)
        else:
            kind = "crash" if row.kind == "restart" else "pause"
            start = opened.pop((row.node, kind), None)
            if start is not None and not (float(row.time) < lo or start > hi):
                out.append((kind, start, float(row.time), [row.node]))
    out += [(kind, start, math.inf, [node]) for (node, kind), start in opened.items() if start <= hi]
    return [w for w in out if w[3][0] in lanes]


def _compensation_steps(mine: pd.DataFrame) -> set[str]:
    steps = set(mine.loc[(mine["kind"] == "effect") & (mine["detail"] == "compensation"), "step"])
    steps |= set(mine.loc[mine["kind"] == "null-compensation", "step"])
    for plan in mine.loc[mine["kind"] == "compensate", "detail"]:
        steps |= {s.strip() for s in str(plan).removeprefix("plan:").split(",") if s.strip()}
    return steps


def _is_compensation(step: str, compensations: set[str]) -> bool:
    return step.split(".")[0] in compensations or step.endswith(".failed")


def _annotation(row: Any) -> str:
    if row.kind in ("end", "decide", "terminal"):
        return str(row.detail or row.step)
    if row.kind in ("crash", "restart"):
        return str(row.kind)
    if row.kind == "alert":
        return "alert"
    # (an event of no step, a coordinator's timeout of several, has a null step)
    return str(row.step) if isinstance(row.step, str) and row.step else str(row.kind)


class _TimeScale:
    """Simulated time to x: linear, except that quiet gaps much longer than
    the transaction's usual pace are shrunk logarithmically (a gap of ``g``
    above the threshold ``tau`` is drawn ``tau * (1 + ln(g / tau))`` wide).
    A coordinator that comes back 30 s later, or a retry after a 1 s
    timeout, then no longer squeezes the millisecond exchanges into a line.
    """

    def __init__(self, times: Sequence[float]) -> None:
        ts = np.unique(np.asarray([t for t in times if t == t], dtype=float))
        self.times = ts
        self.gaps: list[tuple[float, float]] = []
        knots_t, knots_x = [-1e9], [-1e9]
        if ts.size >= 2:
            diffs = np.diff(ts)
            span = float(ts[-1] - ts[0])
            tau = max(5 * float(np.median(diffs[diffs > 0])), span / 1000)
            shift = 0.0
            for i in np.flatnonzero(diffs > 3 * tau):
                # Real time is kept for tau/2 at both ends of a shrunk gap, so
                # arrows leaving or reaching the events around it keep their slope.
                a, b = float(ts[i]) + tau / 2, float(ts[i + 1]) - tau / 2
                width = tau * math.log((b - a) / tau)
                self.gaps.append((a, b))
                knots_t += [a, b]
                knots_x += [a - shift, a - shift + width]
                shift += (b - a) - width
        else:
            shift = 0.0
        knots_t.append(1e9)
        knots_x.append(1e9 - shift)
        self._t = np.asarray(knots_t)
        self._x = np.asarray(knots_x)

    def forward(self, t: Any) -> Any:
        return np.interp(t, self._t, self._x)

    def inverse(self, v: Any) -> Any:
        return np.interp(v, self._x, self._t)

    def ticks(self) -> list[float]:
        """Tick times: round ones inside the stretches between shrunk gaps
        (about seven in all, spread by drawn width), and the start of each
        stretch where there is room."""
        if self.times.size < 2:
            return [0.0]
        edges = [float(self.times[0]), *(t for g in self.gaps for t in g), float(self.times[-1])]
        stretches = list(zip(edges[::2], edges[1::2], strict=True))
        total = float(self.forward(edges[-1]) - self.forward(edges[0])) or 1.0
        candidates: list[float] = []
        for a, b in stretches:
            candidates.append(a)
            n = round(7 * float(self.forward(b) - self.forward(a)) / total)
            if n >= 1 and b > a:
                step = nice_step((b - a) / n)
                candidates += [float(v) for v in np.arange(math.ceil(a / step) * step, b + step * 1e-9, step)]
        out: list[float] = []
        for t in sorted(set(candidates)):
            if not out or float(self.forward(t) - self.forward(out[-1])) >= 0.08 * total:
                out.append(t)
        return out


def nice_step(raw: float) -> float:
    exponent = math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10**exponent >= raw:
            return m * 10**exponent
    return 10 ** (exponent + 1)


def fmt_seconds(seconds: float, signed: bool = False) -> str:
    """``12.3 ms``, ``1.25 s``, ``2.1 min``: simulated time at a readable unit."""
    seconds = float(seconds)
    if seconds != seconds:
        return "-"
    sign = "+" if signed and seconds > 0 else ""
    size = abs(seconds)
    if size < 1e-9:
        return "0"
    if size < 1e-3:
        return f"{sign}{seconds * 1e6:.3g} µs"
    if size < 1:
        return f"{sign}{seconds * 1e3:.3g} ms"
    if size < 120:
        return f"{sign}{seconds:.3g} s"
    return f"{sign}{seconds / 60:.3g} min"
