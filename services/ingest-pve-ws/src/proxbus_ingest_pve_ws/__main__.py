"""``proxbus-ingest-pve-ws``: run the service, or ``--once`` for a dry-run poll cycle."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import proxbus_runtime
from proxbus_runtime import RpcError, connect_nats

from .app import SERVICE, run, watch_options
from .reader import RpcReader
from .settings import Settings
from .watcher import ClusterWatcher


async def _once(settings: Settings, since: float) -> int:
    nc = await connect_nats(settings, name=f"proxbus-{SERVICE}-once")
    status = 0
    try:
        reader = RpcReader(nc, timeout=settings.pve_ws_rpc_timeout)
        for cluster in settings.clusters:
            watcher = ClusterWatcher(
                cluster, reader, site=settings.site, options=watch_options(settings)
            )
            try:
                events, _ = await watcher.collect(since=time.time() - since)
            except RpcError as exc:
                print(
                    f"{cluster}: cannot read the Proxmox API through the gateway: {exc}",
                    file=sys.stderr,
                )
                status = 2
                continue
            for event in events:
                print(event.to_json().decode(), flush=True)
            print(f"{cluster}: {len(events)} events (dry run, nothing published)", file=sys.stderr)
    finally:
        await nc.close()
    return status


def main(argv: list[str] | None = None) -> int:
    """Console script entry point."""
    parser = argparse.ArgumentParser(
        prog="proxbus-ingest-pve-ws",
        description="Proxmox API watcher, PVE webhook receiver and Gotify listener for proxbus.",
    )
    parser.add_argument(
        "--once",
        dest="command",
        action="store_const",
        const="once",
        help="run one poll cycle through the gateway, print the events as JSON lines, publish nothing",
    )
    parser.add_argument(
        "--since",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="with --once: report tasks and cluster log entries of the last SECONDS (default 3600)",
    )
    from .checks import connection_checks

    return proxbus_runtime.main(
        SERVICE, Settings, run, argv=argv, parser=parser, commands={"once": _once_command},
        checks=connection_checks,
    )  # fmt: skip


def _once_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_once(settings, args.since))
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
