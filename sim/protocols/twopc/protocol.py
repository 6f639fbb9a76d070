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
from sim.protocols.locking import P_ABORTED, P_COMMITTED, P_PREPARED, LockingSide, LockWindow, lock_columns
from sim.world.messages import Signal, new_record, signal
from sim.world.node import Node
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


class Vote(NamedTuple):
    """A participant's vote (kind ``vote``): ``yes`` to commit, or no."""

    kind: str
    src: str
    txn: int
    yes: bool


# Coordinator states of a transaction.
COLLECTING = 0  # waiting for votes
FORCING = 1  # the decision record is being written
COMMITTING = 2  # COMMIT sent, waiting for acknowledgements
ABORTING = 3  # ABORT sent, waiting for acknowledgements (presumed nothing)
DONE = 4

# Participant durable states (sim.protocols.locking), importable from here too.
__all__ = ["P_ABORTED", "P_COMMITTED", "P_PREPARED", "Coordinator", "TwoPCParticipant", "TwoPCProtocol", "build"]


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
            self.network.send(self.name, name, new_record(Signal, ("prep", self.name, txn)))  # signal(), inlined (hot)
        self.vote_deadlines.add((rec, rec.token))
        return True

    def _collecting(self, item: tuple[Record, int]) -> bool:
        rec, token = item
        return rec.state == COLLECTING and rec.token == token and rec.epoch == self.epoch

    def _vote_timeout(self, item: tuple[Record, int]) -> None:
        rec, _ = item
        self.vote_timeouts += 1
        if self.world.tracer.on:
            missing = [p for p in self.participants if p not in rec.yes]
            self._trace("timeout", rec.txn, "votes missing from " + ", ".join(missing))
        self._decide(rec, "abort")

    def handle(self, msg: Vote | Signal) -> None:
        kind = msg.kind
        rec = self.log.get(msg.txn)
        if kind == "vote":
            self._on_vote(msg, rec)
        elif kind == "ack":
            self._on_ack(msg, rec)
        elif kind == "query":
            self._on_query(msg, rec)

    def _on_vote(self, msg: Vote, rec: Record | None) -> None:
        if rec is None or rec.state != COLLECTING or rec.epoch != self.epoch:
            return  # late: the decision is taken
        src = msg.src
        if self.world.tracer.on:
            self._trace(
                "vote",
                rec.txn,
                f"{'yes' if msg.yes else 'no'} from {src}",
                peer=src,
                message="vote",
                direction=IN,
            )
        if msg.yes:
            rec.yes.add(src)
            if len(rec.yes) == len(self.participants):
                self._decide(rec, "commit")
        else:
            rec.no.add(src)
            self._decide(rec, "abort")

    def _on_ack(self, msg: Signal, rec: Record | None) -> None:
        if rec is None or rec.state not in (COMMITTING, ABORTING) or rec.epoch != self.epoch:
            return
        rec.acked.add(msg.src)
        if self.world.tracer.on:
            self._trace("ack", rec.txn, f"from {msg.src}", peer=msg.src, message="ack", direction=IN)
        if len(rec.acked) >= len(rec.targets):
            self._end(rec)

    def _on_query(self, msg: Signal, rec: Record | None) -> None:
        if rec is not None and rec.state in (COLLECTING, FORCING) and rec.epoch == self.epoch:
            return  # undecided: the decision will be sent when it is taken
        # A durable decision, or (presumed abort) no record of one: abort.
        decision = rec.decision if rec is not None and rec.decision else "abort"
        src, txn = msg.src, msg.txn
        if self.world.tracer.on:
            self._trace("answer", txn, f"{decision} to {src}", peer=src, message=decision, direction=OUT)
        self.network.send(self.name, src, signal(decision, self.name, txn))

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
        self.network.send(self.name, name, new_record(Signal, (rec.decision, self.name, rec.txn)))  # (hot)

    def _awaiting(self, item: tuple[Record, int]) -> bool:
        rec, token = item
        return rec.state in (COMMITTING, ABORTING) and rec.token == token and rec.epoch == self.epoch

    def _ack_timeout(self, item: tuple[Record, int]) -> None:
        rec, _ = item
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


class TwoPCParticipant(LockingSide):
    """The 2PC side of one participant: locks, prepare, vote, decision
    (:class:`~sim.protocols.locking.LockingSide`), its votes and
    acknowledgements to the coordinator, and its queries when in doubt.

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
        self.spec = spec
        self.peers = peers
        self.presumed_abort = spec.presumed_abort
        self.cooperative = spec.cooperative_termination
        super().__init__(participant, steps, keys, spec.vote_timeout, spec.in_doubt_timeout)

    # ------------------------------------------------------------ messages

    def handle(self, msg: Signal) -> None:
        kind, src, txn = msg.kind, msg.src, msg.txn
        state = self._received(msg)
        if kind == "prep":
            self._on_prepare(txn, state)
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
            self._send(COORDINATOR, signal("ack", self.name, txn))
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
            self._send(COORDINATOR, signal("ack", self.name, txn))

    def _on_query(self, src: str, txn: int, state: int | None) -> None:
        if state == P_COMMITTED:
            self._send(src, signal("commit", self.name, txn))
        elif state == P_ABORTED:
            self._send(src, signal("abort", self.name, txn))
        elif state is None:
            # Not voted: abort on our own, so the answer is certain.
            if txn in self.working:
                self._abort(txn, f"asked by {src} before voting", unilateral=True)
            else:
                self.table[txn] = P_ABORTED
            self._send(src, signal("abort", self.name, txn))

    def _vote(self, txn: int, yes: bool) -> None:
        if self.world.tracer.on:
            self._trace("vote", txn, "yes" if yes else "no", peer=COORDINATOR, message="vote", direction=OUT)
        self._send(COORDINATOR, new_record(Vote, ("vote", self.name, txn, yes)))  # vote(), inlined (hot)

    def _after_commit(self, txn: int) -> None:
        self._send(COORDINATOR, new_record(Signal, ("ack", self.name, txn)))  # signal(), inlined (hot)

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
        msg = signal("query", self.name, txn)
        self._send(COORDINATOR, msg)
        if self.cooperative:
            for peer in self.peers:
                self._send(peer, msg)

    # ------------------------------------------------------------ crashes


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
        #: the lock figures over the workload window (shared with every atomic commit)
        self.locks = LockWindow(world, self.sides.values(), duration)

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
        return lock_columns(self.sides.values(), txn, self.world.env._now)

    def summary_extra(self) -> dict[str, Any]:
        coordinator = self.coordinator
        figures = self.locks.figures()
        in_doubt_at_end = figures.pop("in_doubt_at_end")  # (after the queries, as the columns have it)
        return {
            **figures,
            "in_doubt_queries": sum(s.queries for s in self.sides.values()),
            "in_doubt_at_end": in_doubt_at_end,
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
