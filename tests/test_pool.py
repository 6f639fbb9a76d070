"""The worker pool: one for every protocol side at a participant (issue 16, point 2)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from sim.world.core import World
from sim.world.node import Node
from sim.world.pool import WorkerPool

ROOT = Path(__file__).resolve().parents[1]


def _pool(workers: int) -> tuple[World, Node, WorkerPool, list[tuple[float, str, Any]]]:
    world = World(1)
    node = Node(world, "n")
    node.on_crash = lambda: None  # type: ignore[method-assign]
    node.on_restart = lambda: None  # type: ignore[method-assign]
    return world, node, WorkerPool(node, workers), []


def _job(world: World, pool: WorkerPool, log: list[tuple[float, str, Any]], service: float) -> Any:
    """A start function: log the start, serve for ``service``, log the end and free the worker."""

    def end(job: Any) -> None:
        log.append((world.now, "end", job))
        pool.release()

    def start(job: Any) -> None:
        log.append((world.now, "start", job))
        pool.serve(service, end, job)

    return start


def test_at_most_workers_at_once_and_the_rest_in_order() -> None:
    world, _, pool, log = _pool(2)
    start = _job(world, pool, log, 1.0)
    for name in "abcde":
        pool.submit(name, start)
    assert (pool.busy, [w.job for w in pool.queue]) == (2, ["c", "d", "e"])
    world.run(until=10.0)
    starts = [(t, j) for t, what, j in log if what == "start"]
    assert starts == [(0.0, "a"), (0.0, "b"), (1.0, "c"), (1.0, "d"), (2.0, "e")]
    assert pool.busy == 0 and not pool.queue


def test_a_job_no_longer_wanted_is_skipped_without_a_worker() -> None:
    world, _, pool, log = _pool(1)
    start = _job(world, pool, log, 1.0)
    cancelled = {"b"}
    for name in "abc":
        pool.submit(name, start, wanted=lambda job: job not in cancelled)
    world.run(until=10.0)
    assert [(t, j) for t, what, j in log if what == "start"] == [(0.0, "a"), (1.0, "c")]


def test_a_crash_loses_what_is_in_service_and_waiting() -> None:
    world, node, pool, log = _pool(1)
    start = _job(world, pool, log, 1.0)
    told: list[Any] = []
    pool.submit("a", start)
    pool.submit("b", start, lost=told.append)
    pool.submit("c", start)
    world.at(0.5, lambda _: log.append((world.now, "lost", pool.crash())))
    world.at(0.5, node.crash)
    world.at(0.7, node.restart)
    world.at(0.8, lambda _: pool.submit("d", start))
    world.run(until=10.0)
    # a's end never comes (its node crashed), b and c never start; d runs on a free worker
    assert log == [(0.0, "start", "a"), (0.5, "lost", 3), (0.8, "start", "d"), (1.8, "end", "d")]
    assert told == ["b"]


def test_a_pause_holds_the_end_of_a_job_and_its_worker() -> None:
    world, node, pool, log = _pool(1)
    start = _job(world, pool, log, 1.0)
    pool.submit("a", start)
    pool.submit("b", start)
    world.at(0.5, node.pause)
    world.at(3.0, node.resume)
    world.run(until=10.0)
    assert log == [(0.0, "start", "a"), (3.0, "end", "a"), (3.0, "start", "b"), (4.0, "end", "b")]


def test_the_worker_pool_is_written_once() -> None:
    """No module but the pool counts busy workers or queues jobs for them:
    every protocol side goes through :class:`WorkerPool`."""
    found = []
    for path in sorted((ROOT / "sim").rglob("*.py")):
        if path.name == "pool.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            counts = isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Attribute)
            compares = isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute)
            if (counts and node.target.attr == "busy") or (compares and node.left.attr == "busy"):  # type: ignore[attr-defined]
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
