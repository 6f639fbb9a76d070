"""The checker: per-transaction verdicts from ground-truth effects.

It reads only what participants applied (``sim.world.effects``). From the
coordinator it takes a single fact, whether the transaction reached a
terminal state by the end of the drain window, because that is what *stuck*
means. Everything else, the outcome included, comes from effects: a
coordinator that believes it compensated a saga whose refund never landed
does not make the saga compensated.

Outcomes (see ``DESIGN.md``):

* ``committed``: every step applied exactly once, nothing compensated;
* ``compensated``: every applied step undone exactly once, net effect zero;
* ``inconsistent``: anything else once the coordinator is done;
* ``stuck``: the coordinator is not done; ``consistent`` still says whether
  the effects so far form a committed or compensated state.

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
in the summary.
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
    "commit_and_abort",
    "partial_commit",
    "in_doubt",
)


def _flagger(reasons: list[str], codes: list[str]) -> Callable[[str, str], None]:
    """``flag(code, reason)``: record a reason, and its anomaly code once."""

    def flag(code: str, reason: str) -> None:
        reasons.append(reason)
        if code not in codes:
            codes.append(code)

    return flag


class Verdict(NamedTuple):
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

        names, comps = self.names, self.comps
        for i in range(n):
            f, c = fwd[i], comp[i]
            if len(f) > 1:
                flag("applied_twice", f"{names[i]} applied {len(f)} times")
            if len(c) > 1:
                flag("compensated_twice", f"{comps[i]} applied {len(c)} times")
            if c and not f:
                flag("compensation_without_step", f"{comps[i]} without {names[i]}")
            if c and f and f[-1] > c[0]:
                flag("step_after_compensation", f"{names[i]} applied after its {comps[i]}")
        first_comp = [(c[0], i) for i, c in enumerate(comp) if c]
        # Compensations must land in reverse step order: a later step first.
        for (pos_a, a), (pos_b, b) in itertools.pairwise(first_comp):
            if pos_a < pos_b:  # a < b by step, so b must come first
                flag(
                    "compensation_out_of_order",
                    f"{comps[a]} before {comps[b]} (compensations must run in reverse order)",
                )
        p = self.pivot
        if p is not None and fwd[p]:
            pivot_at = fwd[p][0]
            # Once the pivot is applied nothing may be compensated, before or after.
            for i in range(n):
                if comp[i] and comp[i][-1] > pivot_at:
                    flag("compensated_after_pivot", f"{comps[i]} after the pivot {names[p]}")
                elif comp[i]:
                    flag("pivot_after_compensation", f"the pivot {names[p]} applied after {comps[i]}")

        committed = all(len(fwd[i]) == 1 and not comp[i] for i in range(n))
        compensated = all(len(fwd[i]) == len(comp[i]) <= 1 for i in range(n))
        if not committed and not compensated:
            net = [len(fwd[i]) > len(comp[i]) for i in range(n)]
            if p is not None and net[p]:
                for i in range(n):
                    if not net[i] and not comp[i]:
                        flag("incomplete_after_pivot", f"{names[i]} never applied although the pivot {names[p]} was")
            else:
                for i in range(n):
                    if net[i] and len(fwd[i]) == 1 and self.kinds[i] == "compensatable":
                        flag("never_compensated", f"{names[i]} never compensated ({comps[i]} missing)")
        consistent = not reasons and (committed or compensated)
        if not view.terminal:
            outcome = "stuck"
        elif consistent:
            outcome = "committed" if committed else "compensated"
        else:
            outcome = "inconsistent"
        if consistent:
            consistent_at = effects[-1].time if effects else started
        else:
            consistent_at = math.nan
        n_fwd = sum(len(f) for f in fwd)
        return Verdict(outcome, consistent, consistent_at, n_fwd, len(effects) - n_fwd, tuple(reasons), tuple(codes))


class TwoPCChecker:
    """Judges two-phase commit transactions from participants' decisions.

    Per step: ``PREPARED`` (voted yes), ``FORWARD`` (committed) and ``ABORT``
    (aborted) records. Anomalies: ``applied_twice`` (a step committed twice),
    ``commit_and_abort`` (a step committed while another aborted: atomic
    commit broken), ``partial_commit`` (a step committed while another never
    prepared or never committed), ``in_doubt`` (a step prepared and never
    decided: termination broken).
    """

    def __init__(self, steps: Sequence[StepSpec]) -> None:
        self.names = [s.name for s in steps]
        self.where = [s.participant for s in steps]
        self.n = len(steps)

    def judge(self, effects: Sequence[Effect], view: CoordinatorView, started: float) -> Verdict:
        n = self.n
        prepared = [0] * n
        commits = [0] * n
        aborts = [0] * n
        for effect in effects:
            op = effect.op
            if op == FORWARD:
                commits[effect.step] += 1
            elif op == ABORT:
                aborts[effect.step] += 1
            elif op == PREPARED:
                prepared[effect.step] += 1
        reasons: list[str] = []
        codes: list[str] = []
        flag = _flagger(reasons, codes)

        names, where = self.names, self.where
        committed_any = any(commits)
        for i in range(n):
            if commits[i] > 1:
                flag("applied_twice", f"{names[i]} committed {commits[i]} times at {where[i]}")
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
        if consistent:
            consistent_at = effects[-1].time if effects else started
        else:
            consistent_at = math.nan
        return Verdict(outcome, consistent, consistent_at, sum(commits), 0, tuple(reasons), tuple(codes))
