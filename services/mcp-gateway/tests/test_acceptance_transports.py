"""The acceptance scenario once per transport, with the official MCP client.

stdio (the console script as a subprocess), streamable HTTP and legacy SSE each: list tools,
read inventory, start a VM with wait and receive progress notifications, and a destructive
call without confirm returns a plan and changes nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from proxbus_mcp_gateway.testing import OPS_SECRET, HttpGateway, sim_env
from proxbus_pvesim.simulator import Simulator


@asynccontextmanager
async def open_session(
    transport: str, sim: Simulator, http_gateway: HttpGateway
) -> AsyncIterator[ClientSession]:
    auth = {"Authorization": f"Bearer {OPS_SECRET}"}
    if transport == "stdio":
        env: dict[str, Any] = {
            **sim_env(sim),
            "NATS_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "PATH": os.environ.get("PATH", ""),
        }
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "proxbus_mcp_gateway", "--transport", "stdio"],
            env=env,
        )
        with open(os.devnull, "w") as devnull:
            async with (
                stdio_client(params, errlog=devnull) as (r, w),
                ClientSession(r, w) as session,
            ):
                yield session
    elif transport == "streamable-http":
        async with (
            create_mcp_http_client(headers=auth) as client,
            streamable_http_client(f"{http_gateway.url}/mcp", http_client=client) as (r, w),
            ClientSession(r, w) as session,
        ):
            yield session
    else:
        async with (
            sse_client(f"{http_gateway.url}/sse", headers=auth) as (r, w),
            ClientSession(r, w) as session,
        ):
            yield session


def posts(sim: Simulator) -> int:
    return sum(1 for r in sim.request_log if r.method != "GET")


@pytest.mark.parametrize("transport", ["stdio", "streamable-http", "sse"])
async def test_list_read_start_with_progress_and_plan_without_confirm(
    transport: str, sim: Simulator, http_gateway: HttpGateway
) -> None:
    vms = [g for g in sim.lab.guests.values() if g.kind == "qemu"]
    stopped = next(g for g in vms if not g.running)
    running = next(g for g in vms if g.running)
    progress: list[tuple[float, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    with anyio.fail_after(40):
        async with open_session(transport, sim, http_gateway) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert {"get_vms", "execute_vm_command", "proxmox_api"} <= set(tools)

            listed = await session.call_tool("get_vms", {})
            assert not listed.is_error
            assert listed.structured_content
            vmids = {v["vmid"] for v in listed.structured_content["items"]}
            assert vmids == {g.vmid for g in vms if not g.template}

            started = await session.call_tool(
                "execute_vm_command",
                {"vmid": stopped.vmid, "command": "start", "wait": True},
                progress_callback=on_progress,
            )
            assert not started.is_error, started.content
            assert started.structured_content
            assert started.structured_content["status"] == "ok"
            assert progress, f"no progress notification over {transport}"
            assert sim.lab.guests[stopped.vmid].running

            writes_before = posts(sim)
            plan = await session.call_tool(
                "execute_vm_command", {"vmid": running.vmid, "command": "stop"}
            )
            assert not plan.is_error
            assert plan.structured_content
            assert plan.structured_content["planned"] is True
            assert sim.lab.guests[running.vmid].running
            assert posts(sim) == writes_before
