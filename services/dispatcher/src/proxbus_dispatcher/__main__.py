"""usage: proxbus-dispatcher [run | check-config FILE | dlq ... | silence ...]

run (default)        consume PROXBUS_EVENTS, route and deliver (configured by env / ROUTES_FILE)
--test-connection    check NATS, JetStream and every receiver (nothing is sent), one line each
check-config FILE    validate a routes.yaml and exit (1 with FILE:LINE: reason when invalid)
dlq list|replay      list or replay dead letters (see `proxbus-dispatcher dlq --help`)
silence add|list|expire
                     manage silences (see `proxbus-dispatcher silence --help`)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import proxbus_runtime

from .errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if args and args[0] in ("dlq", "silence"):
        from .admin import cli_main

        return cli_main(args)
    if args and args[0] == "check-config":
        from .config import load_config

        if len(args) == 2 and args[1] in ("-h", "--help"):
            print("usage: proxbus-dispatcher check-config FILE\n\n"
                  "Validate a routes.yaml; exit 1 with FILE:LINE: reason when it is invalid.")  # fmt: skip
            return 0
        if len(args) != 2:
            print("usage: proxbus-dispatcher check-config FILE", file=sys.stderr)
            return 2
        try:
            cfg = load_config(Path(args[1]))
        except ConfigError as exc:
            print(f"invalid: {exc}", file=sys.stderr)
            return 1
        print(
            f"ok: {len(cfg.receivers)} receivers, {len(cfg.iter_routes())} routes, "
            f"{len(cfg.inhibit_rules)} inhibit rules"
        )
        return 0
    if args and args[0] == "run":
        args = args[1:]
    if args and not args[0].startswith("--"):
        print(__doc__, file=sys.stderr)
        return 2

    from .app import load_dispatcher_config, run
    from .settings import Settings

    async def serve(settings: Settings, stop: asyncio.Event) -> None:
        await run(settings, stop, load_dispatcher_config(settings))

    from .checks import connection_checks

    return proxbus_runtime.main("dispatcher", Settings, serve, argv=args, checks=connection_checks)


if __name__ == "__main__":
    sys.exit(main())
