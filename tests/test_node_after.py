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


def test_a_node_the_plan_says_never_fails_takes_no_guard_and_refuses_faults() -> None:
    """``Node.after`` on a steady node schedules the call itself (the guard
    could never act); such a node refuses a crash or pause, and only the
    nodes the fault plan names, or every node of a live run, are guarded."""
    from sim.runner import Model

    from conftest import order_scenario

    crash = {"kind": "crash", "target": "payment", "at": 1.0, "duration": 0.5}
    model = Model(order_scenario({"faults": [crash]}), "orchestration", 1)
    nodes = model.nodes
    assert not nodes["payment"].steady
    assert nodes["inventory"].steady and nodes["orchestrator"].steady
    ran: list[float] = []
    nodes["inventory"].after(1.0, lambda _: ran.append(model.world.now))
    nodes["payment"].after(1.0, lambda _: ran.append(model.world.now))
    guarded = [entry[4].arg for entry in model.world._queue if entry[3] == nodes["payment"]._after]
    assert len(guarded) == 1 and not [e for e in model.world._queue if e[3] == nodes["inventory"]._after]
    model.world.run(until=1.5)
    assert ran == [1.0]  # payment's was lost in its crash at 1 s (the guard), inventory's ran
    for fault in (nodes["inventory"].crash, nodes["inventory"].pause):
        try:
            fault()
        except RuntimeError as exc:
            assert "outside the run's fault plan" in str(exc)
        else:
            raise AssertionError("a steady node took a fault")
    live = Model(order_scenario({"faults": [crash]}), "orchestration", 1, runtime_faults=True)
    assert not any(node.steady for node in live.nodes.values())
