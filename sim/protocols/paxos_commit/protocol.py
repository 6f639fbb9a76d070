"""Paxos Commit (Gray and Lamport, "Consensus on Transaction Commit", 2006):
two-phase commit in which each participant's vote is decided by an instance
of Paxos run by 2f+1 acceptors, so a leader's crash does not block.

Normal case: the leader (node ``leader``) sends PREPARE to every participant
of the transaction. A participant locks, works and forces its prepared
record exactly as in 2PC (:class:`~sim.protocols.locking.LockingSide`), then
sends its vote, "prepared" (or "aborted"), as the phase 2a message of ballot
0 of its own instance to every acceptor. An acceptor that has promised no
higher ballot accepts it (durably) and sends a phase 2b message to the
leader. The leader commits once f+1 acceptors accepted "prepared" for every
participant's instance, aborts once f+1 accepted "aborted" for one, and tells
every participant, which applies (commit) or discards (abort) and releases
its locks.

Recovery: a participant in doubt ``takeover_timeout`` after its vote (no
decision yet) suspects the leader and asks an acceptor to take over (the
first ``acceptor-1``, then the next each time it asks again). The acceptor
becomes a leader with a ballot higher than any it knows of: phase 1 with
every acceptor, and once f+1 promised, for every instance the value of the
highest ballot any of them accepted, or "aborted" where none accepted any;
phase 2 with those values, and once f+1 accepted each, the decision (commit
only if every value is "prepared"), sent to every participant. The leader
does the same, with ballots of its own, for a transaction whose votes are not
all in ``vote_timeout`` after it started it. Ballot numbers are partitioned
among the leaders (ballot ``b`` belongs to ``leader`` when ``b mod (2f+2)``
is 0, else to ``acceptor-(b mod (2f+2))``), so two leaders never propose in
one ballot. An acceptor refuses a phase 1 or 2 message of a ballot lower than
one it promised, and tells its sender the higher ballot (a leader whose
ballot is refused gives it up; it starts a higher one when asked again).

Acceptors' state is durable; the leaders' is not (a leader that restarts
has forgotten every ballot it was running), except the leader's begin and
end records: a restarted leader runs a ballot for every transaction it began
and has not decided, and the leader runs a new ballot every ``vote_timeout``
until it decides (so a transaction whose participants all aborted on their
own, and so never suspect anyone, is decided too). Participants are those of 2PC:
their prepared and decision records are durable, they hold their locks while
in doubt, and a restarted participant in doubt asks at once. There is no
acknowledgement: a participant that misses the decision suspects again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from sim.protocols.base import CoordinatorView
from sim.protocols.locking import P_ABORTED, P_COMMITTED, P_PREPARED, LockingSide, LockWindow, lock_columns
from sim.protocols.paxos_commit.spec import LEADER, acceptor_names
from sim.world.messages import Message, Signal, new_record, signal
from sim.world.node import Node
from sim.world.timers import DeadlineQueue
from sim.world.trace import IN, OUT

if TYPE_CHECKING:
    from sim.protocols.paxos_commit.spec import PaxosCommitSpec
    from sim.runner import Model
    from sim.scenario import TransactionSpec
    from sim.world.core import World
    from sim.world.network import Network
    from sim.world.participant import Participant
    from sim.world.workload import TxnKeys

__all__ = [
    "LEADER",
    "Acceptor",
    "Cluster",
    "Leader",
    "PaxosCommitProtocol",
    "PaxosParticipant",
    "build",
]

#: The two values an instance can choose.
V_PREPARED = "prepared"
V_ABORTED = "aborted"


# The protocol's messages (besides the envelope-only Signal: prep, commit,
# abort, suspect). Built with new_record, the fast builder (sim.world.messages).


class P1a(NamedTuple):
    """Phase 1a (kind ``p1a``): a proposer asks the acceptors to promise ``ballot``."""

    kind: str
    src: str
    txn: int
    ballot: int


class P1b(NamedTuple):
    """Phase 1b (kind ``p1b``): an acceptor promises ``ballot``, with what it
    accepted: ``states``, an (instance, ballot, value) triple per instance
    that accepted one."""

    kind: str
    src: str
    txn: int
    ballot: int
    states: tuple[tuple[int, int, str], ...]


class P2a(NamedTuple):
    """Phase 2a (kind ``p2a``): accept these (instance, value) pairs in
    ``ballot`` (ballot 0: a participant's vote, on its own instance)."""

    kind: str
    src: str
    txn: int
    ballot: int
    values: tuple[tuple[int, str], ...]


class P2b(NamedTuple):
    """Phase 2b (kind ``p2b``): an acceptor accepted these (instance, value)
    pairs in ``ballot``, told to the ballot's owner."""

    kind: str
    src: str
    txn: int
    ballot: int
    values: tuple[tuple[int, str], ...]


class Nack(NamedTuple):
    """A refusal (kind ``nack``): the acceptor promised ``ballot``, higher."""

    kind: str
    src: str
    txn: int
    ballot: int


class _Reported(NamedTuple):
    """The highest ballot reported accepted for an instance in phase 1, and its value."""

    ballot: int
    value: str


class Slot:
    """An acceptor's durable state of one instance: the highest ballot it
    promised (``mbal``), and the ballot and value it last accepted (``bal``
    -1 and ``val`` empty while it accepted none)."""

    __slots__ = ("mbal", "bal", "val")

    def __init__(self) -> None:
        self.mbal = 0
        self.bal = -1
        self.val = ""


class Record:
    """The run's record of one transaction (what the results read, not any
    node's memory): when it started, the first decision a leader took, when,
    and how many ballots above 0 were started for it."""

    __slots__ = ("txn", "started", "decision", "decided_at", "ballots")

    def __init__(self, txn: int, started: float) -> None:
        self.txn = txn
        self.started = started
        self.decision = ""
        self.decided_at = math.nan
        self.ballots = 0


class Cluster:
    """What every node of the protocol knows of the others (names, the
    quorum), and the run's records of the transactions."""

    def __init__(self, participants: list[str], acceptors: tuple[str, ...], f: int) -> None:
        self.participants = participants
        self.acceptors = acceptors
        #: f+1: a majority of the 2f+1 acceptors
        self.quorum = f + 1
        #: ballots are numbered round * stride + owner (0: the leader; k: acceptor-k)
        self.stride = len(acceptors) + 1
        self.records: dict[int, Record] = {}

    def owner(self, ballot: int) -> str:
        """The leader whose ballot ``ballot`` is (ballot 0: the participants'
        own, whose phase 2b messages go to the leader)."""
        k = ballot % self.stride
        return LEADER if k == 0 else self.acceptors[k - 1]

    def decided(self, txn: int, decision: str, now: float) -> None:
        rec = self.records[txn]
        if not rec.decision:
            rec.decision = decision
            rec.decided_at = now


class Ballot:
    """A leader's ballot above 0 for one transaction (volatile): the
    acceptors that promised, the highest accepted value each instance was
    reported with, the values proposed, and who accepted each."""

    __slots__ = ("txn", "number", "started", "promised", "found", "proposed", "accepted")

    def __init__(self, txn: int, number: int, started: float, instances: int) -> None:
        self.txn = txn
        self.number = number
        self.started = started
        self.promised: set[str] = set()
        self.found: dict[int, tuple[int, str]] = {}
        self.proposed: tuple[str, ...] = ()
        self.accepted: list[set[str]] = [set() for _ in range(instances)]


class _Proposer(Node):
    """A node that can lead a ballot above 0: the leader, and every acceptor
    when asked to take over."""

    #: the leader's place in the ballot numbering (0: the leader, k: acceptor-k)
    index = 0

    def __init__(self, world: World, network: Network, name: str, cluster: Cluster, takeover_timeout: float) -> None:
        super().__init__(world, name)
        self.network = network
        self.cluster = cluster
        self.takeover_timeout = takeover_timeout
        # volatile: the ballots under way, the highest ballot heard of, the decisions taken
        self.ballots: dict[int, Ballot] = {}
        self.highest: dict[int, int] = {}
        self.decisions: dict[int, str] = {}
        self.rejected = 0

    def _trace(self, kind: str, txn: int, detail: str = "", **fields: Any) -> None:
        self.world.tracer.emit(self.world.now, self.name, kind, txn, None, detail, **fields)

    def _send(self, dst: str, msg: Signal | P1a | P1b | P2a | P2b | Nack) -> None:
        if self.world.tracer.on:
            self._trace("send", msg.txn, f"{msg.kind} to {dst}", peer=dst, message=msg.kind, direction=OUT)
        self.network.send(self.name, dst, msg)

    def _known_ballot(self, txn: int) -> int:
        """The highest ballot this node knows of for ``txn``."""
        return self.highest.get(txn, 0)

    def _ballot(self, txn: int, why: str) -> None:
        """Start a ballot above every one known for ``txn``: phase 1."""
        cluster = self.cluster
        stride = cluster.stride
        floor = self._known_ballot(txn)
        number = (floor // stride) * stride + self.index
        while number <= floor:
            number += stride
        self.highest[txn] = number
        self.ballots[txn] = Ballot(txn, number, self.world.env._now, len(cluster.participants))
        cluster.records[txn].ballots += 1
        if self.world.tracer.on:
            self._trace("ballot", txn, f"{number}: {why}")
        for acceptor in cluster.acceptors:
            self._send(acceptor, new_record(P1a, ("p1a", self.name, txn, number)))

    def _on_promise(self, msg: P1b) -> None:
        acceptor, txn, number = msg.src, msg.txn, msg.ballot
        ballot = self.ballots.get(txn)
        if ballot is None or ballot.number != number or ballot.proposed:
            return  # given up, superseded, or in phase 2 already
        ballot.promised.add(acceptor)
        found = ballot.found
        for instance, bal, val in msg.states:
            # (Two reports of one ballot carry one value: a ballot has one
            # proposer, and a participant votes once; so < and <= agree.)
            if instance not in found or found[instance].ballot < bal:
                found[instance] = _Reported(bal, val)
        if len(ballot.promised) < self.cluster.quorum:
            return
        # The value of the highest ballot reported, "aborted" where none was.
        n = len(self.cluster.participants)
        ballot.proposed = tuple(found[i].value if i in found else V_ABORTED for i in range(n))
        if self.world.tracer.on:
            self._trace("propose", txn, ", ".join(ballot.proposed))
        values = tuple(enumerate(ballot.proposed))
        for acceptor in self.cluster.acceptors:
            self._send(acceptor, new_record(P2a, ("p2a", self.name, txn, number, values)))

    def _on_accepted(self, msg: P2b) -> None:
        acceptor, txn, number, accepted = msg.src, msg.txn, msg.ballot, msg.values
        ballot = self.ballots.get(txn)
        if ballot is None or ballot.number != number or not ballot.proposed:
            return
        quorum = self.cluster.quorum
        for instance, _value in accepted:
            ballot.accepted[instance].add(acceptor)
        chosen = [len(s) >= quorum for s in ballot.accepted]
        if any(c and v == V_ABORTED for c, v in zip(chosen, ballot.proposed, strict=True)):
            self._decide(txn, "abort")
        elif all(chosen):
            self._decide(txn, "commit")

    def _on_refused(self, msg: Nack) -> None:
        acceptor, txn, higher = msg.src, msg.txn, msg.ballot
        self.highest[txn] = max(self.highest.get(txn, 0), higher)
        ballot = self.ballots.get(txn)
        if ballot is not None and ballot.number < higher:
            del self.ballots[txn]  # given up: a higher ballot is under way
            self.rejected += 1
            if self.world.tracer.on:
                self._trace("refused", txn, f"ballot {ballot.number} < {higher} at {acceptor}")

    def _decide(self, txn: int, decision: str) -> None:
        self.ballots.pop(txn, None)
        self.decisions[txn] = decision
        self.cluster.decided(txn, decision, self.world.env._now)
        tracing = self.world.tracer.on
        if tracing:
            self._trace("decide", txn, decision)
        for name in self.cluster.participants:
            self._send(name, new_record(Signal, (decision, self.name, txn)))  # signal(), inlined (hot)
        if tracing:  # (what sagasim explain and the swimlane read as the end)
            self._trace("end", txn, "committed" if decision == "commit" else "aborted")

    def _leading(self, msg: Any) -> bool:
        """Handle a message of a ballot this node leads; ``False`` if ``msg`` is none."""
        kind = msg.kind
        if kind == "p1b":
            self._on_promise(msg)
        elif kind == "p2b":
            self._on_accepted(msg)
        elif kind == "nack":
            self._on_refused(msg)
        else:
            return False
        return True

    def on_crash(self) -> None:
        self.ballots.clear()
        self.highest.clear()
        self.decisions.clear()

    def forget(self, txn: int) -> None:
        """Drop its records of a settled transaction."""
        self.ballots.pop(txn, None)
        self.highest.pop(txn, None)
        self.decisions.pop(txn, None)


class Tally:
    """The leader's count of ballot 0 (volatile): per instance, the acceptors
    that accepted each value, and the instances chosen "prepared"."""

    __slots__ = ("txn", "votes", "prepared")

    def __init__(self, txn: int, instances: int) -> None:
        self.txn = txn
        self.votes: list[dict[str, set[str]]] = [{} for _ in range(instances)]
        self.prepared = 0


class Leader(_Proposer):
    """The leader of ballot 0 (node ``leader``): it starts every transaction
    and learns the participants' votes from the acceptors."""

    index = 0

    def __init__(self, world: World, network: Network, cluster: Cluster, spec: PaxosCommitSpec) -> None:
        super().__init__(world, network, LEADER, cluster, spec.takeover_timeout)
        #: durable: the transactions it began and has not decided (a begin
        #: record, dropped by an end record), so that a restarted leader
        #: finishes them
        self.begun: dict[int, None] = {}
        self.tallies: dict[int, Tally] = {}
        self.vote_deadlines = DeadlineQueue(world, spec.vote_timeout, self._undecided, self._vote_timeout, owner=self)
        self.vote_timeouts = 0

    def start(self, txn: int) -> bool:
        if not self.up or self.paused:
            return False
        cluster = self.cluster
        cluster.records[txn] = Record(txn, self.world.env._now)
        tally = Tally(txn, len(cluster.participants))
        self.tallies[txn] = tally
        self.begun[txn] = None
        if self.world.tracer.on:
            self._trace("begin", txn)
        for name in cluster.participants:
            self._send(name, new_record(Signal, ("prep", self.name, txn)))  # signal(), inlined (hot)
        self.vote_deadlines.add(tally)
        return True

    def handle(self, msg: P1b | P2b | Nack) -> None:
        if msg.kind == "p2b" and msg.ballot == 0:
            self._on_vote(msg)  # type: ignore[arg-type]
        else:
            self._leading(msg)

    def _on_vote(self, msg: P2b) -> None:
        acceptor, txn, accepted = msg.src, msg.txn, msg.values
        tally = self.tallies.get(txn)
        if tally is None or txn in self.decisions:
            return  # forgotten in a crash, or decided
        quorum = self.cluster.quorum
        for instance, value in accepted:
            if self.world.tracer.on:
                who = self.cluster.participants[instance]
                detail = f"{value} for {who} from {acceptor}"
                self._trace("vote", txn, detail, peer=acceptor, message="p2b", direction=IN)
            voters = tally.votes[instance].setdefault(value, set())
            if acceptor in voters:
                continue  # a duplicate: counted already
            voters.add(acceptor)
            if len(voters) != quorum:
                continue  # not chosen yet, or chosen already
            if value == V_ABORTED:
                self._decide(txn, "abort")
                return
            tally.prepared += 1
        if tally.prepared == len(tally.votes):
            self._decide(txn, "commit")

    def _undecided(self, tally: Tally) -> bool:
        return self.tallies.get(tally.txn) is tally and tally.txn not in self.decisions

    def _vote_timeout(self, tally: Tally) -> None:
        """Undecided ``vote_timeout`` after the start (or the last ballot):
        a ballot of its own, again every ``vote_timeout`` until decided."""
        self.vote_timeouts += 1
        self._ballot(tally.txn, "votes missing")
        self.vote_deadlines.add(tally)

    def _decide(self, txn: int, decision: str) -> None:
        super()._decide(txn, decision)
        self.tallies.pop(txn, None)
        self.begun.pop(txn, None)

    def on_crash(self) -> None:
        super().on_crash()
        self.tallies.clear()

    def forget(self, txn: int) -> None:
        """Drop its records of a settled transaction."""
        super().forget(txn)
        self.tallies.pop(txn, None)

    def on_restart(self) -> None:
        """Finish what it began: a ballot for each transaction it has not decided."""
        for txn in self.begun:
            tally = self.tallies[txn] = Tally(txn, len(self.cluster.participants))
            self._ballot(txn, "leader restarted")
            self.vote_deadlines.add(tally)


class Acceptor(_Proposer):
    """One of the 2f+1 acceptors (``acceptor-k``): its instances' durable
    state, and a leader's part when a participant asks it to take over."""

    def __init__(self, world: World, network: Network, cluster: Cluster, index: int, spec: PaxosCommitSpec) -> None:
        super().__init__(world, network, cluster.acceptors[index - 1], cluster, spec.takeover_timeout)
        self.index = index
        #: durable: per transaction, one slot per participant's instance
        self.slots: dict[int, list[Slot]] = {}
        self.takeovers = 0
        log_write = spec.log_write.built
        self._log_write = None if log_write.mean == 0.0 else world.streams.sampler(f"{self.name}.log_write", log_write)

    def _slots(self, txn: int) -> list[Slot]:
        slots = self.slots.get(txn)
        if slots is None:
            slots = self.slots[txn] = [Slot() for _ in self.cluster.participants]
        return slots

    def _known_ballot(self, txn: int) -> int:
        slots = self.slots.get(txn)
        own = max(s.mbal for s in slots) if slots else 0
        return max(own, self.highest.get(txn, 0))

    def handle(self, msg: Any) -> None:
        kind = msg.kind
        if kind == "p2a":
            self._forced(self._accept, msg)
        elif kind == "p1a":
            self._forced(self._promise, msg)
        elif kind == "suspect":
            self._take_over(msg)
        else:
            self._leading(msg)

    def _forced(self, act: Callable[[Message], None], msg: Message) -> None:
        """``act(msg)`` once the state it changes is forced (``log_write``):
        the state changes and the answer leaves together, then; a crash
        meanwhile loses the message, a pause holds it (:meth:`Node.after`)."""
        if self._log_write is None:
            act(msg)
        elif self.world.settle is None:
            self.after(self._log_write(), act, msg)
        else:
            # Judging as the run goes: the write is work pending for the
            # transaction (sim.world.settle) until it is done or lost.
            self.world.settle.hold(msg.txn)
            self.after(self._log_write(), self._written, (act, msg), self._unwritten)

    def _written(self, job: tuple[Callable[[Any], None], Any]) -> None:
        act, msg = job
        act(msg)
        self.world.settle.release(msg.txn)  # type: ignore[union-attr]

    def _unwritten(self, job: tuple[Callable[[Any], None], Any]) -> None:
        _, msg = job
        self.world.settle.release(msg.txn)  # type: ignore[union-attr]

    def forget(self, txn: int) -> None:
        """Drop its records of a settled transaction."""
        super().forget(txn)
        self.slots.pop(txn, None)

    def _accept(self, msg: P2a) -> None:
        """Phase 2b: accept each value of a ballot not below the one promised."""
        src, txn, number, values = msg.src, msg.txn, msg.ballot, msg.values
        slots = self._slots(txn)
        accepted = []
        for instance, value in values:
            slot = slots[instance]
            if slot.mbal <= number:
                slot.mbal = slot.bal = number
                slot.val = value
                accepted.append((instance, value))
        if accepted:
            if self.world.tracer.on:
                who = self.cluster.participants
                self._trace("accept", txn, f"ballot {number}: " + ", ".join(f"{who[i]} {v}" for i, v in accepted))
            self._send(self.cluster.owner(number), new_record(P2b, ("p2b", self.name, txn, number, tuple(accepted))))
        elif number > 0:
            self._send(src, new_record(Nack, ("nack", self.name, txn, max(s.mbal for s in slots))))
        elif self.world.tracer.on:
            self._trace("reject", txn, f"ballot 0 from {src}: promised {max(s.mbal for s in slots)}")

    def _promise(self, msg: P1a) -> None:
        """Phase 1b: promise a ballot above every one promised, with what was accepted."""
        src, txn, number = msg.src, msg.txn, msg.ballot
        slots = self._slots(txn)
        top = max(s.mbal for s in slots)
        if top >= number:
            self._send(src, new_record(Nack, ("nack", self.name, txn, top)))
            return
        for slot in slots:
            slot.mbal = number
        states = tuple((i, s.bal, s.val) for i, s in enumerate(slots) if s.bal >= 0)
        self._send(src, new_record(P1b, ("p1b", self.name, txn, number, states)))

    def _take_over(self, msg: Signal) -> None:
        """A participant in doubt suspects the leader: tell it the decision
        if this node took one, else lead a new ballot (unless one it started
        less than ``takeover_timeout`` ago is still under way)."""
        src, txn = msg.src, msg.txn
        decision = self.decisions.get(txn)
        if decision is not None:
            self._send(src, signal(decision, self.name, txn))
            return
        ballot = self.ballots.get(txn)
        if ballot is not None and self.world.env._now - ballot.started < self.takeover_timeout:
            return  # under way: asked again by another participant of the transaction
        self.takeovers += 1
        self._ballot(txn, f"leader suspected by {src}")


class PaxosParticipant(LockingSide):
    """The Paxos Commit side of one participant: 2PC's locks, prepare work
    and in-doubt wait (:class:`~sim.protocols.locking.LockingSide`); its vote
    is its instance's ballot 0, sent to every acceptor, and when in doubt it
    asks an acceptor to take over."""

    def __init__(
        self,
        participant: Participant,
        spec: PaxosCommitSpec,
        steps: list[int],
        instance: int,
        cluster: Cluster,
        keys: TxnKeys,
    ) -> None:
        self.instance = instance
        self.cluster = cluster
        #: suspicions sent per transaction: the next goes to the next acceptor
        self.suspicions: dict[int, int] = {}
        super().__init__(participant, steps, keys, spec.vote_timeout, spec.takeover_timeout)

    def handle(self, msg: Signal) -> None:
        kind, src, txn = msg.kind, msg.src, msg.txn
        state = self._received(msg)
        if kind == "prep":
            self._on_prepare(txn, state)
        elif kind == "commit":
            if state == P_PREPARED:
                self._commit(txn)
            elif state != P_COMMITTED and self.world.tracer.on:
                self._trace("conflict", txn, "commit for a transaction not prepared here")
        elif kind == "abort":
            if state == P_PREPARED or txn in self.working:
                self._abort(txn, f"abort from {src}", unilateral=False)
            elif state is None:
                self.table[txn] = P_ABORTED  # never started: remember, refuse a late PREPARE
            elif state == P_COMMITTED and self.world.tracer.on:
                self._trace("conflict", txn, "abort for a committed transaction")

    def _vote(self, txn: int, yes: bool) -> None:
        value = V_PREPARED if yes else V_ABORTED
        acceptors = self.cluster.acceptors
        tracing = self.world.tracer.on
        if tracing:
            self._trace("vote", txn, f"{value} to {len(acceptors)} acceptors")
        msg = new_record(P2a, ("p2a", self.name, txn, 0, ((self.instance, value),)))
        for acceptor in acceptors:
            if tracing:
                self._trace("send", txn, f"p2a to {acceptor}", peer=acceptor, message="p2a", direction=OUT)
            self._send(acceptor, msg)

    def forget(self, txn: int) -> None:
        super().forget(txn)
        self.suspicions.pop(txn, None)

    def _query(self, txn: int) -> None:
        """In doubt: ask the next acceptor to take over."""
        k = self.suspicions.get(txn, 0)
        self.suspicions[txn] = k + 1
        self.queries += 1
        acceptors = self.cluster.acceptors
        candidate = acceptors[k % len(acceptors)]
        if self.world.tracer.on:
            detail = f"no decision: {candidate} to take over"
            self._trace("suspect", txn, detail, peer=candidate, message="suspect", direction=OUT)
        self._send(candidate, signal("suspect", self.name, txn))


class PaxosCommitProtocol:
    """The runner's handle on Paxos Commit."""

    name = "paxos-commit"
    #: judged as the run goes (sim.world.settle): every message is counted by
    #: the network, an acceptor's forced write by its hold, and what the
    #: leader and the participants keep is looked at by quiet()
    settles = True

    def __init__(
        self,
        world: World,
        network: Network,
        spec: PaxosCommitSpec,
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
        self.cluster = Cluster(order, acceptor_names(spec.f), spec.f)
        self.leader = Leader(world, network, self.cluster, spec)
        self.acceptors = [
            Acceptor(world, network, self.cluster, k, spec) for k in range(1, len(self.cluster.acceptors) + 1)
        ]
        for node in self.nodes():
            network.attach(node)
        self.sides: dict[str, PaxosParticipant] = {}
        for i, name in enumerate(order):
            steps = [j for j, s in enumerate(transaction.steps) if s.participant == name]
            self.sides[name] = PaxosParticipant(participants[name], spec, steps, i, self.cluster, keys)
        self.locks = LockWindow(world, self.sides.values(), duration)

    def start(self, txn: int) -> bool:
        return self.leader.start(txn)

    def view(self, txn: int) -> CoordinatorView:
        """Terminal once a leader decided (the decision is chosen: durable at
        the acceptors, whichever leader took it)."""
        rec = self.cluster.records[txn]
        if not rec.decision:
            return CoordinatorView(False, math.nan, "running", rec.ballots)
        belief = "committed" if rec.decision == "commit" else "aborted"
        return CoordinatorView(True, rec.decided_at, belief, rec.ballots)

    def nodes(self) -> list[Node]:
        return [self.leader, *self.acceptors]

    def quiet(self, txn: int) -> bool:
        """Whether nothing kept outside the engine's count can still change
        ``txn``; asked once a leader decided it and no message or forced
        write of it is pending. The leader's begin record must be gone (it
        is dropped when the leader decides: until then its vote timer, or its
        restart, will run a ballot), and no participant may be before its
        vote or in doubt (2PC's rule). An acceptor's ballot still under way
        acts only on counted messages, and a stalled one has no timer."""
        return txn not in self.leader.begun and all(side.quiet(txn) for side in self.sides.values())

    def forget(self, txn: int) -> None:
        """Drop every node's records and the run's record of a settled transaction."""
        for node in (self.leader, *self.acceptors):
            node.forget(txn)
        for side in self.sides.values():
            side.forget(txn)
        del self.cluster.records[txn]

    def transaction_extra(self, txn: int) -> dict[str, float]:
        """``lock_held``, ``lock_wait`` and ``blocked``, as for 2PC."""
        return lock_columns(self.sides.values(), txn, self.world.env._now)

    def summary_extra(self) -> dict[str, Any]:
        sides = self.sides.values()
        proposers: list[_Proposer] = [self.leader, *self.acceptors]
        return {
            **self.locks.figures(),
            "vote_timeouts": self.leader.vote_timeouts,
            "suspicions": sum(s.queries for s in sides),
            "takeovers": sum(a.takeovers for a in self.acceptors),
            "ballots_rejected": sum(p.rejected for p in proposers),
        }


def build(model: Model) -> PaxosCommitProtocol:
    """The protocol on a run's model (see :mod:`sim.protocols.registry`)."""
    s = model.scenario
    return PaxosCommitProtocol(
        model.world, model.network, s.paxos_commit, s.transaction, model.participants, model.keys, s.run.duration
    )
