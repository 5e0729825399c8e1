"""Idle RSS of the console script under 80 MiB (issue 17), and what keeps it there.

Measured as users run it: the ``proxbus-mcp-gateway`` console script, HTTP transport, one PVE
endpoint (the simulator), no call made; ``VmRSS`` from ``/proc/<pid>/status`` once ``/health``
answers (and reports NATS connected, when a broker is reachable), the highest of several
readings while ``/health`` keeps being polled. bench/README.md has the figures.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from proxbus_devtools.testing import free_port
from proxbus_mcp_gateway.testing import sim_env
from proxbus_pvesim.simulator import Simulator

from .test_console_script import base_env, script

LIMIT_KIB = 80 * 1024  # 80 MiB


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def idle_rss(env: dict[str, str], port: int, want_nats: bool) -> int:
    proc = await asyncio.create_subprocess_exec(
        script(), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + 30
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            while True:
                assert proc.returncode is None, "gateway exited early"
                assert loop.time() < deadline, "gateway not ready in time"
                try:
                    resp = await client.get("/health")
                    if resp.status_code == 200 and resp.json()["nats"] is want_nats:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            readings = []
            for _ in range(10):
                assert (await client.get("/health")).status_code == 200
                readings.append(vm_rss_kib(proc.pid))
                await asyncio.sleep(0.2)
        return max(readings)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


async def test_idle_rss_with_nats_connected(sim: Simulator, nats_server: Any) -> None:
    port = free_port()
    env = base_env(**sim_env(sim), NATS_URL=nats_server.url, GATEWAY_PORT=str(port))
    rss = await idle_rss(env, port, want_nats=True)
    assert rss < LIMIT_KIB, f"idle RSS {rss / 1024:.1f} MiB"


async def test_idle_rss_without_a_broker(sim: Simulator) -> None:
    port = free_port()
    env = base_env(
        **sim_env(sim), NATS_URL=f"nats://127.0.0.1:{free_port()}", GATEWAY_PORT=str(port)
    )
    rss = await idle_rss(env, port, want_nats=False)
    assert rss < LIMIT_KIB, f"idle RSS {rss / 1024:.1f} MiB"


_PROBE = """
import sys
import proxbus_mcp_gateway.app  # the whole HTTP stack, nats-py included
import nats.aio.transport as transport
print("aiohttp.client" in sys.modules)
print(transport.aiohttp.ClientSession.__module__)  # first use imports the real package
from aiohttp import web
print(web.Application.__module__, type(sys.modules["aiohttp"]).__name__)
import proxbus_runtime
print(proxbus_runtime.HealthServer.__module__)
"""


@pytest.mark.parametrize("preloaded", [False, True])
def test_aiohttp_is_imported_on_first_use_only(preloaded: bool) -> None:
    """nats-py's WebSocket transport and the runtime's health server still get aiohttp."""
    code = ("import aiohttp\n" if preloaded else "") + _PROBE
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "error::ImportWarning"},
    ).stdout.split("\n")
    assert out[:4] == [
        str(preloaded),
        "aiohttp.client",
        "aiohttp.web_app module",
        "proxbus_runtime.health",
    ]


def test_sdk_constructor_imports_no_rich_and_leaves_root_logging_alone() -> None:
    code = """
import logging, sys
from proxbus_runtime import configure_logging
configure_logging("WARNING")
handlers = list(logging.getLogger().handlers)
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.mcp_server import GatewayMCPServer
from proxbus_mcp_gateway.testing import make_settings
gw = Gateway.from_settings(make_settings(), {"PVE_NODES": "pve1", "PVE_PVE1_HOST": "127.0.0.1",
    "PVE_PVE1_USER": "root@pam", "PVE_PVE1_TOKEN_NAME": "t", "PVE_PVE1_TOKEN_VALUE": "v"})
GatewayMCPServer(gw, log_level="WARNING")
print("rich" in sys.modules, logging.getLogger().handlers == handlers)
import rich.console  # importable again afterwards
print("rich" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split("\n")
    assert out[:2] == ["False True", "True"]
