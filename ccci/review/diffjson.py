"""``ccci policy diff --output json``: the meanings and the impact as data, for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ccci.quantities import format_time
from ccci.render.redact import mask_change_dict
from ccci.review.impact import HostImpact
from ccci.review.semantic_diff import SemanticDiff
from ccci.serde import to_jsonable

DIFF_FORMAT = 1


def _impact(diff: SemanticDiff, impact: HostImpact) -> dict[str, Any]:
    risk = diff.risk_for(impact.host)
    return {
        "host": impact.host,
        "now": format_time(impact.now),
        "unchanged": impact.is_unchanged(),
        "added": impact.count("added"),
        "changed": impact.count("changed"),
        "removed": impact.count("removed"),
        "bytes_delta": impact.bytes_delta(),
        "risk": risk.value if risk else None,
        "changes": [
            {
                "status": d.status,
                "address": d.address,
                "base": mask_change_dict(to_jsonable(d.base)),
                "head": mask_change_dict(to_jsonable(d.head)),
            }
            for d in impact.changes
        ],
        "gates": [
            {
                "policy": g.policy,
                "gate": g.gate,
                "base": None
                if g.base is None
                else {"open": g.base.open, "observed": g.base.observed},
                "head": None
                if g.head is None
                else {"open": g.head.open, "observed": g.head.observed},
            }
            for g in impact.gates
        ],
        "manual": [
            {"address": m.address, "base": to_jsonable(m.base), "head": to_jsonable(m.head)}
            for m in impact.manual
        ],
    }


def render_json(diff: SemanticDiff, impacts: Sequence[HostImpact] | None = None) -> str:
    """Meanings, their risks and, with ``impacts``, each host's plan difference as one versioned
    document; unit contents are masked as in the text."""
    risk = diff.risk()
    document: dict[str, Any] = {
        "format_version": DIFF_FORMAT,
        "base": diff.base,
        "head": diff.head,
        "risk": risk.value if risk else None,
        "changes": [
            {
                "kind": c.kind,
                "name": c.name,
                "field": c.meaning.field,
                "text": c.meaning.text,
                "risk": c.meaning.risk.value,
                "why": c.meaning.why,
                "hosts": list(c.hosts),
                "everywhere": c.everywhere,
                "source": None if c.source is None else f"{c.source.file}:{c.source.line}",
            }
            for c in diff.changes
        ],
        "summary": {r.value: n for r, n in diff.counts().items()},
    }
    if impacts is not None:
        document["impact"] = [_impact(diff, i) for i in impacts]
    return json.dumps(document, indent=2, sort_keys=True)
