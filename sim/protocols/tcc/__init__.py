"""TCC (try-confirm-cancel): a coordinator reserves at every participant,
then confirms every reservation or cancels them all, with a barrier at each
participant against null compensation, hanging and duplicates.

Registered here (:mod:`sim.protocols.registry`); the code is in
:mod:`sim.protocols.tcc.protocol`, the checker in
:mod:`sim.protocols.tcc.checker`, the ``[tcc]`` section in
:mod:`sim.protocols.tcc.spec`.
"""

from __future__ import annotations

from sim.protocols.registry import ProtocolInfo, reexport

PROTOCOL = ProtocolInfo(
    name="tcc",
    order=3,
    label="TCC (try-confirm-cancel)",
    colour="#bcbd22",
    specs=(("tcc", "sim.protocols.tcc.spec:TCCSpec"),),
    nodes=("coordinator",),
    build="sim.protocols.tcc.protocol:build",
    checker="sim.protocols.tcc.checker:TCCChecker",
    transaction_columns=("reserved_time",),
    summary_columns=(
        "reservations",
        "reservations_expired",
        "reservations_at_end",
        "try_conflicts",
        "try_timeouts",
        "null_cancels",
        "hanging_tries_refused",
        "duplicates_ignored",
        "phase2_resends",
        "recovered",
        "gave_up",
    ),
    anomalies=(
        "null_compensation_applied",
        "hanging_reservation",
        "confirmed_twice",
        "cancelled_twice",
        "confirm_and_cancel",
        "reservation_expired_before_confirm",
        "partial_confirm",
    ),
    compared=(("reserved_time", "reserved time"),),
    aborts=True,
    coordinator_free=False,
)


#: ``from sim.protocols.tcc import X`` keeps working for the code's names.
__getattr__ = reexport(__name__)
