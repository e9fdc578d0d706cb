"""Fleet plan time: ``ccci reconcile --plan`` over SSH against three hosts, beside one host's
own local plan.

Seeds each of the harness's three fleet test hosts (``python3 -m harness fleet start``: a
dockerd and an sshd per network namespace, one swarm) with N images and N containers
(default 500 each, in plan_scale's CI-host mix), then prints, in one run, the median wall
time of:

- the fleet plan from the root namespace over SSH, all three hosts, default ``--forks``;
- each host's LOCAL plan: ccci run inside that host's network namespace
  (``nsenter --net``) against its own engine socket with ``ansible_connection: local``;
  the slowest of the three is the floor a fleet plan is compared with;
- their ratio (target <= 1.5x: three hosts in parallel cost about one, plus SSH): issue
  15's figure, as the issue defines it;
- the three local plans run AT ONCE, started together, each in its namespace, and the
  slowest of them: the like-for-like floor, as the fleet plan's three hosts share the
  machine's CPUs alike; the fleet plan's ratio to it is SSH's own cost (both ratios are
  printed, labelled, on the last line);
- the fleet plan with ``--forks 1`` (the hosts one after another: the parallel gain);
- the slowest host alone over SSH (``--limit``): what SSH itself costs one host;
- the three local plans summed.

The three test hosts are namespaces of one machine: their engines, sshds and ccci share its
CPUs, so three hosts' work in parallel costs more than one host's, unlike on a real farm.
The at-once row and the last two tell SSH's own cost from that sharing. Every other
command runs alone. Figures are printed, never asserted: timings on a shared CI box are
advice, not a gate.
``--profile`` adds one in-process fleet plan under cProfile (main thread and the hosts'
threads), the same plan timed by phase, and the bare SSH costs (a connection, a command).

The fleet is shared with the fleet tests: the benchmark holds their lock
(tests/fleet/fleetkit.py) from seeding to cleanup, so no fleet test runs under it, and
removes what it seeded at the end (by label, nothing else), leaving the hosts as it found
them; ``--keep`` leaves the seed for the next run (which then only measures), ``--reset``
removes a kept seed and exits.

    .venv/bin/python benchmarks/fleet_scale.py [--n 500] [--repeat 3] [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # harness/ is not installed; it lives beside ccci/
sys.path.insert(0, str(REPO / "tests" / "fleet"))  # fleetkit: the fleet tests' lock

from benchkit import (  # noqa: E402
    PROFILE_TOP,
    EngineApi,
    Run,
    ccci_args,
    ccci_bin,
    ccci_env,
    copy_policies,
    measure,
    median,
    not_wrapper,
    plan_line,
    print_rows,
    print_timings,
    profiled,
    progress,
    run_cli_in_process,
    run_sequence,
    run_timed,
    time_calls,
    time_phases,
    top,
    verdict,
)
from fleetkit import LOCK_PATH, hold_fleet_lock  # noqa: E402
from plan_scale import Mix, Seeded, clear, ensure_seeded  # noqa: E402

from harness import engine as harness_engine  # noqa: E402
from harness import fleet as fleet_mod  # noqa: E402
from harness.fleet import Fleet, FleetNode  # noqa: E402

FLEET_TARGET = 1.5  # fleet plan <= 1.5x the slowest host's local plan (issue 15)
GROUP = "ci"  # the shipped policies' ``hosts:``


# ---- the fleet, locked and seeded -------------------------------------------------------


def locked_fleet() -> Fleet:
    """The running fleet, held for the life of this process under the fleet tests' lock
    (a fleet test resets every host to its base image; seeding beside one would be
    undone mid-run and would slow it)."""
    progress(f"waiting for the fleet test lock ({LOCK_PATH})")
    hold_fleet_lock()
    progress("starting or checking the fleet (python3 -m harness fleet start)")
    return fleet_mod.ensure_fleet()


@dataclass(frozen=True)
class Counts:
    images: int
    containers: int


def counts(node: FleetNode) -> Counts:
    api = EngineApi(node.engine.socket_path)
    return Counts(
        len(api.call("GET", "/images/json?all=1")), len(api.call("GET", "/containers/json?all=1"))
    )


def seed_all(fleet: Fleet, mix: Mix) -> dict[str, Seeded]:
    """plan_scale's idempotent seed on every host at once (each engine's work is its own;
    the hosts' engines share the 2 CPUs, so three at once is about as fast as it gets)."""

    def one(node: FleetNode) -> tuple[str, Seeded]:
        progress(f"{node.name}: seeding {mix.n} images and {mix.n} containers (if missing)")
        return node.name, ensure_seeded(node.engine, EngineApi(node.engine.socket_path), mix)

    with ThreadPoolExecutor(max_workers=len(fleet.nodes)) as pool:
        return dict(pool.map(one, fleet.nodes))


def clear_all(fleet: Fleet) -> list[tuple[str, int, int]]:
    """Remove only what this benchmark seeded (plan_scale's label) on every host."""
    return [(n.name, *clear(EngineApi(n.engine.socket_path))) for n in fleet.nodes]


# ---- the workspaces ---------------------------------------------------------------------


def _host_vars(node: FleetNode) -> dict[str, str]:
    """What a node's own inventory entry says beside its connection: its data-root, the
    gate and retention paths of the shipped policies."""
    return {"docker_host": node.engine.docker_host, "docker_data_root": node.engine.data_root}


def _write_inventory(root: Path, hosts: dict[str, dict[str, str]]) -> None:
    """The shipped policies' group, ``hosts`` in it (JSON is YAML)."""
    for sub in ("state", "policies", "abra"):
        (root / sub).mkdir()
    inventory = {
        "all": {
            "vars": {"abra_dir": str(root / "abra")},
            "children": {GROUP: {"hosts": hosts}},
        }
    }
    (root / "inventory.yaml").write_text(json.dumps(inventory, indent=2) + "\n", encoding="utf-8")
    copy_policies(root)


def write_fleet_workspace(root: Path, fleet: Fleet) -> None:
    """All three hosts over SSH, as the fleet tests reach them (harness keys, known_hosts)."""
    _write_inventory(root, {n.name: {**fleet.host_vars(n), **_host_vars(n)} for n in fleet.nodes})


def write_local_workspace(root: Path, node: FleetNode) -> None:
    """The one host, local: what its own nightly oneshot would run with."""
    _write_inventory(root, {node.name: {"ansible_connection": "local", **_host_vars(node)}})


def fleet_env(root: Path) -> dict[str, str]:
    """No DOCKER_*/CCCI_* of the caller's, and a local engine that does not exist: a fleet
    plan that read this machine's engine would fail, not flatter the figure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CCCI_"))}
    env.update(NO_COLOR="1", DOCKER_HOST=f"unix://{root}/no-local-engine.sock")
    return env


def in_namespace(node: FleetNode, argv: Sequence[str]) -> list[str]:
    """argv in the node's network namespace (``nsenter --net``, as the harness starts the
    node's daemons): the host as its own nightly sees its network."""
    return ["nsenter", f"--net=/run/netns/{node.name}", *argv]


# ---- measuring --------------------------------------------------------------------------


def summary(log: Path) -> str:
    """The plan's last summary line: ``Total:`` for several hosts, ``Plan:`` for one."""
    text = log.read_text(errors="replace").splitlines()
    lines = [ln.strip() for ln in text if ln.strip().startswith(("Total:", "Plan:"))]
    return lines[-1] if lines else plan_line(log)


def plan_argv(ccci: str, root: Path, anchor: str, *extra: str) -> list[str]:
    return [ccci, *ccci_args(root, ["reconcile", "--plan"], "--now", anchor, *extra)]


def local_env(node: FleetNode) -> dict[str, str]:
    """The node's own engine, and no CCCI_* of the caller's."""
    return ccci_env(node.engine, drop=[k for k in os.environ if k.startswith("CCCI_")])


def local_argv(node: FleetNode, root: Path, ccci: str, anchor: str) -> list[str]:
    """The node's local plan in its workspace ``root``, inside its network namespace."""
    return in_namespace(node, plan_argv(ccci, root, anchor))


def measure_local(
    node: FleetNode, root: Path, ccci: str, docker: str, anchor: str, repeat: int
) -> tuple[list[Run], list[Run], str]:
    """The node's local plan inside its namespace, and its engine's own raw listing."""
    root.mkdir()
    write_local_workspace(root, node)
    env = local_env(node)
    log = root / "plan.out"
    progress(f"{node.name}: timing its local plan (nsenter --net, its own socket)")
    argv = local_argv(node, root, ccci, anchor)
    plan = measure(lambda: run_timed(argv, env, root, log), repeat)
    cmds = [[docker, "image", "ls", "-a"], [docker, "ps", "-a"]]
    listing = measure(lambda: run_sequence(cmds, env, root), repeat)
    return plan, listing, summary(log)


def measure_together(
    fleet: Fleet, base: Path, ccci: str, anchor: str, repeat: int
) -> tuple[list[Run], dict[str, list[Run]]]:
    """The three local plans started together, each in its namespace and workspace (as
    measure_local left them): the slowest of each round, and each host's own runs.

    The one deliberate exception to "one command at a time": the three share the CPUs
    as the fleet plan's three hosts do, so the fleet plan against this floor is SSH's own
    cost and not the machine's sharing. A barrier releases the three starts at once."""
    progress("timing the three local plans at once (each in its namespace)")
    nodes = fleet.nodes
    starts = threading.Barrier(len(nodes))
    each: dict[str, list[Run]] = {n.name: [] for n in nodes}

    def one(node: FleetNode) -> Run:
        root = base / node.name
        argv, env = local_argv(node, root, ccci, anchor), local_env(node)
        starts.wait(timeout=60)  # a round whose thread failed to start fails, not hangs
        return run_timed(argv, env, root, root / "together.out")

    def round_() -> Run:
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            runs = list(pool.map(one, nodes))
        for node, run in zip(nodes, runs, strict=True):
            each[node.name].append(run)
        return max(runs, key=lambda r: r.seconds)

    slowest = measure(round_, repeat)
    warmed = {name: runs[1:] for name, runs in each.items()}  # the warm-up round left out
    return slowest, warmed


@dataclass(frozen=True)
class Figures:
    fleet: list[Run]
    fleet_serial: list[Run]
    local: dict[str, list[Run]]
    listing: dict[str, list[Run]]
    fleet_plan: str
    local_plans: dict[str, str]
    # The slowest local plan's host alone over SSH (--limit): SSH's own cost, without the
    # other two hosts' engines on the same CPUs.
    one_host: list[Run]
    # The three local plans started together: each round's slowest, and each host's runs.
    together: list[Run]
    together_each: dict[str, list[Run]]

    @property
    def slowest(self) -> str:
        return max(self.local, key=lambda name: median(self.local[name]))


def measure_all(fleet: Fleet, base: Path, anchor: str, repeat: int) -> Figures:
    """Every figure, one command at a time (never two at once: they share the CPUs), but
    the at-once row, whose point is the sharing."""
    ccci, docker = ccci_bin(), harness_engine.docker_cli()
    fleet_root = base / "fleet"
    fleet_root.mkdir()
    write_fleet_workspace(fleet_root, fleet)
    env = fleet_env(fleet_root)
    log = fleet_root / "plan.out"
    progress("timing the fleet plan over SSH (default --forks)")
    fleet_runs = measure(
        lambda: run_timed(plan_argv(ccci, fleet_root, anchor), env, fleet_root, log), repeat
    )
    fleet_plan = summary(log)
    progress("timing the fleet plan over SSH with --forks 1")
    serial_log = fleet_root / "serial.out"
    serial = measure(
        lambda: run_timed(
            plan_argv(ccci, fleet_root, anchor, "--forks", "1"), env, fleet_root, serial_log
        ),
        repeat,
    )
    local: dict[str, list[Run]] = {}
    listing: dict[str, list[Run]] = {}
    local_plans: dict[str, str] = {}
    for node in fleet.nodes:
        local[node.name], listing[node.name], local_plans[node.name] = measure_local(
            node, base / node.name, ccci, docker, anchor, repeat
        )
    slowest = max(local, key=lambda name: median(local[name]))
    progress(f"timing {slowest} alone over SSH (--limit)")
    one_log = fleet_root / "one.out"
    one = plan_argv(ccci, fleet_root, anchor, "--limit", slowest)
    one_host = measure(lambda: run_timed(one, env, fleet_root, one_log), repeat)
    together, together_each = measure_together(fleet, base, ccci, anchor, repeat)
    return Figures(
        fleet_runs, serial, local, listing, fleet_plan, local_plans, one_host,
        together, together_each,
    )  # fmt: skip


# ---- profile ----------------------------------------------------------------------------

# Phases of a fleet plan, timed by wrapping these functions: (label, module, function).
# Per-host phases run in the hosts' threads, so their times are summed over the hosts.
PHASES = (
    ("gather every host (Workspace.gather_all)", "ccci.run.workspace", "Workspace.gather_all"),
    ("  gather one host, summed (_gather)", "ccci.run.workspace", "_gather"),
    ("    ssh master start, summed", "ccci.connectors.ssh", "SshConnector._start_master"),
    ("    remote commands, summed (run)", "ccci.connectors.ssh", "SshConnector.run"),
    ("    ssh master exit, summed (close)", "ccci.connectors.ssh", "SshConnector.close"),
    ("    docker facts, summed (gather)", "ccci.facts.docker", "gather"),
    ("    last use + events, summed (observe)", "ccci.state.lastuse", "observe"),
    ("swarm share + rules (plan_in_scope)", "ccci.run.swarmscope", "plan_in_scope"),
    ("render text", "ccci.render.text", "render_plan"),
)


def ssh_costs(fleet: Fleet, node: FleetNode, root: Path) -> list[tuple[str, float]]:
    """The bare SSH floor, median of 3: a fresh connection running ``true``, and ``true``
    through an already open master (what each remote command pays)."""
    control = str(root / "bench-control")
    mux = ["-o", f"ControlPath={control}"]
    base = ["ssh", *fleet.ssh_options(), "-p", str(node.ssh_port)]
    who = f"root@{node.address}"
    env = fleet_env(root)

    def quiet(argv: list[str]) -> None:
        run_timed(argv, env, root, root / "ssh.out")

    quiet([*base, *mux, "-o", "ControlMaster=yes", "-o", "ControlPersist=60s", "-N", "-f", who])
    try:
        return time_calls(
            [
                (f"ssh {node.name} true (new connection)", lambda: quiet([*base, who, "true"])),
                (f"ssh {node.name} true (open master)", lambda: quiet([*base, *mux, who, "true"])),
            ]
        )
    finally:
        quiet([*base, *mux, "-O", "exit", who])


def profile_fleet(fleet: Fleet, root: Path, anchor: str, slowest: FleetNode) -> None:
    """Where a fleet plan's time goes: one in-process plan under cProfile (main thread, and
    the hosts' threads summed, so above wall time), one more timed by phase, the SSH floor."""
    args = ccci_args(root, ["reconcile", "--plan"], "--now", anchor)

    def once() -> tuple[float, int]:
        return run_cli_in_process(args)

    main, workers, seconds, size = profiled(once)
    print(f"\nprofile: one in-process fleet plan under cProfile, {seconds:.2f} s wall, {size} B")
    print(f"\n-- main thread, top {PROFILE_TOP} by cumulative time (CLI wrappers left out) --")
    print("\n".join(top([main], not_wrapper)))
    if workers:
        print(f"\n-- {len(workers)} threads, summed, top {PROFILE_TOP} (ccci frames) --")
        print("\n".join(top(workers, lambda w: "ccci/" in w)))
    total, phases = time_phases(PHASES, once)
    print(f"\n-- one more in-process fleet plan, unprofiled, modules imported: {total:.2f} s --")
    print_timings(phases)
    print("\n-- the SSH floor (median of 3) --")
    print_timings(ssh_costs(fleet, slowest, root))


# ---- report -----------------------------------------------------------------------------


def report(fleet: Fleet, mix: Mix, seeded: dict[str, Seeded], figures: Figures, repeat: int) -> str:
    """The figures, and the name of the slowest host's local plan (the ratio's floor)."""
    slowest = figures.slowest
    floor = median(figures.local[slowest])
    one_host = median(figures.one_host)
    local_sum = sum(median(runs) for runs in figures.local.values())
    ratio = median(figures.fleet) / floor
    shared_floor = median(figures.together)
    shared_ratio = median(figures.fleet) / shared_floor
    gain = median(figures.fleet_serial) / median(figures.fleet)
    took = max(s.seconds for s in seeded.values())
    print(
        f"ccci fleet_scale: {len(fleet.nodes)} hosts over SSH, one swarm "
        f"({fleet.manager.name} manager), each seeded with {mix.tagged} tagged + "
        f"{mix.dangling} dangling images, {mix.created} created + {mix.exited} exited containers"
        + (f" (took {took:.0f} s)" if took else " (already there)")
    )
    for node in fleet.nodes:
        have = counts(node)
        print(
            f"  {node.name} ({node.role}): {have.images} images, {have.containers} containers; "
            f"local plan: {figures.local_plans[node.name]}"
        )
    print(f"  fleet plan as of {max(s.anchor for s in seeded.values())}: {figures.fleet_plan}")
    reps = f"(median of {repeat})"
    rows: list[tuple[str, float, str, str]] = [
        (f"docker image ls -a + ps -a on {slowest}", median(figures.listing[slowest]), reps, ""),
    ]
    for node in fleet.nodes:
        mark = "  <- slowest" if node.name == slowest else ""
        rows.append((f"local plan, {node.name}", median(figures.local[node.name]), reps, mark))
    rows += [
        (
            "fleet plan over SSH (default forks)",
            median(figures.fleet),
            reps,
            f"ratio {ratio:.2f}x  target <= {FLEET_TARGET}x  {verdict(ratio <= FLEET_TARGET)}",
        ),
        (
            "the three local plans at once, slowest",
            shared_floor,
            reps,
            f"fleet plan {shared_ratio:.2f}x: SSH's own cost, the CPUs shared alike",
        ),
        (
            "fleet plan over SSH, --forks 1",
            median(figures.fleet_serial),
            reps,
            f"{gain:.2f}x the parallel plan",
        ),
        (
            f"{slowest} alone over SSH (--limit)",
            one_host,
            reps,
            f"{one_host / floor:.2f}x its local plan: SSH's own cost",
        ),
        (
            "the three local plans, summed",
            local_sum,
            "",
            f"fleet plan {median(figures.fleet) / local_sum:.2f}x: the hosts share these CPUs",
        ),
    ]
    print_rows(rows, 44)
    at_once = ", ".join(
        f"{name} {median(runs):.2f} s" for name, runs in figures.together_each.items()
    )
    print(f"  {'  each, at once (median)':<44} {at_once}")
    print(
        f"  ratios: fleet plan / slowest local plan run alone = {ratio:.2f}x (issue 15's "
        f"figure, target <= {FLEET_TARGET}x); fleet plan / slowest of the three local plans "
        f"run at once = {shared_ratio:.2f}x (like for like: SSH's own cost)"
    )
    rss = max(r.max_rss_kib for r in figures.fleet) / 1024
    print(f"  {'peak RSS (fleet plan)':<44}{rss:5.0f} MiB")
    return slowest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500, help="images and containers per host")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per command")
    parser.add_argument("--profile", action="store_true", help="also cProfile one fleet plan")
    parser.add_argument("--keep", action="store_true", help="leave the seed for the next run")
    parser.add_argument("--reset", action="store_true", help="remove a kept seed, exit")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1:
        parser.error("--n and --repeat must be at least 1")

    fleet = locked_fleet()
    if args.reset:
        for name, containers, images in clear_all(fleet):
            print(f"fleet_scale: {name}: removed {containers} containers and {images} images")
        return 0
    before = {n.name: counts(n) for n in fleet.nodes}
    mix = Mix(args.n)
    try:
        seeded = seed_all(fleet, mix)
        # One --now for every run and host: the latest seed's, so no host's objects are
        # younger than plan_scale's two days ahead.
        anchor = max(s.anchor for s in seeded.values())
        with tempfile.TemporaryDirectory(prefix="ccci-fleet-scale-") as tmp:
            figures = measure_all(fleet, Path(tmp), anchor, args.repeat)
            slowest = report(fleet, mix, seeded, figures, args.repeat)
            if args.profile:
                node = next(n for n in fleet.nodes if n.name == slowest)
                profile_fleet(fleet, Path(tmp) / "fleet", anchor, node)
    finally:
        if not args.keep:
            progress("removing the seed")
            clear_all(fleet)
            _say_as_found(fleet, before)
    return 0


def _say_as_found(fleet: Fleet, before: dict[str, Any]) -> None:
    """Whether every host holds what it held before seeding (a fleet test's leftovers, if
    any, stay: they are not ours)."""
    after = {n.name: counts(n) for n in fleet.nodes}
    changed = [f"{n}: {before[n]} -> {after[n]}" for n in after if after[n] != before[n]]
    if changed:
        print(f"fleet_scale: the hosts differ from before seeding: {'; '.join(changed)}")
    else:
        print("fleet_scale: every host is left as found (seed removed)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
