"""The choreography saga: participants react to events on a broker; a saga tracker reads the chain.

The code is in :mod:`sim.protocols.choreography.protocol`; this module registers the
protocol (see :mod:`sim.protocols.registry`) and stays light, so that listing
protocols imports nothing heavy. Its public names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from sim.protocols.registry import ProtocolInfo

PROTOCOL = ProtocolInfo(
    name="choreography",
    order=2,
    label="choreography saga",
    colour="#ff7f0e",
    sections=("choreography", "broker"),
    nodes=("broker", "tracker"),
    build="sim.protocols.choreography.protocol:build",
    checker="sim.checker:Checker",
    transaction_columns=(),
    summary_columns=(
        "events_stored",
        "deliveries",
        "redeliveries",
        "dead_lettered",
        "publish_resends",
        "publishes_dropped",
        "inbox_dedups",
        "gave_up",
    ),
    aborts=False,
    coordinator_free=True,
)


def __getattr__(attr: str) -> Any:
    # ``from sim.protocols.choreography import X`` keeps working for the code's names.
    protocol = importlib.import_module(f"{__name__}.protocol")
    if attr == "protocol":
        return protocol
    try:
        return getattr(protocol, attr)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}") from None
