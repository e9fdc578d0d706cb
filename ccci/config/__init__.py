"""Where a run's inputs come from: the inventory and YAML read with the place of every value."""
