"""The orchestration saga: a central orchestrator drives each transaction's steps.

The code is in :mod:`sim.protocols.orchestration.protocol`; this module registers the
protocol (see :mod:`sim.protocols.registry`) and stays light, so that listing
protocols imports nothing heavy. Its public names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from sim.protocols.registry import ProtocolInfo

PROTOCOL = ProtocolInfo(
    name="orchestration",
    order=0,
    label="orchestration saga",
    colour="#1f77b4",
    sections=("orchestrator",),
    nodes=("orchestrator",),
    build="sim.protocols.orchestration.protocol:build",
    checker="sim.checker:Checker",
    transaction_columns=(),
    summary_columns=("timeouts", "recovered", "gave_up"),
    aborts=False,
    coordinator_free=False,
)


def __getattr__(attr: str) -> Any:
    # ``from sim.protocols.orchestration import X`` keeps working for the code's names.
    protocol = importlib.import_module(f"{__name__}.protocol")
    if attr == "protocol":
        return protocol
    try:
        return getattr(protocol, attr)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}") from None
