"""The report's sections, one module per group; :class:`sim.report.page._Page`
inherits their methods."""
