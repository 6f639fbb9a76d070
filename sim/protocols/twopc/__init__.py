"""Two-phase commit: a coordinator, prepared participants holding locks, and a decision.

The code is in :mod:`sim.protocols.twopc.protocol`; this module registers the
protocol (see :mod:`sim.protocols.registry`) and stays light, so that listing
protocols imports nothing heavy. Its public names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from sim.protocols.registry import ProtocolInfo

PROTOCOL = ProtocolInfo(
    name="2pc",
    order=1,
    label="two-phase commit",
    colour="#9467bd",
    sections=("twopc",),
    nodes=("coordinator",),
    build="sim.protocols.twopc.protocol:build",
    checker="sim.checker:TwoPCChecker",
    transaction_columns=("lock_held", "lock_wait", "blocked"),
    summary_columns=(
        "locks_held_mean",
        "lock_acquisitions",
        "lock_hold_mean",
        "lock_waits",
        "lock_timeouts",
        "unilateral_aborts",
        "in_doubt_queries",
        "in_doubt_at_end",
        "vote_timeouts",
        "decision_resends",
        "recovered",
    ),
    aborts=True,
    coordinator_free=False,
)


def __getattr__(attr: str) -> Any:
    # ``from sim.protocols.twopc import X`` keeps working for the code's names.
    protocol = importlib.import_module(f"{__name__}.protocol")
    if attr == "protocol":
        return protocol
    try:
        return getattr(protocol, attr)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}") from None
