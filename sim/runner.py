"""One (scenario, protocol, seed) is one run; several runs make a result."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sim.checker import Checker, TwoPCChecker, Verdict
from sim.errors import SagasimError
from sim.isolation import ISOLATION_ANOMALIES, FollowedHistory, Found, IsolationChecker, end_violations
from sim.keep import Keep
from sim.metrics import TRANSACTION_COLUMNS, TRANSACTION_EXTRA, summarize
from sim.protocols import registry
from sim.protocols.base import KEY_STRIDE, TransactionProtocol
from sim.scenario import PROTOCOLS, Scenario, estimate_work
from sim.world.core import EventBudgetExceeded, World
from sim.world.effects import FORWARD
from sim.world.faults import FaultRecord, Faults, Planned, plan_nemesis, plan_timeline
from sim.world.network import Network
from sim.world.node import Node
from sim.world.participant import Participant
from sim.world.records import Records
from sim.world.trace import TraceEvent
from sim.world.tracker import HIDDEN, TERMINAL_DEAD_LETTERED, Watchdog
from sim.world.workload import TxnKeys, Workload


@dataclass
class RunOutput:
    """Everything one run produced, as flat records."""

    run_id: str
    scenario: str
    protocol: str
    seed: int
    transactions: dict[str, list[Any]]
    summary: dict[str, Any]
    events: list[TraceEvent] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    wall_time: float = 0.0
    streams: list[str] = field(default_factory=list)


class RunTooBusy(SagasimError):
    """A run passed its event budget (``limits.events``) and was stopped; nothing of it is kept."""


#: A timeout shorter than this (seconds) is far below any message's round trip.
_TINY_TIMEOUT = 1e-4


def likely_storms(s: Scenario) -> list[str]:
    """Settings that make a run spin on retries or redeliveries: the usual
    reasons a run passes ``limits.events``. Found in every registered
    protocol's sections: each retry policy, and each setting named
    ``timeout`` or ``..._timeout``."""
    from sim.specs import RetrySpec

    retries: dict[str, RetrySpec] = {}
    timeouts: dict[str, float] = {}
    for protocol in registry.protocols():
        for section in protocol.sections:
            spec = getattr(s, section)
            for name in type(spec).model_fields:
                value = getattr(spec, name)
                if isinstance(value, RetrySpec):
                    retries[f"{section}.{name}"] = value
                elif (name == "timeout" or name.endswith("_timeout")) and isinstance(value, float):
                    timeouts[f"{section}.{name}"] = value
    found = []
    for path, retry in retries.items():
        # Every wait is min(max, initial * multiplier**k): zero whenever initial is.
        if retry.attempts == "unlimited" and retry.initial == 0:
            found.append(f"a retry storm: {path} retries without limit and with zero back-off (initial = 0)")
    for path, timeout in timeouts.items():
        if timeout < _TINY_TIMEOUT:
            found.append(f"{path} = {timeout:g} s times out before any reply can arrive")
    return found


def run_id(scenario: str, protocol: str, seed: int) -> str:
    return f"{scenario}/{protocol}/{seed}"


def build_protocol(model: Model) -> TransactionProtocol:
    """The model's protocol, built by its registration (:mod:`sim.protocols.registry`)."""
    return registry.get(model.protocol_name).builder()(model)  # type: ignore[no-any-return]


class _Watched:
    """A protocol whose transactions a :class:`Watchdog` checks after
    ``stuck_after`` (protocols with a coordinator; a choreography has its
    saga tracker and its own ``flagged_at``)."""

    def __init__(self, protocol: TransactionProtocol, watchdog: Watchdog) -> None:
        self.protocol = protocol
        self.watchdog = watchdog

    def start(self, txn: int) -> bool:
        if self.protocol.start(txn):
            self.watchdog.watch(txn)
            return True
        return False


def _present(planned: list[Planned], nodes: dict[str, Node]) -> list[Planned]:
    """Faults on the nodes of this run: a fault aimed at another protocol's
    coordinating node (``coordinator`` in a saga run, ``orchestrator`` in a
    2PC run) is left out, and such nodes are dropped from partition groups."""
    kept = []
    for fault in planned:
        if any(t not in nodes for t in fault.targets):
            continue
        if fault.groups and any(n not in nodes for g in fault.groups for n in g):
            groups = tuple(tuple(n for n in g if n in nodes) for g in fault.groups)
            fault = fault._replace(groups=tuple(g for g in groups if g))
            if len(fault.groups) < 2:
                continue
        kept.append(fault)
    return kept


class Model:
    """The built model of one run: world, network, nodes, protocol, workload.

    Building is separate from running so tests can reach into a model (crash
    a node at a chosen time, inspect a participant) before and after
    :meth:`run`. A fault the scenario does not plan needs ``runtime_faults``
    (see :mod:`sim.live`): without it, a node the plan says never fails
    refuses a crash or pause.
    """

    def __init__(
        self, scenario: Scenario, protocol: str, seed: int, trace: bool | None = None, runtime_faults: bool = False
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
        txn = scenario.transaction
        if len(txn.steps) > KEY_STRIDE:
            raise ValueError(f"a transaction has at most {KEY_STRIDE} steps")
        self.scenario = scenario
        self.protocol_name = protocol
        self.seed = seed
        self.world = World(seed, scenario.run.trace if trace is None else trace)
        self.world.max_events = scenario.limits.event_budget(estimate_work(scenario).arrivals)
        self.world.horizon = scenario.run.duration + scenario.run.drain
        self.network = Network(self.world, scenario.network)
        self.participants: dict[str, Participant] = {}
        for name, spec in scenario.participants.items():
            labels = {i: (s.name, s.compensation or "") for i, s in enumerate(txn.steps) if s.participant == name}
            node = Participant(self.world, self.network, name, spec, labels)
            self.participants[name] = node
            self.network.attach(node)
        self.keys = TxnKeys(self.world, scenario.workload.keys, len(txn.steps))
        if scenario.isolation is not None:
            self.world.records = Records(self.world, scenario.isolation, txn.steps, self.keys)
        self.protocol: TransactionProtocol = build_protocol(self)
        self.nodes: dict[str, Node] = {n.name: n for n in self.protocol.nodes()}
        self.nodes.update(self.participants)
        until = scenario.run.duration
        names, parts = list(self.nodes), list(self.participants)
        self.planned_faults = _present(
            plan_timeline(scenario.faults, names, parts, until)
            + plan_nemesis(scenario.nemesis, self.world.streams, names, parts, until),
            self.nodes,
        )
        self.faults = Faults(self.world, self.network, self.nodes, self.participants, heal_at=until)
        if runtime_faults:  # faults from Python while the run goes (sim.live): steady links may not stay so
            self.faults.open()
        self.faults.schedule(self.planned_faults)
        if self.world.records is not None:
            # A step may wait for a pending record, so no attempt's end is
            # known when it starts: no link is taken to be steady.
            self.network.expect(self.nodes, [None])
        # The stuck alert: when it was raised, when it fell due, and the
        # monitor's blind spots (a choreography's tracker has its own).
        self.flagged_at: Callable[[int], float]
        self.alert_due: Callable[[int, float], float]
        self.blind_spots: Callable[[], dict[int, str]]
        starter: Any = self.protocol
        own_alerts = getattr(self.protocol, "flagged_at", None)
        if own_alerts is not None:
            self.flagged_at = own_alerts
            self.alert_due = self.protocol.alert_due  # type: ignore[attr-defined]
            self.blind_spots = self.protocol.blind_spots  # type: ignore[attr-defined]
        else:
            protocol_, world = self.protocol, self.world

            def terminal(txn: int) -> bool:
                # a transaction judged as the run went is gone from the protocol's records
                settle = world.settle
                return (
                    protocol_.view(txn).terminal
                    if settle is None
                    else (settle.is_forgotten(txn) or protocol_.view(txn).terminal)
                )

            watchdog = Watchdog(self.world, scenario.monitor.stuck_after, terminal)
            self.flagged_at = watchdog.flagged_at
            self.alert_due = watchdog.alert_due
            self.blind_spots = watchdog.blind_spots
            starter = _Watched(self.protocol, watchdog)
        self.workload = Workload(
            self.world,
            scenario.workload,
            scenario.run.duration,
            starter,
            self.keys if scenario.workload.keys is not None else None,
        )
        self.checker: Checker | TwoPCChecker = registry.get(protocol).checker_class()(txn.steps)
        #: isolation anomalies per transaction, found once the history is complete (:meth:`isolation`)
        self._isolation: dict[int, list[Found]] | None = None
        #: a run judged as it goes: its history, and the anomalies judged and not yet read (:meth:`isolation_of`)
        self._followed: FollowedHistory | None = None
        self._found: dict[int, list[Found]] = {}
        # the protocol's own columns of a transaction's row, if it has any
        self._per_txn: Callable[[int], dict[str, Any]] | None = getattr(self.protocol, "transaction_extra", None)
        self._txn_columns = registry.get(protocol).transaction_columns

    @property
    def settles(self) -> bool:
        """Whether a streamed run judges transactions as it goes: its protocol
        declares ``settles`` (:mod:`sim.world.settle`). With records with
        values, a transaction settled is judged once its isolation anomalies
        are final too (:class:`sim.isolation.FollowedHistory`)."""
        return bool(getattr(self.protocol, "settles", False))

    def follow_isolation(self) -> FollowedHistory:
        """Judge this run's isolation anomalies as it goes: the records'
        history becomes a :class:`FollowedHistory` (call before the run
        starts; then :meth:`isolation_of` gives each transaction's anomalies,
        not :meth:`isolation`)."""
        records = self.world.records
        assert records is not None and self.scenario.isolation is not None and not records.history
        followed = FollowedHistory(IsolationChecker(self.scenario.isolation, self.scenario.transaction.steps))
        records.history = followed  # type: ignore[assignment]
        self._followed = followed
        return followed

    def isolation_of(self, txns: Sequence[int]) -> None:
        """Judge the isolation anomalies of ``txns`` (each final:
        :meth:`FollowedHistory.final`, or the run is over) and free their
        records' state; :meth:`judge` then reads each one's, once."""
        followed = self._followed
        assert followed is not None
        records = self.world.records
        assert records is not None
        last = len(self.scenario.transaction.steps) - 1
        by_txn = self.world.effects.by_txn
        # (the log's rows are plain tuples: time, step, op, participant)
        ended = {txn for txn in txns if any(step == last and op == FORWARD for _, step, op, _ in by_txn[txn])}
        for txn in txns:
            records.forget(txn, list(followed.touched.get(txn, ())))
        self._found.update(followed.judge(txns, ended))

    @property
    def end(self) -> float:
        return self.scenario.run.duration + self.scenario.run.drain

    def run(self, progress: Callable[[float], None] | None = None) -> RunOutput:
        """Run to the end of the drain window and judge every transaction.

        ``progress(now)`` is called every 1% of simulated time when given.
        """
        started = time.perf_counter()
        try:
            if progress is None:
                self.world.run(until=self.end)
            else:
                for i in range(1, 101):
                    self.world.run(until=self.end * i / 100)
                    progress(self.world.now)
        except EventBudgetExceeded as exc:
            raise RunTooBusy(self._too_busy(exc)) from None
        return self.collect(time.perf_counter() - started)

    def _too_busy(self, exc: EventBudgetExceeded) -> str:
        """The message of a run stopped by ``limits.events``, with its likely causes."""
        s = self.scenario
        causes = likely_storms(s) or ["the workload and faults make far more events than limits.events allows"]
        return (
            f"run {run_id(s.name, self.protocol_name, self.seed)} passed its budget of {exc.events:,} simulation "
            f"events (limits.events) at simulated time {exc.now:.6g} s of {self.end:g} s and was stopped; "
            f"nothing of it was saved. Likely cause: {'; '.join(causes)}. Fix the cause, or raise limits.events "
            "on purpose (e.g. --set limits.events=...)"
        )

    def judge(self, txn: int, started_at: float, blind: str) -> Judged:
        """Judge ``txn``: its row of ``transactions``, as values in the order
        of :meth:`row_columns` (without the run's own columns: run_id,
        scenario, protocol, seed), and what the summary needs of it;
        ``blind`` is the monitor's blind spot for it, if any."""
        world = self.world
        view = self.protocol.view(txn)
        effects = world.effects.of(txn)
        verdict = self.checker.judge(effects, view, started_at)
        if world.records is not None:
            found = self.isolation().get(txn, ()) if self._followed is None else self._found.pop(txn, ())
            verdict = _with_isolation(verdict, found)
        flagged_at = self.flagged_at(txn)
        row: tuple[Any, ...] = (
            txn,
            started_at,
            view.finished_at,
            verdict.outcome,
            verdict.consistent,
            verdict.consistent_at,
            view.finished_at - started_at,
            verdict.steps_applied,
            verdict.compensations_applied,
            view.retries,
            world.messages[txn],
            verdict.consistent_at - started_at,
            view.belief,
            list(verdict.reasons),
            list(verdict.anomalies),
            flagged_at,
        )
        if self._per_txn is not None:
            extra = self._per_txn(txn)
            row += tuple(extra[c] for c in self._txn_columns)
        alert = AlertFacts(
            outcome=verdict.outcome,
            flagged_at=flagged_at,
            last_progress=effects[-1].time if effects else started_at,
            due=self.alert_due(txn, started_at),
            started_at=started_at,
            blind=blind,
        )
        return Judged(row, verdict.anomalies, alert)

    def isolation(self) -> dict[int, list[Found]]:
        """The isolation anomalies of the run's transactions (records with
        values only), judged from the whole history: call once the run is over."""
        if self._isolation is None:
            records = self.world.records
            assert records is not None and self.scenario.isolation is not None
            last = len(self.scenario.transaction.steps) - 1
            ended = {
                txn
                for txn, effects in enumerate(self.world.effects.by_txn)
                # (the log's rows are plain tuples: time, step, op, participant)
                if any(step == last and op == FORWARD for _, step, op, _ in effects)
            }
            checker = IsolationChecker(self.scenario.isolation, self.scenario.transaction.steps)
            self._isolation = checker.check(records.history, ended)
        return self._isolation

    def isolation_figures(self, anomalies: Iterable[tuple[str, ...]], n: int) -> dict[str, Any]:
        """The summary's isolation columns, from the anomaly codes of the ``n``
        transactions (those without any may be left out): transactions per
        isolation anomaly, their rate, the countermeasures' costs and the
        end-of-run invariants."""
        records = self.world.records
        assert records is not None and self.scenario.isolation is not None
        tally = dict.fromkeys(ISOLATION_ANOMALIES, 0)
        with_any = 0
        for codes in anomalies:
            hit = False
            for code in codes:
                if code in tally:
                    tally[code] += 1
                    hit = True
            with_any += hit
        out: dict[str, Any] = {f"anomaly_{code}": count for code, count in tally.items()}
        out["isolation_anomaly_rate"] = with_any / n if n else float("nan")
        out.update(records.summary())
        out["invariant_end_violations"] = len(end_violations(self.scenario.isolation, records.drift()))
        return out

    def row_columns(self) -> tuple[str, ...]:
        """The columns of the rows :meth:`judge` returns, in order."""
        return ROW_COLUMNS + self._txn_columns

    def run_figures(self, wall_time: float) -> dict[str, Any]:
        """The summary's figures of the whole run (not of its transactions);
        call once, at the end of the run."""
        world = self.world
        run = self.scenario.run
        for p in self.participants.values():
            p.book_until(self.end)  # work past the end of the run is not part of it
        busy = {f"utilization_{name}": p.busy_time / (p.workers * self.end) for name, p in self.participants.items()}
        return {
            "duration": run.duration,
            "drain": run.drain,
            "rejected": self.workload.rejected,
            "network_messages": sum(world.messages),
            "network_lost": self.network.lost,
            "network_duplicated": self.network.duplicated,
            "crashes": sum(node.crashes for node in self.nodes.values()),
            "dropped_at_down_nodes": sum(node.dropped for node in self.nodes.values()),
            "lost_in_crashes": sum(p.lost_in_crash for p in self.participants.values()),
            "wall_time": wall_time,
            **busy,
        }

    def collect(self, wall_time: float = 0.0) -> RunOutput:
        """Judge the transactions and gather the records."""
        scenario = self.scenario.name
        protocol = self.protocol_name
        rid = run_id(scenario, protocol, self.seed)
        world = self.world
        cols: dict[str, list[Any]] = {k: [] for k in TRANSACTION_COLUMNS + TRANSACTION_EXTRA}
        anomalies: list[tuple[str, ...]] = []
        alerts: list[AlertFacts] = []
        blind = self.blind_spots()
        cols.update({c: [] for c in self._txn_columns})
        keep = Keep(self.scenario.run.keep, world.streams)
        names = self.row_columns()
        appends = [cols[c].append for c in names]
        # The summary's columns: those of the table when every row is kept,
        # else their own (the summary counts every transaction).
        tally = cols if keep.all else {c: [] for c in _TALLIED}
        tallied = [(names.index(c), tally[c].append) for c in _TALLIED]
        for txn, started_at in self.workload.started:
            row, txn_anomalies, alert = self.judge(txn, started_at, blind.get(txn, ""))
            if keep.all or keep(dict(zip(names, row, strict=True))):
                for append, value in zip(appends, row, strict=True):
                    append(value)
            if tally is not cols:
                for i, append in tallied:
                    append(row[i])
            anomalies.append(txn_anomalies)
            alerts.append(alert)
        n = len(cols["txn_id"])
        cols["run_id"] = [rid] * n
        cols["scenario"] = [scenario] * n
        cols["protocol"] = [protocol] * n
        cols["seed"] = [self.seed] * n
        run = self.scenario.run
        extra = self.run_figures(wall_time)
        extra.update(alert_figures(alerts, self.end, self.scenario.monitor.stuck_after))
        extra.update(self.protocol.summary_extra())
        if self.world.records is not None:
            extra.update(self.isolation_figures(anomalies, len(anomalies)))
        summary = summarize(
            run_id=rid,
            scenario=scenario,
            protocol=protocol,
            seed=self.seed,
            duration=run.duration,
            outcomes=tally["outcome"],
            latency=tally["latency"],
            time_to_consistency=tally["time_to_consistency"],
            messages=tally["messages"],
            retries=tally["retries"],
            anomalies=anomalies,
            extra=extra,
        )
        return RunOutput(
            run_id=rid,
            scenario=scenario,
            protocol=protocol,
            seed=self.seed,
            transactions=cols,
            summary=summary,
            events=world.tracer.events,
            faults=self.faults.records,
            wall_time=wall_time,
            streams=world.streams.names,
        )


#: The columns of a judged row (:meth:`Model.judge`), before the protocol's own.
ROW_COLUMNS: tuple[str, ...] = (
    "txn_id", "started_at", "finished_at", "outcome", "consistent", "consistent_at", "latency",
    "steps_applied", "compensations_applied", "retries", "messages", "time_to_consistency",
    "coordinator", "reasons", "anomalies", "flagged_at",
)  # fmt: skip
#: The columns of the transactions table the summary is made from.
_TALLIED = ("outcome", "latency", "time_to_consistency", "messages", "retries")


class Judged(NamedTuple):
    """One judged transaction: its row and what the summary needs of it."""

    #: the row's values, in the order of :meth:`Model.row_columns`
    row: tuple[Any, ...]
    anomalies: tuple[str, ...]
    alert: AlertFacts


class AlertFacts(NamedTuple):
    """What the summary's alert figures need to know of one transaction."""

    #: the checker's verdict
    outcome: str
    #: when the stuck alert was raised; NaN if never
    flagged_at: float
    #: its last effect, or its start when nothing was applied
    last_progress: float
    #: when its alert fell due (``stuck_after`` after the monitor first knew
    #: of it); NaN if the monitor never knew of it
    due: float
    started_at: float
    #: the monitor's blind spot, if any (:data:`sim.world.tracker.HIDDEN`,
    #: :data:`sim.world.tracker.TERMINAL_DEAD_LETTERED`), else ``""``
    blind: str


def alert_figures(facts: Iterable[AlertFacts], end: float, stuck_after: float) -> dict[str, Any]:
    """Stuck alerts against the checker's verdict, at the end of the run ``end``.

    An alert is true when the transaction ends ``stuck`` or ``inconsistent``
    (it needs a human), false when it ends ``committed``, ``compensated`` or
    ``aborted``: only slow (``false_alerts``), or raised because the
    choreography's tracker never got its copy of the terminal event, which was
    dead-lettered (``false_alerts_dead_lettered``). A ``stuck`` transaction
    without an alert is one of: not yet due (``alerts_not_due``: its alert
    falls due at or after ``end``, when no alert can be raised any more; a
    monitor that never heard of it is judged by the earliest it could have
    been due, its start plus ``stuck_after``); hidden (the tracker never heard
    of it: its copies to the tracker, its ``start`` first, were
    dead-lettered); or else missed. An inconsistent transaction that finished
    is never missed: the alert is about liveness. The detection delay of an
    alerted stuck transaction runs from its last progress to the alert, 0 if
    it was flagged before it stopped moving.
    """
    alerts = true = false = false_dead = missed = not_due = hidden = 0
    delays: list[float] = []
    for fact in facts:
        alerted = fact.flagged_at == fact.flagged_at  # not NaN
        if alerted:
            alerts += 1
            if fact.outcome in ("stuck", "inconsistent"):
                true += 1
            elif fact.blind == TERMINAL_DEAD_LETTERED:
                false_dead += 1
            else:
                false += 1
        if fact.outcome != "stuck":
            continue
        if alerted:
            delays.append(max(0.0, fact.flagged_at - fact.last_progress))
            continue
        due = fact.due if fact.due == fact.due else fact.started_at + stuck_after
        # An alert due at the very end is not raised: the run stops before
        # anything due at its end runs (sim.world.core.World.run).
        if due >= end:
            not_due += 1
        elif fact.blind == HIDDEN:
            hidden += 1
        else:
            missed += 1
    nan = float("nan")
    return {
        "alerts": alerts,
        "true_alerts": true,
        "false_alerts": false,
        "false_alerts_dead_lettered": false_dead,
        "missed_alerts": missed,
        "alerts_not_due": not_due,
        "alerts_hidden_dead_lettered": hidden,
        "detection_delay_mean": sum(delays) / len(delays) if delays else nan,
        "detection_delay_max": max(delays) if delays else nan,
    }


def _with_isolation(verdict: Verdict, found: Iterable[Found]) -> Verdict:
    """``verdict`` with the transaction's isolation anomalies: each a reason
    and a code (once), and ``inconsistent`` unless it is ``stuck``."""
    found = list(found)
    if not found:
        return verdict
    codes = list(verdict.anomalies)
    for f in found:
        if f.code not in codes:
            codes.append(f.code)
    outcome = verdict.outcome if verdict.outcome == "stuck" else "inconsistent"
    return verdict._replace(
        outcome=outcome,
        consistent=False,
        consistent_at=math.nan,
        reasons=verdict.reasons + tuple(f.reason for f in found),
        anomalies=tuple(codes),
    )


def run_once(scenario: Scenario, protocol: str, seed: int, trace: bool | None = None) -> RunOutput:
    """Build and run one (scenario, protocol, seed)."""
    return Model(scenario, protocol, seed, trace).run()
