"""Private Docker engine test harness for ccci.

Runs one dockerd (plus its managed containerd) under a state dir outside the
repo, with a loopback-only single-node swarm, so tests exercise a real engine
without touching the host's /var/run/docker.sock. Stdlib only: it runs before
any virtualenv exists.
"""

from harness.engine import Engine, EngineError, engine_paths, ensure_engine, stop_engine

__all__ = ["Engine", "EngineError", "engine_paths", "ensure_engine", "stop_engine"]
