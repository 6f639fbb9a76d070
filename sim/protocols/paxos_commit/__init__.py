"""Paxos Commit (Gray and Lamport): two-phase commit whose decision is kept
by 2f+1 acceptors, so that another leader can finish it when the leader dies.

Registered here (:mod:`sim.protocols.registry`); the code is in
:mod:`sim.protocols.paxos_commit.protocol`.
"""

from __future__ import annotations

from sim.protocols.registry import ProtocolInfo, reexport

PROTOCOL = ProtocolInfo(
    name="paxos-commit",
    order=4,
    label="Paxos Commit",
    colour="#17becf",
    specs=(("paxos_commit", "sim.protocols.paxos_commit.spec:PaxosCommitSpec"),),
    # The nodes with the default f = 1 (reserved names); a scenario's own
    # depend on its f (node_names).
    nodes=("leader", "acceptor-1", "acceptor-2", "acceptor-3"),
    node_names="sim.protocols.paxos_commit.spec:scenario_nodes",
    build="sim.protocols.paxos_commit.protocol:build",
    # The same invariants as 2PC: transaction-commit consistency and termination.
    checker="sim.checker:TwoPCChecker",
    transaction_columns=("lock_held", "lock_wait", "blocked"),
    summary_columns=(
        "locks_held_mean",
        "lock_acquisitions",
        "lock_hold_mean",
        "lock_waits",
        "lock_timeouts",
        "unilateral_aborts",
        "in_doubt_at_end",
        "vote_timeouts",
        "suspicions",
        "takeovers",
        "ballots_rejected",
    ),
    # its blocked time beside 2PC's in sagasim compare and the report's summary
    compared=(("blocked", "blocked time"),),
    aborts=True,
    coordinator_free=False,
)


#: ``from sim.protocols.paxos_commit import X`` works for the code's names.
__getattr__ = reexport(__name__)
