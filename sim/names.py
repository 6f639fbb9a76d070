"""Names the command line needs at start-up, kept free of heavy imports
(pandas, scipy, pydantic): its help text lists them."""

from __future__ import annotations

from typing import Any

from sim.protocols import registry

#: Protocols a scenario may ask for: every registered one (:mod:`sim.protocols.registry`).
PROTOCOLS: tuple[str, ...] = registry.names()

#: What the checker can say of a transaction, in the order tables show them.
OUTCOMES: tuple[str, ...] = ("committed", "compensated", "aborted", "inconsistent", "stuck")


def listed(value: Any) -> list[str]:
    """A list cell (``reasons``, ``anomalies``) as a list of strings, whatever
    stored it: a list, an array (pyarrow), None or NaN (none), or one
    string (a single item; "" is none)."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def joined(value: Any, sep: str = "; ") -> str:
    """A list cell as one line of text ("" for none)."""
    return sep.join(listed(value))
