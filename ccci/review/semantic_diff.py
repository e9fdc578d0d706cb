"""``ccci policy diff``: what each change to the policies and the inventory *means*, per
policy, classified safer / neutral / riskier with the reason.

Both sides are loaded as reconcile loads them, host by host, and compared as built
policies. A meaning that holds on several hosts is said once, with the hosts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ccci.errors import Location
from ccci.policy.model import Policy
from ccci.render.redact import CHANGED_MASK, shown_var
from ccci.review import meanings
from ccci.review.meanings.base import Meaning, Risk, worst
from ccci.review.sides import PolicyKey, PolicySet

INVENTORY = "inventory"


@dataclass(frozen=True)
class PolicyChange:
    """One meaning of a change to one policy (or the inventory), and where it holds.

    ``everywhere``: it holds on every host the policy is on, on either side, so there is
    no need to list them.
    """

    kind: str
    name: str
    meaning: Meaning
    hosts: tuple[str, ...]
    everywhere: bool
    source: Location | None = None

    @property
    def subject(self) -> str:
        """``kind name`` (or ``inventory``): the heading meanings are grouped under."""
        return f"{self.kind} {self.name}" if self.name else self.kind


@dataclass(frozen=True)
class SemanticDiff:
    """Every meaning between two sides (``base``, ``head`` name them), each with the hosts it holds
    on."""

    base: str
    head: str
    changes: tuple[PolicyChange, ...]

    def is_empty(self) -> bool:
        """The two sides do the same on every host, whatever changed in form."""
        return not self.changes

    def counts(self) -> dict[Risk, int]:
        """Meanings per risk, every risk present (zero when none)."""
        counter = Counter(c.meaning.risk for c in self.changes)
        return {r: counter.get(r, 0) for r in Risk}

    def risk(self) -> Risk | None:
        """The worst risk of the whole diff, or None when nothing changed in meaning."""
        return worst([c.meaning.risk for c in self.changes])

    def risk_for(self, host: str) -> Risk | None:
        """The worst risk among the changes that reach ``host``."""
        return worst([c.meaning.risk for c in self.changes if host in c.hosts])


def _hosts(base: PolicySet, head: PolicySet) -> list[str]:
    names = list(head.inventory.hosts)
    return names + [h for h in base.inventory.hosts if h not in names]


def _keys(base: PolicySet, head: PolicySet, hosts: list[str]) -> list[PolicyKey]:
    keys: dict[PolicyKey, None] = {}
    for side in (head, base):
        for host in hosts:
            keys.update(dict.fromkeys(side.by_host.get(host, {})))
    return list(keys)


def _moved(policy: Policy, pattern: tuple[str, str], gained: bool) -> Meaning:
    """A policy that exists elsewhere now reaches (or leaves) some hosts."""
    was, now = pattern
    hosts = f"hosts: {was!r} → {now!r}" if was != now else f"hosts: {now!r}"
    if gained:
        base = meanings.added(policy)
        return Meaning("hosts", f"now also applies to these hosts ({hosts})", base.risk, base.why)
    gone = meanings.removed(policy)
    return Meaning("hosts", f"no longer applies to these hosts ({hosts})", gone.risk, gone.why)


def _policy(
    key: PolicyKey, base: PolicySet, head: PolicySet, hosts: list[str]
) -> list[PolicyChange]:
    before = {h: p for h in hosts if (p := base.get(h, key)) is not None}
    after = {h: p for h in hosts if (p := head.get(h, key)) is not None}
    pattern = (
        next(iter(before.values())).meta.hosts if before else "",
        next(iter(after.values())).meta.hosts if after else "",
    )
    found: dict[Meaning, list[str]] = {}
    for host in hosts:
        old, new = before.get(host), after.get(host)
        if old is None and new is not None:
            items = [_moved(new, pattern, True) if before else meanings.added(new)]
        elif new is None and old is not None:
            items = [_moved(old, pattern, False) if after else meanings.removed(old)]
        elif old is not None and new is not None:
            items = meanings.changed(old, new)
        else:
            continue
        for item in items:
            found.setdefault(item, []).append(host)
    scope = set(before) | set(after)
    source = next(iter(after.values()), None) or next(iter(before.values()), None)
    return [
        PolicyChange(
            key[0],
            key[1],
            meaning,
            tuple(where),
            set(where) >= scope,
            source.meta.source if source else None,
        )
        for meaning, where in found.items()
    ]


def _inventory(base: PolicySet, head: PolicySet) -> list[PolicyChange]:
    old, new = base.inventory.hosts, head.inventory.hosts
    found: dict[Meaning, list[str]] = {}
    for name in new:
        if name not in old:
            found.setdefault(
                Meaning(
                    "hosts",
                    f"host {name} added",
                    Risk.NEUTRAL,
                    "ccci manages it with the policies that target it",
                ),
                [],
            ).append(name)
    for name in old:
        if name not in new:
            found.setdefault(
                Meaning("hosts", f"host {name} removed", Risk.NEUTRAL, "ccci no longer manages it"),
                [],
            ).append(name)
    for name in new:
        if name not in old:
            continue
        a, b = old[name].vars, new[name].vars
        for var in sorted(set(a) | set(b)):
            if var == "inventory_hostname" or a.get(var) == b.get(var):
                continue
            shown_a = shown_var(var, a[var]) if var in a else "(unset)"
            shown_b = shown_var(var, b[var]) if var in b else "(unset)"
            if shown_a == shown_b:  # both masked: say that it changed, never what to
                shown_b = CHANGED_MASK
            meaning = Meaning(
                f"vars.{var}",
                f"var {var} {shown_a} → {shown_b}",
                Risk.NEUTRAL,
                "the policies that use it change with it (see above)",
            )
            found.setdefault(meaning, []).append(name)
    common = set(old) & set(new)
    # "host x added" names its host; a var change holds everywhere when every host kept
    # in the inventory sees it.
    return [
        PolicyChange(INVENTORY, "", m, tuple(h), m.field == "hosts" or set(h) >= common)
        for m, h in found.items()
    ]


def diff(base: PolicySet, head: PolicySet) -> SemanticDiff:
    """Compare two sides policy by policy and host by host, then the inventory; a meaning that holds
    on several hosts is one change listing them."""
    hosts = _hosts(base, head)
    changes: list[PolicyChange] = []
    for key in _keys(base, head, hosts):
        changes += _policy(key, base, head, hosts)
    changes += _inventory(base, head)
    return SemanticDiff(base.label, head.label, tuple(changes))
