"""What happened to one transaction, in words, computed from its trace.

``sagasim explain``, the report's "One transaction" section and
``notebooks/incident-deep-dive.ipynb`` all tell the story of a transaction
with :func:`explain_transaction`: what the coordinator believed against what
the checker found, the effects applied, and for each anomaly the events and
the scenario settings that let it happen (a timeout that did not prove
nothing happened, a retry without an idempotency key, a crash that forgot
the saga, a lost message). The rules read the trace and the scenario, never
hand-written text, so the story changes when the data does.

>>> from sim.explain import explain
>>> story = explain("results/naive")            # doctest: +SKIP
>>> print(story.markdown())                     # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from sim.protocols import registry
from sim.world.trace import IN, OUT

if TYPE_CHECKING:
    from sim.dataset import Dataset
    from sim.scenario import Scenario, StepSpec

__all__ = ["STEP_KINDS", "Explanation", "events_of", "explain", "explain_transaction", "step_table"]

#: Protocols without a coordinator: a chain of events, read by the saga tracker.
_COORDINATOR_FREE = frozenset(p.name for p in registry.protocols() if p.coordinator_free)

#: Event kinds counted per step by :func:`step_table`, in column order.
STEP_KINDS: tuple[str, ...] = (
    "command",
    "timeout",
    "error",
    "refuse",
    "hang",
    "effect",
    "compensate",
    "give-up",
    "dedup",
)

#: What the network's message codes (``lost: req to payment``) stand for.
MESSAGES: dict[str, str] = {
    "req": "request",
    "rep": "reply",
    "evt": "event delivery",
    "conf": "publish confirm",
    "pub": "publish",
    "ack": "delivery acknowledgement",
}


class LostMessage(NamedTuple):
    """A message the network lost; ``step`` is the step it was about, when known."""

    time: float
    message: str
    peer: str
    step: str


@dataclass(frozen=True)
class Explanation:
    """The story of one transaction.

    ``sentences`` are Markdown (settings and steps in backticks, the two
    verdicts in bold); ``steps`` counts each kind of event per step and
    compensation, in the transaction's order; ``chosen`` says why this
    transaction (``"chosen with --txn 42"``, ``"the worst transaction: ..."``).
    """

    run_id: str
    txn_id: int
    outcome: str
    sentences: tuple[str, ...]
    steps: pd.DataFrame
    chosen: str = ""

    def markdown(self) -> str:
        """The sentences as a Markdown bullet list."""
        return "\n".join(f"- {s}" for s in self.sentences)

    def plain(self) -> list[str]:
        """The sentences without Markdown marks (for HTML paragraphs and plain text)."""
        return [re.sub(r"\*\*|`", "", s) for s in self.sentences]


def events_of(events: pd.DataFrame, txn_id: int) -> pd.DataFrame:
    """The events of one transaction in time order, with ``since_start_ms``:
    the time since its first event."""
    mine = events[events["txn_id"] == txn_id]
    mine = mine.drop(columns=[c for c in ("run_id",) if c in mine.columns]).sort_values("time", kind="stable")
    mine = mine.copy()
    start = mine["time"].iloc[0] if len(mine) else 0.0
    mine.insert(1, "since_start_ms", ((mine["time"] - start) * 1000).round(3))
    return mine


def step_table(mine: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Per step and compensation (rows, in the transaction's order), how many
    events of each kind of :data:`STEP_KINDS` (columns) the transaction had:
    ``command`` is an attempt sent, ``effect`` an application, ``timeout`` a
    reply that did not come in time."""
    with_step = mine[mine["step"].notna()]
    if with_step.empty:
        return pd.DataFrame(index=pd.Index([], name="step"))
    counts = with_step.pivot_table(index="step", columns="kind", values="time", aggfunc="count")
    counts = counts.reindex(columns=[k for k in STEP_KINDS if k in counts.columns]).fillna(0).astype(int)
    spec = scenario.transactions[scenario.workload.transaction]
    order = [name for s in spec.steps for name in (s.name, s.compensation) if name]
    counts = counts.reindex([s for s in order if s in counts.index] + [s for s in counts.index if s not in order])
    counts.columns.name = None
    return counts


def explain_transaction(row: pd.Series, events: pd.DataFrame, scenario: Scenario, chosen: str = "") -> Explanation:
    """The story of the transaction ``row`` (a row of ``transactions``), from
    ``events``: the trace of its run (at least its own events and the node
    events, crashes and restarts, of the run) and the run's scenario."""
    txn_id = int(row["txn_id"])
    if "run_id" in events.columns and "run_id" in row:
        events = events[events["run_id"] == row["run_id"]]
    mine = events_of(events, txn_id)
    if mine.empty:
        raise ValueError(f"transaction {txn_id}: no events in the trace (was the run traced?)")
    story = _Story(row, mine, events, scenario)
    return Explanation(
        run_id=str(row.get("run_id", "")),
        txn_id=txn_id,
        outcome=str(row["outcome"]),
        sentences=tuple(story.sentences()),
        steps=step_table(mine, scenario),
        chosen=chosen,
    )


def explain(source: str | Path | Dataset, txn: str | None = None) -> Explanation:
    """The story of one transaction of a result folder or sweep dataset:
    ``txn`` (``TXN_ID`` when it holds one run, else ``RUN_ID:TXN_ID``), by
    default the worst (as the report picks it). Untraced runs are replayed
    with tracing; runs are deterministic, so it is the same transaction.

    Raises :class:`~sim.errors.SagasimError` for a bad folder or ``txn``.
    """
    from sim.dataset import Dataset, load
    from sim.errors import SagasimError
    from sim.report import pick_transaction, replay_events

    dataset = source if isinstance(source, Dataset) else load(source)
    choice = pick_transaction(dataset, txn)
    if choice.row is None:
        raise SagasimError(f"{dataset.path}: {choice.why}: nothing to explain")
    row = choice.row
    run_id, txn_id = str(row["run_id"]), int(row["txn_id"])
    if dataset.traced:
        events = dataset.events[dataset.events["run_id"] == run_id]
    else:
        events = replay_events(dataset, run_id, txn_id)
    return explain_transaction(row, events, dataset.scenario_for(run_id), chosen=choice.why)


# ------------------------------------------------------------------ the rules


def _effect_note(detail: str) -> str:
    """How an applied effect is told apart in the list: nothing for a step's
    forward operation, "(undo)" for a compensation, else what the protocol
    called it (a TCC reservation, release or expiry)."""
    if detail == "forward":
        return ""
    return " (undo)" if detail == "compensation" else f" ({detail})"


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _fmt(seconds: float) -> str:
    return f"+{seconds * 1000:.1f} ms" if abs(seconds) < 1 else f"+{seconds:.2f} s"


class _Story:
    """The rules, over one transaction's events (``mine``), its run's events and its scenario."""

    def __init__(self, row: pd.Series, mine: pd.DataFrame, run_events: pd.DataFrame, scenario: Scenario) -> None:
        self.row, self.mine, self.run_events, self.scenario = row, mine, run_events, scenario
        self.t0 = float(mine["time"].iloc[0])
        begins = mine.loc[mine["kind"] == "begin", "node"]
        # Choreography has no coordinator: the tracker reads the end of the chain.
        self.believer = str(begins.iloc[0]) if len(begins) else "tracker"
        self.choreography = str(row.get("protocol", "")) in _COORDINATOR_FREE or (
            mine["kind"].isin(["publish", "deliver"]).any()
        )
        # what participants applied: their effects, and an atomic commit's
        # participant's commit, which applies its steps' effects (traced as
        # ``commit``, detail ``forward``)
        applied = (mine["kind"] == "effect") | ((mine["kind"] == "commit") & (mine["detail"] == "forward"))
        self.effects = mine[applied]
        self.lost = self._lost_messages()

    def sentences(self) -> list[str]:
        said = [self._verdict(), self._end(), self._applied()]
        for step in self.scenario.transactions[self.scenario.workload.transaction].steps:
            said.extend(self._step(step))
        said.extend(self._crashes())
        for loss in self.lost:
            about = f" (`{loss.step}`)" if loss.step else ""
            said.append(
                f"{_a(loss.message).capitalize()} to {loss.peer}{about} was lost at {_fmt(loss.time - self.t0)}."
            )
        said.extend(self._dropped_while_down())
        return said

    def _dropped_while_down(self) -> list[str]:
        """Messages of the transaction that reached a crashed node: one sentence per node."""
        mine, said = self.mine, []
        drops = mine[(mine["kind"] == "drop") & (mine["direction"] == IN)]
        for node, group in drops.groupby("node", sort=False):
            codes = [str(code) for code in group["message"]]
            whats = [MESSAGES.get(code, code or "message") for code in codes]
            first, last = _fmt(group["time"].min() - self.t0), _fmt(group["time"].max() - self.t0)
            if len(group) == 1:
                said.append(f"{_a(whats[0]).capitalize()} reached the {node} at {first} while it was down: dropped.")
                continue
            kinds = ", ".join(f"{what} x{n}" for what, n in Counter(whats).items())
            said.append(
                f"{len(group)} messages ({kinds}) reached the {node} while it was down, "
                f"from {first} to {last}: dropped."
            )
        return said

    def _verdict(self) -> str:
        row = self.row
        verdict = f"The {self.believer} believed the transaction **{row['coordinator']}**; "
        verdict += f"the checker says **{row['outcome']}**"
        reasons, anomalies = _text(row.get("reasons")), _text(row.get("anomalies"))
        if reasons:
            verdict += f": {reasons}" + (f" (`{anomalies}`)" if anomalies else "")
        elif row["outcome"] == "stuck":
            verdict += f", with effects that are {'consistent' if row.get('consistent') else 'inconsistent'}"
        return verdict + "."

    def _end(self) -> str:
        ends = self.mine[self.mine["kind"].isin(["end", "terminal"])]
        if len(ends):
            end = ends.iloc[0]
            when, what = _fmt(end["time"] - self.t0), end["detail"] or end["step"]
            return f"The {end['node']} recorded its end at {when}: `{what}`."
        flagged = self.row.get("flagged_at")
        alert = f"; the stuck alert fired at {_fmt(flagged - self.t0)}" if pd.notna(flagged) else ""
        return f"The transaction never reached an end state{alert}."

    def _applied(self) -> str:
        applied = self.effects.groupby(["step", "detail"], sort=False).size()
        listed = ", ".join(f"`{step}` x{n}" + _effect_note(detail) for (step, detail), n in applied.items())
        return f"Effects the participants applied: {listed}." if listed else "No participant applied any effect."

    def _step(self, step: StepSpec) -> list[str]:
        mine, effects, said = self.mine, self.effects, []
        timeouts = mine[(mine["kind"] == "timeout") & (mine["step"] == step.name)]
        forward = effects[(effects["step"] == step.name) & (effects["detail"] == "forward")]
        if len(timeouts) and len(forward) and forward["time"].max() > timeouts["time"].min():
            said.append(
                f"`{step.name}` timed out at {_fmt(timeouts['time'].min() - self.t0)}, yet {step.participant} applied "
                f"it at {_fmt(forward['time'].max() - self.t0)}: a timeout does not prove that nothing happened."
            )
        if len(forward) > 1:
            said.append(self._applied_twice(step, len(forward)))
        undone = ((effects["step"] == step.compensation) & (effects["detail"] == "compensation")).any()
        if (
            step.compensation
            and len(forward)
            and not undone
            and "never_compensated" in _text(self.row.get("anomalies"))
        ):
            said.append(self._never_compensated(step))
        return said

    def _lost_messages(self) -> list[LostMessage]:
        """Each message the network lost; a request or reply is attributed to
        the last command sent before it (orchestration, 2PC)."""
        mine = self.mine
        commands = mine[mine["kind"] == "command"]
        out = []
        lost = (mine["kind"] == "drop") & (mine["direction"] == OUT) & mine["detail"].str.startswith("lost:")
        for drop in mine[lost].itertuples():
            what, peer = str(drop.message), str(drop.peer)
            sent = commands[commands["time"] <= drop.time]
            if what == "req":
                sent = sent[sent["peer"] == peer]
            step = str(sent["step"].iloc[-1]) if what in ("req", "rep") and len(sent) else ""
            out.append(LostMessage(float(drop.time), MESSAGES.get(what, what), peer, step))
        return out

    def _applied_twice(self, step: StepSpec, times: int) -> str:
        mine, scenario = self.mine, self.scenario
        participant = scenario.participants[step.participant]
        if self.choreography:
            deliveries = mine[(mine["kind"] == "deliver") & (mine["peer"] == step.participant)]
            topics = list(dict.fromkeys(deliveries["step"]))
            stored = int((mine["kind"].eq("store") & mine["step"].isin(topics)).sum())
            why = (
                f"`{step.name}` was applied {times} times: the broker delivered {len(deliveries)} copies of "
                f"{', '.join(f'`{t}`' for t in topics)} to {step.participant} ({stored} copies stored)"
            )
        else:
            attempts = int(((mine["kind"] == "command") & (mine["step"] == step.name)).sum())
            why = f"`{step.name}` was applied {times} times: the {self.believer} sent {attempts} attempt(s)"
            if attempts > 1 and self.believer == "orchestrator" and not scenario.orchestrator.idempotency_keys:
                why += ", and with `orchestrator.idempotency_keys = false` each retry is a new request to the service"
            duplicated = mine["kind"].eq("duplicate") & mine["message"].eq("req") & mine["peer"].eq(step.participant)
            duplicated = int(duplicated.sum())
            if duplicated:
                why += f"; the network duplicated the request {duplicated} time(s)"
        if not participant.idempotent:
            why += f"; with `participants.{step.participant}.idempotent = false`, nothing skips a copy already handled"
        return why + "."

    def _never_compensated(self, step: StepSpec) -> str:
        mine, undo, believer = self.mine, step.compensation, self.believer
        sent = int(((mine["kind"] == "command") & (mine["step"] == undo)).sum())
        why = f"`{step.name}` was applied but `{undo}` never was"
        if believer == "tracker":  # choreography: no commands, the services react to events
            return why + "."
        if sent == 0:
            heard = mine[mine["kind"].isin(["reply", "timeout"]) & (mine["step"] == step.name)]
            if heard.empty:
                last = "nothing"
            else:
                last = f"`{heard['detail'].iloc[-1]}`" if heard["kind"].iloc[-1] == "reply" else "a timeout"
            why += f": the {believer} never sent it; the last it heard of `{step.name}` was {last}"
            if last == "a timeout" and not self.scenario.orchestrator.compensate_uncertain:
                why += (
                    ", and with `orchestrator.compensate_uncertain = false` it assumes a timed-out step did not happen"
                )
            return why + "."
        why += f": the {believer} sent it {sent} time(s)"
        problems = {
            "lost": sum(1 for loss in self.lost if loss.step == undo),
            "answered with an error": int(((mine["kind"] == "error") & (mine["step"] == undo)).sum()),
            "timed out": int(((mine["kind"] == "timeout") & (mine["step"] == undo)).sum()),
        }
        why += "".join(f"; {n} attempt(s) {what}" for what, n in problems.items() if n)
        if ((mine["kind"] == "give-up") & (mine["step"] == undo)).any():
            attempts = self.scenario.orchestrator.compensation_retry.attempts
            why += f"; then it gave up (`orchestrator.compensation_retry.attempts = {attempts}`)"
        return why + "."

    def _crashes(self) -> list[str]:
        events, mine, said = self.run_events, self.mine, []
        nodes = set(mine["node"])
        crashes = events[(events["kind"] == "crash") & events["node"].isin(nodes)]
        during = crashes[crashes["time"].between(self.t0, mine["time"].iloc[-1])]
        if not mine["kind"].isin(["end", "terminal"]).any():
            # Never ended: the coordinator's first crash after its last word may be why (it forgot).
            after = crashes[(crashes["node"] == self.believer) & (crashes["time"] > mine["time"].iloc[-1])]
            during = pd.concat([during, after.iloc[:1]])
        for crash in during.itertuples():
            restarts = events[
                (events["kind"] == "restart") & (events["node"] == crash.node) & (events["time"] > crash.time)
            ]
            back = f", back at {_fmt(restarts['time'].iloc[0] - self.t0)}" if len(restarts) else ""
            text = f"The {crash.node} crashed at {_fmt(crash.time - self.t0)}{back}"
            if crash.node == self.believer == "orchestrator" and not self.scenario.orchestrator.recovery:
                text += "; with `orchestrator.recovery = false` it forgot every saga in flight, this one included"
            said.append(text + ".")
        return said


def _text(value: Any) -> str:
    """A reasons/anomalies cell as text ("" for none), whether stored as a string or a list."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, str):
        return value
    return "; ".join(str(v) for v in value)
