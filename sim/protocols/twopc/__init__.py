"""Two-phase commit: a coordinator, prepared participants holding locks, and a decision.

Registered here (:mod:`sim.protocols.registry`); the code is in
:mod:`sim.protocols.twopc.protocol`.
"""

from __future__ import annotations

from sim.protocols.registry import ProtocolInfo, reexport

PROTOCOL = ProtocolInfo(
    name="2pc",
    order=1,
    label="two-phase commit",
    colour="#9467bd",
    specs=(("twopc", "sim.protocols.twopc.spec:TwoPCSpec"),),
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
    compared=(("blocked", "blocked time"),),
    aborts=True,
    coordinator_free=False,
)


#: ``from sim.protocols.twopc import X`` keeps working for the code's names.
__getattr__ = reexport(__name__)
