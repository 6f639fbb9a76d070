"""TCC (try-confirm-cancel): a coordinator reserves at every participant,
then confirms every reservation or cancels them all.

Phase one: the coordinator writes the transaction in its durable log and
sends Try for every step (all at once, or one at a time in step order:
``try_order``). A Try reserves: the participant takes the transaction's keys
there (another transaction's Try fails on them, or waits for them:
``conflict``), does the work (one attempt, with the step's forward fate) and
records the reservation. Phase two: when every Try answered ok the
coordinator logs CONFIRM and sends Confirm for every step (the reservation
becomes the step's effect); on a refusal, an error, or a reply missing after
``timeout``, it logs CANCEL and sends Cancel for every step it sent a Try to
(the reservation is released). Confirms and Cancels are retried with
``confirm_retry`` and ``cancel_retry`` until acknowledged. A restarted
coordinator (``recovery``) cancels the transactions still trying and resends
the phase-two messages not yet acknowledged.

The barrier (``barrier = true``) is a participant table of (transaction,
step, operation) written in the same local transaction as the effect, as in
DTM's barrier and Seata's TCC fence. It handles the three anomalies TCC
frameworks exist for:

* **null compensation**: a Cancel for a Try that never arrived or never
  applied records the cancel and changes nothing;
* **hanging**: a Try arriving after its Cancel finds the cancel record and is
  refused, so its reservation cannot hang;
* **idempotency**: a duplicate Try, Confirm or Cancel finds its own record and
  changes nothing.

Without it every operation that succeeds applies its effect, whatever came
before. A participant may also release a reservation after
``reservation_ttl`` seconds (expiry); a Confirm that finds its reservation
expired is refused (``expired``), which leaves that step released while the
others are confirmed.

Ground truth goes to the effect log: :data:`RESERVED` when a Try applies,
``FORWARD`` when a Confirm applies, :data:`RELEASED` when a Cancel releases,
:data:`EXPIRED` when a reservation expires. The checker
(:class:`sim.protocols.tcc.checker.TCCChecker`) judges from these alone.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from sim.protocols.base import CoordinatorView
from sim.protocols.retry import Backoff
from sim.world.effects import COMPENSATE, FORWARD
from sim.world.fates import Counter
from sim.world.locks import LockTable
from sim.world.messages import REP, Message, new_record
from sim.world.network import command_role, reply_role
from sim.world.node import Node
from sim.world.participant import ERROR, HANG, OK, REFUSE, REFUSED, SUCCEED
from sim.world.timers import DeadlineQueue
from sim.world.trace import IN, OUT

if TYPE_CHECKING:
    from sim.protocols.tcc.spec import TCCSpec
    from sim.runner import Model
    from sim.scenario import TransactionSpec
    from sim.world.core import World
    from sim.world.network import Network
    from sim.world.participant import Participant
    from sim.world.workload import TxnKeys

COORDINATOR = "coordinator"

#: Effect-log operations of TCC beyond ``FORWARD`` (a Confirm applied):
#: a Try's reservation, a Cancel's release of one, a reservation's expiry.
RESERVED = 4
RELEASED = 5
EXPIRED = 6

#: The messages' operations, and a Confirm's reply when its reservation expired.
TRY, CONFIRM, CANCEL = "try", "confirm", "cancel"
EXPIRED_STATUS = "expired"


class Command(NamedTuple):
    """The coordinator's command to a participant: ``kind`` is the
    operation (``try``, ``confirm``, ``cancel``) on ``step`` of ``txn``;
    ``token`` is echoed in the reply (the Try's per transaction, a phase-two
    command's per step)."""

    kind: str
    src: str
    txn: int
    step: int
    token: int


class CommandReply(NamedTuple):
    """A participant's answer (kind ``rep``) to a :class:`Command`: its
    ``operation``, the ``status`` (``ok``, ``refused``, ``error``, or
    ``expired`` for a Confirm) and the command's token."""

    kind: str
    src: str
    txn: int
    step: int
    operation: str
    status: str
    token: int


# Coordinator states of a transaction.
TRYING = 0
CONFIRMING = 1
CANCELLING = 2
DONE = 3

# Barrier records of one (transaction, step): bits.
B_TRY = 1  # a Try applied (its reservation was made)
B_CONFIRM = 2
B_CANCEL = 4  # a Cancel ran (a null one too: then B_TRY is not set)
B_EXPIRED = 8  # the reservation expired


class Record:
    """The coordinator's log entry for one transaction.

    Durable (as the orchestrator's saga record: written before each send):
    everything but the deadlines, which a crash loses.
    """

    __slots__ = (
        "txn", "started", "state", "sent", "tried", "next", "token", "epoch", "done",
        "attempts", "tokens", "decided_at", "belief", "retries", "gave_up", "expired",
    )  # fmt: skip

    def __init__(self, txn: int, started: float, epoch: int, n: int) -> None:
        self.txn = txn
        self.started = started
        self.state = TRYING
        self.sent = 0  # bit j: step j's Try was sent
        self.tried = 0  # bit j: step j's Try answered ok
        self.next = 0  # sequential: the step whose Try is next
        self.token = 0  # the trying phase's: replies and its deadline match it
        self.epoch = epoch
        self.done = 0  # bit j: step j's Confirm or Cancel acknowledged (or given up)
        self.attempts = [0] * n
        self.tokens = [0] * n
        self.decided_at = math.nan
        self.belief = ""
        self.retries = 0
        self.gave_up = 0
        self.expired = 0


class Phase2(NamedTuple):
    """A phase-two message awaiting its reply: ``step`` of ``rec``, sent with ``token``."""

    rec: Record
    step: int
    token: int


class Coordinator(Node):
    """The TCC coordinator node (its name is ``coordinator``, as 2PC's: a
    scenario's coordinator faults hit whichever protocol runs)."""

    def __init__(self, world: World, network: Network, spec: TCCSpec, transaction: TransactionSpec) -> None:
        super().__init__(world, COORDINATOR)
        self.network = network
        self.spec = spec
        self.targets = [s.participant for s in transaction.steps]
        self.names = [s.name for s in transaction.steps]
        self.n = len(transaction.steps)
        self.all = (1 << self.n) - 1
        self.sequential = spec.try_order == "sequential"
        self.log: dict[int, Record] = {}
        self.confirm_retry = Backoff(spec.confirm_retry, world.streams.uniform("coordinator.confirm_jitter"))
        self.cancel_retry = Backoff(spec.cancel_retry, world.streams.uniform("coordinator.cancel_jitter"))
        self.try_deadlines = DeadlineQueue(world, spec.timeout, self._trying, self._try_timeout, owner=self)
        self.deadlines = DeadlineQueue(world, spec.timeout, self._awaiting, self._phase2_timeout, owner=self)
        self.try_timeouts = 0
        self.resends = 0
        self.recovered = 0
        #: Confirms and Cancels given up, over the run (a record's own count
        #: goes with it when a settled transaction is forgotten)
        self.gave_up = 0

    def _trace(self, kind: str, txn: int, step: str | None = None, detail: str = "", **fields: Any) -> None:
        self.world.tracer.emit(self.world.now, self.name, kind, txn, step, detail, **fields)

    # ------------------------------------------------------------ phase one

    def start(self, txn: int) -> bool:
        if not self.up or self.paused:
            return False  # a crashed or frozen coordinator accepts nothing
        rec = Record(txn, self.world.env._now, self.epoch, self.n)
        self.log[txn] = rec
        if self.world.tracer.on:
            self._trace("begin", txn)
        if self.sequential:
            self._try(rec, 0)
        else:
            for step in range(self.n):
                self._try(rec, step)
        self.try_deadlines.add((rec, rec.token))
        return True

    def _try(self, rec: Record, step: int) -> None:
        rec.sent |= 1 << step  # logged before the send: a Cancel will go there
        if self.world.tracer.on:
            self._trace(
                "try", rec.txn, self.names[step], f"to {self.targets[step]}",
                peer=self.targets[step], message=TRY, direction=OUT,
            )  # fmt: skip
        msg = new_record(Command, (TRY, self.name, rec.txn, step, rec.token))
        self.network.send(self.name, self.targets[step], msg, command_role(step, FORWARD))

    def _trying(self, item: tuple[Record, int]) -> bool:
        rec, token = item
        return rec.state == TRYING and rec.token == token and rec.epoch == self.epoch

    def _try_timeout(self, item: tuple[Record, int]) -> None:
        rec, _ = item
        self.try_timeouts += 1
        if self.world.tracer.on:
            missing = [self.names[j] for j in range(self.n) if (rec.sent >> j) & 1 and not (rec.tried >> j) & 1]
            self._trace("timeout", rec.txn, None, "no answer from " + ", ".join(missing))
        self._decide(rec, CANCEL)

    def handle(self, msg: CommandReply) -> None:
        rec = self.log.get(msg.txn)
        if rec is None or rec.epoch != self.epoch or rec.state == DONE:
            return
        operation = msg.operation
        if operation == TRY:
            self._on_tried(rec, msg)
        elif rec.state == (CONFIRMING if operation == CONFIRM else CANCELLING) and rec.tokens[msg.step] == msg.token:
            self._on_phase2(rec, msg)

    def _on_tried(self, rec: Record, msg: CommandReply) -> None:
        if rec.state != TRYING or rec.token != msg.token:
            return  # late: the decision is taken
        step, status = msg.step, msg.status
        if self.world.tracer.on:
            self._trace("reply", rec.txn, self.names[step], f"try {status}", peer=msg.src, message=REP, direction=IN)
        if status != OK:
            self._decide(rec, CANCEL)
            return
        rec.tried |= 1 << step
        if rec.tried == self.all:
            self._decide(rec, CONFIRM)
        elif self.sequential and step == rec.next:
            rec.next += 1
            rec.token += 1  # the next Try has its own deadline
            self._try(rec, rec.next)
            self.try_deadlines.add((rec, rec.token))

    # ------------------------------------------------------------ phase two

    def _decide(self, rec: Record, decision: str) -> None:
        rec.token += 1  # the trying phase's deadline and late replies go stale
        rec.state = CONFIRMING if decision == CONFIRM else CANCELLING
        rec.decided_at = self.world.env._now
        if self.world.tracer.on:
            self._trace("decide", rec.txn, None, decision)
        # Cancel every step that may have tried: a refusal or an error is no
        # proof (a duplicate Try may still arrive), and the Cancel's barrier
        # record is what refuses it then.
        steps = range(self.n) if decision == CONFIRM else [j for j in range(self.n) if (rec.sent >> j) & 1]
        rec.done = self.all & ~sum(1 << j for j in steps)
        for step in steps:
            self._send(rec, step)

    def _send(self, rec: Record, step: int) -> None:
        op = CONFIRM if rec.state == CONFIRMING else CANCEL
        rec.attempts[step] += 1
        attempt = rec.attempts[step]
        if attempt > 1:
            rec.retries += 1
        rec.tokens[step] += 1
        if self.world.tracer.on:
            self._trace(
                op, rec.txn, self.names[step], f"attempt {attempt} to {self.targets[step]}",
                peer=self.targets[step], message=op, direction=OUT, attempt=attempt,
            )  # fmt: skip
        msg = new_record(Command, (op, self.name, rec.txn, step, rec.tokens[step]))
        if op == CANCEL:  # a Cancel is the step's compensation: the saga's command's fate
            self.network.send(self.name, self.targets[step], msg, command_role(step, COMPENSATE), attempt)
        else:
            self.network.send(self.name, self.targets[step], msg)
        self.deadlines.add(Phase2(rec, step, rec.tokens[step]))

    def _awaiting(self, item: Phase2) -> bool:
        rec = item.rec
        return rec.state in (CONFIRMING, CANCELLING) and rec.tokens[item.step] == item.token and rec.epoch == self.epoch

    def _on_phase2(self, rec: Record, msg: CommandReply) -> None:
        step, status = msg.step, msg.status
        rec.tokens[step] += 1  # answered: its deadline and duplicates go stale
        if self.world.tracer.on:
            self._trace(
                "reply", rec.txn, self.names[step], f"{msg.operation} {status}", peer=msg.src, message=REP, direction=IN
            )
        if status == ERROR:
            self._failed(Phase2(rec, step, rec.tokens[step]))
            return
        if status == EXPIRED_STATUS:
            rec.expired += 1  # a final answer: the reservation is gone
        self._step_done(rec, step)

    def _phase2_timeout(self, item: Phase2) -> None:
        rec = item.rec
        rec.tokens[item.step] += 1
        if self.world.tracer.on:
            op = CONFIRM if rec.state == CONFIRMING else CANCEL
            self._trace("timeout", rec.txn, self.names[item.step], f"{op} attempt {rec.attempts[item.step]}")
        self._failed(Phase2(rec, item.step, rec.tokens[item.step]))

    def _failed(self, item: Phase2) -> None:
        """An attempt got an error or no reply: retry, or give the step up."""
        rec, step = item.rec, item.step
        backoff = self.confirm_retry if rec.state == CONFIRMING else self.cancel_retry
        if rec.attempts[step] < backoff.limit:
            self.world.at(backoff.wait(rec.attempts[step] + 1), self._resend, item)
            return
        rec.gave_up += 1
        self.gave_up += 1
        if self.world.tracer.on:
            self._trace("give-up", rec.txn, self.names[step], CONFIRM if rec.state == CONFIRMING else CANCEL)
        self._step_done(rec, step)

    def _resend(self, item: Phase2) -> None:
        if self.paused:
            self.hold(self._resend, item)
            return
        if self._awaiting(item):
            self.resends += 1
            self._send(item.rec, item.step)

    def _step_done(self, rec: Record, step: int) -> None:
        rec.done |= 1 << step
        if rec.done != self.all:
            return
        confirmed = rec.state == CONFIRMING
        rec.state = DONE
        if rec.gave_up or rec.expired:
            rec.belief = "failed"
        else:
            rec.belief = "committed" if confirmed else "aborted"
        if self.world.tracer.on:
            self._trace("end", rec.txn, None, rec.belief)

    # ------------------------------------------------------------ crashes

    def on_crash(self) -> None:
        self.try_deadlines.clear()
        self.deadlines.clear()

    def on_restart(self) -> None:
        if not self.spec.recovery:
            return
        for rec in self.log.values():
            if rec.state == DONE:
                continue
            rec.epoch = self.epoch
            self.recovered += 1
            if self.world.tracer.on:
                self._trace("recover", rec.txn, None, "trying: cancel" if rec.state == TRYING else "resend")
            if rec.state == TRYING:
                # The Trys' answers are not all in: cancel every one sent.
                self._decide(rec, CANCEL)
                continue
            for step in range(self.n):
                if not (rec.done >> step) & 1:
                    self._send(rec, step)

    # ------------------------------------------------------------ results

    def view(self, txn: int) -> CoordinatorView:
        rec = self.log[txn]
        done = rec.state == DONE
        return CoordinatorView(done, rec.decided_at if done else math.nan, rec.belief or "running", rec.retries)


class _Try(NamedTuple):
    """A Try waiting for its keys or a worker at a participant."""

    msg: Message


class TCCParticipant:
    """The TCC side of one participant: reservations, the barrier, expiry.

    The participant delegates every message that is not a saga request here.
    """

    def __init__(self, participant: Participant, spec: TCCSpec, steps: list[int], keys: TxnKeys) -> None:
        self.p = participant
        self.world = participant.world
        self.network = participant.network
        self.name = participant.name
        self.spec = spec
        self.steps = steps
        self.keys = keys
        self.barrier_on = spec.barrier
        guards = set(spec.guards) if spec.barrier else set()
        #: the barrier's checks, each on its own switch (``[tcc] guards``)
        self.null_guard = "null_compensation" in guards
        self.hanging_guard = "hanging" in guards
        self.idempotency_guard = "idempotency" in guards
        self.wait = spec.conflict == "wait"
        self.ttl = spec.reservation_ttl
        self.locks = LockTable(self.world, self._granted)
        self.lock_deadlines = DeadlineQueue(
            self.world, participant.spec.lock_timeout, self._lock_waiting, self._lock_timeout, owner=participant
        )
        # durable
        self.barrier: dict[tuple[int, int], int] = {}
        #: live reservations per (transaction, step): when each was made
        #: (without the barrier a duplicate Try makes a second one)
        self.reserved: dict[tuple[int, int], list[float]] = {}
        self.reserved_time: dict[int, float] = {}
        # volatile (the jobs waiting for a worker are in the participant's pool)
        self.waiting: dict[int, list[Command]] = {}  # txn -> Trys waiting for its keys
        self.trying: dict[int, int] = {}  # txn -> Trys that took its keys and have not finished
        self._answers = Counter()
        # counters
        self.reservations = 0
        self.expired = 0
        self.conflicts = 0
        self.null_cancels = 0
        self.hanging_refused = 0
        self.duplicates = 0

    def _trace(self, kind: str, txn: int, step: int, detail: str = "", **fields: Any) -> None:
        if self.world.tracer.on:
            name, _ = self.p.step_names.get(step, ("?", "?"))
            self.world.tracer.emit(self.world.now, self.name, kind, txn, name, detail, **fields)

    def handle(self, msg: Command) -> None:
        if self.world.tracer.on:
            kind, src = msg.kind, msg.src
            self._trace("receive", msg.txn, msg.step, f"{kind} from {src}", peer=src, message=kind, direction=IN)
        if msg.kind == TRY:
            self._on_try(msg)
        else:
            self._enqueue(msg)

    # ------------------------------------------------------------ Try: keys

    def _keys(self, txn: int) -> tuple[int, ...]:
        by_step = self.keys.of(txn)
        return tuple(sorted({k for s in self.steps for k in by_step[s]})) if by_step else ()

    def _on_try(self, msg: Command) -> None:
        txn = msg.txn
        if self.barrier_on and not self._barrier_allows(msg):
            return
        keys = self._keys(txn)
        if not keys or (txn in self.locks.held and txn not in self.locks.requests):
            self._take(msg)  # no keys, or this transaction holds them here already
            return
        if txn in self.waiting:
            self.waiting[txn].append(msg)
            return
        holder = next((self.locks.holder[k] for k in keys if self.locks.holder.get(k, txn) != txn), None)
        if holder is not None and not self.wait:
            self.conflicts += 1
            self._trace("conflict", txn, msg.step, f"key reserved by txn {holder}")
            self._reply(msg, REFUSED)
            return
        req = self.locks.request(txn, keys)
        if req.waiting:
            self._trace(
                "lock-wait", txn, msg.step, f"key {keys[req.next]} reserved by txn {self.locks.holder[keys[req.next]]}"
            )
            self.waiting[txn] = [msg]
            self.lock_deadlines.add((txn, req))
            return
        self._take(msg)

    def _barrier_allows(self, msg: Command) -> bool:
        """The barrier's check at arrival (done again when the Try applies):
        a Try after its Cancel is refused, a repeat answers as the first."""
        txn, step = msg.txn, msg.step
        bits = self.barrier.get((txn, step), 0)
        if bits & B_CANCEL and self.hanging_guard:
            self.hanging_refused += 1
            self._trace("barrier", txn, step, "try after its cancel: refused")
            self._reply(msg, REFUSED)
            return False
        if bits & B_TRY and self.idempotency_guard:
            self.duplicates += 1
            self._trace("barrier", txn, step, "try again: nothing applied")
            self._reply(msg, OK)
            return False
        return True

    def _granted(self, txn: int) -> None:
        for msg in self.waiting.pop(txn, ()):
            self._trace("locked", txn, msg.step)
            self._take(msg)

    def _lock_waiting(self, item: tuple[int, Any]) -> bool:
        txn, req = item
        return req.waiting and self.locks.requests.get(txn) is req

    def _lock_timeout(self, item: tuple[int, Any]) -> None:
        txn, _ = item
        self.locks.cancel(txn)
        for msg in self.waiting.pop(txn, ()):
            self.conflicts += 1
            self._trace("conflict", txn, msg.step, "lock timeout")
            self._reply(msg, REFUSED)
        self._maybe_release(txn)

    def _take(self, msg: Command) -> None:
        txn = msg.txn
        self.trying[txn] = self.trying.get(txn, 0) + 1
        self._enqueue(msg)

    def _maybe_release(self, txn: int) -> None:
        """Release the keys of ``txn`` here once nothing holds them: no Try of
        it under way and no reservation of it left."""
        if self.trying.get(txn) or any(self.reserved.get((txn, s)) for s in self.steps):
            return
        self.trying.pop(txn, None)
        self.locks.release(txn)

    # ------------------------------------------------------------ work

    def _enqueue(self, msg: Command) -> None:
        settle = self.world.settle
        if settle is None:
            self.p.pool.submit(msg, self._start)
        else:
            # A job is work pending for its transaction (sim.world.settle)
            # until it is done or lost in a crash: a Try still queued when
            # the coordinator has ended the transaction may yet reserve.
            settle.hold(msg.txn)
            self.p.pool.submit(msg, self._start, lost=self._lost_waiting)

    def _start(self, msg: Command) -> None:
        p = self.p
        p.attempts += 1
        # A Try draws the step's forward fate; a Confirm or a Cancel, the
        # second-phase work, its compensation's (compensation_time and
        # compensation_failure), the saga's refund paired with TCC's cancel.
        op = FORWARD if msg.kind == TRY else COMPENSATE
        outcome, duration = p.draw_attempt(msg.txn, msg.step, op)
        p.pool.serve(duration, self._done, (msg, outcome), self._lost if self.world.settle is not None else None)

    def _lost(self, job: tuple[Command, int]) -> None:
        """A job in service when the node crashed: no longer pending
        (judging as the run goes, :mod:`sim.world.settle`)."""
        msg, _ = job
        self.world.settle.release(msg.txn)  # type: ignore[union-attr]

    def _lost_waiting(self, msg: Command) -> None:
        """A job waiting for a worker when the node crashed (judging as the run goes)."""
        self.world.settle.release(msg.txn)  # type: ignore[union-attr]

    def _done(self, job: tuple[Command, int]) -> None:
        msg, outcome = job
        kind = msg.kind
        if outcome == HANG:
            self._trace("hang", msg.txn, msg.step, kind)
        elif kind == TRY:
            self._reply(msg, self._tried(msg, outcome))
        elif outcome != SUCCEED:
            self._trace("error", msg.txn, msg.step, f"{kind}: transient")
            self._reply(msg, ERROR)
        else:
            self._reply(msg, self._confirm(msg) if kind == CONFIRM else self._cancel(msg))
        if kind == TRY:
            txn = msg.txn
            self.trying[txn] -= 1
            self._maybe_release(txn)
        if self.world.settle is not None:
            self.world.settle.release(msg.txn)
        self.p.pool.release()

    def _tried(self, msg: Command, outcome: int) -> str:
        txn, step = msg.txn, msg.step
        if outcome == REFUSE:
            self._trace("refuse", txn, step)
            return REFUSED
        if outcome != SUCCEED:
            self._trace("error", txn, step, "try: transient")
            return ERROR
        if self.barrier_on:
            bits = self.barrier.get((txn, step), 0)
            if bits & B_CANCEL and self.hanging_guard:  # its Cancel came first
                self.hanging_refused += 1
                self._trace("barrier", txn, step, "try after its cancel: refused")
                return REFUSED
            if bits & B_TRY and self.idempotency_guard:  # another copy came first
                self.duplicates += 1
                self._trace("barrier", txn, step, "try again")
                return OK
            self.barrier[(txn, step)] = bits | B_TRY
        records = self.world.records
        if records is not None and not records.adds(step) and not records.forward(self.name, txn, step):
            # its records refuse the reservation (a failed check): nothing reserved
            self._trace("refuse", txn, step, "by its records")
            return REFUSED
        now = self.world.env._now
        self.world.effects.apply(now, txn, step, RESERVED, self.name)
        self.reserved.setdefault((txn, step), []).append(now)
        self.reservations += 1
        self._trace("effect", txn, step, "reserved")
        if self.ttl is not None:
            self.p.after(self.ttl, self._expire, (txn, step, now))
        return OK

    def _release(self, txn: int, step: int, since: float) -> None:
        """One reservation of (``txn``, ``step``) made at ``since`` ends now."""
        live = self.reserved[(txn, step)]
        live.remove(since)
        if not live:
            del self.reserved[(txn, step)]
        self.reserved_time[txn] = self.reserved_time.get(txn, 0.0) + self.world.env._now - since
        self._maybe_release(txn)

    def _confirm(self, msg: Command) -> str:
        txn, step = msg.txn, msg.step
        live = self.reserved.get((txn, step))
        if self.barrier_on:
            bits = self.barrier.get((txn, step), 0)
            if bits & B_CONFIRM and self.idempotency_guard:
                self.duplicates += 1
                self._trace("barrier", txn, step, "confirm again: nothing applied")
                return OK
            if not live and not bits & B_CONFIRM:  # expired (or never made): nothing to confirm
                self._trace(
                    "confirm-refused", txn, step, "reservation expired" if bits & B_EXPIRED else "no reservation"
                )
                return EXPIRED_STATUS
            self.barrier[(txn, step)] = bits | B_CONFIRM
        records = self.world.records
        if records is not None and records.adds(step):
            records.forward(self.name, txn, step)  # a credit is applied when confirmed, never reserved
        self.world.effects.apply(self.world.env._now, txn, step, FORWARD, self.name)
        self._trace("effect", txn, step, "forward")
        if live:
            self._release(txn, step, live[0])
        return OK

    def _cancel(self, msg: Command) -> str:
        txn, step = msg.txn, msg.step
        live = self.reserved.get((txn, step))
        if self.barrier_on:
            bits = self.barrier.get((txn, step), 0)
            self.barrier[(txn, step)] = bits | B_CANCEL
            if bits & B_CANCEL and self.idempotency_guard:
                self.duplicates += 1
                self._trace("barrier", txn, step, "cancel again: nothing applied")
                return OK
            if not bits & B_TRY:
                if self.null_guard:
                    self.null_cancels += 1
                    self._trace("barrier", txn, step, "null cancel: no try here, nothing released")
                    return OK
                # (else the null Cancel applies its release: the anomaly the guard is for)
            elif not live:  # expired already (a confirmed one is never cancelled)
                self._trace("barrier", txn, step, "reservation gone: nothing released")
                return OK
        if self.world.records is not None:
            self.world.records.compensate(self.name, txn, step)  # the reservation's take is given back
        self.world.effects.apply(self.world.env._now, txn, step, RELEASED, self.name)
        self._trace("effect", txn, step, "released")
        if live:
            self._release(txn, step, live[0])
        return OK

    def _expire(self, job: tuple[int, int, float]) -> None:
        txn, step, since = job
        live = self.reserved.get((txn, step))
        if not live or since not in live:
            return  # confirmed or cancelled meanwhile
        self.expired += 1
        if self.barrier_on:
            self.barrier[(txn, step)] = self.barrier.get((txn, step), 0) | B_EXPIRED
        if self.world.records is not None:
            self.world.records.compensate(self.name, txn, step)
        self.world.effects.apply(self.world.env._now, txn, step, EXPIRED, self.name)
        self._trace("effect", txn, step, "expired")  # (one word: what was applied, see sim.swimlane)
        self._release(txn, step, since)

    def _reply(self, msg: Command, status: str) -> None:
        kind, src, txn, step = msg.kind, msg.src, msg.txn, msg.step
        op = COMPENSATE if kind == CANCEL else FORWARD
        if self.world.tracer.on:
            self._trace("respond", txn, step, f"{kind} {status}", peer=src, message=REP, direction=OUT)
        reply = new_record(CommandReply, (REP, self.name, txn, step, kind, status, msg.token))
        if kind == CONFIRM:
            self.network.send(self.name, src, reply)
            return
        answers = self._answers.next(txn, (step << 1) | op)
        self.network.send(self.name, src, reply, reply_role(step, op), answers)

    # ------------------------------------------------------------ crashes

    def on_crash(self) -> None:
        # (the jobs in service and queued are lost with the worker pool)
        self.waiting.clear()
        self.trying.clear()
        self.lock_deadlines.clear()
        # Reservations are durable: their keys stay taken.
        self.locks.crash({txn for txn, _ in self.reserved})

    def relies_on_fault_plan(self) -> bool:
        return False

    def on_restart(self) -> None:
        if self.ttl is None:
            return
        now = self.world.env._now
        for (txn, step), live in self.reserved.items():
            for since in live:  # expiry timers are volatile: re-armed, overdue ones at once
                self.p.after(max(0.0, since + self.ttl - now), self._expire, (txn, step, since))

    # ------------------------------------------------------------ judging as the run goes

    def quiet(self, txn: int) -> bool:
        """Whether nothing here can still change ``txn`` (see the
        protocol's ``quiet``): no Try of it waiting for its keys (the keys'
        grant or the lock timeout acts on it without a message) and no
        reservation of it live (its expiry timer may release it, and its
        ``reserved_time`` grows until it ends). Its jobs are counted by the
        engine, and its keys are held only while one of those is left."""
        if txn in self.waiting:
            return False
        reserved = self.reserved
        return not any((txn, step) in reserved for step in self.steps)

    def forget(self, txn: int) -> None:
        """Drop the records of a settled transaction: its barrier records
        (no message about it can arrive any more: the engine counted none),
        its reserved time and its lock times."""
        barrier = self.barrier
        for step in self.steps:
            barrier.pop((txn, step), None)
        self.reserved_time.pop(txn, None)
        self.trying.pop(txn, None)
        self.locks.forget(txn)

    # ------------------------------------------------------------ results

    def reserved_for(self, txn: int, now: float) -> float:
        """Seconds ``txn``'s reservations were held here, live ones up to ``now``."""
        total = self.reserved_time.get(txn, 0.0)
        for step in self.steps:
            for since in self.reserved.get((txn, step), ()):
                total += now - since
        return total


class TCCProtocol:
    """The runner's handle on TCC."""

    name = "tcc"
    #: judged as the run goes (sim.world.settle): every message and every
    #: participant job is counted by the engine, and what the participants
    #: keep (Trys waiting for keys, live reservations) is looked at by quiet()
    settles = True

    def __init__(
        self,
        world: World,
        network: Network,
        spec: TCCSpec,
        transaction: TransactionSpec,
        participants: dict[str, Participant],
        keys: TxnKeys,
    ) -> None:
        self.world = world
        self.coordinator = Coordinator(world, network, spec, transaction)
        network.attach(self.coordinator)
        self.sides: dict[str, TCCParticipant] = {}
        for step in transaction.steps:
            name = step.participant
            if name not in self.sides:
                steps = [i for i, s in enumerate(transaction.steps) if s.participant == name]
                side = TCCParticipant(participants[name], spec, steps, keys)
                participants[name].side = side
                self.sides[name] = side

    def start(self, txn: int) -> bool:
        return self.coordinator.start(txn)

    def view(self, txn: int) -> CoordinatorView:
        return self.coordinator.view(txn)

    def nodes(self) -> list[Node]:
        return [self.coordinator]

    def quiet(self, txn: int) -> bool:
        """Whether no participant keeps anything that can still change
        ``txn``; asked only once its coordinator has ended it and the engine
        counts no message or job for it. The coordinator's own timers are
        stale by then (its deadlines and retries check the record's state,
        which stays ``DONE``, and a restart skips ended records); what is left
        is at the participants: a Try waiting for its keys, or a reservation
        still live (a hanging one keeps its transaction open to the end)."""
        return all(side.quiet(txn) for side in self.sides.values())

    def forget(self, txn: int) -> None:
        """Drop the coordinator's record and the participants' records of a
        settled transaction (judged already)."""
        del self.coordinator.log[txn]
        for side in self.sides.values():
            side.forget(txn)

    def transaction_extra(self, txn: int) -> dict[str, float]:
        """``reserved_time``: seconds the transaction's reservations were held,
        summed over its steps (live ones up to now)."""
        now = self.world.env._now
        return {"reserved_time": sum(s.reserved_for(txn, now) for s in self.sides.values())}

    def summary_extra(self) -> dict[str, Any]:
        sides = self.sides.values()
        coordinator = self.coordinator
        return {
            "reservations": sum(s.reservations for s in sides),
            "reservations_expired": sum(s.expired for s in sides),
            "reservations_at_end": sum(len(live) for s in sides for live in s.reserved.values()),
            "try_conflicts": sum(s.conflicts for s in sides),
            "try_timeouts": coordinator.try_timeouts,
            "null_cancels": sum(s.null_cancels for s in sides),
            "hanging_tries_refused": sum(s.hanging_refused for s in sides),
            "duplicates_ignored": sum(s.duplicates for s in sides),
            "phase2_resends": coordinator.resends,
            "recovered": coordinator.recovered,
            "gave_up": coordinator.gave_up,
        }


def build(model: Model) -> TCCProtocol:
    """The protocol on a run's model (see :mod:`sim.protocols.registry`)."""
    s = model.scenario
    return TCCProtocol(model.world, model.network, s.tcc, s.transaction, model.participants, model.keys)
