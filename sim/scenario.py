"""Scenario files: TOML validated into typed, immutable objects.

One validated schema drives everything; a component never looks a key up with
a fallback, so a typo cannot silently become a default. A bad file raises
:class:`~sim.errors.ScenarioError` naming the file, the field path, the bad
value and what is allowed; unknown keys are errors, with a "did you mean" when
a known key is close. The whole format is documented in ``docs/scenarios.md``.
"""

from __future__ import annotations

import copy
import math
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, create_model, field_validator, model_validator

from sim.errors import ScenarioError, did_you_mean, show_value
from sim.files import InputFileError, read_input_text
from sim.names import PROTOCOLS as PROTOCOLS  # defined without pandas/pydantic for the CLI
from sim.protocols import registry
from sim.specs import DistSpec as DistSpec
from sim.specs import RetrySpec as RetrySpec
from sim.specs import SpecModel as _Model
from sim.specs import constant as constant
from sim.specs import exponential as exponential

#: Every node of each protocol beyond the participants, from the registry.
PROTOCOL_ALL_NODES: dict[str, tuple[str, ...]] = registry.all_nodes()

#: Node names the harness itself uses; participants may not take them.
RESERVED_NODES: tuple[str, ...] = registry.reserved_nodes()

#: A protocol's name, as the scenario and sweep files spell it: one of the registered ones.
ProtocolName = Literal[PROTOCOLS]  # type: ignore[valid-type]

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NodeName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", max_length=64)]


class RunSpec(_Model):
    """How long to run, which seeds and protocols."""

    duration: float = Field(60.0, gt=0)
    drain: float = Field(60.0, ge=0)
    seeds: list[Annotated[int, Field(ge=0, lt=2**63)]] = Field(default_factory=lambda: [1], min_length=1)
    protocols: list[ProtocolName] = Field(default_factory=lambda: [PROTOCOLS[0]], min_length=1)
    trace: bool = False
    #: which rows of the transactions table a run keeps: ``"all"``,
    #: ``"violations"`` (inconsistent, stuck, or with an isolation anomaly),
    #: or a fraction in (0, 1] of the others, drawn per transaction from the
    #: named stream ``run.keep`` (violations are always kept; the summary
    #: counts every transaction whatever is kept)
    keep: Literal["all", "violations"] | float = "all"

    @field_validator("keep", mode="before")
    @classmethod
    def _keep(cls, value: Any) -> Any:
        allowed = 'allowed: "all", "violations", or a fraction greater than 0 and at most 1 (e.g. 0.01)'
        if isinstance(value, str):
            if value not in ("all", "violations"):
                raise ValueError(f"{value!r} is not a choice; {allowed}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"{value!r} is not a choice; {allowed}")
        return float(value)

    @field_validator("seeds", "protocols")
    @classmethod
    def _unique(cls, values: list[Any]) -> list[Any]:
        dupes = sorted({str(v) for v in values if values.count(v) > 1})
        if dupes:
            raise ValueError(f"must not repeat values; repeated: {', '.join(dupes)}")
        return values


class KeysSpec(_Model):
    """The keys each transaction touches: ``per_step`` keys per step, drawn
    from ``population`` keys per participant with a Zipf ``skew`` (0 is
    uniform; key k has weight ``1 / (k + 1) ** skew``)."""

    population: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    per_step: Annotated[int, Field(ge=1, le=64)] = 1
    skew: float = Field(0.0, ge=0.0, le=10.0)


class WorkloadSpec(_Model):
    """How transactions arrive."""

    transaction: str | None = None
    interarrival: DistSpec = Field(default_factory=lambda: exponential(0.01))
    limit: Annotated[int, Field(ge=1)] | None = None
    keys: KeysSpec | None = None


#: The countermeasures to a saga's lack of isolation (``[isolation]``, ``docs/isolation.md``).
Countermeasure = Literal[
    "none", "semantic-lock", "commutative-updates", "reread-value", "pessimistic-view", "version-file"
]


class RecordSpec(_Model):
    """The records a participant holds, one per key of ``[workload.keys]``:
    their ``initial`` value and the invariants the user states for them."""

    initial: float = 0.0
    #: "never below": no write may leave a record below this (checked on every write)
    min: float | None = None
    #: "constant sum": once every transaction is done, the sum of this
    #: participant's records equals their initial sum
    conserved: bool = False


class StepOpSpec(_Model):
    """What one step does to its records (the keys it touches at its participant).

    ``op``: ``add`` or ``subtract`` ``amount``, ``set`` the value ``amount``,
    or ``read``. ``check_min``: refuse the step when the value it would leave
    (for a read, the value read) is below it (``stock >= quantity`` is
    ``op = "subtract"``, ``amount = quantity``, ``check_min = 0``).
    ``compensation``: undo by ``delta`` (the opposite of the step's change)
    or by ``value`` (restore the value the step saw). ``keys_of``: touch the
    keys of that earlier step at the same participant instead of its own.
    """

    op: Literal["add", "subtract", "set", "read"]
    amount: float = 0.0
    check_min: float | None = None
    compensation: Literal["delta", "value"] = "delta"
    keys_of: NodeName | None = None
    #: this step's countermeasure, instead of ``[isolation] countermeasure``
    countermeasure: Countermeasure | None = None


class IsolationSpec(_Model):
    """Records with values, their operations and the countermeasure (``docs/isolation.md``)."""

    countermeasure: Countermeasure = "none"
    #: semantic lock: a step meeting a record another saga marked pending
    #: ``wait``s for it (at most ``pending_timeout`` seconds, then is
    #: refused) or is ``refuse``d at once
    pending: Literal["wait", "refuse"] = "wait"
    pending_timeout: float = Field(1.0, gt=0)
    #: pessimistic view: the transaction to run instead of the workload's,
    #: the same steps with the risky ones moved last
    reordered: NodeName | None = None
    records: dict[NodeName, RecordSpec] = Field(min_length=1)
    steps: dict[NodeName, StepOpSpec] = Field(default_factory=dict)


class LinkSpec(_Model):
    """Overrides of the network's settings between two nodes."""

    src: str
    dst: str
    both_ways: bool = True
    latency: DistSpec | None = None
    loss: Probability | None = None
    duplicate: Probability | None = None


class NetworkSpec(_Model):
    latency: DistSpec = Field(default_factory=lambda: constant(0.001))
    loss: Probability = 0.0
    duplicate: Probability = 0.0
    links: list[LinkSpec] = Field(default_factory=list)


class ParticipantSpec(_Model):
    """A service that applies effects: its speed, capacity and failure modes."""

    service_time: DistSpec = Field(default_factory=lambda: exponential(0.01))
    workers: Annotated[int, Field(ge=1, le=100_000)] = 4
    business_failure: Probability = 0.0
    transient_failure: Probability = 0.0
    hang: Probability = 0.0
    hang_duration: DistSpec | None = None
    compensation_time: DistSpec | None = None
    compensation_failure: Probability = 0.0
    idempotent: bool = True
    outbox: bool = True
    lock_timeout: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _rates_sum(self) -> ParticipantSpec:
        total = self.business_failure + self.transient_failure + self.hang
        if total > 1.0 + 1e-12:
            raise ValueError(
                "business_failure + transient_failure + hang must be <= 1 "
                f"(they are per-attempt probabilities of exclusive outcomes), got {total:g}"
            )
        return self


class StepSpec(_Model):
    """One step of a transaction."""

    name: NodeName
    participant: str
    compensation: NodeName | None = None
    kind: Literal["compensatable", "pivot", "retriable"] = "compensatable"


class TransactionSpec(_Model):
    steps: list[StepSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> TransactionSpec:
        problems: list[str] = []
        names: list[str] = []
        pivots = [i for i, s in enumerate(self.steps) if s.kind == "pivot"]
        if len(pivots) > 1:
            problems.append(f"at most one step may be the pivot; steps {pivots} are")
        pivot = pivots[0] if pivots else None
        for i, step in enumerate(self.steps):
            where = f"steps[{i}] ({step.name!r})"
            if step.kind == "compensatable":
                if step.compensation is None:
                    problems.append(f"{where} is compensatable and needs a 'compensation'")
                if pivot is not None and i > pivot:
                    problems.append(f"{where} comes after the pivot, so its kind must be 'retriable'")
            else:
                if step.compensation is not None:
                    problems.append(f"{where} is {step.kind} and takes no 'compensation'")
                if step.kind == "retriable" and (pivot is None or i < pivot):
                    problems.append(f"{where} is retriable, so it must come after the pivot")
            names.append(step.name)
            if step.compensation is not None:
                names.append(step.compensation)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(f"step and compensation names must be unique; repeated: {repeated}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class MonitorSpec(_Model):
    """Stuck-transaction alerts, alike for every protocol."""

    stuck_after: float = Field(30.0, gt=0)


FaultKind = Literal["crash", "pause", "partition", "loss", "duplicate", "delay", "slow", "failure_rate"]

#: Per fault kind: the settings it requires, and those it may take.
FAULT_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "crash": (("target",), ()),
    "pause": (("target",), ()),
    "partition": ((), ("target", "groups", "one_way")),
    "loss": (("probability",), ("target", "groups", "one_way")),
    "duplicate": (("probability",), ("target", "groups", "one_way")),
    "delay": (("extra",), ("target", "groups", "one_way")),
    "slow": (("target", "factor"), ()),
    "failure_rate": (("target",), ("business_failure", "transient_failure", "compensation_failure")),
}
#: Kinds whose target is a node of any kind; the others' targets are participants.
NODE_FAULTS = ("crash", "pause", "partition", "loss", "duplicate", "delay")
_SETTINGS = (
    "target", "groups", "one_way", "probability", "extra", "factor",
    "business_failure", "transient_failure", "compensation_failure",
)  # fmt: skip


class _FaultSettings(_Model):
    """What a fault does; shared by timeline faults and the nemesis."""

    target: str | list[str] | None = None
    groups: list[list[str]] | None = None
    one_way: bool | None = None
    probability: Probability | None = None
    extra: DistSpec | None = None
    factor: float | None = Field(None, gt=0)
    business_failure: Probability | None = None
    transient_failure: Probability | None = None
    compensation_failure: Probability | None = None

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value: object) -> object:
        if value is None:  # every link (what Scenario.effective() writes for an untargeted link fault)
            return value
        ok = isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
        if not ok:
            raise ValueError('must be a node name, "*", or a non-empty list of node names')
        return value

    def _check_kind(self, kind: str) -> None:
        self._check_keys(kind)
        if self.groups is not None and len(self.groups) < 2:
            raise ValueError(f"a {kind} fault needs at least two groups")
        if self.target is not None and self.groups is not None:
            raise ValueError(f"a {kind} fault takes 'target' or 'groups', not both")
        if kind == "partition" and self.target is None and self.groups is None:
            raise ValueError("a partition needs 'groups' (or 'target': nodes to cut off from all others)")
        if kind == "failure_rate":
            self._check_failure_rates()

    def _check_keys(self, kind: str) -> None:
        """The kind's required settings are given, and no setting it does not take."""
        required, optional = FAULT_KEYS[kind]
        for key in _SETTINGS:
            value = getattr(self, key)
            if key in required and value is None:
                raise ValueError(f"a {kind} fault needs {key!r}")
            if value is not None and key not in required and key not in optional:
                allowed = ", ".join(repr(k) for k in (*required, *optional)) or "nothing else"
                raise ValueError(f"a {kind} fault does not take {key!r} (it takes {allowed})")

    def _check_failure_rates(self) -> None:
        if self.business_failure is None and self.transient_failure is None and self.compensation_failure is None:
            raise ValueError(
                "a failure_rate fault needs 'business_failure', 'transient_failure' or 'compensation_failure' "
                "(or several)"
            )
        # The same rule as a participant's own rates: exclusive outcomes of one attempt.
        total = (self.business_failure or 0.0) + (self.transient_failure or 0.0)
        if total > 1.0 + 1e-12:
            raise ValueError(
                "business_failure + transient_failure must be <= 1 "
                f"(they are per-attempt probabilities of exclusive outcomes), got {total:g}"
            )

    def targets(self, nodes: Iterable[str]) -> list[str]:
        """The target names, ``*`` expanded to ``nodes``."""
        if self.target is None:
            return []
        target = self.target if isinstance(self.target, list) else [self.target]
        return list(nodes) if "*" in target else list(target)

    def settings(self) -> dict[str, Any]:
        """The kind's own settings, for ``faults.parquet``."""
        out: dict[str, Any] = {}
        for key in _SETTINGS[2:]:
            if key == "extra":
                continue
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.extra is not None:
            out["extra"] = self.extra.built.describe()
        return out


class FaultSpec(_FaultSettings):
    """One fault on the timeline: ``kind``, when it starts (``at``), how long it
    lasts (``duration``; omitted: until the workload ends) and the kind's
    settings (see ``docs/scenarios.md``)."""

    kind: FaultKind
    at: float = Field(ge=0)
    duration: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _keys_for_kind(self) -> FaultSpec:
        self._check_kind(self.kind)
        return self


class NemesisFaultSpec(_FaultSettings):
    """Random faults of one kind: per target, a fault starts a random time
    after the previous one ended (exponential, mean ``mtbf``) and lasts a
    draw of ``duration``."""

    mtbf: float = Field(gt=0)
    duration: DistSpec = Field(default_factory=lambda: exponential(5.0))


class NemesisSpec(_Model):
    """Random fault schedules, active while transactions arrive.

    With ``swarm``, each seed draws which of the configured kinds are active
    and how often they strike, so a sweep over seeds explores many mixes.
    """

    swarm: bool = False
    crash: NemesisFaultSpec | None = None
    pause: NemesisFaultSpec | None = None
    partition: NemesisFaultSpec | None = None
    loss: NemesisFaultSpec | None = None
    duplicate: NemesisFaultSpec | None = None
    delay: NemesisFaultSpec | None = None
    slow: NemesisFaultSpec | None = None
    failure_rate: NemesisFaultSpec | None = None

    @model_validator(mode="after")
    def _kinds(self) -> NemesisSpec:
        for kind in FAULT_KEYS:
            spec = getattr(self, kind)
            if spec is not None:
                try:
                    spec._check_kind(kind)
                except ValueError as exc:
                    raise ValueError(f"{kind}: {exc}") from None
                if kind == "partition" and spec.target is None:
                    raise ValueError("partition: the nemesis needs 'target' (the nodes it cuts off in turn)")
        if self.swarm and not self.kinds():
            raise ValueError("swarm needs at least one fault kind to draw from")
        return self

    def kinds(self) -> list[tuple[str, NemesisFaultSpec]]:
        """The configured kinds, in a fixed order."""
        return [(kind, getattr(self, kind)) for kind in FAULT_KEYS if getattr(self, kind) is not None]


class ExpectSpec(_Model):
    """The documented expectation of a scenario, per outcome, checked by
    ``sim.testing.assert_expected`` (pooled over seeds, per protocol).

    Each value is ``"none"`` (no such transaction), ``"some"`` (at least one),
    or a table ``{ min = A, max = B }`` bounding the outcome's rate.
    """

    committed: str | dict[str, float] | None = None
    compensated: str | dict[str, float] | None = None
    aborted: str | dict[str, float] | None = None
    inconsistent: str | dict[str, float] | None = None
    stuck: str | dict[str, float] | None = None

    @field_validator("committed", "compensated", "aborted", "inconsistent", "stuck", mode="before")
    @classmethod
    def _bound(cls, value: object) -> object:
        if value is None or value in ("none", "some"):
            return value
        if isinstance(value, dict) and value and set(value) <= {"min", "max"}:
            bounds = [value.get("min", 0.0), value.get("max", 1.0)]
            numbers = all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b <= 1 for b in bounds)
            if numbers and bounds[0] <= bounds[1]:
                return {"min": float(bounds[0]), "max": float(bounds[1])}
        raise ValueError('must be "none", "some", or { min = A, max = B } with 0 <= A <= B <= 1')

    def checks(self) -> dict[str, str | dict[str, float]]:
        """The outcomes that have an expectation."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class LimitsSpec(_Model):
    """Work a run may take before sagasim refuses or stops it (see ``docs/errors.md``).

    The defaults are far above every shipped scenario and far below what
    exhausts a laptop's memory; raise them on purpose for a bigger run.
    ``arrivals`` and ``nemesis_faults`` bound the *expected* number per run,
    estimated before it starts; ``events`` stops a run that processes more
    simulation events than that (a retry storm with zero back-off, say).
    ``arrivals`` is what a run judged as it goes (``sagasim run --stream``)
    may take; a run judged at the end keeps every transaction in memory and
    is bounded by ``in_memory_arrivals``, a run that traces every event by
    ``traced_arrivals`` (see :mod:`sim.limits`).
    """

    def event_budget(self, arrivals: float) -> int:
        """The events a run of ``arrivals`` expected arrivals may process:
        ``events`` when the scenario sets it, else the larger of its default
        and ``events_per_arrival`` per expected arrival (a long run)."""
        if "events" in self.model_fields_set:
            return self.events
        return max(self.events, int(min(arrivals, 1e15)) * self.events_per_arrival)

    arrivals: Annotated[int, Field(ge=1)] = 20_000_000
    in_memory_arrivals: Annotated[int, Field(ge=1)] = 1_000_000
    traced_arrivals: Annotated[int, Field(ge=1)] = 1_000_000
    nemesis_faults: Annotated[int, Field(ge=1)] = 100_000
    events: Annotated[int, Field(ge=1)] = 20_000_000
    #: unless ``events`` is set, a long run's budget grows with its expected
    #: arrivals: the larger of ``events`` and this many events per expected
    #: arrival (the busiest shipped scenario makes about 10)
    events_per_arrival: Annotated[int, Field(ge=1)] = 100


class _ScenarioBase(_Model):
    """What every scenario does; its fields are :data:`Scenario`'s."""

    @property
    def transaction(self) -> TransactionSpec:
        """The transaction the workload runs (with the pessimistic view, the
        reordered one ``[isolation] reordered`` names)."""
        assert self.workload.transaction is not None
        iso = self.isolation
        if iso is not None and iso.countermeasure == "pessimistic-view" and iso.reordered is not None:
            return self.transactions[iso.reordered]
        return self.transactions[self.workload.transaction]

    def nodes(self) -> list[str]:
        """Every node name: the nodes of each protocol the scenario runs
        (``orchestrator``, ``coordinator``, ``broker`` and ``tracker``) and the
        participants."""
        return [*self.protocol_nodes(), *self.participants]

    def protocol_nodes(self) -> list[str]:
        """The nodes the protocols the scenario runs add beyond the
        participants, in this scenario (a protocol's may depend on its
        settings: :meth:`sim.protocols.registry.ProtocolInfo.nodes_in`)."""
        seen: dict[str, None] = {}
        for p in registry.protocols():
            if p.name in self.run.protocols:
                seen.update(dict.fromkeys(p.nodes_in(self)))
        return list(seen)

    def effective(self) -> dict[str, Any]:
        """The configuration with every default filled in, as plain JSON data;
        loading it back gives an equal scenario."""
        return self.model_dump(mode="json")

    def warnings(self) -> list[str]:
        """Things that are valid but probably not what the author meant."""
        found = []
        for name, txn in self.transactions.items():
            for step in txn.steps:
                if step.kind == "retriable" and self._can_refuse(step.participant):
                    found.append(
                        f"transactions.{name}: the retriable step {step.name!r} runs on {step.participant!r}, "
                        "which can refuse (business_failure > 0, or a failure_rate fault): a refusal is final, "
                        "so such a transaction cannot complete and ends inconsistent"
                    )
        return found

    def _can_refuse(self, participant: str) -> bool:
        if self.participants[participant].business_failure > 0:
            return True
        rate_faults: list[_FaultSettings] = [f for f in self.faults if f.kind == "failure_rate"]
        if self.nemesis.failure_rate is not None:
            rate_faults.append(self.nemesis.failure_rate)
        return any((f.business_failure or 0) > 0 and participant in f.targets(self.participants) for f in rate_faults)


def _fields() -> dict[str, Any]:
    """The scenario file's tables, in the order a dump writes them: the
    common ones, each registered protocol's own (in the registry's order),
    then monitoring, faults and checks."""
    head: dict[str, Any] = {
        "name": (Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")], ...),
        "description": (str, ""),
        "run": (RunSpec, Field(default_factory=RunSpec)),
        "workload": (WorkloadSpec, Field(default_factory=WorkloadSpec)),
        "network": (NetworkSpec, Field(default_factory=NetworkSpec)),
        "participants": (dict[NodeName, ParticipantSpec], Field(min_length=1)),
        "transactions": (dict[NodeName, TransactionSpec], Field(min_length=1)),
        "isolation": (IsolationSpec | None, None),
    }
    tail: dict[str, Any] = {
        "monitor": (MonitorSpec, Field(default_factory=MonitorSpec)),
        "faults": (list[FaultSpec], Field(default_factory=list)),
        "nemesis": (NemesisSpec, Field(default_factory=NemesisSpec)),
        "expect": (ExpectSpec, Field(default_factory=ExpectSpec)),
        "limits": (LimitsSpec, Field(default_factory=LimitsSpec)),
    }
    for protocol in registry.protocols():
        for section, spec in protocol.spec_classes().items():
            if section in head or section in tail:
                raise RuntimeError(
                    f"protocol {protocol.name!r}: its scenario section {section!r} takes a name already taken"
                )
            head[section] = (spec, Field(default_factory=spec))
    return {**head, **tail}


#: A whole scenario file, validated: the common tables and every registered
#: protocol's sections (e.g. ``scenario.twopc``), each with its defaults.
Scenario = create_model("Scenario", __base__=_ScenarioBase, __module__=__name__, **_fields())
Scenario.__doc__ = "A whole scenario file, validated."


# ---------------------------------------------------------------- loading


def load_scenario(
    path: str | Path,
    overrides: Mapping[str, object] | Iterable[str] | None = None,
) -> Scenario:
    """Read, override and validate a scenario file.

    ``overrides`` is either ``{"dotted.path": value}`` or ``["dotted.path=value", ...]``
    (the CLI's ``--set`` spelling, the value parsed as TOML). Raises
    :class:`ScenarioError` on any problem.
    """
    path = Path(path)
    source = str(path)
    try:
        text = read_input_text(path, "scenario file")
    except InputFileError as exc:
        raise ScenarioError(source, [exc.problem]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, [f"is not valid TOML: {exc}"]) from None
    return scenario_from_dict(raw, source=source, overrides=overrides)


def scenario_from_dict(
    raw: Mapping[str, Any],
    *,
    source: str = "<scenario>",
    overrides: Mapping[str, object] | Iterable[str] | None = None,
) -> Scenario:
    """Validate a scenario given as a dict (the parsed TOML)."""
    data = copy.deepcopy(dict(raw))
    if overrides:
        pairs = parse_overrides(overrides)
        problems = [p for dotted, value in pairs if (p := _apply_override(data, dotted, value))]
        if problems:
            raise ScenarioError(source, problems)
        source = f"{source} (with --set {', '.join(d for d, _ in pairs)})"
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, _explain(exc)) from None
    problems = _check_references(scenario) or _check_work(scenario)
    if problems:
        raise ScenarioError(source, problems)
    if scenario.workload.transaction is None:
        # The only transaction is the default; say so in the effective config.
        scenario = scenario.model_copy(
            update={"workload": scenario.workload.model_copy(update={"transaction": next(iter(scenario.transactions))})}
        )
    return scenario


def parse_overrides(overrides: Mapping[str, object] | Iterable[str]) -> list[tuple[str, object]]:
    """``["a.b=1"]`` or ``{"a.b": 1}`` into ``[("a.b", 1)]``; values parsed as TOML."""
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    pairs: list[tuple[str, object]] = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ScenarioError(f"--set {item!r}", ["expected dotted.key=value, e.g. run.drain=120"])
        pairs.append((key, _parse_value(text.strip(), item)))
    return pairs


#: How a ``--set`` value that TOML cannot read may start and still be taken as
#: a bare string (``--set workload.transaction=order``): not as TOML's own
#: arrays, tables and quoted strings, whose typos would silently become text.
_TOML_OPENERS = ("[", "{", '"', "'")


def _parse_value(text: str, item: str) -> object:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if text.startswith(_TOML_OPENERS):
            raise ScenarioError(
                f"--set {item!r}",
                [
                    f"{text} is not a valid TOML value ({exc}); write the value as in the scenario file, "
                    "e.g. run.seeds=[1,2] or run.drain=120"
                ],
            ) from None
        return text  # a bare word is a string: --set workload.transaction=order


# Maps whose keys are the user's own names: an override may not invent an entry.
_NAMED_MAPS = {("participants",): "participant", ("transactions",): "transaction"}


def _apply_override(data: dict[str, Any], dotted: str, value: object) -> str | None:
    parts = dotted.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(parts[:depth]) or "<top>"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"--set {dotted}: {here} is a list of {len(node)}; index with 0..{len(node) - 1}"
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
            kind = _NAMED_MAPS.get(tuple(parts[:depth]))
            if kind and key not in node:
                return f"--set {dotted}: no {kind} {key!r}{did_you_mean(key, node)}"
        else:
            return f"--set {dotted}: {here} is a value, not a table"
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]
    return None


# ---------------------------------------------------------------- error text


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top>"


def _explain(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            key = str(loc[-1])
            hint = did_you_mean(key, allowed)
            problems.append(f"{_path(loc)}: unknown key {key!r}{hint} (allowed here: {', '.join(allowed)})")
        elif kind == "missing":
            problems.append(f"{_path(loc)}: required, but missing")
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            words = [w.strip(" '") for w in expected.replace(" or ", ",").split(",") if w.strip()]
            hint = did_you_mean(str(err["input"]), words) if isinstance(err["input"], str) else ""
            problems.append(
                f"{_path(loc)} = {show_value(err['input'])}: not allowed{hint} (allowed: {', '.join(words)})"
            )
        elif isinstance(err["input"], dict) and kind in ("value_error", "assertion_error"):
            problems.append(f"{_path(loc)}: {msg}")
        else:
            problems.append(f"{_path(loc)} = {show_value(err['input'])}: {msg[:1].lower()}{msg[1:]}")
    return _dedupe(problems)


def _dedupe(items: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found at ``loc`` below :class:`Scenario`."""
    node: Any = Scenario
    for part in loc:
        if isinstance(node, type) and issubclass(node, BaseModel):
            if not (isinstance(part, str) and part in node.model_fields):
                return []
            node = _strip(node.model_fields[part].annotation)
        elif typing.get_origin(node) in (list, dict):
            node = _strip(typing.get_args(node)[-1])
        else:
            return []
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []


def _strip(annotation: Any) -> Any:
    """Remove ``Annotated`` and ``None`` from an annotation; prefer a model in a union."""
    while True:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is Annotated:
            annotation = args[0]
        elif origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            models = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else inner[0]
            if len(inner) > 1 and not models:
                return annotation
        else:
            return annotation


# ---------------------------------------------------------------- references


class _Problems(list[str]):
    """The problems found so far, in the order they are reported."""

    def unknown(self, path: str, name: str, known: list[str], what: str) -> None:
        self.append(
            f"{path} = {show_value(name)}: no {what} of that name{did_you_mean(name, known)} "
            f"(known: {', '.join(known)})"
        )


def _check_references(s: Scenario) -> list[str]:
    problems = _Problems()
    _check_names(s, problems)
    _check_workload_refs(s, problems)
    _check_links(s, problems)
    _check_fault_refs(s, problems)
    if s.isolation is not None:
        _check_isolation(s, problems)
    return problems


def _check_isolation(s: Scenario, problems: _Problems) -> None:
    """Records need keys; every step named exists, on a participant with
    records; ``keys_of`` names an earlier step at the same participant; the
    pessimistic view names a reordering of the same steps."""
    iso = s.isolation
    if s.workload.keys is None:
        problems.append("isolation: records live under the keys of [workload.keys], which is missing")
    for name in iso.records:
        if name not in s.participants:
            problems.unknown(f"isolation.records.{name}", name, list(s.participants), "participant")
    main = s.transactions.get(s.workload.transaction or next(iter(s.transactions)))
    steps = {st.name: (i, st) for i, st in enumerate(main.steps)} if main is not None else {}
    for name, op in iso.steps.items():
        where = f"isolation.steps.{name}"
        if name not in steps:
            problems.unknown(where, name, list(steps), "step")
            continue
        i, step = steps[name]
        if step.participant not in iso.records:
            problems.append(
                f"{where}: its participant {step.participant!r} has no [isolation.records.{step.participant}]"
            )
        if op.op == "read" and op.compensation == "value":
            problems.append(f'{where}.compensation = "value": a read writes nothing, so nothing is restored')
        if op.keys_of is not None:
            other = steps.get(op.keys_of)
            if other is None or other[0] >= i or other[1].participant != step.participant:
                problems.append(
                    f"{where}.keys_of = {op.keys_of!r}: must name an earlier step of the transaction "
                    f"at the same participant ({step.participant!r})"
                )
    _check_reordered(s, problems)


def _check_reordered(s: Scenario, problems: _Problems) -> None:
    iso = s.isolation
    if iso.countermeasure != "pessimistic-view":
        if iso.reordered is not None and iso.reordered not in s.transactions:
            problems.unknown("isolation.reordered", iso.reordered, list(s.transactions), "transaction")
        return
    if iso.reordered is None:
        problems.append(
            'isolation.countermeasure = "pessimistic-view": needs isolation.reordered, the transaction '
            "with the same steps, the risky ones moved last"
        )
    elif iso.reordered not in s.transactions:
        problems.unknown("isolation.reordered", iso.reordered, list(s.transactions), "transaction")
    elif (main := s.workload.transaction or next(iter(s.transactions))) in s.transactions:
        mine = sorted(st.name for st in s.transactions[main].steps)
        theirs = sorted(st.name for st in s.transactions[iso.reordered].steps)
        if mine != theirs:
            problems.append(
                f"isolation.reordered = {iso.reordered!r}: must have the same steps as "
                f"{main!r} in another order (it has {theirs}, not {mine})"
            )


def _check_names(s: Scenario, problems: _Problems) -> None:
    """Participants take no reserved name; every step's participant exists."""
    own = s.protocol_nodes()
    for name in s.participants:
        if name in RESERVED_NODES or name in own:
            reserved = dict.fromkeys([*RESERVED_NODES, *own])
            problems.append(
                f"participants.{name}: {name!r} is a name the harness uses itself; reserved: {', '.join(reserved)}"
            )
    for tname, txn in s.transactions.items():
        for i, step in enumerate(txn.steps):
            if step.participant not in s.participants:
                problems.unknown(
                    f"transactions.{tname}.steps[{i}].participant",
                    step.participant,
                    list(s.participants),
                    "participant",
                )


def _check_workload_refs(s: Scenario, problems: _Problems) -> None:
    if s.workload.transaction is None and len(s.transactions) > 1:
        problems.append(
            "workload.transaction: required when there is more than one transaction "
            f"(known: {', '.join(s.transactions)})"
        )
    elif s.workload.transaction is not None and s.workload.transaction not in s.transactions:
        problems.unknown("workload.transaction", s.workload.transaction, list(s.transactions), "transaction")


def _check_links(s: Scenario, problems: _Problems) -> None:
    nodes = s.nodes()
    first: dict[tuple[str, str], int] = {}  # directed pair -> the link that sets it
    for i, link in enumerate(s.network.links):
        for end in ("src", "dst"):
            name = getattr(link, end)
            if name not in nodes:
                problems.unknown(f"network.links[{i}].{end}", name, nodes, "node")
        pairs = [(link.src, link.dst), (link.dst, link.src)] if link.both_ways else [(link.src, link.dst)]
        for src, dst in pairs:
            if (src, dst) in first:
                problems.append(
                    f"network.links[{i}]: {src}->{dst} is already set by network.links[{first[(src, dst)]}] "
                    "(links are both ways unless both_ways = false); give each direction once"
                )
            first.setdefault((src, dst), i)


def _check_fault_refs(s: Scenario, problems: _Problems) -> None:
    """Faults start before the workload ends and name known targets and groups."""
    for i, fault in enumerate(s.faults):
        if fault.at >= s.run.duration:
            problems.append(
                f"faults[{i}].at = {fault.at:g}: must be before the end of the workload "
                f"(run.duration = {s.run.duration:g}); faults are healed when it ends"
            )
    located: list[tuple[str, str, _FaultSettings]] = [(f"faults[{i}]", f.kind, f) for i, f in enumerate(s.faults)]
    located += [(f"nemesis.{kind}", kind, spec) for kind, spec in s.nemesis.kinds()]
    nodes, participants = s.nodes(), list(s.participants)
    for where, kind, fault in located:
        known = nodes if kind in NODE_FAULTS else participants
        what = "node" if kind in NODE_FAULTS else "participant"
        targets = fault.target if isinstance(fault.target, list) else [fault.target]
        for name in targets:
            if name is not None and name != "*" and name not in known:
                problems.unknown(f"{where}.target", str(name), known, what)
        _check_groups(where, fault.groups or [], nodes, problems)


def _check_groups(where: str, groups: list[list[str]], nodes: list[str], problems: _Problems) -> None:
    seen: list[str] = []
    for g, group in enumerate(groups):
        for name in group:
            if name not in nodes:
                problems.unknown(f"{where}.groups[{g}]", name, nodes, "node")
            if name in seen:
                problems.append(f"{where}.groups: {name!r} is in more than one group")
            seen.append(name)


# ---------------------------------------------------------------- work


#: A swarm nemesis may strike up to four times as often as its ``mtbf`` says.
_SWARM_FASTEST = 0.25


@dataclass(frozen=True)
class WorkEstimate:
    """What one run of a scenario is expected to do, before it runs."""

    #: expected transactions arriving while the workload runs (``inf`` when unbounded)
    arrivals: float
    #: expected faults the nemesis injects, summed over kinds and targets
    nemesis_faults: float


def estimate_work(s: Scenario) -> WorkEstimate:
    """The expected arrivals and nemesis faults of one run of ``s``."""
    mean = s.workload.interarrival.built.mean
    arrivals = s.run.duration / mean if mean > 0 else math.inf
    if s.workload.limit is not None:
        arrivals = min(arrivals, float(s.workload.limit))
    faults = 0.0
    for kind, spec in s.nemesis.kinds():
        known = list(s.participants) if kind in ("slow", "failure_rate") else s.nodes()
        targets = max(1, len(spec.targets(known)))
        mtbf = spec.mtbf * (_SWARM_FASTEST if s.nemesis.swarm else 1.0)
        faults += targets * s.run.duration / (mtbf + spec.duration.built.mean)
    return WorkEstimate(arrivals, faults)


def _check_work(s: Scenario) -> list[str]:
    """Refuse, before anything runs, a run whose expected work is beyond ``[limits]``."""
    work = estimate_work(s)
    problems = []
    if work.arrivals > s.limits.arrivals:
        mean = s.workload.interarrival.built.mean
        count = "an unbounded number of" if math.isinf(work.arrivals) else f"about {work.arrivals:.3g}"
        problems.append(
            f"workload.interarrival: mean {mean:g} s over run.duration = {s.run.duration:g} s makes "
            f"{count} transactions per run, above limits.arrivals = {s.limits.arrivals:,}; "
            "use a larger mean, a shorter run.duration or workload.limit, or raise limits.arrivals on purpose"
        )
    if work.nemesis_faults > s.limits.nemesis_faults:
        problems.append(
            f"nemesis: about {work.nemesis_faults:.3g} faults per run expected (run.duration = {s.run.duration:g} s "
            f"over each kind's mtbf + mean fault duration, per target), above limits.nemesis_faults = "
            f"{s.limits.nemesis_faults:,}; use a larger mtbf, or raise limits.nemesis_faults on purpose"
        )
    return problems
