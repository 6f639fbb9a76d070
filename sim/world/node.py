"""Nodes: anything with a name that can crash and restart.

A crash loses volatile state and in-flight work; the durable store survives.
Work scheduled before a crash carries the node's ``epoch`` and is dropped when
it fires into a later epoch, which is how in-flight work is lost without
having to find and cancel it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.world.core import World


class Node:
    """A named simulated machine."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self.up = True
        self.epoch = 0
        self.crashes = 0

    def crash(self, _arg: Any = None) -> None:
        """Stop now: volatile state and in-flight work are lost."""
        if not self.up:
            return
        self.up = False
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

    def receive(self, msg: tuple[Any, ...]) -> None:
        """A message arrives from the network (dropped while down)."""
        if self.up:
            self.handle(msg)
        elif self.world.tracer.on:
            self.world.tracer.emit(self.world.now, self.name, "drop", msg[2], "", f"node down: {msg[0]}")

    def handle(self, msg: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def on_crash(self) -> None:
        """Forget volatile state (subclasses)."""

    def on_restart(self) -> None:
        """Recover from the durable store (subclasses)."""
