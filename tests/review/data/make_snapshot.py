"""Write data/snapshot.json: the recorded facts of cc-ci that the impact tests plan.

Run from the repository root when the facts model changes:
``.venv/bin/python tests/review/data/make_snapshot.py``. The facts are those of
``review_helpers.host_facts`` with the unit files the base policies render.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from review_helpers import SNAPSHOT, base_timer_units, host_facts

from ccci.facts.snapshot import snapshot_json

if __name__ == "__main__":
    SNAPSHOT.write_text(snapshot_json([host_facts("cc-ci", units=base_timer_units())]) + "\n")
    print(f"wrote {SNAPSHOT}")
