"""The ``1..10,20`` spelling of a set of seeds, shared by ``--seeds``, a
sweep file's ``seeds`` and the Python API.

Kept free of pandas and scipy: the command line reads it at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Seeds are integers in [0, 2**63), like ``run.seeds`` in a scenario.
SEED_LIMIT = 2**63
SEEDS_SPELLING = "a range A..B (inclusive, A <= B), a comma list 1,2,5, or a mix 1..10,20; seeds are integers >= 0"


def parse_seeds(text: str, limit: int | None = None) -> list[int]:
    """``"1..3,7"`` into ``[1, 2, 3, 7]``: ranges are inclusive, duplicates
    dropped, order kept. Raises :class:`ValueError` naming the bad part, or
    when the text spells more than ``limit`` seeds (counted before any list
    is built: ``0..100000000000`` must not fill the memory)."""
    ranges: list[range] = []
    parts = [p.strip() for p in text.split(",")]
    for part in parts:
        if not part:
            raise ValueError(f"{text!r}: empty seed; expected {SEEDS_SPELLING}")
        if ".." in part:
            low_text, _, high_text = part.partition("..")
            low, high = _seed(low_text, part, text), _seed(high_text, part, text)
            if low > high:
                where = f" {part!r}" if part != text.strip() else ""
                raise ValueError(f"{text!r}: empty range{where} ({low} > {high}); expected {SEEDS_SPELLING}")
            ranges.append(range(low, high + 1))
        else:
            value = _seed(part, part, text)
            ranges.append(range(value, value + 1))
    count = sum(len(r) for r in ranges)
    if limit is not None and count > limit:
        raise ValueError(
            f"{text!r}: {count:,} seeds, above the limit of {limit:,} runs per command; "
            "raise it on purpose with --max-runs"
        )
    return list(dict.fromkeys(seed for r in ranges for seed in r))


def _seed(word: str, part: str, text: str) -> int:
    word = word.strip()
    where = f" in {part!r}" if part != word else ""
    if not (word.isascii() and word.isdigit()):
        if not word:
            problem = "missing number"
        elif word[0] == "-" and word[1:].isascii() and word[1:].isdigit():
            problem = f"negative seed {word}"
        else:
            problem = f"{word!r} is not a whole number"
        raise ValueError(f"{text!r}: {problem}{where}; expected {SEEDS_SPELLING}")
    value = int(word)
    if value >= SEED_LIMIT:
        raise ValueError(f"{text!r}: seed {value} is too large (at most {SEED_LIMIT - 1})")
    return value


def format_seeds(seeds: Iterable[int]) -> str:
    """The short spelling of a set of seeds: ``[1, 2, 3, 7]`` -> ``"1..3,7"``."""
    ordered = sorted({int(s) for s in seeds})
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{ordered[i]}..{ordered[j]}")
        else:
            parts.extend(str(s) for s in ordered[i : j + 1])
        i = j + 1
    return ",".join(parts)
