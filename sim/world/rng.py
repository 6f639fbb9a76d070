"""Named random streams.

One ``numpy.random.SeedSequence`` per run; every component asks for its own
stream by name, and the stream's seed is derived from the run seed and a hash
of the name alone. A stream is read in order (:meth:`Streams.sampler`,
:meth:`Streams.uniform`) or by key (:meth:`Streams.keyed`: the draws that
decide a transaction's fate, see :mod:`sim.world.fates`). Adding, removing or reordering components therefore never
shifts the draws of any other component, and no code touches global random
state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from sim.world.distributions import Distribution, batched
from sim.world.fates import KeyedDraws


@lru_cache(maxsize=4096)  # a pure function; many short runs take the same names
def _spawn_key(name: str) -> tuple[int, ...]:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


class Streams:
    """The random streams of one run, handed out by component name."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._taken: set[str] = set()

    def generator(self, name: str) -> np.random.Generator:
        """A fresh generator for ``name``. Each name may be taken once per run,
        so two components can never share (and so perturb) one stream."""
        if name in self._taken:
            raise ValueError(f"random stream {name!r} is already taken in this run")
        self._taken.add(name)
        seq = np.random.SeedSequence(entropy=self.seed, spawn_key=_spawn_key(name))
        return np.random.Generator(np.random.PCG64(seq))

    def sampler(self, name: str, dist: Distribution) -> Callable[[], float]:
        """Successive draws of ``dist`` from the stream ``name``."""
        return dist.sampler(self.generator(name))

    def uniform(self, name: str) -> Callable[[], float]:
        """Successive uniform draws in [0, 1) from the stream ``name``."""
        return batched(self.generator(name).random)

    def keyed(self, name: str, draw: Callable[[np.random.Generator, int], np.ndarray], block: int) -> KeyedDraws:
        """Draws of ``draw`` from the stream ``name`` by index, in any order
        (see :mod:`sim.world.fates`)."""
        if name in self._taken:
            raise ValueError(f"random stream {name!r} is already taken in this run")
        self._taken.add(name)
        return KeyedDraws(self.seed, _spawn_key(name), draw, block)

    @property
    def names(self) -> list[str]:
        """The streams taken so far (recorded in ``run.json``)."""
        return sorted(self._taken)
