"""The executor: the lock, the per-change re-checks, the stack reap."""
