"""The container command: the console script as a plain subprocess."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
from proxbus_devtools.testing import free_port
from proxbus_mcp_gateway.testing import ADMIN_SECRET, sim_env
from proxbus_pvesim.simulator import Simulator


def script() -> str:
    found = shutil.which("proxbus-mcp-gateway", path=str(Path(sys.executable).parent))
    assert found, "console script not installed"
    return found


def base_env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LOG_LEVEL": "WARNING",
        **extra,
    }


async def test_console_script_serves_health_and_stops_on_sigterm(
    sim: Simulator, nats_server: Any
) -> None:
    port = free_port()
    env = base_env(
        **sim_env(sim),
        NATS_URL=nats_server.url,
        PROXBUS_SITE="lab",
        GATEWAY_PORT=str(port),
        GATEWAY_TOKENS=f"ci:read:{ADMIN_SECRET}",
    )
    proc = await asyncio.create_subprocess_exec(
        script(), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        deadline = asyncio.get_running_loop().time() + 20
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            while True:
                try:
                    resp = await client.get("/health")
                    break
                except httpx.TransportError:
                    assert proc.returncode is None, "gateway exited early"
                    assert asyncio.get_running_loop().time() < deadline, "no /health in time"
                    await asyncio.sleep(0.1)
            assert resp.status_code == 200
            # NATS connects in the background: /health reports it once it is up.
            while not resp.json()["nats"]:
                assert asyncio.get_running_loop().time() < deadline, "NATS never connected"
                await asyncio.sleep(0.05)
                resp = await client.get("/health")
            assert (await client.post("/mcp", json={})).status_code == 401
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_public_bind_without_tokens_is_refused() -> None:
    env = base_env(NATS_ENABLED="false", GATEWAY_HOST="0.0.0.0", GATEWAY_PORT=str(free_port()))
    proc = await asyncio.create_subprocess_exec(
        script(), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"without GATEWAY_TOKENS" in err
