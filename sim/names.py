"""Names the command line needs at start-up, kept free of heavy imports
(pandas, scipy, pydantic): its help text lists them."""

#: Protocols a scenario may ask for.
PROTOCOLS: tuple[str, ...] = ("orchestration", "2pc", "choreography")

#: What the checker can say of a transaction, in the order tables show them.
OUTCOMES: tuple[str, ...] = ("committed", "compensated", "aborted", "inconsistent", "stuck")
