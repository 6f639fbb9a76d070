"""The ``[tcc]`` section of a scenario: the TCC coordinator and its participants' side."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.specs import RetrySpec, SpecModel


class TCCSpec(SpecModel):
    """Try-confirm-cancel. The defaults are the robust design (DTM's and
    Seata's: a barrier at every participant, unlimited Confirm and Cancel
    retries, recovery)."""

    #: ``"parallel"``: every Try at once; ``"sequential"``: one at a time, in step order
    try_order: Literal["parallel", "sequential"] = "parallel"
    #: seconds the coordinator waits for each reply (a Try's, a Confirm's, a Cancel's)
    timeout: float = Field(1.0, gt=0)
    confirm_retry: RetrySpec = Field(default_factory=lambda: RetrySpec(attempts="unlimited"))
    cancel_retry: RetrySpec = Field(default_factory=lambda: RetrySpec(attempts="unlimited"))
    #: a restarted coordinator finishes its unfinished transactions
    recovery: bool = True
    #: the participants' barrier table (null compensation, hanging, idempotency)
    barrier: bool = True
    #: which of the three anomalies the barrier guards against, each on its
    #: own switch (with ``barrier = false``, none): a null Cancel changes
    #: nothing (``null_compensation``), a Try after its Cancel is refused
    #: (``hanging``), a repeated Try, Confirm or Cancel changes nothing (``idempotency``)
    guards: list[Literal["null_compensation", "hanging", "idempotency"]] = Field(
        default_factory=lambda: ["null_compensation", "hanging", "idempotency"]
    )
    #: what a Try does on a key another transaction has reserved: ``"fail"``
    #: at once, or ``"wait"`` for it (FIFO, up to the participant's ``lock_timeout``)
    conflict: Literal["fail", "wait"] = "fail"
    #: seconds after which a participant releases a reservation nobody
    #: confirmed or cancelled (none: reservations never expire)
    reservation_ttl: float | None = Field(None, gt=0)
