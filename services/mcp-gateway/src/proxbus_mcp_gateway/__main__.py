"""``proxbus-mcp-gateway [--transport stdio|http] [--host H] [--port P] [--insecure-no-auth]``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from proxbus_events import run_service

from .app import SERVICE_NAME, preflight, serve_http, serve_stdio
from .errors import ConfigError
from .settings import Settings


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
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except Exception as exc:
        print(f"proxbus-mcp-gateway: invalid settings: {exc}", file=sys.stderr)
        return 2
    updates: dict[str, object] = {}
    if args.transport:
        updates["gateway_transport"] = args.transport
    if args.host:
        updates["gateway_host"] = args.host
    if args.port is not None:
        updates["gateway_port"] = args.port
    if args.insecure_no_auth:
        updates["insecure_no_auth"] = True
    settings = settings.model_copy(update=updates)
    try:
        preflight(settings)
    except ConfigError as exc:
        print(f"proxbus-mcp-gateway: {exc}", file=sys.stderr)
        return 2
    if settings.gateway_transport == "stdio":
        # stdout carries the protocol: logs must go to stderr only (configure_logging does).
        async def stdio_main(stop: asyncio.Event) -> None:
            await serve_stdio(settings, stop)

        return _guard(lambda: run_service(stdio_main, name=SERVICE_NAME, settings=settings))

    async def http_main(stop: asyncio.Event) -> None:
        await serve_http(settings, stop)

    return _guard(lambda: run_service(http_main, name=SERVICE_NAME, settings=settings))


def _guard(fn: object) -> int:
    try:
        return int(fn())  # type: ignore[operator]
    except ConfigError as exc:
        print(f"proxbus-mcp-gateway: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
