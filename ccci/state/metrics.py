"""Prometheus textfile metrics of the last apply (node_exporter's textfile collector).

Written atomically (temp file, then rename), so the collector never reads half a file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from ccci.facts.model import Facts, GapCause
from ccci.plan.model import HostPlan
from ccci.plan.results import HostReport, Status
from ccci.rules.convergence import unsettled
from ccci.rules.gates import stuck_after_of
from ccci.state.atomic import write_atomic

_HELP = {
    "ccci_last_run_timestamp_seconds": "When the last ccci apply finished (unix time).",
    "ccci_last_run_success": "1 when no change of the last apply failed.",
    "ccci_converged": "1 when the host matched policy after the last apply.",
    "ccci_changes": "Changes of the last apply by object kind and outcome.",
    "ccci_bytes_reclaimed": "Bytes the last apply freed (engine figures, else estimates).",
    "ccci_disk_usage_ratio": "Used share of the filesystems the policies measure.",
    "ccci_gates_closed": "Policy gates that were closed when the last apply planned.",
    "ccci_drift": "What still differs from policy after the last apply.",
    "ccci_service_stuck_seconds": (
        "Services still converging past stuck_after, by how long since their spec last "
        "changed, with the task error."
    ),
    "ccci_facts_missing": "Fact kinds the last apply could not gather, and why (1 each).",
}


def _label(value: str) -> str:
    """Escape a label value as the text format asks: backslash, quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(
    reports: Iterable[HostReport],
    plans: dict[str, HostPlan],
    facts: dict[str, Facts],
    finished: datetime,
) -> str:
    """The node_exporter textfile of one apply, every metric with HELP and TYPE even when no host
    has a sample; ``finished`` is the apply's end, the caller's clock (metrics do not read one)."""
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    for report in reports:
        host = f'host="{_label(report.host)}"'
        samples["ccci_last_run_timestamp_seconds"].append(f"{{{host}}} {finished.timestamp():.3f}")
        ok = int(report.count(Status.FAILED) == 0)
        samples["ccci_last_run_success"].append(f"{{{host}}} {ok}")
        samples["ccci_converged"].append(f"{{{host}}} {int(report.converged)}")
        counts = Counter((r.change.kind, r.status.value) for r in report.results)
        for (kind, outcome), n in sorted(counts.items()):
            samples["ccci_changes"].append(f'{{{host},kind="{kind}",outcome="{outcome}"}} {n}')
        samples["ccci_bytes_reclaimed"].append(f"{{{host}}} {report.bytes_freed}")
        for disk in facts[report.host].disks if report.host in facts else ():
            samples["ccci_disk_usage_ratio"].append(
                f'{{{host},path="{_label(disk.path)}"}} {disk.ratio:.4f}'
            )
        plan = plans.get(report.host)
        closed = len(plan.closed_gates()) if plan else 0
        samples["ccci_gates_closed"].append(f"{{{host}}} {closed}")
        samples["ccci_drift"].append(f"{{{host}}} {len(report.remaining)}")
        seen = facts.get(report.host)
        if seen is not None:
            samples["ccci_service_stuck_seconds"] += _stuck(host, seen, plan, finished)
            samples["ccci_facts_missing"] += [
                f'{{{host},kind="{_label(g.kind)}",cause="{_label(g.cause.value)}"}} 1'
                for g in seen.gaps
                if g.cause is not GapCause.NOT_ASKED
            ]
    lines: list[str] = []
    for name, values in samples.items():
        lines += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge"]
        lines += [f"{name}{value}" for value in values]
    return "\n".join(lines) + "\n"


def _stuck(host: str, facts: Facts, plan: HostPlan | None, now: datetime) -> list[str]:
    """One sample per stuck service: a dashboard shows which deploy hangs and why."""
    gates = [g.gate for g in plan.gates] if plan else []
    found = unsettled(facts, now, stuck_after_of(gates))
    return [
        f'{{{host},service="{_label(u.service.name)}",stack="{_label(u.service.stack)}",'
        f'error="{_label(u.error or u.why)}"}} {(now - u.since).total_seconds():.0f}'
        for u in found
        if u.stuck
    ]


def write(path: Path, text: str) -> None:
    """Atomically, so node_exporter's collector never reads half a file."""
    write_atomic(path, text)
