"""The plan: its model, how it is built from the rules, fingerprints, saved plans, results."""
