"""TimerPolicy: timers that must exist and timers that must not.

Present timers are rendered from ccci's templates; a unit file that means the same as the
rendered one (``daily`` = ``*-*-* 00:00:00``) is left alone. Absent timers are stopped,
disabled and masked — unless they come from a read-only place (NixOS's Nix store), where
the plan gives the manual action instead.
"""

from __future__ import annotations

import posixpath

from ccci.errors import Location
from ccci.facts.model import Unit
from ccci.facts.systemd import usable as systemd_usable
from ccci.plan.address import AddressKind, addr
from ccci.plan.model import Action, Change, Manual, Noop, Operation, Work
from ccci.policy.model import TimerPolicy, TimerSpec
from ccci.quantities import format_time
from ccci.rules import Context, RuleOutput
from ccci.systemd.units import MANAGED_HEADER, same_meaning
from ccci.systemd.values import PROTECTED_UNITS

# What NixOS operators set instead of editing units the Nix store owns.
NIXOS_OPTIONS = {
    "docker-prune.timer": "virtualisation.docker.autoPrune.enable = lib.mkForce false;",
}


def _read_only(path: str) -> bool:
    return path.startswith("/nix/store/")


def _nixos_how(unit: str) -> str:
    option = NIXOS_OPTIONS.get(unit)
    if option:
        return f"set `{option}` in the NixOS configuration and run nixos-rebuild switch"
    return f"remove {unit} from the NixOS configuration and run nixos-rebuild switch"


def _ours(first_line: str) -> bool:
    return first_line.startswith(MANAGED_HEADER)


def _not_ours(policy: TimerPolicy, spec: TimerSpec, ctx: Context) -> str | None:
    """Why a unit of this timer belongs to someone else, or None. ccci writes over only
    what it wrote: a same-named unit elsewhere (``/usr/lib/systemd/system/docker.service``)
    would be shadowed by a file in the unit directory, and a mask is someone's decision."""
    for filename in spec.files:
        unit = ctx.facts.unit(filename)
        in_dir = ctx.facts.unit_file(posixpath.join(policy.unit_dir, filename))
        if unit is not None and unit.masked:
            return f"{filename} is masked"
        # A loaded unit's fragment is its file (a transient one's too, under /run).
        if unit is not None and unit.fragment_path and not _ours(unit.fragment_head):
            return f"{filename} exists at {unit.fragment_path} and ccci did not write it"
        head = in_dir.content.partition("\n")[0] if in_dir is not None else ""
        if in_dir is not None and in_dir.exists and not _ours(head):
            return f"{filename} exists at {in_dir.path} and ccci did not write it"
    return None


def _present(policy: TimerPolicy, spec: TimerSpec, ctx: Context) -> RuleOutput:
    facts, name = ctx.facts, policy.meta.name
    # Where ccci cannot write (NixOS), nothing can be shadowed: the read-only path below
    # says what to declare instead. Everywhere else, only ccci's own units are written.
    in_dir = [facts.unit_file(posixpath.join(policy.unit_dir, f)) for f in spec.files]
    writable = all(u is None or (u.dir_writable and not _read_only(u.link)) for u in in_dir)
    foreign = _not_ours(policy, spec, ctx) if writable else None
    if foreign:
        yield Manual(
            addr(AddressKind.TIMER, spec.timer_name),
            spec.timer_name,
            f"{foreign} (no '{MANAGED_HEADER}' header): ccci does not write over it",
            "give the timer another name in the policy, or remove that unit if ccci should own it",
            name,
            spec.source,
        )
        return
    files_change = False
    read_only = False
    for filename, content in spec.files.items():
        path = posixpath.join(policy.unit_dir, filename)
        address = addr(AddressKind.UNIT, filename)
        current = facts.unit_file(path)
        if current is None:
            yield Noop(address, path, "unit file not gathered", name, spec.source)
            continue
        after = {"path": path, "content": content}
        matches = current.exists and same_meaning(current.content, content)
        if not current.dir_writable or _read_only(current.link):
            read_only = True
            if matches:
                yield Noop(address, path, "matches the policy (read-only)", name, spec.source)
                continue
            # Only a file that would need writing is work for an operator: once it is
            # declared as told, the plan is clean again.
            yield Manual(
                address,
                path,
                f"{policy.unit_dir} is read-only (a NixOS system?)",
                "declare the timer in the NixOS configuration: "
                "ccci systemd install --format nix prints the module",
                name,
                spec.source,
            )
            return
        if not current.exists:
            files_change = True
            write = Work(Operation.WRITE_UNIT, path=path, content=content)
            yield Change(
                address, Action.CREATE, path, "missing", name, spec.source, after=after, work=write
            )
        elif not same_meaning(current.content, content):
            files_change = True
            yield Change(
                address,
                Action.UPDATE,
                path,
                "differs from the policy",
                name,
                spec.source,
                before={"path": path, "content": current.content},
                after=after,
                work=Work(Operation.WRITE_UNIT, path=path, content=content),
            )
        else:
            yield Noop(address, path, "matches the policy", name, spec.source)
    timer = facts.unit(spec.timer_name)
    address = addr(AddressKind.TIMER, spec.timer_name)
    healthy = (
        timer is not None and timer.unit_file_state == "enabled" and timer.active_state == "active"
    )
    if read_only and not healthy:
        yield Manual(
            address,
            spec.timer_name,
            "declared but not enabled and active, in a read-only unit directory",
            "enable it in the NixOS configuration (wantedBy timers.target)",
            name,
            spec.source,
        )
        return
    if files_change:
        why = "unit files change: reload systemd, enable and restart the timer"
    elif timer is None or not timer.exists:
        why = "not loaded: reload systemd, enable and start the timer"
    elif timer.unit_file_state != "enabled" or timer.active_state != "active":
        state = f"{timer.unit_file_state or 'unknown'} and {timer.active_state or 'unknown'}"
        why = f"{state}: enable and start it"
    else:
        when = f", next run {format_time(timer.next_elapse)}" if timer.next_elapse else ""
        yield Noop(address, spec.timer_name, f"enabled and active{when}", name, spec.source)
        return
    yield Change(
        address,
        Action.UPDATE,
        spec.timer_name,
        why,
        name,
        spec.source,
        before=_state(timer),
        after={"unit_file_state": "enabled", "active_state": "active"},
        work=Work(Operation.START_TIMER),
    )


def _state(unit: Unit | None) -> dict[str, str]:
    if unit is None:
        return {"load_state": "unknown"}
    return {
        "load_state": unit.load_state,
        "unit_file_state": unit.unit_file_state,
        "active_state": unit.active_state,
        "fragment_path": unit.fragment_path,
    }


def _seen(unit: Unit) -> str:
    return f"present ({unit.unit_file_state}, {unit.active_state})"


def _absent(policy: TimerPolicy, unit_name: str, ctx: Context, source: Location) -> RuleOutput:
    facts, name = ctx.facts, policy.meta.name
    address = addr(AddressKind.TIMER, unit_name)
    if not unit_name.endswith(".timer") or unit_name in PROTECTED_UNITS:
        # The loader refuses these; a policy built some other way still masks no service.
        yield Noop(address, unit_name, "not a timer: absent masks timers only", name, source)
        return
    unit = facts.unit(unit_name)
    if unit is None:
        yield Noop(address, unit_name, "state unknown (systemd was not asked)", name, source)
        return
    if not unit.exists:
        yield Noop(address, unit_name, "does not exist", name, source)
        return
    if unit.masked and unit.active_state != "active":
        yield Noop(address, unit_name, "masked", name, source)
        return
    origin = unit.fragment_path or "an unknown place"
    in_dir = facts.unit_file(posixpath.join(policy.unit_dir, unit_name))
    if _read_only(unit.fragment_path) or (in_dir is not None and not in_dir.dir_writable):
        yield Manual(
            address,
            unit_name,
            f"{_seen(unit)} from {origin}, which ccci cannot change",
            _nixos_how(unit_name),
            name,
            source,
        )
        return
    # A unit file of the same name in the unit directory would block the mask link.
    own_file = posixpath.join(policy.unit_dir, unit_name)
    blocking = own_file if unit.fragment_path == own_file else ""
    yield Change(
        address,
        Action.DELETE,
        unit_name,
        f"{_seen(unit)} from {origin}; the policy says absent",
        name,
        source,
        before=_state(unit),
        after={"load_state": "masked"},
        work=Work(Operation.MASK_TIMER, path=blocking),
    )


def plan_timers(policy: TimerPolicy, ctx: Context) -> RuleOutput:
    """The TimerPolicy rule: write and start present timers, mask absent ones; where systemd is not
    usable, one policy-level noop says so and nothing is planned."""
    state = ctx.facts.systemd
    if state and not systemd_usable(state):
        # Without a running systemd, units can be neither read nor started: do nothing.
        name = policy.meta.name
        why = f"systemd is {state}; timers are not managed here"
        yield Noop(addr(AddressKind.POLICY, name), name, why, name, policy.meta.source)
        return
    for spec in policy.present:
        yield from _present(policy, spec, ctx)
    for unit_name, source in policy.absent:
        yield from _absent(policy, unit_name, ctx, source)
