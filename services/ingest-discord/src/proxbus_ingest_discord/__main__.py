"""``proxbus-ingest-discord``: run the interactions endpoint, or ``--test-connection``."""

from __future__ import annotations

import argparse
import sys

import proxbus_runtime
from proxbus_events import RPC_SERVICE_NAME
from proxbus_runtime import Check, check_connection

from .app import SERVICE, run
from .settings import Settings


def _checks(settings: Settings) -> dict[str, Check]:
    """After the runtime's NATS checks: the gateway's RPC service answers a ping."""

    async def gateway_rpc() -> str:
        nc = await check_connection(settings, SERVICE)  # quiet: no WARNING among the lines
        try:
            await nc.request(f"$SRV.PING.{RPC_SERVICE_NAME}", b"", timeout=3.0)
        finally:
            await nc.close()
        return RPC_SERVICE_NAME

    return {"gateway rpc": gateway_rpc}


def main(argv: list[str] | None = None) -> int:
    """Console script entry point."""
    parser = argparse.ArgumentParser(
        prog="proxbus-ingest-discord",
        description="Discord interactions endpoint for proxbus: slash commands and buttons.",
    )
    return proxbus_runtime.main(SERVICE, Settings, run, argv=argv, parser=parser, checks=_checks)


if __name__ == "__main__":
    sys.exit(main())
