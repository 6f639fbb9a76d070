"""Which rows of the transactions table a run keeps (``[run] keep``).

Violations (inconsistent, stuck, not consistent, or with an isolation
anomaly) are always kept; a fraction keeps each other row with that
probability, drawn per transaction id from the named stream ``run.keep``, so
the same rows are kept on every machine and whatever else the run draws.
"""

from __future__ import annotations

from typing import Any

from sim.world.fates import BLOCK, uniform
from sim.world.rng import Streams

#: Outcomes that are violations: always kept.
VIOLATIONS = ("inconsistent", "stuck")


def is_violation(row: dict[str, Any]) -> bool:
    """Inconsistent, stuck, not consistent, or with an isolation anomaly."""
    return row["outcome"] in VIOLATIONS or not row["consistent"] or bool(row["anomalies"])


class Keep:
    """Decides, row by row, whether a row of the transactions table is kept."""

    def __init__(self, keep: str | float, streams: Streams) -> None:
        self.all = keep == "all"
        self.fraction = keep if isinstance(keep, float) else 0.0
        # Only a sampled run makes the stream: the others draw nothing new.
        self._draw = streams.keyed("run.keep", uniform, BLOCK).at if self.fraction else None

    def __call__(self, row: dict[str, Any]) -> bool:
        if self.all or is_violation(row):
            return True
        return self._draw is not None and self._draw(row["txn_id"]) < self.fraction
