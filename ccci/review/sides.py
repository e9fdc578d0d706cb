"""Load one side of a diff as reconcile would: every inventory host with its validated,
finalized policies, keyed by kind and name."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ccci.config import inventory as inventory_mod
from ccci.config.inventory import Inventory
from ccci.errors import CcciError, InputError
from ccci.policy.load import load_for_hosts, read
from ccci.policy.model import Policy
from ccci.review.gitrev import Tree

PolicyKey = tuple[str, str]


@dataclass(frozen=True)
class PolicySet:
    """One version of the policies and inventory, host by host."""

    label: str
    inventory: Inventory
    by_host: dict[str, dict[PolicyKey, Policy]]

    def policies(self, host: str) -> tuple[Policy, ...]:
        """The policies that reach ``host`` on this side (none for a host this side does not
        know)."""
        return tuple(self.by_host.get(host, {}).values())

    def get(self, host: str, key: PolicyKey) -> Policy | None:
        """One policy by (kind, name) on ``host``, or None when this side has none there."""
        return self.by_host.get(host, {}).get(key)


def load_side(
    tree: Tree, policies: Sequence[str], inventory: str, allow_empty: bool = False
) -> PolicySet:
    """Load a side from its folder; an error names the side (``origin/main:policies/…``).

    A side without any policy document is refused: comparing against nothing says "no
    change in meaning" or "everything added" about a side that was never read (a wrong
    ``-p``, a wrong revision). ``allow_empty`` accepts it, for the PR that adds the first
    policies. A side without the inventory manages ``localhost``, as reconcile does.
    """
    with contextlib.chdir(tree.root):
        try:
            inv = inventory_mod.load(Path(inventory))
            paths = [Path(p) for p in policies if Path(p).exists()]
            if not allow_empty and not (paths and read(paths)):
                raise CcciError(
                    f"{tree.label}: no policy documents in {', '.join(policies)} "
                    "(pass --allow-empty to compare against an empty policy set)"
                )
            loaded = load_for_hosts(paths, inv, list(inv.hosts.values())) if paths else []
        except InputError as exc:
            where = replace(exc.location, file=tree.display(exc.location.file))
            raise InputError(where, exc.message) from None
    by_host = {hp.host.name: {(p.meta.kind, p.meta.name): p for p in hp.policies} for hp in loaded}
    return PolicySet(tree.label, inv, by_host)
