"""The building blocks every scenario spec shares: the base model,
distributions, and retry policies.

:mod:`sim.scenario` assembles the scenario file from these and from each
protocol's own specs (``sim/protocols/<name>/spec.py``, registered in
:mod:`sim.protocols.registry`), which import from here rather than from
:mod:`sim.scenario`, so that the scenario can be built from the registry
without an import cycle.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_serializer, model_validator

from sim.world import distributions as dists

__all__ = ["DistSpec", "RetrySpec", "SpecModel", "constant", "exponential"]


class SpecModel(BaseModel):
    """The base of every scenario spec: unknown keys are errors, values are
    strict (no "1" for 1), frozen, and finite."""

    # No inf or nan anywhere: a duration, timeout or rate of inf would run forever.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class DistSpec(SpecModel):
    """A distribution in the scenario's spelling, e.g. ``{ dist = "exponential", mean = 0.01 }``."""

    dist: Literal["constant", "exponential", "uniform", "lognormal", "empirical"]
    value: float | None = None
    mean: float | None = None
    low: float | None = None
    high: float | None = None
    median: float | None = None
    p99: float | None = None
    samples: list[float] | None = None
    _built: dists.Distribution = PrivateAttr()

    @model_validator(mode="after")
    def _build(self) -> DistSpec:
        wanted = dists.PARAMETERS[self.dist]
        given = {k for k in dists.PARAMETERS_ALL if getattr(self, k) is not None}
        extra = sorted(given - set(wanted))
        missing = [k for k in wanted if k not in given]
        takes = " and ".join(repr(k) for k in wanted)
        if extra:
            raise ValueError(f"dist {self.dist!r} takes {takes}, not {', '.join(map(repr, extra))}")
        if missing:
            raise ValueError(f"dist {self.dist!r} needs {takes}")
        self._built = dists.make(self.dist, **{k: getattr(self, k) for k in wanted})
        return self

    @property
    def built(self) -> dists.Distribution:
        """The validated distribution object."""
        return self._built

    @model_serializer
    def _dump(self) -> dict[str, object]:
        return self._built.describe()


def constant(value: float) -> DistSpec:
    return DistSpec(dist="constant", value=value)


def exponential(mean: float) -> DistSpec:
    return DistSpec(dist="exponential", mean=mean)


class RetrySpec(SpecModel):
    """Retries: ``attempts`` counts every attempt, the first included.

    The wait before attempt ``k`` (k >= 2) is ``min(max, initial * multiplier**(k-2))``,
    drawn uniformly from ``[0, that]`` when ``jitter`` is on ("full jitter").
    """

    attempts: Annotated[int, Field(ge=1)] | Literal["unlimited"] = 3
    initial: float = Field(0.1, ge=0)
    multiplier: float = Field(2.0, ge=1)
    max: float = Field(5.0, ge=0)
    jitter: bool = True

    @field_validator("attempts", mode="before")
    @classmethod
    def _attempts(cls, value: object) -> object:
        ok = value == "unlimited" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
        if not ok:
            raise ValueError('must be a whole number >= 1, or "unlimited"')
        return value

    @model_validator(mode="after")
    def _cap(self) -> RetrySpec:
        if self.max < self.initial:
            raise ValueError(f"max ({self.max}) must be >= initial ({self.initial})")
        return self

    @property
    def limit(self) -> float:
        """The number of attempts as a number (``inf`` when unlimited)."""
        return float("inf") if self.attempts == "unlimited" else float(self.attempts)
