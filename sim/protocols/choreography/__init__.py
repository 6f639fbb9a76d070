"""The choreography saga: participants react to events on a broker; a saga tracker reads the chain.

Registered here (:mod:`sim.protocols.registry`); the code is in
:mod:`sim.protocols.choreography.protocol`.
"""

from __future__ import annotations

from sim.protocols.registry import ProtocolInfo, reexport

PROTOCOL = ProtocolInfo(
    name="choreography",
    order=2,
    label="choreography saga",
    colour="#ff7f0e",
    specs=(
        ("broker", "sim.protocols.choreography.spec:BrokerSpec"),
        ("choreography", "sim.protocols.choreography.spec:ChoreographySpec"),
    ),
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


#: ``from sim.protocols.choreography import X`` keeps working for the code's names.
__getattr__ = reexport(__name__)
