"""ccci: keep a Docker Swarm CI host healthy, declaratively."""

__version__ = "0.9.0"
