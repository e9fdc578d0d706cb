"""The demo: a seeded CI host on the private engine, planned, applied and planned again."""
