"""ccci: keep a Docker Swarm CI host healthy, declaratively."""

__version__ = "0.8.1"
