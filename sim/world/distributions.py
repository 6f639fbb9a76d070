"""Delay distributions: small validated objects with ``mean``, ``variance``
and a batched sampler.

Each distribution is validated when it is built, so a bad value fails at load
time with a clear message, never in the middle of a run. Having the mean and
variance at hand makes checking the model against theory a one-liner.

``sampler(stream)`` returns a zero-argument callable that yields one draw per
call. Draws are taken from the stream in batches (numpy is fast per array and
slow per scalar); the values are identical to drawing one at a time from the
same stream in the same order, so batching never changes a run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import chain

import numpy as np

BATCH = 2048

# The 99th percentile of the standard normal, for the lognormal's p99 spelling.
_Z99 = 2.3263478740408408


class Distribution:
    """A non-negative delay distribution."""

    kind: str = ""

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def variance(self) -> float:
        raise NotImplementedError

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent draws from ``rng``."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> float:
        """One draw (slow path; the simulation uses :meth:`sampler`)."""
        return float(self.draw(rng, 1)[0])

    def sampler(self, rng: np.random.Generator) -> Callable[[], float]:
        """A callable returning successive draws, refilled in batches."""
        return batched(lambda n: self.draw(rng, n))

    def describe(self) -> dict[str, object]:
        """The scenario-file spelling of this distribution."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        # Equal when spelled the same: a scenario loaded back from its
        # effective configuration equals the original.
        return isinstance(other, Distribution) and self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash(repr(self.describe()))


def batched(draw: Callable[[int], np.ndarray]) -> Callable[[], float]:
    """A zero-argument callable returning successive values of ``draw(BATCH)``
    batches: ``next`` over a chain of lists, so each call is a C call and only
    the refill, once per batch, runs Python code."""

    def batches() -> Iterator[list[float]]:
        while True:
            yield draw(BATCH).tolist()

    return partial(next, chain.from_iterable(batches()))


class Constant(Distribution):
    kind = "constant"

    def __init__(self, value: float) -> None:
        _check_finite("value", value)
        if value < 0:
            raise ValueError(f"value must be >= 0, got {value}")
        self.value = float(value)

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)

    def sampler(self, rng: np.random.Generator) -> Callable[[], float]:
        # No randomness: skip the buffer entirely (hot path).
        value = self.value
        return lambda: value

    def describe(self) -> dict[str, object]:
        return {"dist": self.kind, "value": self.value}


class Exponential(Distribution):
    kind = "exponential"

    def __init__(self, mean: float) -> None:
        _check_finite("mean", mean)
        if mean <= 0:
            raise ValueError(f"mean must be > 0, got {mean}")
        self._mean = float(mean)

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def variance(self) -> float:
        return self._mean**2

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self._mean, n)

    def describe(self) -> dict[str, object]:
        return {"dist": self.kind, "mean": self._mean}


class Uniform(Distribution):
    kind = "uniform"

    def __init__(self, low: float, high: float) -> None:
        _check_finite("low", low)
        _check_finite("high", high)
        if low < 0:
            raise ValueError(f"low must be >= 0, got {low}")
        if high <= low:
            raise ValueError(f"high must be > low, got low={low}, high={high}")
        self.low = float(low)
        self.high = float(high)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    def describe(self) -> dict[str, object]:
        return {"dist": self.kind, "low": self.low, "high": self.high}


class LogNormal(Distribution):
    """Spelled by its median and 99th percentile, the way latencies are quoted."""

    kind = "lognormal"

    def __init__(self, median: float, p99: float) -> None:
        _check_finite("median", median)
        _check_finite("p99", p99)
        if median <= 0:
            raise ValueError(f"median must be > 0, got {median}")
        if p99 <= median:
            raise ValueError(f"p99 must be > median, got median={median}, p99={p99}")
        self.median = float(median)
        self.p99 = float(p99)
        self.mu = math.log(median)
        self.sigma = math.log(p99 / median) / _Z99

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    @property
    def variance(self) -> float:
        s2 = self.sigma**2
        return (math.exp(s2) - 1) * math.exp(2 * self.mu + s2)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, n)

    def describe(self) -> dict[str, object]:
        return {"dist": self.kind, "median": self.median, "p99": self.p99}


class Empirical(Distribution):
    """Resamples (with replacement, equal weights) a list of observed values."""

    kind = "empirical"

    def __init__(self, samples: Sequence[float]) -> None:
        if len(samples) == 0:
            raise ValueError("samples must not be empty")
        for value in samples:
            _check_finite("samples", value)
            if value < 0:
                raise ValueError(f"samples must all be >= 0, got {value}")
        self.samples = np.asarray(samples, dtype=float)

    @property
    def mean(self) -> float:
        return float(self.samples.mean())

    @property
    def variance(self) -> float:
        return float(self.samples.var())

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.samples[rng.integers(0, len(self.samples), n)]

    def describe(self) -> dict[str, object]:
        return {"dist": self.kind, "samples": self.samples.tolist()}


def _check_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")


#: The parameters each kind takes, in the scenario file's spelling.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "exponential": ("mean",),
    "uniform": ("low", "high"),
    "lognormal": ("median", "p99"),
    "empirical": ("samples",),
}

#: Every parameter name any kind takes.
PARAMETERS_ALL: tuple[str, ...] = ("value", "mean", "low", "high", "median", "p99", "samples")

_CLASSES: dict[str, type[Distribution]] = {
    "constant": Constant,
    "exponential": Exponential,
    "uniform": Uniform,
    "lognormal": LogNormal,
    "empirical": Empirical,
}


def make(kind: str, **params: object) -> Distribution:
    """Build a distribution from its scenario spelling; ``ValueError`` if wrong."""
    try:
        cls = _CLASSES[kind]
    except KeyError:
        raise ValueError(f"unknown dist {kind!r}; allowed: {', '.join(_CLASSES)}") from None
    return cls(**params)  # type: ignore[arg-type]
