"""When a transaction is settled: nothing about it can change any more.

A run judges a transaction early (and frees its records) only once it is
*settled*: its coordinator reached a terminal state and none of its work is
still pending anywhere in the engine. The engine keeps one count per
transaction of the work it knows to be pending for it:

* a message in flight (:meth:`sim.world.network.Network.send` holds it until
  its receiver has handled it);
* a message held by a paused node (:meth:`sim.world.node.Node.receive`);
* a participant's job, queued or in service, until it finishes or is lost
  (:class:`sim.world.participant.Participant`); work a protocol's own side
  schedules (TCC's and the choreography's jobs in the participant's
  :class:`sim.world.pool.WorkerPool`, Paxos Commit's forced writes) holds
  and releases the same way, its ``lost`` callback releasing it in a crash;
* on steady links, where the engine accounts for messages without an event,
  a publish on its way to the broker and a delivery on its way to a
  consumer (:mod:`sim.world.publisher`, :meth:`sim.world.broker.Broker.consume_directly`).

A monitor's check still due for a transaction judged and forgotten meanwhile
finds it terminal through :meth:`Settlement.is_forgotten`.

That is the whole hook: :meth:`Settlement.hold` when work for a transaction
starts, :meth:`Settlement.release` when it ends. A protocol may judge early
only if every piece of work that can change one of its transactions after its
coordinator is done goes through those places; it says so with
``settles = True`` (see :class:`sim.protocols.base.TransactionProtocol`).
A protocol whose participants keep state that can still change a
transaction, state it can look at per transaction (2PC: work before the vote,
a prepared record in doubt; TCC: a Try waiting for its keys, a live
reservation and its expiry timer; the choreography: the broker's copies,
the publishers' unconfirmed events and outbox rows, the tracker's pending
alert, whose messages accounted for without events count once they have
arrived, :meth:`sim.world.core.World.passed`), says whether any is left with
``quiet(txn)``, asked before a transaction counted idle is judged. A
protocol that keeps such work where it cannot be looked at cheaply (a
choreography's broker without per-key order) leaves ``settles`` ``False``
and its transactions are judged at the end of the run, as before.

Counting costs nothing when no one asks: the world has no settlement
(``World.settle is None``) unless a run judges as it goes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.world.messages import Message


class Settlement:
    """Pending work per transaction id."""

    __slots__ = ("_judged", "pending")

    def __init__(self) -> None:
        #: transaction id -> pieces of work pending for it (absent: none)
        self.pending: dict[int, int] = {}
        # One bit per transaction id: judged and forgotten (a monitor that
        # still has a check due for it then knows it is terminal).
        self._judged = bytearray()

    def hold(self, txn: int) -> None:
        """One more piece of work is pending for ``txn``."""
        pending = self.pending
        pending[txn] = pending.get(txn, 0) + 1

    def release(self, txn: int) -> None:
        """One piece of work for ``txn`` ended (done, dropped or lost)."""
        pending = self.pending
        left = pending[txn] - 1
        if left:
            pending[txn] = left
        else:
            del pending[txn]

    def carry(
        self,
        at: Callable[[float, Callable[[Any], None], Any], None],
        delay: float,
        receive: Callable[[Message], None],
        msg: Message,
    ) -> None:
        """Schedule ``receive(msg)`` ``delay`` from now with ``at`` (:attr:`World.at`),
        pending work for the message's transaction until it has been received:
        a message in flight, through the network or on a path without one
        (:mod:`sim.world.publisher`, :meth:`sim.world.broker.Broker.consume_directly`).
        One heap entry, as ``at(delay, receive, msg)`` would make."""
        self.hold(msg.txn)
        at(delay, self._received, (receive, msg))

    def _received(self, delivery: tuple[Callable[[Message], None], Message]) -> None:
        receive, msg = delivery
        receive(msg)
        self.release(msg.txn)

    def idle(self, txn: int) -> bool:
        """Whether no work is pending for ``txn``."""
        return txn not in self.pending

    def forgotten(self, txn: int) -> None:
        """``txn`` was judged and its records freed: it is terminal for good."""
        judged = self._judged
        byte = txn >> 3
        if byte >= len(judged):
            judged.extend(bytes(byte - len(judged) + 4096))
        judged[byte] |= 1 << (txn & 7)

    def is_forgotten(self, txn: int) -> bool:
        byte = txn >> 3
        return byte < len(self._judged) and bool(self._judged[byte] >> (txn & 7) & 1)
