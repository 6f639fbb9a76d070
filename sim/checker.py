"""The checker: per-transaction verdicts from ground-truth effects.

It reads only what participants applied (``sim.world.effects``). From the
coordinator it takes a single fact, whether the transaction reached a
terminal state by the end of the drain window, because that is what *stuck*
means. Everything else, the outcome included, comes from effects: a
coordinator that believes it compensated a saga whose refund never landed
does not make the saga compensated.

Outcomes (see ``docs/architecture.md``):

* ``committed``: every step applied exactly once, nothing compensated;
* ``compensated``: every applied step undone exactly once, net effect zero;
* ``inconsistent``: anything else once the coordinator is done;
* ``stuck``: the coordinator is not done; ``consistent`` still says whether
  the effects so far form a committed or compensated state.

``consistent_at`` is when the transaction *became* consistent for good: the
last effect of a ``committed``, ``compensated`` or ``aborted`` transaction
(its start when nothing was applied). A ``stuck`` or ``inconsistent``
transaction never became consistent, so it is NaN for them, even when a
stuck transaction's effects so far happen to balance (nothing applied yet is
not "consistent at its start": more may still land).

Two-phase commit (:class:`TwoPCChecker`) is judged from its participants'
durable decisions in the same log (``PREPARED``, ``FORWARD`` for a commit,
``ABORT``): ``committed`` when every step committed once, ``aborted`` when
none did and no participant is left in doubt; the transaction-commit
invariant (no participant committed while another aborted or never
committed) and termination (every participant that prepared reached commit
or abort) make anything else ``inconsistent`` (``stuck`` if the coordinator
is not done).

Every inconsistency gets reasons in words (``charge applied 2 times``,
``reserve never compensated (release missing)``) and anomaly codes, counted
in the summary: an ``inconsistent`` verdict always has at least one of each.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from sim.protocols.base import CoordinatorView
from sim.scenario import StepSpec
from sim.world.effects import ABORT, FORWARD, PREPARED, Effect

#: Anomaly codes, in the order the summary lists them.
ANOMALIES: tuple[str, ...] = (
    "applied_twice",
    "compensated_twice",
    "compensation_without_step",
    "step_after_compensation",
    "compensation_out_of_order",
    "compensated_after_pivot",
    "pivot_after_compensation",
    "never_compensated",
    "incomplete_after_pivot",
    "retriable_without_pivot",
    "commit_and_abort",
    "partial_commit",
    "in_doubt",
    "commit_without_prepare",
    "committed_and_aborted",
)


#: ``flag(code, reason)``
Flag = Callable[[str, str], None]


def _flagger(reasons: list[str], codes: list[str]) -> Flag:
    """``flag(code, reason)``: record a reason, and its anomaly code once."""

    def flag(code: str, reason: str) -> None:
        reasons.append(reason)
        if code not in codes:
            codes.append(code)

    return flag


def _consistent_at(outcome: str, effects: Sequence[Effect], started: float) -> float:
    """When the transaction became consistent for good: its last effect (its
    start when nothing was applied) once it ended well; NaN when ``stuck``
    (not done: it has not *become* anything yet) or ``inconsistent``."""
    if outcome in ("stuck", "inconsistent"):
        return math.nan
    return effects[-1].time if effects else started


class Verdict(NamedTuple):
    """The checker's judgement of one transaction (see the module docstring).

    ``consistent_at`` is NaN for ``stuck`` and ``inconsistent`` outcomes; an
    ``inconsistent`` verdict has at least one entry in ``reasons`` (words)
    and in ``anomalies`` (codes from :data:`ANOMALIES`).
    """

    outcome: str
    consistent: bool
    consistent_at: float
    steps_applied: int
    compensations_applied: int
    reasons: tuple[str, ...]
    anomalies: tuple[str, ...]


class Checker:
    """Judges transactions of one kind."""

    def __init__(self, steps: Sequence[StepSpec]) -> None:
        self.names = [s.name for s in steps]
        self.comps = [s.compensation or f"undo of {s.name}" for s in steps]
        self.kinds = [s.kind for s in steps]
        pivots = [i for i, s in enumerate(steps) if s.kind == "pivot"]
        self.pivot = pivots[0] if pivots else None
        self.n = len(steps)

    def judge(self, effects: Sequence[Effect], view: CoordinatorView, started: float) -> Verdict:
        """Judge one saga from its ``effects`` (in the order applied), whether
        the coordinator is done (``view``) and when it ``started``."""
        n = self.n
        if len(effects) == n and view.terminal:
            # Fast path for the common case: each step applied once, nothing
            # compensated (what the full analysis below calls committed).
            seen = 0
            for effect in effects:
                if effect.op != FORWARD:
                    break
                seen |= 1 << effect.step
            else:
                if seen == (1 << n) - 1:
                    return Verdict("committed", True, effects[-1].time, n, 0, (), ())
        # Positions in the effect log give an exact order even for equal times.
        fwd: list[list[int]] = [[] for _ in range(n)]
        comp: list[list[int]] = [[] for _ in range(n)]
        for pos, effect in enumerate(effects):
            (fwd if effect.op == FORWARD else comp)[effect.step].append(pos)
        reasons: list[str] = []
        codes: list[str] = []
        flag = _flagger(reasons, codes)
        self._flag_counts(fwd, comp, flag)
        self._flag_order(comp, flag)
        self._flag_pivot(fwd, comp, flag)
        committed = all(len(fwd[i]) == 1 and not comp[i] for i in range(n))
        compensated = all(len(fwd[i]) == len(comp[i]) <= 1 for i in range(n))
        if not committed and not compensated:
            self._flag_incomplete(fwd, comp, flag)
        consistent = not reasons and (committed or compensated)
        if not view.terminal:
            outcome = "stuck"
        elif consistent:
            outcome = "committed" if committed else "compensated"
        else:
            outcome = "inconsistent"
        consistent_at = _consistent_at(outcome, effects, started)
        n_fwd = sum(len(f) for f in fwd)
        return Verdict(outcome, consistent, consistent_at, n_fwd, len(effects) - n_fwd, tuple(reasons), tuple(codes))

    def _flag_counts(self, fwd: list[list[int]], comp: list[list[int]], flag: Flag) -> None:
        """Each step and compensation at most once, a compensation only after its step."""
        names, comps = self.names, self.comps
        for i in range(self.n):
            f, c = fwd[i], comp[i]
            if len(f) > 1:
                flag("applied_twice", f"{names[i]} applied {len(f)} times")
            if len(c) > 1:
                flag("compensated_twice", f"{comps[i]} applied {len(c)} times")
            if c and not f:
                flag("compensation_without_step", f"{comps[i]} without {names[i]}")
            if c and f and f[-1] > c[0]:
                flag("step_after_compensation", f"{names[i]} applied after its {comps[i]}")

    def _flag_order(self, comp: list[list[int]], flag: Flag) -> None:
        """Compensations must land in reverse step order: a later step first."""
        comps = self.comps
        first_comp = [(c[0], i) for i, c in enumerate(comp) if c]
        for (pos_a, a), (pos_b, b) in itertools.pairwise(first_comp):
            if pos_a < pos_b:  # a < b by step, so b must come first
                flag(
                    "compensation_out_of_order",
                    f"{comps[a]} before {comps[b]} (compensations must run in reverse order)",
                )

    def _flag_pivot(self, fwd: list[list[int]], comp: list[list[int]], flag: Flag) -> None:
        """Once the pivot is applied nothing may be compensated, before or after."""
        p = self.pivot
        if p is None or not fwd[p]:
            return
        names, comps = self.names, self.comps
        pivot_at = fwd[p][0]
        for i in range(self.n):
            if comp[i] and comp[i][-1] > pivot_at:
                flag("compensated_after_pivot", f"{comps[i]} after the pivot {names[p]}")
            elif comp[i]:
                flag("pivot_after_compensation", f"the pivot {names[p]} applied after {comps[i]}")

    def _flag_incomplete(self, fwd: list[list[int]], comp: list[list[int]], flag: Flag) -> None:
        """Neither committed nor compensated: name what is missing. Past the
        pivot, the steps never applied; short of it, the steps applied and
        never undone (a retriable step has nothing to undo it: it may only run
        once the pivot committed the transaction to going forward)."""
        names, comps, p = self.names, self.comps, self.pivot
        net = [len(fwd[i]) > len(comp[i]) for i in range(self.n)]
        if p is not None and net[p]:
            for i in range(self.n):
                if not net[i] and not comp[i]:
                    flag("incomplete_after_pivot", f"{names[i]} never applied although the pivot {names[p]} was")
            return
        for i in range(self.n):
            if not (net[i] and len(fwd[i]) == 1):
                continue  # (applied twice, or compensated: flagged already)
            if self.kinds[i] == "compensatable":
                flag("never_compensated", f"{names[i]} never compensated ({comps[i]} missing)")
            elif self.kinds[i] == "retriable":
                # (Validation puts a pivot before every retriable step; a
                # hand-built transaction may lack one.)
                why = f"the pivot {names[p]} was not" if p is not None else "there is no pivot"
                flag("retriable_without_pivot", f"{names[i]} applied although {why}")


class TwoPCChecker:
    """Judges two-phase commit transactions from participants' decisions.

    Per step: ``PREPARED`` (voted yes), ``FORWARD`` (committed) and ``ABORT``
    (aborted) records. Anomalies: ``applied_twice`` (a step committed twice),
    ``commit_and_abort`` (a step committed while another aborted: atomic
    commit broken), ``partial_commit`` (a step committed while another never
    prepared or never committed), ``in_doubt`` (a step prepared and never
    decided: termination broken), ``commit_without_prepare`` (a step
    committed with no prepared record before it: it never voted yes, so the
    coordinator cannot have decided commit on its word) and
    ``committed_and_aborted`` (one step both committed and aborted: a
    decision, once recorded, is final).
    """

    def __init__(self, steps: Sequence[StepSpec]) -> None:
        self.names = [s.name for s in steps]
        self.where = [s.participant for s in steps]
        self.n = len(steps)

    def judge(self, effects: Sequence[Effect], view: CoordinatorView, started: float) -> Verdict:
        """Judge one 2PC transaction from its participants' records
        ``effects`` (in the order written), ``view`` and its start."""
        n = self.n
        prepared = [0] * n
        commits = [0] * n
        aborts = [0] * n
        # Positions in the log of each step's first record of each kind (the
        # order matters: a prepared record after the commit does not excuse it).
        first_prepared = [math.inf] * n
        first_commit = [math.inf] * n
        first_abort = [math.inf] * n
        for pos, effect in enumerate(effects):
            op, step = effect.op, effect.step
            if op == FORWARD:
                commits[step] += 1
                first_commit[step] = min(first_commit[step], pos)
            elif op == ABORT:
                aborts[step] += 1
                first_abort[step] = min(first_abort[step], pos)
            elif op == PREPARED:
                prepared[step] += 1
                first_prepared[step] = min(first_prepared[step], pos)
        reasons: list[str] = []
        codes: list[str] = []
        flag = _flagger(reasons, codes)

        names, where = self.names, self.where
        committed_any = any(commits)
        for i in range(n):
            if commits[i] > 1:
                flag("applied_twice", f"{names[i]} committed {commits[i]} times at {where[i]}")
            if commits[i] and first_commit[i] < first_abort[i] < math.inf:
                flag("committed_and_aborted", f"{names[i]} aborted at {where[i]} after it committed")
            elif commits[i] and aborts[i]:
                flag("committed_and_aborted", f"{names[i]} committed at {where[i]} after it aborted")
            if commits[i] and not first_prepared[i] < first_commit[i]:
                flag("commit_without_prepare", f"{names[i]} committed at {where[i]} with no prepared record before")
        if committed_any:
            done = [f"{names[i]} at {where[i]}" for i in range(n) if commits[i]]
            for i in range(n):
                if commits[i]:
                    continue
                if aborts[i]:
                    flag("commit_and_abort", f"{names[i]} aborted at {where[i]} while {done[0]} committed")
                elif not prepared[i]:
                    flag("partial_commit", f"{names[i]} never prepared at {where[i]} while {done[0]} committed")
        for i in range(n):
            if prepared[i] and not commits[i] and not aborts[i]:
                flag("in_doubt", f"{names[i]} in doubt at {where[i]} (prepared, never decided)")
        committed = all(c == 1 for c in commits)
        consistent = not reasons
        if not view.terminal:
            outcome = "stuck"
        elif not consistent:
            outcome = "inconsistent"
        else:
            outcome = "committed" if committed else "aborted"
        consistent_at = _consistent_at(outcome, effects, started)
        return Verdict(outcome, consistent, consistent_at, sum(commits), 0, tuple(reasons), tuple(codes))
