"""``Node.after``: the one guard for timed work (issue 16, point 2): dropped
if the node crashed since it was scheduled, held while the node is paused and
run when it resumes, in the order it fell due."""

from __future__ import annotations

from typing import Any

from sim.world.core import World
from sim.world.node import Node


def _node() -> tuple[World, Node, list[tuple[float, Any]]]:
    world = World(1)
    node = Node(world, "n")
    ran: list[tuple[float, Any]] = []
    node.on_crash = lambda: None  # type: ignore[method-assign]
    node.on_restart = lambda: None  # type: ignore[method-assign]
    return world, node, ran


def test_runs_on_time_when_nothing_happens() -> None:
    world, node, ran = _node()
    node.after(2.0, lambda a: ran.append((world.now, a)), "x")
    world.run(until=10.0)
    assert ran == [(2.0, "x")]


def test_a_crash_in_between_drops_it_even_after_a_restart() -> None:
    world, node, ran = _node()
    node.after(2.0, lambda a: ran.append((world.now, a)), "lost")
    world.at(1.0, node.crash)
    world.at(1.5, node.restart)
    world.at(1.6, lambda _: node.after(2.0, lambda a: ran.append((world.now, a)), "kept"))
    world.run(until=10.0)
    assert ran == [(3.6, "kept")]


def test_a_pause_holds_it_and_resume_runs_it_in_order() -> None:
    world, node, ran = _node()
    node.after(2.0, lambda a: ran.append((world.now, a)), "first")
    node.after(3.0, lambda a: ran.append((world.now, a)), "second")
    world.at(1.0, node.pause)
    world.at(5.0, node.resume)
    world.run(until=10.0)
    assert ran == [(5.0, "first"), (5.0, "second")]


def test_a_crash_while_paused_drops_the_held_work() -> None:
    world, node, ran = _node()
    node.after(2.0, lambda a: ran.append((world.now, a)), "held")
    world.at(1.0, node.pause)
    world.at(3.0, node.crash)
    world.at(4.0, node.restart)
    world.at(4.0, node.resume)
    world.run(until=10.0)
    assert ran == []
