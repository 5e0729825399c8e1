"""NATS is optional at run time: MCP serves at once, RPC comes up when NATS does (issue 17).

The console script runs as a plain subprocess with the default settings; NATS_URL points at a
free loopback port where nothing listens (the default 127.0.0.1:4222 may be another test's
broker), and a nats-server is started on that port later.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import nats
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from proxbus_devtools.testing import NatsServer, free_port, nats_server_binary, require_binary
from proxbus_events import AUDIT_STREAM
from proxbus_mcp_gateway.testing import sim_env
from proxbus_pvesim.simulator import Simulator
from proxbus_runtime import RpcTimeout, call_tool


def script() -> str:
    found = shutil.which("proxbus-mcp-gateway", path=str(Path(sys.executable).parent))
    assert found, "console script not installed"
    return found


@pytest.fixture
def later_nats() -> Iterator[NatsServer]:
    """A nats-server bound to a free port but not started yet."""
    binary = require_binary("nats-server", nats_server_binary())
    with tempfile.TemporaryDirectory(prefix="proxbus-nats-later-") as tmp:
        server = NatsServer(binary, Path(tmp))
        try:
            yield server
        finally:
            server.kill()


def gateway_env(sim: Simulator, nats_url: str, **extra: str) -> dict[str, str]:
    return {
        **sim_env(sim),
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "NATS_URL": nats_url,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


async def rpc_answers(url: str, timeout: float = 20.0) -> dict[str, Any]:
    """``list_clusters`` over NATS, retried until the gateway's RPC service answers."""
    nc = await nats.connect(url, connect_timeout=2)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                result: dict[str, Any] = await call_tool(nc, "list_clusters", {}, timeout=2)
                return result
            except RpcTimeout:
                assert time.monotonic() < deadline, "RPC never answered after NATS started"
                await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def test_stdio_without_nats_answers_at_once_and_gains_rpc_when_nats_starts(
    sim: Simulator, later_nats: NatsServer
) -> None:
    params = StdioServerParameters(
        command=script(), args=["--transport", "stdio"], env=gateway_env(sim, later_nats.url)
    )
    with anyio.fail_after(60), open(os.devnull, "w") as devnull:
        async with stdio_client(params, errlog=devnull) as (r, w), ClientSession(r, w) as session:
            started = time.monotonic()
            with anyio.fail_after(5):
                await session.initialize()
                names = {t.name for t in (await session.list_tools()).tools}
            assert time.monotonic() - started < 5
            assert "get_vms" in names
            out = await session.call_tool("get_recent_events", {})
            assert out.is_error
            assert "not connected" in out.content[0].text  # type: ignore[union-attr]
            later_nats.start()
            result = await rpc_answers(later_nats.url)
            assert result["clusters"][0]["name"] == "default"  # PROXBUS_SITE unset
            # The MCP side keeps answering after NATS arrived.
            vms = await session.call_tool("get_vms", {})
            assert not vms.is_error


async def test_http_without_nats_listens_at_once_and_gains_rpc_when_nats_starts(
    sim: Simulator, later_nats: NatsServer
) -> None:
    port = free_port()
    env = gateway_env(sim, later_nats.url, GATEWAY_PORT=str(port))
    launched = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        script(), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            while True:
                try:
                    health = await client.get("/health")
                    break
                except httpx.TransportError:
                    assert proc.returncode is None, "gateway exited early"
                    assert time.monotonic() - launched < 5, "port not listening within 5 s"
                    await asyncio.sleep(0.05)
            assert health.json()["nats"] is False
            later_nats.start()
            result = await rpc_answers(later_nats.url)
            assert result["clusters"][0]["name"] == "default"  # PROXBUS_SITE unset
            assert (await client.get("/health")).json()["nats"] is True
        # SIGTERM: MCP and RPC stop, the audit is flushed, the runtime closes NATS; exit 0.
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        nc = await nats.connect(later_nats.url, connect_timeout=2)
        try:
            msg = await nc.jetstream().get_last_msg(AUDIT_STREAM, "proxbus.audit.*.list_clusters")
        finally:
            await nc.close()
        record = json.loads(msg.data)
        assert (record["transport"], record["outcome"]) == ("nats", "ok")
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)


async def test_nats_enabled_false_never_dials_nats(sim: Simulator) -> None:
    """``NATS_ENABLED=false``: not one connection attempt, even to a listening NATS_URL."""
    dialled: list[bool] = []
    listener = await asyncio.start_server(
        lambda _, writer: (dialled.append(True), writer.close()), "127.0.0.1", 0
    )
    url = f"nats://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    env = gateway_env(sim, url, NATS_ENABLED="false")
    params = StdioServerParameters(command=script(), args=["--transport", "stdio"], env=env)
    try:
        with anyio.fail_after(60), open(os.devnull, "w") as devnull:
            async with (
                stdio_client(params, errlog=devnull) as (r, w),
                ClientSession(r, w) as session,
            ):
                await session.initialize()
                assert not (await session.call_tool("get_vms", {})).is_error
                out = await session.call_tool("get_recent_events", {})
                assert out.is_error
                assert "not connected" in out.content[0].text  # type: ignore[union-attr]
    finally:
        listener.close()
        await listener.wait_closed()
    assert dialled == []
