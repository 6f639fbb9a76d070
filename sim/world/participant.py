"""Participants: services that apply effects.

A participant runs at most ``workers`` operations at once; the rest wait in
FIFO order (its :class:`~sim.world.pool.WorkerPool`, which every protocol's
side at the participant uses). Each attempt draws one outcome (business failure, transient
failure, hang, or success) when it starts and takes a service time. Effects
are applied, and recorded as ground truth, at the instant the operation
completes; the reply is sent then, and may be lost or arrive after the
caller gave up, leaving an effect the caller does not know about.

Idempotency (``idempotent = true``, and only for requests that carry a key):
the durable table maps each (transaction, step) key to what happened to it:

* ``OK``: the forward operation was applied; a repeat applies nothing and
  answers ok again;
* ``REFUSED``: the forward operation was refused; a repeat is refused again;
* ``COMPENSATED``: the compensation ran. If the forward operation had been
  applied it is undone once; if not, nothing is undone (a null compensation)
  and a forward request arriving later is refused without effect, so a
  delayed command can never land after its own compensation.

Without idempotency every forward attempt that succeeds applies its effect
again, and every compensation attempt applies its undo, whatever came before.

Messages of another protocol (anything but a saga ``req``: a two-phase
commit's prepare or decision, a choreography's broker deliveries) go to the
participant's protocol side, a :class:`ProtocolSide` the protocol attaches as
``side`` when it is built. This module knows no protocol: the side tells it
what a crash and a restart mean for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any, Protocol

from sim.world.effects import COMPENSATE, FORWARD
from sim.world.fates import Counter, Fate
from sim.world.messages import REP, REQ, Message, Reply, Request, new_record
from sim.world.network import reply_role
from sim.world.node import Node
from sim.world.pool import WorkerPool
from sim.world.records import REFUSE as REFUSE_PENDING
from sim.world.records import WAIT
from sim.world.trace import IN, OUT

if TYPE_CHECKING:
    from sim.scenario import ParticipantSpec
    from sim.world.core import World
    from sim.world.network import Network


class ProtocolSide(Protocol):
    """A protocol's part at a participant (its 2PC or choreography side)."""

    def handle(self, msg: Message) -> None:
        """Take a message of the protocol addressed to the participant."""

    def on_crash(self) -> None:
        """The participant crashed: drop what was in memory."""

    def on_restart(self) -> None:
        """The participant restarted: recover from the durable state."""

    def relies_on_fault_plan(self) -> bool:
        """Whether the side took shortcuts that only hold for faults planned before the run."""


# Reply statuses.
OK = "ok"
REFUSED = "refused"
ERROR = "error"
# Table states beyond OK and REFUSED.
COMPENSATED = "compensated"

# Attempt outcomes drawn at start (``Participant.draw_attempt``).
SUCCEED = 0
REFUSE = 1
FAIL = 2
HANG = 3


class Participant(Node):
    """A service with a worker pool, failure modes and a durable store."""

    def __init__(
        self,
        world: World,
        network: Network,
        name: str,
        spec: ParticipantSpec,
        step_names: dict[int, tuple[str, str]],
    ) -> None:
        super().__init__(world, name)
        self.network = network
        self.spec = spec
        self.step_names = step_names
        # The fate of each (step, operation), keyed by transaction and attempt
        # (made when first needed), and the attempts started per operation.
        self._fates: dict[int, Fate] = {}
        self._tries = Counter()
        # Final answers (ok, refused) sent per operation (see _reply).
        self._answers = Counter()
        # Cumulative thresholds for one uniform draw per attempt (forward ones
        # set by _apply_rates below, which faults call again).
        # Gray failures (faults): a service-time factor and failure-rate overrides.
        self._slow = 1.0
        self._slowdowns: list[float] = []
        self._rate_overrides: list[tuple[float | None, float | None, float | None]] = []
        self._apply_rates()
        self.workers = spec.workers
        self.idempotent = spec.idempotent
        #: the workers, for whichever protocol side runs here (volatile)
        self.pool = WorkerPool(self, spec.workers)
        # durable
        self.table: dict[int, str] = {}
        # counters (level and tally monitors are derived by metrics)
        self.attempts = 0
        self.hangs = 0
        self.lost_in_crash = 0
        #: worker-seconds of work done so far (see :meth:`book_until`)
        self.busy_time = 0.0
        # When each attempt booked in busy_time ends (a heap): the part of an
        # attempt past a crash or past the end of the run was never worked.
        self._ends: list[float] = []
        #: the protocol's side, when the run's protocol has one (two-phase
        #: commit, choreography); the orchestration saga's is this node itself
        self.side: ProtocolSide | None = None

    # ------------------------------------------------------------ queueing

    def handle(self, msg: Message) -> None:
        if msg.kind != REQ:  # another protocol's message
            self.side.handle(msg)  # type: ignore[union-attr]
            return
        if self.world.tracer.on:
            queued = f", queued behind {len(self.pool.queue)}" if self.pool.full() else ""
            self._trace(msg, "receive", f"attempt token {msg.token}{queued}", peer=msg.src, message=REQ, direction=IN)
        settle = self.world.settle
        if settle is not None:
            settle.hold(msg.txn)  # a job, until it finishes or is lost (sim.world.settle)
            self.pool.submit(msg, self._start, lost=self._lost_waiting)
        else:
            self.pool.submit(msg, self._start)

    def _start(self, msg: Request) -> None:
        self.attempts += 1
        outcome, duration = self.draw_attempt(msg.txn, msg.step, msg.op)
        self.pool.serve(duration, self._finish, (msg, outcome), self._lost if self.world.settle is not None else None)

    def draw_attempt(self, txn: int, step: int, op: int) -> tuple[int, float]:
        """One attempt of a forward operation or a compensation (``op``) of
        ``step`` of ``txn``: its outcome (SUCCEED, REFUSE, FAIL or HANG) and
        how long it holds a worker, gray failures included. Every protocol's
        participant side uses this.

        The draws are keyed by (transaction, step, attempt, operation), the
        attempt being how many times this participant has started that
        operation of that step for that transaction (retries, redeliveries
        and duplicates alike): every protocol run with one seed meets the same
        fate for the same transaction (:mod:`sim.world.fates`)."""
        slot = (step << 1) | op
        attempt = self._tries.next(txn, slot)
        fate = self._fates.get(slot)
        if fate is None:
            fate = self._fate(step, op)
        outcome_of, service_of, hang_of = fate.of(attempt)
        outcome = SUCCEED
        if op == FORWARD:
            if self._draws:
                u = outcome_of(txn)
                if u < self._t_hang:
                    outcome = REFUSE if u < self._t_refuse else FAIL if u < self._t_fail else HANG
        elif self._c_draws:
            u = outcome_of(txn)
            if u < self._c_hang:
                outcome = FAIL if u < self._c_fail else HANG
        duration = service_of(txn) * self._slow
        if outcome == HANG:
            self.hangs += 1
            if self.spec.hang_duration is not None:
                duration = hang_of(txn)
        self.busy_time += duration
        now = self.world.env._now
        # Kept only while a crash or the end of the run could cut it short
        # (book_until): a node that never crashes keeps none that ends in the
        # run. (One that ends at the horizon exactly has nothing past it to take back.)
        if not self.steady or now + duration > self.world.horizon:
            ends = self._ends
            heappush(ends, now + duration)
            while ends[0] <= now:  # finished: nothing left to take back
                heappop(ends)
        return outcome, duration

    def _fate(self, step: int, op: int) -> Fate:
        spec = self.spec
        service = spec.service_time if op == FORWARD else spec.compensation_time or spec.service_time
        hang = spec.hang_duration.built if spec.hang_duration is not None else None
        name = f"participant.{self.name}.step{step}.{'forward' if op == FORWARD else 'compensation'}"
        fate = Fate(self.world.streams.keyed, name, service.built, hang)
        self._fates[(step << 1) | op] = fate
        return fate

    def book_until(self, instant: float) -> None:
        """Take back from ``busy_time`` the part of every attempt booked so
        far that lies after ``instant`` (a crash: the work stops there; the end
        of the run: it is not part of the run), and forget them."""
        for end in self._ends:
            if end > instant:
                self.busy_time -= end - instant
        self._ends.clear()

    def _lost(self, job: tuple[Request, int]) -> None:
        """A job in service when the node crashed: no longer pending (judging
        as the run goes, :mod:`sim.world.settle`)."""
        msg, _ = job
        self.world.settle.release(msg.txn)  # type: ignore[union-attr]

    def _lost_waiting(self, msg: Request) -> None:
        """A request waiting for a worker when the node crashed (judging as the run goes)."""
        self.world.settle.release(msg.txn)  # type: ignore[union-attr]

    def _finish(self, job: tuple[Request, int]) -> None:
        msg, outcome = job
        if outcome == HANG:
            if self.world.tracer.on:
                self.world.tracer.emit(self.world.now, self.name, "hang", msg.txn, self._label(msg))
        else:
            status = self._forward(msg, outcome) if msg.op == FORWARD else self._compensate(msg, outcome)
            if status is None:  # waiting for a pending record (semantic lock), without a worker
                self.pool.release()
                return
            if self.world.tracer.on:
                self._trace(msg, "respond", status, peer=msg.src, message=REP, direction=OUT)
            self._reply(msg, status)
        if self.world.settle is not None:
            self.world.settle.release(msg.txn)
        self.pool.release()

    def _reply(self, msg: Request, status: str) -> None:
        # (fields read by name: unpacking a NamedTuple goes through its iterator, slower)
        src, txn, step, op = msg.src, msg.txn, msg.step, msg.op
        answer = new_record(Reply, (REP, self.name, txn, step, op, status, msg.token))  # reply(), inlined (hot)
        network = self.network
        if status == ERROR or (not network.open and network.steady(self.name, src)):
            # no counterpart in a choreography (drawn in order), or nothing
            # can ever lose or duplicate it (no draw at all): no role to count
            # (a steady link of a run open to runtime faults may not stay so)
            self.network.send(self.name, src, answer)
            return
        # The n-th final answer about this operation is what the n-th publish
        # of the event it emits is in a choreography (paired fates).
        answers = self._answers.next(txn, (step << 1) | op)
        self.network.send(self.name, src, answer, reply_role(step, op), answers)

    # ------------------------------------------------------------ effects

    def _forward(self, msg: Request, outcome: int) -> str | None:
        txn, step, key = msg.txn, msg.step, msg.key
        keyed = self.idempotent and key is not None
        if keyed:
            seen = self.table.get(key)
            if seen is not None:
                status = OK if seen == OK else REFUSED
                self._trace(msg, "dedup", f"{seen}: nothing applied")
                return status
        if outcome == REFUSE:
            if keyed:
                self.table[key] = REFUSED
            self._trace(msg, "refuse")
            return REFUSED
        if outcome == FAIL:
            self._trace(msg, "error", "transient")
            return ERROR
        records = self.world.records
        if records is not None:
            if records.skips(txn, step):
                # version file: its compensation came first (this request was in
                # flight or queued): not applied; a final answer, as under a key
                self._trace(msg, "refuse", "version file: compensated already, not applied")
                return REFUSED
            # a record another saga marked pending (semantic lock): wait (None) or refuse;
            # then its operation, which its check or a re-read may refuse
            gate = records.gate(self, txn, step, self._finish, (msg, outcome))
            if gate == WAIT:
                return None
            if gate == REFUSE_PENDING or not records.forward(self.name, txn, step):
                if keyed:
                    self.table[key] = REFUSED
                self._trace(msg, "refuse", "by its records")
                return REFUSED
        self.world.effects.apply(self.world.env._now, txn, step, FORWARD, self.name)
        if keyed:
            self.table[key] = OK
        if self.world.tracer.on:
            self._trace(msg, "effect", "forward")
        return OK

    def _compensate(self, msg: Request, outcome: int) -> str:
        if outcome == FAIL:
            self._trace(msg, "error", "transient")
            return ERROR
        key = msg.key
        if self.idempotent and key is not None:
            seen = self.table.get(key)
            self.table[key] = COMPENSATED
            if seen == COMPENSATED:
                self._trace(msg, "dedup", "already compensated: nothing applied")
                return OK
            if seen != OK:
                self._trace(msg, "null-compensation", "nothing to undo")
                return OK
        if self.world.records is not None and not self.world.records.compensate(self.name, msg.txn, msg.step):
            # version file: nothing applied to undo (the step not arrived yet, or undone already)
            self._trace(msg, "null-compensation", "version file: nothing to undo")
            return OK
        self.world.effects.apply(self.world.env._now, msg.txn, msg.step, COMPENSATE, self.name)
        if self.world.tracer.on:
            self._trace(msg, "effect", "compensation")
        return OK

    def _label(self, msg: Request) -> str:
        forward, compensation = self.step_names.get(msg.step, ("?", "?"))
        return forward if msg.op == FORWARD else compensation

    def _trace(self, msg: Request, kind: str, detail: str = "", **fields: Any) -> None:
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, kind, msg.txn, self._label(msg), detail, **fields)

    # ------------------------------------------------------------ gray failures

    def slow_down(self, factor: float) -> None:
        """Multiply service times by ``factor`` until :meth:`speed_up` with the same factor."""
        self._slowdowns.append(factor)
        self._apply_slow()
        self._trace_fault("slow", f"service times x{self._slow:g}")

    def speed_up(self, factor: float) -> None:
        if factor in self._slowdowns:
            self._slowdowns.remove(factor)
        self._apply_slow()
        self._trace_fault("slow-end", f"service times x{self._slow:g}")

    def _apply_slow(self) -> None:
        slow = 1.0
        for factor in self._slowdowns:
            slow *= factor
        self._slow = slow

    def override_rates(self, rates: tuple[float | None, float | None, float | None]) -> None:
        """Replace the business, transient and/or compensation failure rate
        (``None``: keep) until :meth:`restore_rates`; the latest override wins."""
        self._rate_overrides.append(rates)
        self._apply_rates()
        self._trace_fault("failure-rate", self._rates_text())

    def restore_rates(self, rates: tuple[float | None, float | None, float | None]) -> None:
        if rates in self._rate_overrides:
            self._rate_overrides.remove(rates)
        self._apply_rates()
        self._trace_fault("failure-rate-end", self._rates_text())

    def _apply_rates(self) -> None:
        business, transient = self.spec.business_failure, self.spec.transient_failure
        compensation = self.spec.compensation_failure
        for b, t, c in self._rate_overrides:
            business = business if b is None else b
            transient = transient if t is None else t
            compensation = compensation if c is None else c
        self._c_fail = compensation
        self._c_hang = compensation + self.spec.hang
        self._c_draws = self._c_hang > 0.0
        self._t_refuse = business
        self._t_fail = business + transient
        # A bad deploy can push the rates past 1 with the hang rate: cap the sum.
        self._t_hang = min(1.0, self._t_fail + self.spec.hang)
        self._draws = self._t_hang > 0.0

    def _rates_text(self) -> str:
        return f"business {self._t_refuse:g}, transient {self._t_fail - self._t_refuse:g}"

    def _trace_fault(self, kind: str, detail: str) -> None:
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, kind, None, None, detail)

    def end_gray_failures(self) -> None:
        """End every gray failure (the workload is over)."""
        self._slowdowns.clear()
        self._apply_slow()
        self._rate_overrides.clear()
        self._apply_rates()

    # ------------------------------------------------------------ crashes

    def on_crash(self) -> None:
        self.book_until(self.world.env._now)
        self.lost_in_crash += self.pool.crash()
        if self.side is not None:
            self.side.on_crash()

    def forget(self, keys: Iterable[int]) -> None:
        """Drop the durable idempotency entries ``keys`` of a settled
        transaction: nothing can ask for them any more."""
        table = self.table
        for key in keys:
            table.pop(key, None)

    def relies_on_fault_plan(self) -> bool:
        return self.side is not None and self.side.relies_on_fault_plan()

    def on_restart(self) -> None:
        if self.side is not None:
            self.side.on_restart()
