"""The worker pool of a participant, whichever protocol runs there.

A participant runs at most ``workers`` jobs at once; the others wait in FIFO
order. Every protocol's side at a participant (the saga's requests, a 2PC
prepare, a choreography's event) goes through one :class:`WorkerPool`:

* :meth:`WorkerPool.submit` starts a job now if a worker is free, else queues
  it; a queued job may say how to tell, when its turn comes, that it is no
  longer wanted (an aborted 2PC prepare), and is then skipped;
* :meth:`WorkerPool.serve` holds the job's worker for its service time and
  then calls its end, through :meth:`Node.after`: dropped if the node crashed
  meanwhile (the crash epoch), held while it is paused;
* :meth:`WorkerPool.release` frees the worker at the end of a job and starts
  the next one waiting;
* :meth:`WorkerPool.crash` empties it when the node crashes: the jobs in
  service and waiting are lost with its memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from sim.world.node import Node


class Waiting(NamedTuple):
    """A job queued for a worker."""

    job: Any
    #: starts it when a worker is free (the worker is taken already)
    start: Callable[[Any], None]
    #: whether it is still wanted when its turn comes (``None``: always)
    wanted: Callable[[Any], bool] | None
    #: told when the job is lost in a crash while it waits (``None``: nobody)
    lost: Callable[[Any], None] | None


class WorkerPool:
    """At most ``workers`` jobs in service at one node; the rest wait in order."""

    __slots__ = ("node", "workers", "busy", "queue", "serve")

    def __init__(self, node: Node, workers: int) -> None:
        self.node = node
        self.workers = workers
        #: ``serve(duration, end, job, lost=None)``: hold the job's worker for
        #: ``duration``, then call ``end(job)``, which calls :meth:`release`
        #: when it is done with the worker; if the node crashed meanwhile,
        #: ``lost(job)`` instead. It is the node's :meth:`Node.after` itself
        #: (no call of its own: it runs once per job).
        self.serve: Callable[..., None] = node.after
        #: jobs in service
        self.busy = 0
        #: jobs waiting for a worker, oldest first
        self.queue: deque[Waiting] = deque()

    def submit(
        self,
        job: Any,
        start: Callable[[Any], None],
        wanted: Callable[[Any], bool] | None = None,
        lost: Callable[[Any], None] | None = None,
    ) -> bool:
        """Start ``job`` now (``start(job)``, a worker taken for it) if a
        worker is free, else queue it (see :class:`Waiting`). Returns whether
        it started now."""
        if self.busy < self.workers:
            self.busy += 1
            start(job)
            return True
        self.queue.append(Waiting(job, start, wanted, lost))
        return False

    def full(self) -> bool:
        """Whether a job submitted now would wait."""
        return self.busy >= self.workers

    def release(self) -> None:
        """A job's worker is free: start the next wanted job waiting, if any."""
        self.busy -= 1
        if self.queue:
            self.pump()

    def pump(self) -> None:
        """Start waiting jobs while workers are free, skipping the unwanted."""
        queue = self.queue
        while queue and self.busy < self.workers:
            waiting = queue.popleft()
            if waiting.wanted is None or waiting.wanted(waiting.job):
                self.busy += 1
                waiting.start(waiting.job)

    def crash(self) -> int:
        """The node crashed: every job in service or waiting is lost. Returns
        how many; the waiting ones' ``lost`` are told (those in service are
        told by :meth:`serve` when their end comes due)."""
        lost = self.busy + len(self.queue)
        self.busy = 0
        waiting = list(self.queue)
        self.queue.clear()
        for item in waiting:
            if item.lost is not None:
                item.lost(item.job)
        return lost
