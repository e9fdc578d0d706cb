"""CLI: python3 -m harness start|stop [--purge]|status|env|systemd [start|stop]|fleet [...].

`fleet start|stop [--purge]|status`: the three SSH test hosts (harness/fleet.py).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from harness import systemd
from harness.engine import (
    DockerError,
    EngineError,
    engine_paths,
    ensure_engine,
    status,
    stop_engine,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    start = sub.add_parser("start", help="start (or repair) the private engine; idempotent")
    start.add_argument("--timeout", type=float, default=90.0, help="readiness bound, seconds")
    stop = sub.add_parser("stop", help="stop the engine, keeping its data-root as a cache")
    stop.add_argument("--purge", action="store_true", help="also delete data-root and exec-root")
    sub.add_parser("status", help="print engine state as JSON; exit 0 if running, 3 if not")
    sub.add_parser("env", help="print the shell export that aims docker at the engine")
    sd = sub.add_parser("systemd", help="boot (or reuse) / remove the systemd test host")
    sd.add_argument("action", nargs="?", choices=("start", "stop"), default="start")
    sd.add_argument("--name", default=systemd.DEFAULT_NAME, help="container name")
    sd.add_argument(
        "--mount", action="append", default=[], type=systemd.Bind.parse,
        metavar="SRC:DST[:ro|rw]", help="extra bind mount (read-only by default); repeatable",
    )  # fmt: skip
    sd.add_argument("--timeout", type=float, default=120.0, help="boot bound, seconds")
    fl = sub.add_parser("fleet", help="the three SSH test hosts in network namespaces (a swarm)")
    fl.add_argument("action", nargs="?", choices=("start", "stop", "status"), default="start")
    fl.add_argument("--purge", action="store_true", help="stop: also delete data-roots and keys")
    fl.add_argument("--timeout", type=float, default=120.0, help="readiness bound, seconds")
    args = parser.parse_args(argv)

    try:
        if args.cmd == "start":
            engine = ensure_engine(timeout=args.timeout)
            print(f"engine running: pid {engine.pid}, {engine.docker_host}")
        elif args.cmd == "stop":
            stop_engine(purge=args.purge)
            print("engine stopped" + (" and purged" if args.purge else ""))
        elif args.cmd == "status":
            info = status()
            print(json.dumps(info, indent=2))
            return 0 if info["running"] else 3
        elif args.cmd == "systemd":
            _systemd(args)
        elif args.cmd == "fleet":
            return _fleet(args)
        else:
            print(f"export DOCKER_HOST={shlex.quote(engine_paths().docker_host)}")
    except EngineError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return 1
    return 0


def _systemd(args: argparse.Namespace) -> None:
    """`systemd [start|stop]`: stop never starts the engine just to find nothing."""
    if args.action == "stop":
        removed = status()["running"] and systemd.stop_systemd_host(ensure_engine(), args.name)
        print(f"systemd host {args.name} " + ("removed" if removed else "not found (or not ours)"))
        return
    engine = ensure_engine()
    try:
        host = systemd.start_systemd_host(engine, args.name, args.mount, args.timeout)
    except DockerError as exc:  # e.g. `docker run` refused a mount
        raise EngineError(str(exc)) from exc
    state = host.systemctl("is-system-running", check=False).stdout.strip()
    print(f"systemd host {host.name} {state}: {host.container_id[:12]}")
    print(f"  DOCKER_HOST={engine.docker_host} docker exec -it {host.name} bash")


def _fleet(args: argparse.Namespace) -> int:
    """`fleet [start|stop|status]`: imported here, so the engine commands never pay for it."""
    from harness import fleet

    if args.action == "stop":
        fleet.stop_fleet(purge=args.purge)
        print("fleet stopped" + (" and purged" if args.purge else ""))
    elif args.action == "status":
        info = fleet.status()
        print(json.dumps(info, indent=2))
        return 0 if info["running"] else 3
    else:
        running = fleet.ensure_fleet(timeout=args.timeout)
        for node in running.nodes:
            print(
                f"{node.name} {node.role} {node.node_id[:12]} ssh root@{node.address} "
                f"-p {node.ssh_port}  DOCKER_HOST={node.engine.docker_host}"
            )
        print(f"  registry {running.registry.addr} (pid {running.registry.pid}): every node pulls")
        print(f"  ssh options: {' '.join(running.ssh_options())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
