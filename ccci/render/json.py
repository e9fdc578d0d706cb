"""Machine-readable plan: the saved-plan format plus a summary, pure JSON on stdout."""

from __future__ import annotations

import json
from typing import Any

from ccci.plan.model import Action, Plan
from ccci.serde import to_jsonable


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as JSON; ``ccci apply`` accepts this same document as a saved plan."""
    document: dict[str, Any] = to_jsonable(plan)
    counts = plan.counts()
    document["summary"] = {
        "add": counts[Action.CREATE],
        "change": counts[Action.UPDATE],
        "remove": plan.to_remove(),
        "bytes_freed": plan.bytes_freed(),
        "manual": plan.manual_count(),
        "empty": plan.is_empty(),
    }
    return document


def render_plan(plan: Plan) -> str:
    """The plan with its summary, key-sorted: a saved plan ``ccci apply`` accepts as it is."""
    return json.dumps(plan_document(plan), indent=2, sort_keys=True)
