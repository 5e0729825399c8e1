"""``proxbus-mcp-gateway [--transport stdio|http] [--host H] [--port P] [--insecure-no-auth]``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping

import proxbus_runtime
from proxbus_runtime.main import Check

from .settings import Settings
from .startup import SERVICE_NAME


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """CLI options as settings fields: validated like the environment (``--port 99999`` fails)."""
    return {
        "gateway_transport": args.transport,
        "gateway_host": args.host,
        "gateway_port": args.port,
        "insecure_no_auth": True if args.insecure_no_auth else None,
    }


async def _serve(settings: Settings, stop: asyncio.Event) -> None:
    from .startup import listen_socket, preflight

    preflight(settings)  # ConfigError: one line on stderr, exit 2
    # Listening before the MCP stack is imported (startup.py): connections wait, not refused.
    sock = listen_socket(settings) if settings.gateway_transport == "http" else None
    try:
        from .app import serve_gateway

        await serve_gateway(settings, stop, sock=sock)
    finally:
        if sock is not None:
            sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="proxbus-mcp-gateway", description=__doc__)
    parser.add_argument("--transport", choices=["http", "stdio"], default=None)
    parser.add_argument("--host", default=None, help="HTTP bind address (GATEWAY_HOST)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (GATEWAY_PORT)")
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback listener without bearer tokens",
    )
    return proxbus_runtime.main(
        SERVICE_NAME,
        Settings,
        _serve,
        argv=argv,
        parser=parser,
        overrides=_overrides,
        checks=_checks,
    )


def _checks(settings: Settings) -> Mapping[str, Check]:
    """``--test-connection``: every PVE/PBS endpoint with its token (after nats, jetstream)."""
    from .checks import connection_checks

    return connection_checks(settings)


if __name__ == "__main__":
    sys.exit(main())
