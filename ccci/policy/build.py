"""Turn validated policy documents into typed policy objects, one builder per kind."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ccci.config.yamlsrc import Document, PathKey
from ccci.errors import InputError
from ccci.policy.model import (
    DEFAULT_CLIENT_CONFIG,
    DEFAULT_MAX_LIFETIME,
    DEFAULT_UNIT_DIR,
    REAP_ORDER,
    DaemonPolicy,
    Eviction,
    Gate,
    GateKind,
    ImageRetention,
    OrphanStackPolicy,
    Policy,
    PolicyMeta,
    PrunePolicy,
    StackSelector,
    TimerPolicy,
    TimerSpec,
)
from ccci.quantities import parse_api_version, parse_duration, parse_percent


def _meta(doc: Document) -> PolicyMeta:
    return PolicyMeta(
        name=doc.data["metadata"]["name"],
        kind=doc.data["kind"],
        hosts=doc.data.get("hosts", "all"),
        source=doc.location(("metadata", "name")),
    )


def _parse(doc: Document, path: PathKey, parser: Callable[[str], Any]) -> Any:
    """Run a unit parser; its ValueError becomes an error at the value's line."""
    value: Any = doc.data
    for part in path:
        value = value[part]
    try:
        return parser(value)
    except ValueError as exc:
        raise InputError(doc.location(path), str(exc)) from None


MIN_STUCK_AFTER = timedelta(minutes=1)


def _at_least(doc: Document, path: PathKey) -> float:
    """A disk threshold; 0% would hold at any usage: a gate that is not one."""
    ratio = float(_parse(doc, path, parse_percent))
    if ratio <= 0:
        raise InputError(
            doc.location(path), "must be above 0% (leave the disk_usage gate out instead)"
        )
    return ratio


def _converging_gate(doc: Document, value: Any) -> Gate:
    """``true`` (the default ``stuck_after``) or ``{stuck_after: 30m}``."""
    where: PathKey = ("spec", "gates", "no_converging_services")
    if not isinstance(value, dict) or "stuck_after" not in value:
        return Gate(GateKind.NO_CONVERGING_SERVICES, doc.location(where))
    stuck_after = _parse(doc, (*where, "stuck_after"), parse_duration)
    if stuck_after < MIN_STUCK_AFTER:
        # Shorter than any pull: every deploy in flight would count as stuck.
        raise InputError(doc.location((*where, "stuck_after")), "must be at least 1m")
    return Gate(GateKind.NO_CONVERGING_SERVICES, doc.location(where), stuck_after=stuck_after)


def build_prune(doc: Document) -> PrunePolicy:
    """A PrunePolicy; refused without ``gates`` (a prune at any disk usage, mid-deploy, must be
    asked for with ``gates: {}``) or with an age of 0s or less."""
    spec = doc.data["spec"]
    if "gates" not in spec:
        # A prune without gates runs at any disk usage, mid-deploy: it must be asked for.
        raise InputError(
            doc.location(("spec",)),
            "missing 'gates' (write 'gates: {}' to prune unconditionally)",
        )
    gates_spec = spec.get("gates") or {}
    gates: list[Gate] = []
    if "disk_usage" in gates_spec:
        where: PathKey = ("spec", "gates", "disk_usage")
        gates.append(
            Gate(
                GateKind.DISK_USAGE,
                doc.location(where),
                path=gates_spec["disk_usage"]["path"],
                at_least=_at_least(doc, (*where, "at_least")),
            )
        )
    if "no_live_stacks" in gates_spec:
        where = ("spec", "gates", "no_live_stacks")
        stacks_spec = gates_spec["no_live_stacks"]
        # Point at the selector when one is named: that is the line an unknown name is on.
        named = (*where, "selector") if "selector" in stacks_spec else where
        gates.append(
            Gate(
                GateKind.NO_LIVE_STACKS,
                doc.location(named),
                match=stacks_spec.get("match", ""),
                selector=stacks_spec.get("selector", ""),
            )
        )
    if gates_spec.get("no_converging_services"):
        gates.append(_converging_gate(doc, gates_spec["no_converging_services"]))
    prune = spec["prune"]

    def older_than(selector: str) -> Any:
        if selector not in prune:
            return None
        where: PathKey = ("spec", "prune", selector, "older_than")
        age = _parse(doc, where, parse_duration)
        if age <= timedelta(0):
            # 0s selects what was made a moment ago: a build's layers, a job's container.
            raise InputError(doc.location(where), "must be longer than 0s")
        return age

    return PrunePolicy(
        meta=_meta(doc),
        gates=tuple(gates),
        dangling_images=older_than("dangling_images"),
        stopped_containers=older_than("stopped_containers"),
        dangling_build_cache=older_than("dangling_build_cache"),
        sources={s: doc.location(("spec", "prune", s)) for s in prune},
    )


def build_selector(doc: Document) -> StackSelector:
    """A shared stack pattern: it plans nothing itself, other policies name it as ``selector``."""
    return StackSelector(meta=_meta(doc), match=doc.data["spec"]["match"])


DEFAULT_REAP_WAIT = timedelta(seconds=60)
MIN_ORPHAN_AFTER = timedelta(minutes=1)
# abra keeps each app's env file here (``ABRA_DIR`` moves the first part).
DEFAULT_ENV_FILE = "{abra_dir}/servers/{server}/{domain}.env"


def default_abra_dir() -> str:
    """abra's default ``ABRA_DIR``: ``~/.abra`` of the user ccci runs as. The password
    database, not ``$HOME``: a system service may run without one."""
    import pwd

    try:
        home = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        home = os.path.expanduser("~")
    return f"{home.rstrip('/')}/.abra"


def _no_control(doc: Document, path: PathKey, value: str) -> None:
    """A path with a control character (a newline, an escape) is refused, not trimmed."""
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise InputError(doc.location(path), "must not hold control characters")


def _abra_dir(doc: Document, spec: dict[str, Any]) -> str:
    if "abra_dir" not in spec:
        return default_abra_dir()
    raw = str(spec["abra_dir"])
    _no_control(doc, ("spec", "abra_dir"), raw)
    if raw == "~" or raw.startswith("~/"):
        raw = default_abra_dir().removesuffix("/.abra") + raw[1:]
    if not raw.startswith("/") or "/../" in f"{raw}/" or "/./" in f"{raw}/":
        raise InputError(
            doc.location(("spec", "abra_dir")),
            "must be an absolute path (or start with ~/) without '.' or '..' folders",
        )
    return raw.rstrip("/") or "/"


def _env_file(doc: Document, spec: dict[str, Any]) -> str:
    """The env file template; checked so that every path it matches stays in its folder
    and its file name says which app it is."""
    if "env_file" not in spec:
        return DEFAULT_ENV_FILE
    template = str(spec["env_file"])
    _no_control(doc, ("spec", "env_file"), template)
    where = doc.location(("spec", "env_file"))
    folders, _, name = template.rpartition("/")
    if "{domain}" not in name or template.count("{domain}") != 1:
        raise InputError(where, "must name {domain} once, in the file name")
    if any(ch in template for ch in "*?[]"):
        raise InputError(where, "must not hold glob characters (* ? [ ])")
    if any(part in (".", "..") for part in folders.split("/")[1:]):
        raise InputError(where, "must not hold '.' or '..' folders")
    return template


def build_orphans(doc: Document) -> OrphanStackPolicy:
    """An OrphanStackPolicy; refused when ``orphan_after`` is under 1m (it would reap runs still
    going) or ``max_lifetime`` is shorter than it, and env files are read only by a policy that
    reaps them or says where they are."""
    spec = doc.data["spec"]
    reap = set(spec["reap"])
    # Env files are read when the policy reaps them or names where they are; otherwise a
    # policy that never mentions abra's folder does not look into it.
    reads_env = "env_file" in reap or "env_file" in spec or "abra_dir" in spec
    wait = _parse(doc, ("spec", "wait"), parse_duration) if "wait" in spec else DEFAULT_REAP_WAIT
    orphan_after = _parse(doc, ("spec", "orphan_after"), parse_duration)
    if orphan_after < MIN_ORPHAN_AFTER:
        # Shorter than any CI run: it would reap runs that are still going.
        raise InputError(doc.location(("spec", "orphan_after")), "must be at least 1m")
    if "max_lifetime" in spec:
        max_lifetime = _parse(doc, ("spec", "max_lifetime"), parse_duration)
        if max_lifetime < orphan_after:
            raise InputError(
                doc.location(("spec", "max_lifetime")),
                f"must be at least orphan_after ({spec['orphan_after']})",
            )
    else:
        max_lifetime = max(DEFAULT_MAX_LIFETIME, orphan_after)
    return OrphanStackPolicy(
        meta=_meta(doc),
        run_apps=spec["run_apps"].get("match", ""),
        run_apps_selector=spec["run_apps"].get("selector", ""),
        run_apps_source=doc.location(
            ("spec", "run_apps", "selector")
            if "selector" in spec["run_apps"]
            else ("spec", "run_apps")
        ),
        orphan_after=orphan_after,
        expires_label=spec.get("expires_label", ""),
        keep=tuple(spec.get("keep", ())),
        reap=tuple(kind for kind in REAP_ORDER if kind in reap),
        env_file=_env_file(doc, spec) if reads_env else "",
        wait=wait,
        abra_dir=_abra_dir(doc, spec) if reads_env else "",
        max_lifetime=max_lifetime,
    )


def build_daemon(doc: Document) -> DaemonPolicy:
    """A DaemonPolicy; the registry is brought to the one name a client config's auths are compared
    by (Docker Hub under any of its names), and a setting left out is not checked."""
    from ccci.facts.refs import registry_host  # its patterns compile on import: daemon only

    spec = doc.data["spec"]
    auth = spec.get("registry_auth") or {}
    version = spec.get("min_api_version")
    return DaemonPolicy(
        meta=_meta(doc),
        registry=registry_host(auth.get("registry", "")),
        registry_user=auth.get("user", ""),
        client_config=auth.get("config", DEFAULT_CLIENT_CONFIG),
        data_root=spec.get("data_root", ""),
        storage_driver=spec.get("storage_driver", ""),
        min_api_version=parse_api_version(version) if version else None,
    )


def timer_values(item: dict[str, Any], policy: str) -> dict[str, Any]:
    """Template values for one present timer, defaults filled in. Writable paths are a set:
    sorted, so the same set renders the same unit whoever lists it."""
    name = item["name"]
    return {
        "policy": policy,
        "name": name,
        "description": item.get("description") or f"{name} (managed by ccci)",
        "on_calendar": item["on_calendar"],
        "persistent": item.get("persistent", True),
        "randomized_delay": item.get("randomized_delay", ""),
        "exec": item["exec"],
        "success_exit_status": item.get("success_exit_status", ""),
        "after": item.get("after", ""),
        "hardening": item.get("hardening", False),
        "read_write_paths": sorted(set(item.get("read_write_paths", []))),
        "working_directory": item.get("working_directory", ""),
    }


def build_timers(doc: Document) -> TimerPolicy:
    """Every value is checked before anything is rendered: what reaches a unit file is one
    line that cannot end a field early nor start another (see ccci.systemd.values)."""
    from ccci.systemd.units import render_timer_units
    from ccci.systemd.values import (
        FieldError,
        check_absent_unit,
        check_path,
        check_text,
        check_timer,
    )

    spec = doc.data["spec"]
    # The name is written into each unit's header comment: one line there too.
    name = _parse(doc, ("metadata", "name"), check_text)
    if "unit_dir" in spec:
        _parse(doc, ("spec", "unit_dir"), check_path)
    present = []
    for i, item in enumerate(spec.get("present", [])):
        where: PathKey = ("spec", "present", i)
        try:
            check_timer(item)
        except FieldError as exc:
            raise InputError(doc.location((*where, *exc.field)), str(exc)) from None
        if "randomized_delay" in item:
            _parse(doc, (*where, "randomized_delay"), parse_duration)
        values = timer_values(item, name)
        units = render_timer_units(values)
        present.append(
            TimerSpec(
                name=item["name"],
                on_calendar=item["on_calendar"],
                source=doc.location((*where, "name")),
                timer_unit=units.timer,
                service_unit=units.service,
                runs_ccci=bool(item.get("runs_ccci", False)),
                values=values,
            )
        )
    absent = tuple(
        (_parse(doc, at, check_absent_unit), doc.location(at))
        for at in (("spec", "absent", i) for i in range(len(spec.get("absent", []))))
    )
    return TimerPolicy(
        meta=_meta(doc),
        unit_dir=spec.get("unit_dir", DEFAULT_UNIT_DIR),
        present=tuple(present),
        absent=absent,
    )


def build_retention(doc: Document) -> ImageRetention:
    """An ImageRetention; refused when ``down_to`` is not below the high watermark (eviction would
    flap) or a ``retain`` pattern or ``ensure_present`` reference could never name an image."""
    spec = doc.data["spec"]
    evict = None
    if "evict" in spec:
        where: PathKey = ("spec", "evict")
        high = _at_least(doc, (*where, "when", "disk_usage", "at_least"))
        low = _parse(doc, (*where, "down_to"), parse_percent)
        if low >= high:
            raise InputError(
                doc.location((*where, "down_to")),
                f"the low watermark {spec['evict']['down_to']} must be below the high one "
                f"{spec['evict']['when']['disk_usage']['at_least']}",
            )
        evict = Eviction(
            gate=Gate(
                GateKind.DISK_USAGE,
                doc.location((*where, "when", "disk_usage")),
                path=spec["evict"]["when"]["disk_usage"]["path"],
                at_least=high,
            ),
            down_to=low,
            unused_for=_parse(doc, (*where, "unused_for"), parse_duration),
            max_per_run=int(spec["evict"].get("max_per_run", 50)),
            source=doc.location(where),
        )
    _check_references(doc, spec)
    return ImageRetention(
        meta=_meta(doc),
        retain=tuple(spec.get("retain", ())),
        ensure_present=tuple(spec.get("ensure_present", ())),
        evict=evict,
        sources={
            **{
                f"retain:{p}": doc.location(("spec", "retain", i))
                for i, p in enumerate(spec.get("retain", ()))
            },
            **{
                f"ensure:{p}": doc.location(("spec", "ensure_present", i))
                for i, p in enumerate(spec.get("ensure_present", ()))
            },
        },
    )


def _check_references(doc: Document, spec: dict[str, Any]) -> None:
    """A retain pattern that cannot name an image, or an ``ensure_present`` entry that is
    not a pullable reference, would silently keep or warm nothing: refuse it here."""
    from ccci.facts.refs import InvalidReference, compile_pattern, is_image_id, parse_ref

    for i, pattern in enumerate(spec.get("retain", ())):
        try:
            compile_pattern(pattern)
        except InvalidReference as exc:
            raise InputError(doc.location(("spec", "retain", i)), str(exc)) from None
    for i, ref in enumerate(spec.get("ensure_present", ())):
        where = doc.location(("spec", "ensure_present", i))
        if is_image_id(ref):
            raise InputError(where, f"{ref!r} is an image id: ensure_present pulls a reference")
        try:
            parse_ref(ref)
        except InvalidReference as exc:
            raise InputError(where, str(exc)) from None


BUILDERS: dict[str, Callable[[Document], Policy]] = {
    "ImageRetention": build_retention,
    "TimerPolicy": build_timers,
    "DaemonPolicy": build_daemon,
    "StackSelector": build_selector,
    "OrphanStackPolicy": build_orphans,
    "PrunePolicy": build_prune,
}
