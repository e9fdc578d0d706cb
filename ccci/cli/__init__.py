"""Click wiring: one command per module; ``ccci.cli.main`` is the group."""
