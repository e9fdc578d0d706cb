"""What every engine test's CLI wrapper shares: a workspace under ``root`` (inventory,
policies, state), the environment the real ``ccci`` runs in, and the journal it leaves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.engine import Engine


@dataclass
class CliWorkspace:
    """The CLI pointed at the private engine, with policies and state under ``root``."""

    engine: Engine
    root: Path

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yaml"

    @property
    def policies(self) -> Path:
        return self.root / "policies"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.jsonl"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "ccci.lock"

    def env(self) -> dict[str, str]:
        env = self.engine.env()  # DOCKER_HOST = the private engine, foreign docker env dropped
        # The test's own paths, never ones from the calling shell.
        for name in ("CCCI_STATE_DIR", "CCCI_INVENTORY", "CCCI_METRICS"):
            env.pop(name, None)
        env["NO_COLOR"] = "1"
        return env

    def journal(self) -> list[dict[str, Any]]:
        if not self.journal_path.exists():
            return []
        lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]
