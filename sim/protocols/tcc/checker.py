"""The TCC checker: verdicts from what participants reserved, confirmed and released.

Each step's records in the effect log, in the order written: ``RESERVED`` (a
Try applied), ``FORWARD`` (a Confirm applied: the step's effect),
``RELEASED`` (a Cancel released a reservation) and ``EXPIRED`` (the
participant released it after ``reservation_ttl``). Reading them in order,
a step holds some number of reservations; a Confirm or a release takes one.

* ``committed``: every step confirmed once, nothing released, no reservation left;
* ``aborted`` (cancelled): nothing confirmed and every reservation released;
* ``inconsistent`` otherwise, with the anomalies named:

  - ``null_compensation_applied``: a Cancel released a reservation that was
    never made (its Try never arrived, or arrived later);
  - ``hanging_reservation``: a reservation still held at the end (a Try
    applied after its Cancel, or a second copy of a Try);
  - ``confirmed_twice``: a step confirmed more than once;
  - ``cancelled_twice``: a reservation released again (a duplicate Cancel,
    or a Cancel after the reservation expired);
  - ``confirm_and_cancel``: one step confirmed while a step was cancelled;
  - ``reservation_expired_before_confirm``: a reservation expired while the
    transaction was confirmed (at another step, or at this one by a Confirm
    that came too late);
  - ``partial_confirm``: a step never confirmed while another was, none of
    the above explaining it;

* ``stuck`` when the coordinator is not done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sim.checker import Flag, Verdict, _consistent_at, _flagger
from sim.protocols.base import CoordinatorView
from sim.protocols.tcc.protocol import EXPIRED, RESERVED
from sim.scenario import StepSpec
from sim.world.effects import FORWARD, Effect


class _Step(NamedTuple):
    """One step's records, read in order."""

    confirms: int
    releases: int
    expiries: int
    #: reservations still held at the end
    held: int
    #: releases of nothing: the first came before any reservation (a null compensation)
    null_releases: int
    #: releases of nothing after a reservation had been released or had expired
    extra_releases: int
    #: Confirms applied when no reservation was held after one had expired
    late_confirms: int


def _read(records: list[int]) -> _Step:
    confirms = releases = expiries = held = null = extra = late = 0
    for op in records:
        if op == RESERVED:
            held += 1
        elif op == FORWARD:
            confirms += 1
            if held:
                held -= 1
            elif expiries:
                late += 1
        elif op == EXPIRED:
            expiries += 1
            held -= 1
        else:  # RELEASED
            releases += 1
            if held:
                held -= 1
            elif releases - 1 + expiries:
                extra += 1
            else:
                null += 1
    return _Step(confirms, releases, expiries, held, null, extra, late)


class TCCChecker:
    """Judges TCC transactions from their participants' records."""

    def __init__(self, steps: Sequence[StepSpec]) -> None:
        self.names = [s.name for s in steps]
        self.where = [s.participant for s in steps]
        self.n = len(steps)

    def judge(self, effects: Sequence[Effect], view: CoordinatorView, started: float) -> Verdict:
        """Judge one TCC transaction from its records ``effects`` (in the
        order written), ``view`` and its start."""
        records: list[list[int]] = [[] for _ in range(self.n)]
        for effect in effects:
            records[effect.step].append(effect.op)
        steps = [_read(r) for r in records]
        reasons: list[str] = []
        codes: list[str] = []
        flag = _flagger(reasons, codes)
        self._flag_steps(steps, flag)
        self._flag_across(steps, flag)
        confirms = sum(s.confirms for s in steps)
        committed = all(s.confirms == 1 for s in steps)
        consistent = not reasons
        if not view.terminal:
            outcome = "stuck"
        elif not consistent:
            outcome = "inconsistent"
        else:
            outcome = "committed" if committed else "aborted"
        return Verdict(
            outcome,
            consistent,
            _consistent_at(outcome, effects, started),
            confirms,
            sum(s.releases for s in steps),
            tuple(reasons),
            tuple(codes),
        )

    def _flag_steps(self, steps: list[_Step], flag: Flag) -> None:
        """What one step's records show on their own."""
        for i, s in enumerate(steps):
            at = f"{self.names[i]} at {self.where[i]}"
            if s.null_releases:
                flag("null_compensation_applied", f"{at}: a cancel released a reservation never made")
            if s.extra_releases:
                flag("cancelled_twice", f"{at}: released {s.extra_releases} more time(s) than reserved")
            if s.held > 0:
                flag("hanging_reservation", f"{at}: {s.held} reservation(s) never confirmed nor released")
            if s.confirms > 1:
                flag("confirmed_twice", f"{at}: confirmed {s.confirms} times")

    def _flag_across(self, steps: list[_Step], flag: Flag) -> None:
        """The all-or-nothing rule across steps."""
        confirmed = [i for i, s in enumerate(steps) if s.confirms]
        if not confirmed:
            return
        first = f"{self.names[confirmed[0]]} confirmed"
        for i, s in enumerate(steps):
            at = f"{self.names[i]} at {self.where[i]}"
            if s.releases:
                flag("confirm_and_cancel", f"{at} cancelled while {first}")
            if s.expiries and (not s.confirms or s.late_confirms):
                flag("reservation_expired_before_confirm", f"{at}: reservation expired before its confirm")
            elif not s.confirms and not s.releases and s.held == 0:
                flag("partial_confirm", f"{at} never confirmed while {first}")
