"""The orchestration saga: a central orchestrator drives each transaction's steps.

Registered here (:mod:`sim.protocols.registry`); the code is in
:mod:`sim.protocols.orchestration.protocol`.
"""

from __future__ import annotations

from sim.protocols.registry import ProtocolInfo, reexport

PROTOCOL = ProtocolInfo(
    name="orchestration",
    order=0,
    label="orchestration saga",
    colour="#1f77b4",
    specs=(("orchestrator", "sim.protocols.orchestration.spec:OrchestratorSpec"),),
    nodes=("orchestrator",),
    build="sim.protocols.orchestration.protocol:build",
    checker="sim.checker:Checker",
    transaction_columns=(),
    summary_columns=("timeouts", "recovered", "gave_up"),
    aborts=False,
    coordinator_free=False,
)


#: ``from sim.protocols.orchestration import X`` keeps working for the code's names.
__getattr__ = reexport(__name__)
