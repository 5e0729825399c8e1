"""Benchmark: the Discord interactions endpoint — signed PING and ``/proxbus vms`` end to end.

Runs a real nats-server, pvesim, the mcp-gateway (in-process, NATS RPC, default read cache) and
ingest-discord; a client signs every request with Ed25519 as Discord does. Floors measured in the
same run: an aiohttp handler that answers ``{"type": 1}`` without checking anything (the HTTP
cost), and ``call_tool(get_vms)`` straight over NATS (the gateway's part of a command).

``/proxbus vms`` costs, per interaction: signature check, the KV claim, the gateway RPC, the
audit record (JetStream ack), the ``command.vms`` event (JetStream ack) and the KV answer.
Discord's budget is 3 s per answer (2 s before this service defers).

    uv run python bench/bench_ingest_discord.py [--requests 300] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import nats
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from proxbus_devtools.testing import NatsServer, nats_server_binary, serve_app
from proxbus_ingest_discord.app import DiscordService
from proxbus_ingest_discord.testing import (
    Signed,
    command,
    interaction,
    service_settings,
    snowflake,
)
from proxbus_mcp_gateway.app import start_gateway
from proxbus_mcp_gateway.testing import make_settings, sim_env
from proxbus_pvesim.testing import run_simulator
from proxbus_runtime import call_tool


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _timed(n: int, one: Callable[[], Awaitable[None]]) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await one()
        times.append(time.perf_counter() - t)
    return times


async def _rate(n: int, clients: int, one: Callable[[], Awaitable[None]]) -> float:
    per = max(1, n // clients)

    async def worker() -> None:
        for _ in range(per):
            await one()

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return per * clients / (time.perf_counter() - t)


def _row(name: str, times: list[float], rate: float | None) -> str:
    r = f"{rate:,.0f}" if rate is not None else "-"
    return f"| {name} | {_q(times, 0.5) * 1000:.2f} | {_q(times, 0.99) * 1000:.2f} | {r} |"


async def run(requests: int, clients: int) -> None:
    binary = nats_server_binary()
    assert binary, "nats-server missing: uv sync --all-packages"
    with tempfile.TemporaryDirectory(prefix="bench-discord-") as tmp:
        server = NatsServer(binary, Path(tmp))
        server.start()
        try:
            async with run_simulator(instant=True) as sim:
                gw = await start_gateway(
                    make_settings(nats_enabled=True, nats_url=server.url), sim_env(sim)
                )
                key = Ed25519PrivateKey.generate()
                svc = DiscordService(service_settings(server.url, key, "http://127.0.0.1:9/api"))
                await svc.start()
                nc = await nats.connect(server.url)
                floor_app = web.Application()

                async def pong(_: web.Request) -> web.Response:
                    return web.json_response({"type": 1})

                floor_app.router.add_post("/discord/interactions", pong)
                try:
                    async with serve_app(floor_app) as floor_port, aiohttp.ClientSession() as http:
                        signed = Signed(
                            f"http://127.0.0.1:{svc.port}/discord/interactions", key, http
                        )
                        ping = json.dumps(interaction(1)).encode()
                        floor_url = f"http://127.0.0.1:{floor_port}/discord/interactions"

                        async def floor_http() -> None:
                            async with http.post(floor_url, data=ping) as r:
                                await r.read()

                        async def signed_ping() -> None:
                            status, _ = await signed.post(ping)
                            assert status == 200

                        async def floor_rpc() -> None:
                            await call_tool(nc, "get_vms", {}, caller="bench")

                        async def vms() -> None:
                            # A new member each time: DISCORD_USER_RATE (20 a minute per
                            # user) would otherwise answer "slow down" after 20 requests.
                            status, body = await signed.post(command("vms", user=snowflake()))
                            assert status == 200
                            assert body["type"] == 4
                            assert body["data"]["content"].startswith("**VMs**"), body

                        await vms()  # warm the gateway's connection and cache
                        rows = [
                            _row(
                                "HTTP floor: unchecked `{type: 1}`",
                                await _timed(requests, floor_http),
                                await _rate(requests, clients, floor_http),
                            ),
                            _row(
                                "signed PING (Ed25519 verify)",
                                await _timed(requests, signed_ping),
                                await _rate(requests, clients, signed_ping),
                            ),
                            _row(
                                "RPC floor: `call_tool(get_vms)`",
                                await _timed(requests, floor_rpc),
                                await _rate(requests, clients, floor_rpc),
                            ),
                            _row(
                                "`/proxbus vms` end to end",
                                await _timed(requests, vms),
                                await _rate(requests, clients, vms),
                            ),
                        ]
                finally:
                    await nc.close()
                    await svc.close()
                    await gw.close()
        finally:
            server.kill()
    print(
        f"ingest-discord: {requests} sequential requests per row (1 client) for p50/p99, then "
        f"{requests} over {clients} concurrent clients for the rate\n"
    )
    print("| request | p50 ms | p99 ms | per s |")
    print("| --- | ---: | ---: | ---: |")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.clients))


if __name__ == "__main__":
    main()
