"""Fates: random draws keyed by what they decide, not by when they are made.

A participant's attempt (its outcome, its service time, how long a hang
lasts) is drawn for the key (transaction, step, attempt, operation), so the
same transaction meets the same fate in every protocol run with one seed,
whatever order the requests reach the participant in. That is what makes a
paired comparison of two protocols compare their designs and nothing else:
an order refused at inventory under the orchestration is refused there under
the choreography too.

A :class:`KeyedDraws` gives draw number ``i`` of one named stream for any
``i`` in any order. Draws come in blocks: block ``b`` of the stream ``name``
is ``BLOCK`` draws from a generator seeded by (run seed, hash of ``name``,
``b``), made once when first needed (one generator per block, never per
draw) and dropped when more than ``KEEP`` blocks are held; made again, a
block holds the same values, so dropping one never changes a run.
Transactions are numbered in arrival order, so the index of a first attempt
is its transaction id and nearby transactions share a block. Later attempts
(retries and redeliveries, rare) have a stream per attempt number with
smaller blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sim.world.distributions import Constant, Distribution

#: Draws per block of a first attempt's stream, and of a later attempt's.
BLOCK = 2048
RETRY_BLOCK = 64
#: Blocks a stream holds at most (the oldest made is dropped first).
KEEP = 8
#: Blocks remembered across the runs of one process: none unless asked for
#: (:func:`remember`).
MEMO = 0

# Blocks made lately, by (seed, stream key, block number, size, draw): many
# short runs of one scenario and seed (an exploration's schedules) draw the
# same blocks again and again. A block is a pure function of its key, so
# reusing one never changes a run. The draw's owner (a distribution) is kept
# in the value so that its id is not reused while the entry lives.
_memo: dict[tuple[Any, ...], tuple[list[float], Any]] = {}


def remember(blocks: int) -> None:
    """Keep up to ``blocks`` blocks across the runs of this process (0: none).
    For many short runs of one seed (``sagasim explore``); a long run reuses
    no block, and each kept one costs about 64 kB."""
    global MEMO
    MEMO = blocks
    while len(_memo) > blocks:
        del _memo[next(iter(_memo))]


def _made(key: tuple[Any, ...]) -> list[float] | None:
    found = _memo.get(key)
    if found is None:
        return None
    values, _owner = found
    return values


class KeyedDraws:
    """Draw number ``index`` of a stream, for any index, in any order."""

    __slots__ = ("_blocks", "_draw", "_key", "_mask", "_seed", "_shift", "_size")

    def __init__(
        self, seed: int, key: tuple[int, ...], draw: Callable[[np.random.Generator, int], np.ndarray], block: int
    ) -> None:
        if block & (block - 1):
            raise ValueError(f"block must be a power of two, got {block}")
        self._seed = seed
        self._key = key
        self._draw = draw
        self._size = block
        self._shift = block.bit_length() - 1
        self._mask = block - 1
        self._blocks: dict[int, list[float]] = {}

    def at(self, index: int) -> float:
        """Draw number ``index`` of the stream. (A method, not ``__call__``:
        the hot paths hold the bound method, and calling one is cheaper than
        calling an instance, as for :class:`sim.world.network.Lane`.)"""
        block = self._blocks.get(index >> self._shift)
        if block is None:
            block = self._fill(index >> self._shift)
        return block[index & self._mask]

    def _fill(self, number: int) -> list[float]:
        blocks = self._blocks
        if len(blocks) >= KEEP:
            del blocks[next(iter(blocks))]
        values = blocks[number] = self.block(number)
        return values

    def block(self, number: int) -> list[float]:
        """The draws of block ``number`` (made, or found in the memo), not kept here."""
        draw = self._draw
        owner = getattr(draw, "__self__", None)
        memo_key = (self._seed, self._key, number, self._size, id(owner), getattr(draw, "__func__", draw))
        values = _made(memo_key) if MEMO else None
        if values is None:
            seq = np.random.SeedSequence(entropy=self._seed, spawn_key=(*self._key, number))
            values = draw(np.random.Generator(np.random.PCG64(seq)), self._size).tolist()
            if MEMO:
                if len(_memo) >= MEMO:
                    del _memo[next(iter(_memo))]
                _memo[memo_key] = (values, owner)
        return values


class Counter:
    """How many times each (transaction, slot) was counted: one byte per
    transaction and slot (a slot is a step and an operation), grown in
    chunks as transaction ids grow; the rare count past 255 goes on in a
    dict. Memory stays a few bytes per transaction, not a dict entry each."""

    __slots__ = ("_bytes", "_many")

    CHUNK = 4096

    def __init__(self) -> None:
        self._bytes: dict[int, bytearray] = {}
        self._many: dict[tuple[int, int], int] = {}

    def next(self, txn: int, slot: int) -> int:
        """Count one more for (``txn``, ``slot``) and return the count (1 the first time)."""
        counts = self._bytes.get(slot)
        if counts is None:
            counts = self._bytes[slot] = bytearray()
        if txn >= len(counts):
            counts.extend(bytes(txn - len(counts) + self.CHUNK))
        count = counts[txn] + 1
        if count < 255:
            counts[txn] = count
            return count
        counts[txn] = 255
        count = self._many.get((txn, slot), 254) + 1
        self._many[(txn, slot)] = count
        return count


def uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform draws in [0, 1) (a draw function for :class:`KeyedDraws`)."""
    return rng.random(n)


class Fate:
    """The draws of one (participant, step, operation), keyed by transaction
    and attempt: ``outcome`` (uniform in [0, 1)), ``service`` and ``hang``
    (seconds; ``hang`` is ``None`` without a hang distribution)."""

    def __init__(
        self,
        keyed: Callable[[str, Callable[[np.random.Generator, int], np.ndarray], int], KeyedDraws],
        name: str,
        service: Distribution,
        hang: Distribution | None,
    ) -> None:
        self._keyed = keyed
        self._name = name
        self._service_dist = service
        self._hang_dist = hang
        self._later: dict[int, tuple[Callable[[int], float], ...]] = {}
        self._first = self._streams(1, BLOCK)

    def _streams(self, attempt: int, block: int) -> tuple[Callable[[int], float], ...]:
        suffix = f"attempt{attempt}"
        return (
            self._keyed(f"{self._name}.outcome.{suffix}", uniform, block).at,
            keyed_dist(self._keyed, f"{self._name}.service.{suffix}", self._service_dist, block),
            keyed_dist(self._keyed, f"{self._name}.hang.{suffix}", self._hang_dist, block)
            if self._hang_dist is not None
            else _none,
        )

    def of(self, attempt: int) -> tuple[Callable[[int], float], ...]:
        """The (outcome, service, hang) draws of attempt number ``attempt``
        (1 for the first), each indexed by transaction id."""
        if attempt == 1:
            return self._first
        streams = self._later.get(attempt)
        if streams is None:
            streams = self._later[attempt] = self._streams(attempt, RETRY_BLOCK)
        return streams


def keyed_dist(
    keyed: Callable[[str, Callable[[np.random.Generator, int], np.ndarray], int], KeyedDraws],
    name: str,
    dist: Distribution,
    block: int,
) -> Callable[[int], float]:
    """Draws of ``dist`` from the stream ``name`` by index (a constant takes no stream)."""
    if isinstance(dist, Constant):
        value = dist.value  # no randomness: no stream
        return lambda _index: value
    return keyed(name, dist.draw, block).at


def _none(_index: int) -> float:
    raise AssertionError("no hang distribution")
