"""The ``[orchestrator]`` section of a scenario: the saga orchestrator's settings."""

from __future__ import annotations

from pydantic import Field

from sim.specs import RetrySpec, SpecModel


class OrchestratorSpec(SpecModel):
    """The saga orchestrator. The defaults are the robust design."""

    timeout: float = Field(1.0, gt=0)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    compensation_retry: RetrySpec = Field(default_factory=lambda: RetrySpec(attempts="unlimited"))
    recovery: bool = True
    idempotency_keys: bool = True
    compensate_uncertain: bool = True
