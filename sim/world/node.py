"""Nodes: anything with a name that can crash and restart.

A crash loses volatile state and in-flight work; the durable store survives.
Work scheduled before a crash carries the node's ``epoch`` and is dropped when
it fires into a later epoch, which is how in-flight work is lost without
having to find and cancel it.

A pause freezes a node: nothing is handled and nothing is lost. Messages that
arrive and work that comes due while it is paused are held (a long GC pause,
a VM migration, a stopped process). When it resumes, the held work runs in
the order of the instants at which it arrived or came due, as if the node had
handled it then but had seen nothing of the outside world since: a reply that
arrived at 10.04 s is handled before a deadline of 10.09 s expires, and a
timer whose next deadline also fell inside the pause comes due in that same
order (see :meth:`Node.replay_at`).

Faults compose. A node is down while any crash window covers it (each
:meth:`crash` opens one, each :meth:`restart` closes one), and paused while
any pause window covers it and it is up: a node that restarts inside a pause
window comes back paused, and runs its recovery when the pause ends.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING, Any, NamedTuple

from sim.world.messages import Message
from sim.world.trace import IN

if TYPE_CHECKING:
    from sim.world.core import World
    from sim.world.timers import DeadlineQueue

#: Replay ranks of held work at one instant: a timer of SimPy's urgent
#: priority goes before everything else due then, as it would have unpaused.
FIRST = 0
NORMAL = 1


class Held(NamedTuple):
    """Work held by a paused node: ``fn(arg)`` was due at ``instant``."""

    instant: float
    rank: int
    order: int
    fn: Callable[[Any], None]
    arg: Any


class Timed(NamedTuple):
    """A call :meth:`Node.after` scheduled: ``fn(arg)`` if the node is still
    in ``epoch`` when it comes due, else ``lost(arg)`` (when given)."""

    epoch: int
    fn: Callable[[Any], None]
    arg: Any
    lost: Callable[[Any], None] | None


_new_tuple = tuple.__new__


class Node:
    """A named simulated machine."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self.up = True
        self.paused = False
        self.epoch = 0
        #: crash faults applied to this node (overlapping windows each count)
        self.crashes = 0
        #: messages that arrived while the node was down (lost with it)
        self.dropped = 0
        self._held: list[Held] = []
        self._order = 0
        # Fault windows open now (faults compose: see the module docstring).
        self._crash_windows = 0
        self._pause_windows = 0
        # While resuming: the held work still to run, and its instant.
        self._replay: list[Held] | None = None
        #: the instant of the held work being replayed (``None`` otherwise)
        self.replaying_at: float | None = None
        #: the deadline queues this node owns: a crash loses their timers
        self.timers: list[DeadlineQueue] = []
        #: the run's fault plan says this node never crashes or pauses
        #: (:meth:`sim.world.faults.Faults.schedule`): :meth:`after` then
        #: needs no guard, and a crash or pause is refused
        self.steady = False

    def relies_on_fault_plan(self) -> bool:
        """Whether this run took a fast path that assumes this node never
        crashes or pauses (the fault plan, drawn before the run, said so).
        Subclasses that take such paths say when."""
        return False

    def _refuse_unplanned(self) -> None:
        if self.steady or self.relies_on_fault_plan():
            raise RuntimeError(f"{self.name}: a crash or pause outside the run's fault plan")

    def crash(self, _arg: Any = None) -> None:
        """Open a crash window: if the node is up, it stops now and loses its
        volatile state and in-flight work."""
        self._refuse_unplanned()
        self._crash_windows += 1
        self.crashes += 1
        if not self.up:
            self._note("crash", "already down")
            return
        self.up = False
        self.paused = False
        settle = self.world.settle
        if settle is not None:  # held messages are lost with the node
            for held in self._held:
                if held.fn == self._handle_held:
                    settle.release(held.arg.txn)
        self._held.clear()
        for timers in self.timers:  # their held wake-ups are gone with the rest
            timers.clear()
        self.epoch += 1
        self._note("crash")
        self.on_crash()

    def restart(self, _arg: Any = None) -> None:
        """Close a crash window: when none is left open the node comes back
        with only its durable store (paused, if a pause window is open)."""
        if self._crash_windows > 0:
            self._crash_windows -= 1
        if self.up or self._crash_windows > 0:
            return
        self._come_up()

    def _come_up(self) -> None:
        self.up = True
        self._note("restart")
        if self._pause_windows > 0:
            self.paused = True
            self._note("pause", "restarted inside a pause")
            self.hold(self._recover, None)
        else:
            self.on_restart()

    def _recover(self, _arg: Any) -> None:
        self.on_restart()

    def pause(self, _arg: Any = None) -> None:
        """Open a pause window: an up node freezes and holds everything until
        the last open window closes (:meth:`resume`)."""
        self._refuse_unplanned()
        self._pause_windows += 1
        if not self.up:
            self._note("pause", "while down")
            return
        if self.paused:
            return
        self.paused = True
        self._note("pause")

    def resume(self, _arg: Any = None) -> None:
        """Close a pause window: when none is left open, run what was held."""
        if self._pause_windows > 0:
            self._pause_windows -= 1
        if self._pause_windows > 0 or not self.paused:
            return
        self._thaw()

    def heal(self) -> None:
        """Close every fault window of this node (the workload is over)."""
        self._pause_windows = 0
        self._crash_windows = 0
        if not self.up:
            self._come_up()
        elif self.paused:
            self._thaw()

    def _thaw(self) -> None:
        self.paused = False
        self._note("resume", f"{len(self._held)} held")
        replay, self._held = self._held, []
        # Held in the order they came, by instant; at one instant an urgent
        # timer held after other work must still go first: heapify.
        heapify(replay)
        self._replay = replay
        try:
            while replay:
                held = heappop(replay)
                self.replaying_at = held.instant
                held.fn(held.arg)
        finally:
            self._replay = None
            self.replaying_at = None

    def after(
        self,
        delay: float,
        fn: Callable[[Any], None],
        arg: Any = None,
        lost: Callable[[Any], None] | None = None,
    ) -> None:
        """Call ``fn(arg)`` in ``delay`` simulated seconds, unless the node
        crashed since (the work is lost with its memory: ``lost(arg)`` is
        called instead, when given, for whoever counts that work); while the
        node is paused then, the call is held and runs when it resumes. The
        one place that guard is written.

        On a node the fault plan says never crashes or pauses (``steady``)
        the guard could never act: the call is scheduled as it is."""
        if self.steady:
            self.world.at(delay, fn, arg)
        else:
            # (tuple.__new__ builds the record without the Python-level
            # NamedTuple constructor: this runs once per service time of a run)
            self.world.at(delay, self._after, _new_tuple(Timed, (self.epoch, fn, arg, lost)))

    def _after(self, job: Timed) -> None:
        epoch, fn, arg, lost = job
        if epoch != self.epoch:
            if lost is not None:
                lost(arg)
            return  # the node crashed meanwhile: this work is lost
        if self.paused:
            self.hold(self._after, job)
            return
        fn(arg)

    def hold(self, fn: Callable[[Any], None], arg: Any, rank: int = NORMAL) -> None:
        """Run ``fn(arg)`` when the node resumes (it is paused now), in the
        order of the instant it is held at."""
        self._order += 1
        self._held.append(Held(self.world.env._now, rank, self._order, fn, arg))

    def replay_at(self, instant: float, fn: Callable[[Any], None], arg: Any, rank: int = NORMAL) -> bool:
        """While resuming, take ``fn(arg)``, due at ``instant`` (not later
        than now), into the held work, to run in its place among it; ``False``
        when the node is not resuming or ``instant`` is later than now (the
        caller schedules it as usual)."""
        replay = self._replay
        if replay is None or instant > self.world.env._now:
            return False
        self._order += 1
        # never earlier than the work being replayed: time does not go back
        at = instant if self.replaying_at is None else max(instant, self.replaying_at)
        heappush(replay, Held(at, rank, self._order, fn, arg))
        return True

    def receive(self, msg: Message) -> None:
        """A message arrives from the network (dropped while down, held while paused)."""
        if self.up:
            if self.paused:
                settle = self.world.settle
                if settle is not None:
                    settle.hold(msg.txn)  # still pending while held (sim.world.settle)
                    self.hold(self._handle_held, msg)
                else:
                    self.hold(self.handle, msg)
            else:
                self.handle(msg)
        else:
            self.dropped += 1
            if self.world.tracer.on:
                self.world.tracer.emit(
                    self.world.now, self.name, "drop", msg.txn, None, f"node down: {msg.kind}",
                    peer=msg.src, message=msg.kind, direction=IN,
                )  # fmt: skip

    def _handle_held(self, msg: Message) -> None:
        """Handle a message held while paused, then release it (judging as it goes)."""
        self.handle(msg)
        self.world.settle.release(msg.txn)  # type: ignore[union-attr]

    def _note(self, kind: str, detail: str = "") -> None:
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, kind, None, None, detail)

    def handle(self, msg: Message) -> None:
        raise NotImplementedError

    def on_crash(self) -> None:
        """Forget volatile state (subclasses)."""

    def on_restart(self) -> None:
        """Recover from the durable store (subclasses)."""
