"""Two-phase commit: a coordinator with a durable decision log, participants
that lock, prepare, and wait in doubt for the decision.

Phase one: the coordinator sends PREPARE to every participant of the
transaction. A participant takes the locks on the keys the transaction
touches there (FIFO; waiting longer than its ``lock_timeout`` makes it vote
NO), does the work (one attempt on its worker pool, with its service time and
failure draws), forces a prepared record and votes YES; a business or a
transient failure makes it abort on its own and vote NO (2PC has no step to
retry: the whole transaction aborts). Phase two: on all YES the coordinator
forces COMMIT (taking ``log_write``) and sends it until every participant
acknowledges; on a NO, or when the votes are not all in after
``vote_timeout``, it aborts. Participants apply (commit: the step's forward
effect) or discard (abort: an abort record) and release the locks.

A participant that has not voted may abort on its own: when its lock wait
times out, when its work fails, when it has not voted ``vote_timeout`` after
the PREPARE arrived, or when a peer asks it about the transaction
(cooperative termination). A participant that voted YES is in doubt: it
holds its locks until it learns the decision, asking the coordinator (and,
with ``cooperative_termination``, the other participants) every
``in_doubt_timeout``, however long that takes.

Presumed abort (``presumed_abort = true``): an abort is neither forced nor
acknowledged, and a coordinator with no record of a transaction answers
"abort". Without it (presumed nothing), the coordinator has a begin record of
every transaction, forces aborts too and collects acknowledgements for them.

Recovery: a restarted coordinator resends the decision of every transaction
it has a durable decision for and aborts the rest (with presumed abort
silently: participants learn it when they ask); a restarted participant keeps
the locks of its prepared transactions (they are in its prepared records) and
asks about each of them at once.

Ground truth goes to the effect log: ``PREPARED`` when a participant forces
its prepared record, ``FORWARD`` when it commits a step, ``ABORT`` when it
records an abort for a transaction it had started or prepared. The checker
judges atomic commit and termination from these.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from sim.protocols.base import CoordinatorView
from sim.world.effects import ABORT, FORWARD, PREPARED
from sim.world.locks import LockTable
from sim.world.node import Node
from sim.world.participant import HANG, REFUSE, SUCCEED
from sim.world.timers import DeadlineQueue
from sim.world.trace import IN, OUT

if TYPE_CHECKING:
    from sim.protocols.twopc.spec import TwoPCSpec
    from sim.runner import Model
    from sim.scenario import TransactionSpec
    from sim.world.core import World
    from sim.world.network import Network
    from sim.world.participant import Participant
    from sim.world.workload import TxnKeys

COORDINATOR = "coordinator"

# Coordinator states of a transaction.
COLLECTING = 0  # waiting for votes
FORCING = 1  # the decision record is being written
COMMITTING = 2  # COMMIT sent, waiting for acknowledgements
ABORTING = 3  # ABORT sent, waiting for acknowledgements (presumed nothing)
DONE = 4

# Participant durable states.
P_PREPARED = 1
P_COMMITTED = 2
P_ABORTED = 3


class Record:
    """The coordinator's entry for one transaction.

    ``decision`` and ``begun`` are durable; the votes and acknowledgements are
    volatile (lost in a crash).
    """

    __slots__ = (
        "txn", "started", "state", "yes", "no", "acked", "targets", "decision",
        "decided_at", "retries", "epoch", "token",
    )  # fmt: skip

    def __init__(self, txn: int, started: float, epoch: int) -> None:
        self.txn = txn
        self.started = started
        self.state = COLLECTING
        self.yes: set[str] = set()
        self.no: set[str] = set()
        self.acked: set[str] = set()
        self.targets: list[str] = []
        self.decision = ""  # "commit" / "abort" once durable (or presumed)
        self.decided_at = math.nan
        self.retries = 0
        self.epoch = epoch
        self.token = 0


class Forcing(NamedTuple):
    """A decision being forced to the coordinator's log."""

    rec: Record
    #: the record's token when the write started
    token: int
    decision: str


class Coordinator(Node):
    """The 2PC coordinator node (its name is ``coordinator``)."""

    def __init__(self, world: World, network: Network, spec: TwoPCSpec, participants: list[str]) -> None:
        super().__init__(world, COORDINATOR)
        self.network = network
        self.spec = spec
        self.participants = participants
        self.presumed_abort = spec.presumed_abort
        self.log: dict[int, Record] = {}
        log_write = spec.log_write.built
        self._log_write = None if log_write.mean == 0.0 else world.streams.sampler("coordinator.log_write", log_write)
        self.vote_deadlines = DeadlineQueue(world, spec.vote_timeout, self._collecting, self._vote_timeout, owner=self)
        self.ack_deadlines = DeadlineQueue(world, spec.ack_timeout, self._awaiting, self._ack_timeout, owner=self)
        self.vote_timeouts = 0
        self.resends = 0
        self.recovered = 0

    def _trace(self, kind: str, txn: int, detail: str = "", **fields: Any) -> None:
        self.world.tracer.emit(self.world.now, self.name, kind, txn, None, detail, **fields)

    # ------------------------------------------------------------ phase one

    def start(self, txn: int) -> bool:
        if not self.up or self.paused:
            return False
        rec = Record(txn, self.world.env._now, self.epoch)
        self.log[txn] = rec  # with presumed nothing this is the forced begin record
        tracing = self.world.tracer.on
        if tracing:
            self._trace("begin", txn)
        for name in self.participants:
            if tracing:
                self._trace("prepare", txn, f"to {name}", peer=name, message="prep", direction=OUT)
            self.network.send(self.name, name, ("prep", self.name, txn))
        self.vote_deadlines.add((rec, rec.token))
        return True

    def _collecting(self, item: tuple[Record, int]) -> bool:
        rec, token = item
        return rec.state == COLLECTING and rec.token == token and rec.epoch == self.epoch

    def _vote_timeout(self, item: tuple[Record, int]) -> None:
        rec = item[0]
        self.vote_timeouts += 1
        if self.world.tracer.on:
            missing = [p for p in self.participants if p not in rec.yes]
            self._trace("timeout", rec.txn, "votes missing from " + ", ".join(missing))
        self._decide(rec, "abort")

    def handle(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        rec = self.log.get(msg[2])
        if kind == "vote":
            self._on_vote(msg, rec)
        elif kind == "ack":
            self._on_ack(msg, rec)
        elif kind == "query":
            self._on_query(msg, rec)

    def _on_vote(self, msg: tuple[Any, ...], rec: Record | None) -> None:
        if rec is None or rec.state != COLLECTING or rec.epoch != self.epoch:
            return  # late: the decision is taken
        if self.world.tracer.on:
            self._trace(
                "vote",
                rec.txn,
                f"{'yes' if msg[3] else 'no'} from {msg[1]}",
                peer=msg[1],
                message="vote",
                direction=IN,
            )
        if msg[3]:
            rec.yes.add(msg[1])
            if len(rec.yes) == len(self.participants):
                self._decide(rec, "commit")
        else:
            rec.no.add(msg[1])
            self._decide(rec, "abort")

    def _on_ack(self, msg: tuple[Any, ...], rec: Record | None) -> None:
        if rec is None or rec.state not in (COMMITTING, ABORTING) or rec.epoch != self.epoch:
            return
        rec.acked.add(msg[1])
        if self.world.tracer.on:
            self._trace("ack", rec.txn, f"from {msg[1]}", peer=msg[1], message="ack", direction=IN)
        if len(rec.acked) >= len(rec.targets):
            self._end(rec)

    def _on_query(self, msg: tuple[Any, ...], rec: Record | None) -> None:
        if rec is not None and rec.state in (COLLECTING, FORCING) and rec.epoch == self.epoch:
            return  # undecided: the decision will be sent when it is taken
        # A durable decision, or (presumed abort) no record of one: abort.
        decision = rec.decision if rec is not None and rec.decision else "abort"
        if self.world.tracer.on:
            self._trace("answer", msg[2], f"{decision} to {msg[1]}", peer=msg[1], message=decision, direction=OUT)
        self.network.send(self.name, msg[1], (decision, self.name, msg[2]))

    # ------------------------------------------------------------ phase two

    def _decide(self, rec: Record, decision: str) -> None:
        rec.token += 1  # the vote deadline goes stale
        if self.world.tracer.on:
            self._trace("decide", rec.txn, decision)
        if decision == "abort" and self.presumed_abort:
            # Not forced, not acknowledged: tell those that may be prepared.
            rec.decision = "abort"
            rec.decided_at = self.world.env._now
            for name in self.participants:
                if name not in rec.no:
                    self._send_decision(rec, name)
            self._end(rec)
            return
        rec.state = FORCING
        forcing = Forcing(rec, rec.token, decision)
        if self._log_write is None:
            self._forced(forcing)
        else:  # (a crash meanwhile loses the write: the record never made it to disk)
            self.after(self._log_write(), self._forced, forcing)

    def _forced(self, job: Forcing) -> None:
        rec, token, decision = job
        if rec.token != token:
            return  # decided again since (a recovery): this write is stale
        rec.decision = decision
        rec.decided_at = self.world.env._now
        rec.state = COMMITTING if decision == "commit" else ABORTING
        rec.targets = [p for p in self.participants if p not in rec.no]
        if self.world.tracer.on:
            self._trace("logged", rec.txn, decision)
        self._broadcast(rec)

    def _broadcast(self, rec: Record) -> None:
        rec.acked.clear()
        if not rec.targets:
            self._end(rec)
            return
        for name in rec.targets:
            self._send_decision(rec, name)
        self.ack_deadlines.add((rec, rec.token))

    def _send_decision(self, rec: Record, name: str) -> None:
        if self.world.tracer.on:
            self._trace(
                "decision", rec.txn, f"{rec.decision} to {name}", peer=name, message=rec.decision, direction=OUT
            )
        self.network.send(self.name, name, (rec.decision, self.name, rec.txn))

    def _awaiting(self, item: tuple[Record, int]) -> bool:
        rec, token = item
        return rec.state in (COMMITTING, ABORTING) and rec.token == token and rec.epoch == self.epoch

    def _ack_timeout(self, item: tuple[Record, int]) -> None:
        rec = item[0]
        for name in rec.targets:
            if name not in rec.acked:
                rec.retries += 1
                self.resends += 1
                self._send_decision(rec, name)
        self.ack_deadlines.add(item)

    def _end(self, rec: Record) -> None:
        rec.state = DONE
        rec.token += 1
        if self.world.tracer.on:
            self._trace("end", rec.txn, "committed" if rec.decision == "commit" else "aborted")

    # ------------------------------------------------------------ crashes

    def on_crash(self) -> None:
        self.vote_deadlines.clear()
        self.ack_deadlines.clear()

    def on_restart(self) -> None:
        for rec in self.log.values():
            if rec.state == DONE:
                continue
            rec.epoch = self.epoch
            rec.token += 1
            rec.yes.clear()
            rec.no.clear()
            self.recovered += 1
            if self.world.tracer.on:
                self._trace("recover", rec.txn, rec.decision or "no decision")
            if rec.decision:
                # Finish what the log decided: resend to every participant.
                rec.state = COMMITTING if rec.decision == "commit" else ABORTING
                rec.targets = list(self.participants)
                self._broadcast(rec)
            elif self.presumed_abort:
                # No record survives: the transaction is presumed aborted;
                # participants in doubt learn it when they ask.
                rec.decision = "abort"
                rec.decided_at = self.world.env._now
                self._end(rec)
            else:
                self._decide(rec, "abort")

    # ------------------------------------------------------------ results

    def view(self, txn: int) -> CoordinatorView:
        rec = self.log[txn]
        done = rec.state == DONE
        if done:
            belief = "committed" if rec.decision == "commit" else "aborted"
        else:
            belief = "running"
        return CoordinatorView(done, rec.decided_at if done else math.nan, belief, rec.retries)


class _Work:
    """A participant's volatile work on one transaction before its vote."""

    __slots__ = ("txn", "arrived", "locked")

    def __init__(self, txn: int, arrived: float) -> None:
        self.txn = txn
        self.arrived = arrived
        self.locked = False


class TwoPCParticipant:
    """The 2PC side of one participant: locks, prepare, vote, decision.

    The participant delegates every message that is not a saga request here.
    """

    def __init__(
        self,
        participant: Participant,
        spec: TwoPCSpec,
        steps: list[int],
        peers: list[str],
        keys: TxnKeys,
    ) -> None:
        self.p = participant
        self.world = participant.world
        self.network = participant.network
        self.name = participant.name
        self.spec = spec
        self.steps = steps
        self.label = "+".join(participant.step_names[s][0] for s in steps)
        self.peers = peers
        self.keys = keys
        self.presumed_abort = spec.presumed_abort
        self.cooperative = spec.cooperative_termination
        self.locks = LockTable(self.world, self._granted)
        world = self.world
        self.vote_deadlines = DeadlineQueue(
            world, spec.vote_timeout, self._unvoted, self._vote_timeout, owner=participant
        )
        self.lock_deadlines = DeadlineQueue(
            world, participant.spec.lock_timeout, self._lock_waiting, self._lock_timeout, owner=participant
        )
        self.doubt_deadlines = DeadlineQueue(world, spec.in_doubt_timeout, self._in_doubt, self._ask, owner=participant)
        # durable
        self.table: dict[int, int] = {}
        self.voted_at: dict[int, float] = {}
        self.blocked: dict[int, float] = {}
        # volatile
        self.working: dict[int, _Work] = {}
        # counters
        self.lock_timeouts = 0
        self.unilateral_aborts = 0
        self.queries = 0
        participant.side = self

    def _trace(self, kind: str, txn: int, detail: str = "", **fields: Any) -> None:
        self.world.tracer.emit(self.world.now, self.name, kind, txn, self.label, detail, **fields)

    def _send(self, dst: str, msg: tuple[Any, ...]) -> None:
        self.network.send(self.name, dst, msg)

    # ------------------------------------------------------------ messages

    def handle(self, msg: tuple[Any, ...]) -> None:
        kind, src, txn = msg[0], msg[1], msg[2]
        if self.world.tracer.on:
            self._trace("receive", txn, f"{kind} from {src}", peer=src, message=kind, direction=IN)
        state = self.table.get(txn)
        if kind == "prep":
            if state is not None:
                self._vote(txn, state != P_ABORTED)  # a repeat: the same answer
            elif txn not in self.working:
                self._prepare(txn)
        elif kind == "commit":
            self._on_commit(txn, state)
        elif kind == "abort":
            self._on_abort(src, txn, state)
        elif kind == "query":  # a peer in doubt (cooperative termination)
            self._on_query(src, txn, state)

    def _on_commit(self, txn: int, state: int | None) -> None:
        if state == P_PREPARED:
            self._commit(txn)
        elif state == P_COMMITTED:
            self._send(COORDINATOR, ("ack", self.name, txn))
        elif self.world.tracer.on:
            self._trace("conflict", txn, "commit for a transaction not prepared here")

    def _on_abort(self, src: str, txn: int, state: int | None) -> None:
        if state == P_PREPARED or txn in self.working:
            self._abort(txn, f"abort from {src}", unilateral=False)
        elif state is None:
            self.table[txn] = P_ABORTED  # never started: remember, refuse a late PREPARE
        elif state == P_COMMITTED and self.world.tracer.on:
            self._trace("conflict", txn, "abort for a committed transaction")
        if not self.presumed_abort and src == COORDINATOR and self.table.get(txn) == P_ABORTED:
            self._send(COORDINATOR, ("ack", self.name, txn))

    def _on_query(self, src: str, txn: int, state: int | None) -> None:
        if state == P_COMMITTED:
            self._send(src, ("commit", self.name, txn))
        elif state == P_ABORTED:
            self._send(src, ("abort", self.name, txn))
        elif state is None:
            # Not voted: abort on our own, so the answer is certain.
            if txn in self.working:
                self._abort(txn, f"asked by {src} before voting", unilateral=True)
            else:
                self.table[txn] = P_ABORTED
            self._send(src, ("abort", self.name, txn))

    # ------------------------------------------------------------ phase one

    def _prepare(self, txn: int) -> None:
        work = _Work(txn, self.world.env._now)
        self.working[txn] = work
        self.vote_deadlines.add(work)
        by_step = self.keys.of(txn)
        keys = tuple(sorted({k for s in self.steps for k in by_step[s]})) if by_step else ()
        if keys:
            req = self.locks.request(txn, keys)
            if req.waiting:
                if self.world.tracer.on:
                    self._trace(
                        "lock-wait", txn, f"key {keys[req.next]} held by txn {self.locks.holder[keys[req.next]]}"
                    )
                self.lock_deadlines.add(work)
                return
        self._locked(work)

    def _granted(self, txn: int) -> None:
        work = self.working.get(txn)
        if work is not None:
            if self.world.tracer.on:
                self._trace("locked", txn)
            self._locked(work)

    def _locked(self, work: _Work) -> None:
        work.locked = True
        self.p.pool.submit(work, self._start, self._wanted)

    def _wanted(self, work: _Work) -> bool:
        """Whether a prepare waiting for a worker is still to run (not aborted meanwhile)."""
        return self.working.get(work.txn) is work

    def _lock_waiting(self, work: _Work) -> bool:
        return not work.locked and self.working.get(work.txn) is work

    def _lock_timeout(self, work: _Work) -> None:
        self.lock_timeouts += 1
        self._abort(work.txn, "lock timeout", unilateral=True)
        self._vote(work.txn, False)

    def _unvoted(self, work: _Work) -> bool:
        return self.working.get(work.txn) is work

    def _vote_timeout(self, work: _Work) -> None:
        self._abort(work.txn, "not voted in time", unilateral=True)
        self._vote(work.txn, False)

    def _start(self, work: _Work) -> None:
        p = self.p
        p.attempts += 1
        # (one prepare covers every step this participant runs: its fate is the first's)
        outcome, duration = p.draw_attempt(work.txn, self.steps[0], FORWARD)
        p.pool.serve(duration, self._done, (work, outcome))

    def _done(self, job: tuple[_Work, int]) -> None:
        work, outcome = job
        p = self.p
        txn = work.txn
        if self.working.get(txn) is work:
            if outcome == SUCCEED:
                self._prepared(txn)
            elif outcome == HANG:
                if self.world.tracer.on:
                    self._trace("hang", txn)
            else:
                self._abort(txn, "refused" if outcome == REFUSE else "transient error", unilateral=outcome != REFUSE)
                self._vote(txn, False)
        p.pool.release()

    def _prepared(self, txn: int) -> None:
        del self.working[txn]
        now = self.world.env._now
        self.table[txn] = P_PREPARED
        self.voted_at[txn] = now
        apply = self.world.effects.apply
        for step in self.steps:
            apply(now, txn, step, PREPARED, self.name)
        if self.world.tracer.on:
            self._trace("prepared", txn, "in doubt")
        self._vote(txn, True)
        self.doubt_deadlines.add(txn)

    def _vote(self, txn: int, yes: bool) -> None:
        if self.world.tracer.on:
            self._trace("vote", txn, "yes" if yes else "no", peer=COORDINATOR, message="vote", direction=OUT)
        self._send(COORDINATOR, ("vote", self.name, txn, yes))

    # ------------------------------------------------------------ phase two

    def _decided(self, txn: int) -> None:
        now = self.world.env._now
        voted = self.voted_at.pop(txn, None)
        if voted is not None:
            self.blocked[txn] = self.blocked.get(txn, 0.0) + now - voted
        self.locks.release(txn)

    def _commit(self, txn: int) -> None:
        now = self.world.env._now
        self.table[txn] = P_COMMITTED
        apply = self.world.effects.apply
        for step in self.steps:
            apply(now, txn, step, FORWARD, self.name)
        self._decided(txn)
        if self.world.tracer.on:
            self._trace("commit", txn, "forward")
        self._send(COORDINATOR, ("ack", self.name, txn))

    def _abort(self, txn: int, why: str, *, unilateral: bool) -> None:
        """Abort ``txn`` here; ``unilateral`` when not told by the coordinator
        and not a refusal (counted in ``unilateral_aborts``)."""
        work = self.working.pop(txn, None)
        if work is not None:
            self.locks.cancel(txn)
            if unilateral:
                self.unilateral_aborts += 1
        now = self.world.env._now
        self.table[txn] = P_ABORTED
        apply = self.world.effects.apply
        for step in self.steps:
            apply(now, txn, step, ABORT, self.name)
        self._decided(txn)
        if self.world.tracer.on:
            self._trace("abort", txn, why)
        if work is not None and self.p.pool.queue:
            self.p.pool.pump()

    # ------------------------------------------------------------ in doubt

    def _in_doubt(self, txn: int) -> bool:
        return self.table.get(txn) == P_PREPARED

    def _ask(self, txn: int) -> None:
        self._query(txn)
        self.doubt_deadlines.add(txn)

    def _query(self, txn: int) -> None:
        self.queries += 1
        if self.world.tracer.on:
            self._trace(
                "query",
                txn,
                "in doubt: asking " + ", ".join([COORDINATOR, *self.peers] if self.cooperative else [COORDINATOR]),
                peer=COORDINATOR,
                message="query",
                direction=OUT,
            )
        msg = ("query", self.name, txn)
        self._send(COORDINATOR, msg)
        if self.cooperative:
            for peer in self.peers:
                self._send(peer, msg)

    # ------------------------------------------------------------ crashes

    def on_crash(self) -> None:
        self.working.clear()  # (its queued prepares are lost with the worker pool)
        self.vote_deadlines.clear()
        self.lock_deadlines.clear()
        self.doubt_deadlines.clear()
        prepared = {t for t, s in self.table.items() if s == P_PREPARED}
        self.locks.crash(prepared)

    def relies_on_fault_plan(self) -> bool:
        return False

    def on_restart(self) -> None:
        for txn, state in self.table.items():
            if state == P_PREPARED:
                if self.world.tracer.on:
                    self._trace("recover", txn, "prepared: in doubt")
                self._ask(txn)

    # ------------------------------------------------------------ judging as the run goes

    def quiet(self, txn: int) -> bool:
        """Whether nothing here can still change ``txn`` (see
        :meth:`TwoPCProtocol.quiet`): not prepared (in doubt: its query timer
        or a recovery will ask about it, and its blocked time still grows)
        and no work before the vote (its lock wait, vote timer and prepare
        job act only while it is in ``working``). Locks are held or waited
        for only in those two states (``_prepared`` moves a transaction from
        one to the other, every way out of them releases its locks, and a
        crash drops the waits and the locks of all but the prepared)."""
        return self.table.get(txn) != P_PREPARED and txn not in self.working

    def forget(self, txn: int) -> None:
        """Drop the records of a settled transaction: its durable state (no
        message about it can arrive any more: the engine counted none) and
        its lock times."""
        self.table.pop(txn, None)
        self.blocked.pop(txn, None)
        self.locks.forget(txn)

    # ------------------------------------------------------------ results

    def blocked_time(self, txn: int, now: float) -> float:
        total = self.blocked.get(txn, 0.0)
        voted = self.voted_at.get(txn)
        if voted is not None:
            total += now - voted
        return total


class TwoPCProtocol:
    """The runner's handle on two-phase commit."""

    name = "2pc"
    #: judged as the run goes (sim.world.settle): every message is counted by
    #: the network, and what the participants keep is looked at by quiet()
    settles = True

    def __init__(
        self,
        world: World,
        network: Network,
        spec: TwoPCSpec,
        transaction: TransactionSpec,
        participants: dict[str, Participant],
        keys: TxnKeys,
        duration: float,
    ) -> None:
        self.world = world
        order: list[str] = []
        for step in transaction.steps:
            if step.participant not in order:
                order.append(step.participant)
        self.coordinator = Coordinator(world, network, spec, order)
        network.attach(self.coordinator)
        self.sides: dict[str, TwoPCParticipant] = {}
        for name in order:
            steps = [i for i, s in enumerate(transaction.steps) if s.participant == name]
            peers = [p for p in order if p != name]
            self.sides[name] = TwoPCParticipant(participants[name], spec, steps, peers, keys)
        self.duration = duration
        self._window: tuple[float, int] | None = None
        world.at(duration, self._snapshot)

    def _snapshot(self, _arg: Any = None) -> None:
        """The lock level's integral and acquisitions over the workload window."""
        now = self.world.env._now
        self._window = (
            sum(s.locks.area_until(now) for s in self.sides.values()),
            sum(s.locks.acquisitions for s in self.sides.values()),
        )

    def start(self, txn: int) -> bool:
        return self.coordinator.start(txn)

    def view(self, txn: int) -> CoordinatorView:
        return self.coordinator.view(txn)

    def nodes(self) -> list[Node]:
        return [self.coordinator]

    def quiet(self, txn: int) -> bool:
        """Whether no participant keeps anything that can still change
        ``txn``; asked only once its coordinator has ended it and the engine
        counts no message for it. The coordinator's own timers and forced log
        write are stale by then (an ended record's token moved on, and a
        restart skips ended records); with presumed abort the coordinator ends
        before the participants learn the decision, so a participant still
        prepared (in doubt: it will ask) keeps the transaction open."""
        return all(side.quiet(txn) for side in self.sides.values())

    def forget(self, txn: int) -> None:
        """Drop the coordinator's record and the participants' records of a
        settled transaction (judged already)."""
        del self.coordinator.log[txn]
        for side in self.sides.values():
            side.forget(txn)

    def transaction_extra(self, txn: int) -> dict[str, float]:
        """``lock_held``, ``lock_wait`` and ``blocked`` of one transaction,
        summed over its participants (still held or waiting: up to now)."""
        now = self.world.env._now
        sides = self.sides.values()
        return {
            "lock_held": sum(s.locks.held_time(txn, now) for s in sides),
            "lock_wait": sum(s.locks.wait_time(txn, now) for s in sides),
            "blocked": sum(s.blocked_time(txn, now) for s in sides),
        }

    def summary_extra(self) -> dict[str, Any]:
        sides = self.sides.values()
        coordinator = self.coordinator
        area, acquired = self._window if self._window is not None else (math.nan, 0)
        releases = sum(s.locks.releases for s in sides)
        return {
            "locks_held_mean": area / self.duration,
            "lock_acquisitions": acquired,
            "lock_hold_mean": sum(s.locks.hold_total for s in sides) / releases if releases else math.nan,
            "lock_waits": sum(s.locks.waits for s in sides),
            "lock_timeouts": sum(s.lock_timeouts for s in sides),
            "unilateral_aborts": sum(s.unilateral_aborts for s in sides),
            "in_doubt_queries": sum(s.queries for s in sides),
            "in_doubt_at_end": sum(1 for s in sides for st in s.table.values() if st == P_PREPARED),
            "vote_timeouts": coordinator.vote_timeouts,
            "decision_resends": coordinator.resends,
            "recovered": coordinator.recovered,
        }


def build(model: Model) -> TwoPCProtocol:
    """The protocol on a run's model (see :mod:`sim.protocols.registry`)."""
    s = model.scenario
    return TwoPCProtocol(
        model.world, model.network, s.twopc, s.transaction, model.participants, model.keys, s.run.duration
    )
