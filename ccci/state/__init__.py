"""What ccci keeps between runs: the journal, last use, metrics, atomic writes."""
