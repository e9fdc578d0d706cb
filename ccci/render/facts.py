"""A short human summary of a host's facts (the full record is ``--output json``)."""

from __future__ import annotations

from ccci.facts.model import Facts
from ccci.quantities import format_bytes, format_percent
from ccci.rules.convergence import unsettled


def render_facts(facts: Facts) -> str:
    """A screenful for a person: counts, disks and gaps only; the full record, for planning offline,
    is ``--output json``."""
    daemon = facts.daemon
    stacks = facts.stacks()
    dangling = [i for i in facts.images if i.dangling]
    stopped = [c for c in facts.containers if not c.active]
    lines = [
        f"{facts.host}: Docker {daemon.server_version} (API {daemon.api_version}), "
        f"{daemon.storage_driver}, data-root {daemon.data_root}, swarm {daemon.swarm_state}",
    ]
    lines += [
        f"  disk {format_percent(d.ratio)} used on {d.path} "
        f"({format_bytes(d.used)} of {format_bytes(d.used + d.available)})"
        for d in facts.disks
    ]
    lines += [
        f"  images      {len(facts.images):>5}  ({len(dangling)} dangling, "
        f"{format_bytes(sum(i.size for i in facts.images))})",
        f"  containers  {len(facts.containers):>5}  ({len(stopped)} stopped)",
        f"  build cache {len(facts.build_cache):>5}  "
        f"({sum(1 for b in facts.build_cache if b.dangling)} dangling)",
        f"  services    {len(facts.services):>5}  ({_converging(facts)})",
        f"  stacks      {len(stacks):>5}  ({sum(1 for s in stacks if s.live)} live)",
        f"  volumes {len(facts.volumes)}, networks {len(facts.networks)}, "
        f"secrets {len(facts.secrets)}, configs {len(facts.configs)}",
    ]
    lines += [f"  not gathered: {gap}" for gap in facts.gaps]
    return "\n".join(lines)


def _converging(facts: Facts) -> str:
    """As of gathering, with the default stuck_after: the facts alone name no policy."""
    found = unsettled(facts, facts.gathered_at)
    stuck = sum(1 for u in found if u.stuck)
    return f"{len(found) - stuck} converging" + (f", {stuck} stuck" if stuck else "")
