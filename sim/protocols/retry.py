"""Retry back-off, shared by every protocol."""

from __future__ import annotations

from collections.abc import Callable

from sim.specs import RetrySpec


class Backoff:
    """The wait before each retry of a :class:`~sim.specs.RetrySpec`.

    ``wait(attempt)`` is the pause before attempt number ``attempt`` (2 for the
    first retry): ``min(max, initial * multiplier**(attempt - 2))``, scaled by
    a uniform draw in [0, 1) when ``jitter`` is on (full jitter).
    """

    def __init__(self, spec: RetrySpec, uniform: Callable[[], float]) -> None:
        self.spec = spec
        self.limit = spec.limit
        self._uniform = uniform

    def wait(self, attempt: int) -> float:
        spec = self.spec
        try:
            base = min(spec.max, spec.initial * spec.multiplier ** max(0, attempt - 2))
        except OverflowError:  # unlimited attempts with a large multiplier
            base = spec.max
        return base * self._uniform() if spec.jitter else base
