"""Facts: what the host looks like, gathered once per run into a typed, frozen snapshot."""
