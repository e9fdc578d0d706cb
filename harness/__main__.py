"""CLI: python3 -m harness start|stop [--purge]|status|env."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from harness.engine import EngineError, engine_paths, ensure_engine, status, stop_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    start = sub.add_parser("start", help="start (or repair) the private engine; idempotent")
    start.add_argument("--timeout", type=float, default=90.0, help="readiness bound, seconds")
    stop = sub.add_parser("stop", help="stop the engine, keeping its data-root as a cache")
    stop.add_argument("--purge", action="store_true", help="also delete data-root and exec-root")
    sub.add_parser("status", help="print engine state as JSON; exit 0 if running, 3 if not")
    sub.add_parser("env", help="print the shell export that aims docker at the engine")
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
        else:
            print(f"export DOCKER_HOST={shlex.quote(engine_paths().docker_host)}")
    except EngineError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
