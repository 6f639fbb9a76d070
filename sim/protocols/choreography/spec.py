"""The ``[broker]`` and ``[choreography]`` sections of a scenario: the
message broker's and the services' settings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from sim.specs import RetrySpec, SpecModel


class BrokerSpec(SpecModel):
    """The message broker of the choreography saga."""

    ordering: Literal["per-key", "unordered"] = "per-key"
    ack_timeout: float = Field(5.0, gt=0)
    max_deliveries: Annotated[int, Field(ge=1)] | Literal["unlimited"] = 10
    deduplicate: bool = False

    @field_validator("max_deliveries", mode="before")
    @classmethod
    def _deliveries(cls, value: object) -> object:
        ok = value == "unlimited" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
        if not ok:
            raise ValueError('must be a whole number >= 1, or "unlimited"')
        return value

    @property
    def delivery_limit(self) -> float:
        """``max_deliveries`` as a number (``inf`` when unlimited)."""
        return float("inf") if self.max_deliveries == "unlimited" else float(self.max_deliveries)


class ChoreographySpec(SpecModel):
    """The choreography saga's services: local retries and publishing."""

    retry: RetrySpec = Field(default_factory=RetrySpec)
    compensation_retry: RetrySpec = Field(default_factory=lambda: RetrySpec(attempts="unlimited"))
    publish_timeout: float = Field(1.0, gt=0)
    publish_retry: RetrySpec = Field(default_factory=lambda: RetrySpec(attempts="unlimited"))
