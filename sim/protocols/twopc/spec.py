"""The ``[twopc]`` section of a scenario: the two-phase commit coordinator's settings."""

from __future__ import annotations

from pydantic import Field

from sim.specs import DistSpec, SpecModel, constant


class TwoPCSpec(SpecModel):
    """The two-phase commit coordinator and its participants' side of it."""

    vote_timeout: float = Field(1.0, gt=0)
    ack_timeout: float = Field(1.0, gt=0)
    in_doubt_timeout: float = Field(1.0, gt=0)
    log_write: DistSpec = Field(default_factory=lambda: constant(0.0))
    presumed_abort: bool = True
    cooperative_termination: bool = False
