"""The ``[paxos_commit]`` section of a scenario: Paxos Commit's settings."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sim.specs import DistSpec, SpecModel, constant

#: The leader of ballot 0 (it starts every transaction).
LEADER = "leader"

#: The largest ``f`` a scenario may ask for (2f+1 acceptors, each a node).
MAX_F = 10


class PaxosCommitSpec(SpecModel):
    """Paxos Commit: ``f`` acceptor failures tolerated (2f+1 acceptors),
    the leader's wait for the votes, the participants' wait for the
    decision before they suspect the leader, and the time an acceptor takes
    to force its state before it answers."""

    f: int = Field(1, ge=0, le=MAX_F)
    vote_timeout: float = Field(1.0, gt=0)
    takeover_timeout: float = Field(1.0, gt=0)
    log_write: DistSpec = Field(default_factory=lambda: constant(0.0))


def acceptor_names(f: int) -> tuple[str, ...]:
    """The 2f+1 acceptors' node names: ``acceptor-1`` ... ``acceptor-(2f+1)``."""
    return tuple(f"acceptor-{i}" for i in range(1, 2 * f + 2))


def scenario_nodes(scenario: Any) -> tuple[str, ...]:
    """The protocol's nodes in ``scenario`` (the registry's ``node_names``):
    the leader and the scenario's 2f+1 acceptors."""
    return (LEADER, *acceptor_names(scenario.paxos_commit.f))
