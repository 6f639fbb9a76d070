"""A run driven from Python: advance its clock, start and stop faults while
it goes, then judge it.

>>> import sim.live
>>> run = sim.live.open_run("scenarios/order-flaky-payment.toml", seed=1)  # doctest: +SKIP
>>> run.advance(5.0)                                               # doctest: +SKIP
>>> crash = run.start_fault("crash", target="payment")             # doctest: +SKIP
>>> run.advance(7.5)                                               # doctest: +SKIP
>>> run.stop_fault(crash)                                          # doctest: +SKIP
>>> result = run.finish()                                          # doctest: +SKIP

A fault started at an instant and stopped at another gives the same run as
the same fault written on the scenario's ``[[faults]]`` timeline with those
instants (``tests/test_live.py`` checks it for every kind and protocol).
This is what a systematic explorer or a Hypothesis state machine drives.
See ``docs/live.md``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sim.api import Overrides, _overrides, _protocols, _scenario, _seeds
from sim.errors import SagasimError, show_value
from sim.limits import check_in_memory
from sim.result import Result
from sim.runner import Model, RunTooBusy, run_id
from sim.scenario import Scenario, parse_overrides
from sim.world.core import EventBudgetExceeded
from sim.world.faults import RuntimeFault

__all__ = ["LiveRun", "RuntimeFault", "open_run"]


class LiveRun:
    """One (scenario, protocol, seed) run, built and open to faults from Python.

    The clock starts at 0. :meth:`advance` runs the simulation up to an
    instant; between two advances, :meth:`start_fault` and
    :meth:`stop_fault` apply faults at the current instant, before anything
    else due then. :meth:`finish` runs to the end of the drain window and
    returns the judged :class:`~sim.result.Result`.
    """

    def __init__(
        self,
        scenario: Scenario,
        protocol: str,
        seed: int,
        trace: bool | None,
        source: str | None,
        applied: dict[str, object],
    ) -> None:
        self.scenario = scenario
        self.protocol = protocol
        self.seed = seed
        self.model = Model(scenario, protocol, seed, trace, runtime_faults=True)
        self._source = source
        self._applied = applied
        self._started = time.perf_counter()
        self._finished = False

    @property
    def now(self) -> float:
        """The simulated time, in seconds."""
        return self.model.world.now

    @property
    def workload_end(self) -> float:
        """When transactions stop arriving: faults are healed then, and no new one may start."""
        return self.scenario.run.duration

    @property
    def end(self) -> float:
        """The end of the run: the workload and the drain window."""
        return self.model.end

    def advance(self, to: float) -> None:
        """Run every event due before ``to`` (seconds, later than :attr:`now`
        and at most :attr:`end`); the clock is then ``to``."""
        self._open()
        if isinstance(to, bool) or not isinstance(to, (int, float)) or not self.now < to <= self.end:
            raise SagasimError(
                f"advance(to={show_value(to)}): expected a time after now ({self.now:g} s) "
                f"and at most the end of the run ({self.end:g} s)"
            )
        try:
            self.model.world.run(until=float(to))
        except EventBudgetExceeded as exc:
            self._finished = True
            raise RunTooBusy(self.model._too_busy(exc)) from None

    def start_fault(self, kind: str, *, duration: float | None = None, **settings: Any) -> RuntimeFault:
        """Start a fault now; ``kind`` and ``settings`` as in a ``[[faults]]``
        entry of a scenario file (``docs/scenarios.md``), e.g.
        ``start_fault("partition", groups=[["orchestrator"], ["payment"]])``.
        It lasts ``duration`` seconds, until :meth:`stop_fault`, or until the
        workload ends. A bad kind or setting raises
        :class:`~sim.errors.SagasimError` naming it."""
        self._open()
        try:
            return self.model.faults.start(kind, duration=duration, **settings)
        except ValueError as exc:
            raise SagasimError(str(exc)) from None

    def stop_fault(self, fault: RuntimeFault) -> None:
        """End a fault started with :meth:`start_fault` (now)."""
        self._open()
        if not isinstance(fault, RuntimeFault):
            raise SagasimError(f"stop_fault({show_value(fault)}): expected what start_fault returned")
        self.model.faults.stop(fault)

    def finish(self) -> Result:
        """Run to the end of the drain window, judge every transaction, and
        return the result (one run). The run is over then."""
        self._open()
        if self.now < self.end:
            self.advance(self.end)
        self._finished = True
        out = self.model.collect(time.perf_counter() - self._started)
        return Result(self.scenario, [out], self._applied, out.wall_time, source=self._source)

    def _open(self) -> None:
        if self._finished:
            raise SagasimError(f"run {run_id(self.scenario.name, self.protocol, self.seed)} is over")


def open_run(
    scenario: Scenario | str | Path | dict[str, Any],
    protocol: str | None = None,
    seed: int | None = None,
    overrides: Overrides | None = None,
    trace: bool | None = None,
) -> LiveRun:
    """Build one run open to faults from Python; arguments as :func:`sim.run`
    takes them, but one protocol and one seed (defaults: the scenario's first)."""
    checked = _overrides(overrides)
    loaded = _scenario(scenario, checked)
    for value, what in ((protocol, "protocol"), (seed, "seed")):
        if value is not None and not isinstance(value, (str, int)):
            raise SagasimError(f"{what} = {show_value(value)}: a live run is one run: give one {what}")
    protocols = _protocols(protocol or loaded.run.protocols[0], loaded)
    seeds = _seeds(loaded.run.seeds[0] if seed is None else seed, loaded)
    if trace is not None and not isinstance(trace, bool):
        raise SagasimError(f"trace = {show_value(trace)}: expected True, False or None")
    check_in_memory(loaded, bool(trace))
    applied = dict(parse_overrides(checked)) if checked else {}
    source = str(scenario) if isinstance(scenario, (str, Path)) else None
    return LiveRun(loaded, protocols[0], seeds[0], trace, source, applied)
