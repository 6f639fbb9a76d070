"""Names the command line needs at start-up, kept free of heavy imports
(pandas, scipy, pydantic): its help text lists them."""

from sim.protocols import registry

#: Protocols a scenario may ask for: every registered one (:mod:`sim.protocols.registry`).
PROTOCOLS: tuple[str, ...] = registry.names()

#: What the checker can say of a transaction, in the order tables show them.
OUTCOMES: tuple[str, ...] = ("committed", "compensated", "aborted", "inconsistent", "stuck")
