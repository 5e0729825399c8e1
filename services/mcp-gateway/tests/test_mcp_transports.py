"""Acceptance over the official MCP client: streamable HTTP, SSE and stdio."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import httpx
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import (
    ADMIN_SECRET,
    OPS_SECRET,
    READ_SECRET,
    HttpGateway,
    make_settings,
    serve,
    sim_env,
)
from proxbus_pvesim.simulator import Simulator


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_streamable_http_lists_annotated_tools(http_gateway: HttpGateway) -> None:
    """The whole scenario per transport is in test_acceptance_transports.py."""
    with anyio.fail_after(30):
        async with (
            create_mcp_http_client(headers=bearer(OPS_SECRET)) as client,
            streamable_http_client(f"{http_gateway.url}/mcp", http_client=client) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            listed = await session.list_tools()
            names = {t.name for t in listed.tools}
            assert {"get_vms", "execute_vm_command", "proxmox_api", "pbs_list_backups"} <= names
            vm_tool = next(t for t in listed.tools if t.name == "execute_vm_command")
            assert vm_tool.annotations
            assert vm_tool.annotations.destructive_hint is True
            get_vms = next(t for t in listed.tools if t.name == "get_vms")
            assert get_vms.annotations
            assert get_vms.annotations.read_only_hint is True


async def test_read_token_cannot_operate_and_gets_a_clear_error(
    sim: Simulator, http_gateway: HttpGateway
) -> None:
    running = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and g.running)
    with anyio.fail_after(20):
        async with (
            create_mcp_http_client(headers=bearer(READ_SECRET)) as client,
            streamable_http_client(f"{http_gateway.url}/mcp", http_client=client) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            out = await session.call_tool(
                "execute_vm_command", {"vmid": running.vmid, "command": "stop", "confirm": True}
            )
            assert out.is_error
            text = out.content[0].text  # type: ignore[union-attr]
            assert "needs the 'operate' scope" in text
            assert "reader" in text
    assert sim.lab.guests[running.vmid].running


async def test_missing_or_wrong_token_gets_401_with_www_authenticate(
    http_gateway: HttpGateway,
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    async with httpx.AsyncClient(base_url=http_gateway.url, timeout=5) as client:
        for headers in ({}, bearer("wrong"), {"Authorization": "Basic eDp5"}):
            for path in ("/mcp", "/sse"):
                resp = (
                    await client.post(path, json=body, headers=headers)
                    if path == "/mcp"
                    else await client.get(path, headers=headers)
                )
                assert resp.status_code == 401
                assert resp.headers["www-authenticate"].startswith("Bearer")
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        metrics = await client.get("/metrics")
        assert "proxbus_gateway_endpoint_up" in metrics.text


async def test_foreign_origin_is_refused(http_gateway: HttpGateway) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    headers = {
        **bearer(ADMIN_SECRET),
        "Origin": "http://evil.example",
        "Accept": "application/json, text/event-stream",
    }
    async with httpx.AsyncClient(base_url=http_gateway.url, timeout=5) as client:
        resp = await client.post("/mcp", json=body, headers=headers)
        assert resp.status_code == 403
        resp = await client.post(
            "/mcp", json=body, headers={**headers, "Origin": "", "Host": "evil.example"}
        )
        assert resp.status_code == 421


async def test_sse_transport_serves_the_same_tools(http_gateway: HttpGateway) -> None:
    with anyio.fail_after(20):
        async with (
            sse_client(f"{http_gateway.url}/sse", headers=bearer(READ_SECRET)) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert "get_vms" in names
            out = await session.call_tool("get_lxcs", {})
            assert not out.is_error
            assert out.structured_content
            assert out.structured_content["count"] > 0


async def test_read_only_mode_hides_destructive_tools_over_http(sim: Simulator) -> None:
    gw = Gateway.from_settings(
        make_settings(read_only=True, gateway_tokens=f"r:admin:{ADMIN_SECRET}"), sim_env(sim)
    )
    try:
        async with (
            serve(gw) as served,
            create_mcp_http_client(headers=bearer(ADMIN_SECRET)) as client,
            streamable_http_client(f"{served.url}/mcp", http_client=client) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            tools = (await session.list_tools()).tools
            assert all(
                t.annotations and (t.annotations.read_only_hint or t.name == "proxmox_api")
                for t in tools
            )
            assert "execute_vm_command" not in {t.name for t in tools}
    finally:
        await gw.close()


async def test_tools_list_payload_is_small(http_gateway: HttpGateway) -> None:
    headers = {**bearer(ADMIN_SECRET), "Accept": "application/json, text/event-stream"}
    async with (
        create_mcp_http_client(headers=bearer(ADMIN_SECRET)) as client,
        streamable_http_client(f"{http_gateway.url}/mcp", http_client=client) as (r, w),
        ClientSession(r, w) as session,
    ):
        await session.initialize()
        tools = (await session.list_tools()).tools
    payload = json.dumps(
        [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools],
        separators=(",", ":"),
    )
    assert len(tools) >= 30
    assert len(payload) < 40_000, len(payload)
    for t in tools:
        assert t.description
        assert len(t.description) < 300
        assert t.annotations is not None
        assert t.output_schema is not None
    _ = headers


async def test_stdio_transport_via_the_console_entry_point(sim: Simulator) -> None:
    env: dict[str, Any] = {
        **sim_env(sim),
        "NATS_ENABLED": "false",
        "PROXBUS_SITE": "lab",
        "LOG_LEVEL": "WARNING",
        "PATH": os.environ.get("PATH", ""),
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "proxbus_mcp_gateway", "--transport", "stdio"], env=env
    )
    with anyio.fail_after(40), open(os.devnull, "w") as devnull:
        async with (
            stdio_client(params, errlog=devnull) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert "get_vms" in names
            out = await session.call_tool("get_vms", {"status": "running"})
            assert not out.is_error
            assert all(v["status"] == "running" for v in out.structured_content["items"])  # type: ignore[index]
