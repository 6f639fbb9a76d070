"""Where a sweep's runs execute: this process, local processes, or a Dask cluster.

Each executor takes the runs to do and a picklable function that runs one and
never raises (it returns its failure instead), and yields the results as they
finish, in any order. The sweep writes them; the executors write nothing.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from sim.errors import SagasimError
from sim.result import package_versions

#: Seconds to wait for a Dask scheduler to answer before giving up.
DASK_CONNECT_TIMEOUT = 10.0

Task = TypeVar("Task")
Outcome = TypeVar("Outcome")


def run_inline(tasks: list[Task], fn: Callable[[Task], Outcome]) -> Iterator[Outcome]:
    """One after the other, in this process."""
    for task in tasks:
        yield fn(task)


def run_local(
    tasks: list[Task], fn: Callable[[Task], Outcome], workers: int, lost: Callable[[Task, str], Outcome]
) -> Iterator[Outcome]:
    """On ``workers`` local processes; ``lost(task, why)`` stands for a run whose process died."""
    # Not fork: the parent may have threads (the progress bar's, a Dask client's).
    # The fork server imports sagasim once; each worker is forked from it ready to run.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["sim.sweep"])
        _start_forkserver_deaf_to_ctrl_c()
    else:
        context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_ignore_interrupts)
    finished = False
    try:
        pending: dict[Future[Outcome], Task] = {}
        queue = list(reversed(tasks))
        # Keep the pool a little ahead of itself, so an interrupt abandons few runs.
        while queue or pending:
            try:
                while queue and len(pending) < 2 * workers:
                    task = queue[-1]
                    pending[pool.submit(fn, task)] = task
                    queue.pop()
            except BrokenProcessPool as exc:  # a worker died: nothing more runs in this pool
                for task in [*pending.values(), *reversed(queue)]:
                    yield lost(task, f"worker process failed: {exc}")
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    yield future.result()
                except Exception as exc:  # the worker process died (out of memory, killed)
                    yield lost(task, f"worker process failed: {type(exc).__name__}: {exc}")
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _stop(pool)


#: Seconds a worker is given to exit once told to, before it is killed.
STOP_TIMEOUT = 5.0


def _ignore_interrupts() -> None:
    """In each worker: Ctrl-C is the main process's to handle. The terminal
    sends it to every process of the group; a worker that took it would print
    its own traceback and could leave the pool waiting for it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_forkserver_deaf_to_ctrl_c() -> None:
    """Start the fork server (if it is not running yet) with SIGINT blocked.

    The blocked mask passes to the fork server and to every worker forked
    from it, so a Ctrl-C never reaches a worker, not even in the moment
    between its fork and :func:`_ignore_interrupts`; this process's mask is
    restored at once (a Ctrl-C meanwhile is delivered then).
    """
    from multiprocessing import forkserver

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now (an interrupt, an error): cancel the runs not started,
    end the workers and reap them, so no process is left behind and the
    main process never waits for a run that nobody will read."""
    # The pool's processes, result pipe and manager thread, read before
    # shutdown() forgets them: private attributes, but the only handles on
    # them (stable since Python 3.9).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    results = getattr(pool, "_result_queue", None)
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(STOP_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join(STOP_TIMEOUT)
    if results is not None:
        # A worker stopped while it wrote its result leaves half a message in
        # the pipe, and the pool's manager thread would wait for the rest
        # forever, holding up this process's exit. This process holds the
        # pipe's last writing end: closing it lets that thread read the end
        # of the pipe, declare the pool broken and finish.
        results._writer.close()
    if manager is not None:
        manager.join(STOP_TIMEOUT)


def connect(scheduler: Any) -> tuple[Any, bool]:
    """A Dask client for ``scheduler`` (an address, or a client already made),
    and whether this call made it (and so must close it). Checks that every
    worker runs this version of sagasim: results are identical only then."""
    try:
        from dask.distributed import Client
    except ImportError as exc:  # dask is an extra: only --scheduler needs it
        raise SagasimError(
            f"--scheduler {scheduler}: running on a Dask cluster needs the dask extra, which is not installed "
            f"({exc}); install it with: pip install 'sagasim[dask]'"
        ) from None
    if isinstance(scheduler, Client):
        client, own = scheduler, False
    else:
        try:
            client, own = Client(str(scheduler), timeout=DASK_CONNECT_TIMEOUT, set_as_default=False), True
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise SagasimError(
                f"--scheduler {scheduler}: cannot connect to a Dask scheduler there ({exc}); "
                "expected an address such as tcp://10.0.0.5:8786"
            ) from None
    try:
        _check_worker_versions(client)
    except BaseException:
        if own:
            client.close()
        raise
    return client, own


def run_dask(
    tasks: list[Task], fn: Callable[[Task], Outcome], client: Any, lost: Callable[[Task, str], Outcome]
) -> Iterator[Outcome]:
    """On the workers of a Dask cluster, through ``client``.

    Runs go to the cluster one per worker thread, the next as soon as one
    finishes, rather than all at once: the scheduler then never holds a run
    queued at a busy worker while another worker is idle at the end of the
    sweep, and each run's tables leave the cluster's memory as soon as they
    are read (all submitted at once, every result stayed there until the
    last run ended)."""
    from dask.distributed import as_completed

    slots = max(1, sum(client.nthreads().values()))
    waiting = list(reversed(tasks))
    running: dict[Any, Task] = {}

    def submit() -> Any:
        task = waiting.pop()
        future = client.submit(fn, task, pure=False)
        running[future] = task
        return future

    # The loop of this client: with an address there is no default client to find.
    finished = as_completed([submit() for _ in range(min(slots, len(waiting)))], loop=client.loop)
    try:
        for future in finished:
            task = running.pop(future)
            if waiting:  # (before this run's result is written: no worker waits for it)
                finished.add(submit())
            try:
                yield future.result()
            except Exception as exc:  # the worker died or the task was lost
                yield lost(task, f"dask worker failed: {type(exc).__name__}: {exc}")
    finally:
        client.cancel([f for f in running if not f.done()])


def _installed_version() -> str:
    return package_versions()["sagasim"]


def _check_worker_versions(client: Any) -> None:
    ours = _installed_version()
    theirs = client.run(_installed_version)
    if not theirs:
        raise SagasimError(f"the Dask scheduler at {client.scheduler.address} has no workers")
    wrong = {w: v for w, v in theirs.items() if v != ours}
    if wrong:
        shown = ", ".join(f"{w} has {v}" for w, v in sorted(wrong.items()))
        raise SagasimError(f"Dask workers must run sagasim {ours} like this machine: {shown}")
