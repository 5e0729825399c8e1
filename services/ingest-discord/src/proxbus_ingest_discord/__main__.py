"""``proxbus-ingest-discord``: run the interactions endpoint, or ``--test-connection``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from proxbus_events import RPC_SERVICE_NAME, connect_nats, run_service
from pydantic import ValidationError

from .app import SERVICE, run
from .settings import Settings


async def _test_connection(settings: Settings) -> int:
    """One line per dependency: NATS, the gateway's RPC service."""
    try:
        nc = await asyncio.wait_for(
            connect_nats(
                settings,
                name=f"proxbus-{SERVICE}-check",
                allow_reconnect=False,
                max_reconnect_attempts=1,
            ),
            settings.nats_connect_timeout + 5,
        )
    except Exception as exc:
        print(f"nats {settings.nats_url}: FAIL {type(exc).__name__}: {exc}")
        print("gateway rpc: FAIL no NATS connection")
        return 1
    print(f"nats {settings.nats_url}: ok")
    try:
        await nc.request(f"$SRV.PING.{RPC_SERVICE_NAME}", b"", timeout=3.0)
    except Exception as exc:
        print(f"gateway rpc ({RPC_SERVICE_NAME}): FAIL {type(exc).__name__}")
        return 1
    finally:
        await nc.close()
    print(f"gateway rpc ({RPC_SERVICE_NAME}): ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console script entry point."""
    parser = argparse.ArgumentParser(
        prog="proxbus-ingest-discord",
        description="Discord interactions endpoint for proxbus: slash commands and buttons.",
    )
    parser.add_argument(
        "--test-connection",
        action="store_true",
        help="check NATS and the gateway's RPC service, one line each, then exit 0/1",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()  # type: ignore[call-arg]  # required fields come from the environment
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]).upper()
        print(f"invalid settings: {where}: {first['msg']}", file=sys.stderr)
        return 2
    if args.test_connection:
        return asyncio.run(_test_connection(settings))

    async def service_main(stop: asyncio.Event) -> None:
        await run(settings, stop)

    return run_service(service_main, name=SERVICE, settings=settings)


if __name__ == "__main__":
    sys.exit(main())
