"""OrphanStackPolicy: which stacks count as killed runs, when, and what of them goes."""

from __future__ import annotations

from ccci.policy.model import OrphanStackPolicy
from ccci.review import regexlang
from ccci.review.meanings.base import Meaning, Risk, dur, pattern_change

_REAP_WHY = {
    "volumes": "volumes hold data; docker stack rm never removes them",
    "env_file": "abra's env file for the app is deleted",
}


def _run_apps(old: OrphanStackPolicy, new: OrphanStackPolicy) -> list[Meaning]:
    field = "spec.run_apps"
    if old.run_apps == new.run_apps:
        if old.run_apps_selector != new.run_apps_selector:
            return [
                Meaning(
                    field,
                    f"run_apps selector {old.run_apps_selector or '(inline)'} → "
                    f"{new.run_apps_selector or '(inline)'} (the same pattern)",
                    Risk.NEUTRAL,
                    "the same stacks are run-apps",
                )
            ]
        return []
    text, comparison = pattern_change(old.run_apps, new.run_apps)
    if comparison.same:
        risk, why = Risk.NEUTRAL, "the same stacks are run-apps"
    elif comparison.narrower:
        risk, why = Risk.SAFER, "killed runs it no longer matches are left behind"
    elif comparison.known:
        risk, why = Risk.RISKIER, "it may reap stacks that are not CI runs"
    else:
        risk, why = Risk.NEUTRAL, "review which stacks it reaps"
    return [Meaning(field, f"run_apps {text}", risk, why)]


def _orphan_after(old: OrphanStackPolicy, new: OrphanStackPolicy) -> list[Meaning]:
    if old.orphan_after == new.orphan_after:
        return []
    before, after = dur(old.orphan_after), dur(new.orphan_after)
    if new.orphan_after < old.orphan_after:
        return [
            Meaning(
                "spec.orphan_after",
                f"orphan_after {before} → {after} "
                f"(a run longer than {after} would be reaped while alive)",
                Risk.RISKIER,
                "it reaps younger stacks",
            )
        ]
    return [
        Meaning(
            "spec.orphan_after",
            f"orphan_after {before} → {after} (orphans stay up to {after} before they are reaped)",
            Risk.SAFER,
            "a long run is less likely to be reaped while alive",
        )
    ]


def _expires(old: OrphanStackPolicy, new: OrphanStackPolicy) -> list[Meaning]:
    a, b = old.expires_label, new.expires_label
    if a == b:
        return []
    field = "spec.expires_label"
    if not a:
        return [
            Meaning(
                field,
                f"expires_label {b} added (a run past its own deadline is reaped however young)",
                Risk.RISKIER,
                "a deadline label can reap a stack before orphan_after",
            )
        ]
    if not b:
        return [
            Meaning(
                field,
                f"expires_label {a} removed (deadlines are ignored; orphans wait orphan_after)",
                Risk.SAFER,
                "only age makes a stack an orphan",
            )
        ]
    return [
        Meaning(
            field,
            f"expires_label {a} → {b} (runs must stamp {b}; {a} no longer counts)",
            Risk.NEUTRAL,
            "the deadline is read from another label",
        )
    ]


def _keep(old: OrphanStackPolicy, new: OrphanStackPolicy) -> list[Meaning]:
    found = []
    for pattern in new.keep:
        if pattern in old.keep:
            continue
        unused = regexlang.overlap(new.run_apps, pattern).never
        found.append(
            Meaning(
                "spec.keep",
                f"keep {pattern!r} added "
                + ("(it matches no run-app)" if unused else "(matching stacks are never reaped)"),
                Risk.NEUTRAL if unused else Risk.SAFER,
                "it protects nothing" if unused else "fewer stacks can be reaped",
            )
        )
    for pattern in old.keep:
        if pattern in new.keep:
            continue
        unused = regexlang.overlap(new.run_apps, pattern).never
        found.append(
            Meaning(
                "spec.keep",
                f"keep {pattern!r} removed "
                + (
                    "(it matched no run-app anyway)"
                    if unused
                    else "(matching stacks may be reaped)"
                ),
                Risk.NEUTRAL if unused else Risk.RISKIER,
                "nothing it protected is a run-app"
                if unused
                else "stacks it protected can now be reaped",
            )
        )
    return found


def _reap(old: OrphanStackPolicy, new: OrphanStackPolicy) -> list[Meaning]:
    found = []
    for kind in new.reap:
        if kind not in old.reap:
            found.append(
                Meaning(
                    "spec.reap",
                    f"now also reaps {kind.replace('_', ' ')}",
                    Risk.RISKIER,
                    _REAP_WHY.get(kind, "more of an orphan is removed"),
                )
            )
    for kind in old.reap:
        if kind not in new.reap:
            found.append(
                Meaning(
                    "spec.reap",
                    f"no longer reaps {kind.replace('_', ' ')} (they are left behind)",
                    Risk.SAFER,
                    "less is removed; leftovers pile up until removed by hand",
                )
            )
    return found


def _env_file(old: OrphanStackPolicy, new: OrphanStackPolicy) -> list[Meaning]:
    if old.env_file == new.env_file:
        return []
    return [
        Meaning(
            "spec.env_file",
            f"env_file {old.env_file or '(none)'} → {new.env_file or '(none)'}",
            Risk.NEUTRAL,
            "it deletes env files at another path: check it is abra's",
        )
    ]


def _abra(old: OrphanStackPolicy, new: OrphanStackPolicy) -> list[Meaning]:
    """Where env files are looked for (abra_dir, the host's abra_server) and how long a
    deadline ahead keeps a run-app."""
    found = []
    if old.env_file_glob != new.env_file_glob and old.env_file == new.env_file:
        found.append(
            Meaning(
                "spec.abra_dir",
                f"env files {old.env_file_glob or '(none)'} → {new.env_file_glob or '(none)'}",
                Risk.NEUTRAL,
                "it reads and deletes env files in another folder: check it is abra's",
            )
        )
    if old.max_lifetime != new.max_lifetime:
        longer = new.max_lifetime > old.max_lifetime
        found.append(
            Meaning(
                "spec.max_lifetime",
                f"max_lifetime {dur(old.max_lifetime)} → {dur(new.max_lifetime)}",
                Risk.NEUTRAL,
                "a run's own deadline can keep its stack longer"
                if longer
                else "a run's own deadline keeps its stack for less time",
            )
        )
    return found


def _wait(old: OrphanStackPolicy, new: OrphanStackPolicy) -> list[Meaning]:
    if old.wait == new.wait:
        return []
    sooner = new.wait < old.wait
    return [
        Meaning(
            "spec.wait",
            f"wait {dur(old.wait)} → {dur(new.wait)}",
            Risk.NEUTRAL,
            "it gives up sooner on lingering containers and networks (the next run finishes)"
            if sooner
            else "it waits longer for containers and networks to go before failing",
        )
    ]


def changed(old: OrphanStackPolicy, new: OrphanStackPolicy) -> list[Meaning]:
    """Field by field: which stacks are run-apps, when they are orphaned, what keeps them, what is
    reaped, the env files, abra's folder and the reap's wait."""
    found = _run_apps(old, new) + _orphan_after(old, new) + _expires(old, new)
    found += _keep(old, new) + _reap(old, new) + _env_file(old, new) + _abra(old, new)
    return found + _wait(old, new)


def _summary(policy: OrphanStackPolicy) -> str:
    return (
        f"reaps {', '.join(k.replace('_', ' ') for k in policy.reap)} of stacks matching "
        f"{policy.run_apps!r} after {dur(policy.orphan_after)}"
    )


def added(policy: OrphanStackPolicy) -> Meaning:
    """Riskier: the policy removes whole stacks."""
    return Meaning(
        "",
        f"policy {policy.meta.name} added: {_summary(policy)}",
        Risk.RISKIER,
        "it removes whole stacks from the host",
    )


def removed(policy: OrphanStackPolicy) -> Meaning:
    """Safer: killed runs' stacks then stay until removed by hand."""
    return Meaning(
        "",
        f"policy {policy.meta.name} removed: it {_summary(policy)}",
        Risk.SAFER,
        "killed runs' stacks stay until removed by hand",
    )
