"""Nodes: anything with a name that can crash and restart.

A crash loses volatile state and in-flight work; the durable store survives.
Work scheduled before a crash carries the node's ``epoch`` and is dropped when
it fires into a later epoch, which is how in-flight work is lost without
having to find and cancel it.

A pause freezes a node: nothing is handled and nothing is lost. Messages that
arrive and work that comes due while it is paused are held, and run in order
when it resumes (a long GC pause, a VM migration, a stopped process).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.world.core import World


class Node:
    """A named simulated machine."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self.up = True
        self.paused = False
        self.epoch = 0
        self.crashes = 0
        #: messages that arrived while the node was down (lost with it)
        self.dropped = 0
        self._held: list[tuple[Callable[[Any], None], Any]] = []

    def relies_on_fault_plan(self) -> bool:
        """Whether this run took a fast path that assumes this node never
        crashes or pauses (the fault plan, drawn before the run, said so).
        Subclasses that take such paths say when."""
        return False

    def _refuse_unplanned(self) -> None:
        if self.relies_on_fault_plan():
            raise RuntimeError(f"{self.name}: a crash or pause outside the run's fault plan")

    def crash(self, _arg: Any = None) -> None:
        """Stop now: volatile state and in-flight work are lost."""
        if not self.up:
            return
        self._refuse_unplanned()
        self.up = False
        self.paused = False
        self._held.clear()
        self.epoch += 1
        self.crashes += 1
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, "crash")
        self.on_crash()

    def restart(self, _arg: Any = None) -> None:
        """Come back with only the durable store."""
        if self.up:
            return
        self.up = True
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, "restart")
        self.on_restart()

    def pause(self, _arg: Any = None) -> None:
        """Freeze: hold everything until :meth:`resume`."""
        if not self.up or self.paused:
            return
        self._refuse_unplanned()
        self.paused = True
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, "pause")

    def resume(self, _arg: Any = None) -> None:
        """Thaw: run what was held, in the order it came."""
        if not self.paused:
            return
        self.paused = False
        if self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, "resume", -1, "", f"{len(self._held)} held")
        held, self._held = self._held, []
        for fn, arg in held:
            fn(arg)

    def hold(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Run ``fn(arg)`` when the node resumes (it is paused now)."""
        self._held.append((fn, arg))

    def receive(self, msg: tuple[Any, ...]) -> None:
        """A message arrives from the network (dropped while down, held while paused)."""
        if self.up:
            if self.paused:
                self._held.append((self.handle, msg))
            else:
                self.handle(msg)
        else:
            self.dropped += 1
            if self.world.tracer.on:
                self.world.tracer.emit(self.world.now, self.name, "drop", msg[2], "", f"node down: {msg[0]}")

    def handle(self, msg: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def on_crash(self) -> None:
        """Forget volatile state (subclasses)."""

    def on_restart(self) -> None:
        """Recover from the durable store (subclasses)."""
