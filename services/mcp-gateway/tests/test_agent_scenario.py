"""The agent-style acceptance scenario of issue 17, over streamable HTTP with the official client.

Clone a template, start the clone with progress notifications, read its IP through the guest
agent, snapshot it, delete it (first without confirm: a plan, nothing deleted; then with
confirm). The gateway runs with NATS (a real nats-server) and every step leaves its record
in the ``PROXBUS_AUDIT`` stream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from proxbus_events import AUDIT_STREAM
from proxbus_mcp_gateway.app import start_gateway
from proxbus_mcp_gateway.testing import ADMIN_SECRET, TOKENS, make_settings, serve, sim_env
from proxbus_pvesim.testing import run_simulator

LAB: dict[str, Any] = {
    "cluster": {"name": "lab", "nodes": 2},
    "guests": {
        "qemu": 2,
        "lxc": 1,
        "list": [{"vmid": 9000, "name": "debian-tmpl", "node": "pve2", "template": True}],
    },
}


async def audit_records(js: Any, expected: int) -> list[dict[str, Any]]:
    """Every record of the audit stream once it holds ``expected`` (5 s at most)."""
    with anyio.fail_after(5):
        while (await js.stream_info(AUDIT_STREAM)).state.messages < expected:
            await asyncio.sleep(0.02)
    info = await js.stream_info(AUDIT_STREAM)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(AUDIT_STREAM, seq)
        out.append({"subject": msg.subject, **json.loads(msg.data)})
    return out


async def test_clone_start_ip_snapshot_delete_over_streamable_http_is_audited(
    nats_server: Any, js: Any
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with run_simulator(LAB, instant=False, task_seconds=0.6) as sim:
        settings = make_settings(nats_enabled=True, nats_url=nats_server.url, gateway_tokens=TOKENS)
        running = await start_gateway(settings, sim_env(sim))
        try:
            async with (
                serve(running.gateway) as http,
                create_mcp_http_client(
                    headers={"Authorization": f"Bearer {ADMIN_SECRET}"}
                ) as client,
                streamable_http_client(f"{http.url}/mcp", http_client=client) as (r, w),
                ClientSession(r, w) as session,
            ):
                with anyio.fail_after(60):
                    await session.initialize()
                    names = {t.name for t in (await session.list_tools()).tools}
                    assert {"clone_guest", "get_guest_network", "delete_guest"} <= names

                    cloned = await session.call_tool(
                        "clone_guest", {"vmid": 9000, "name": "agent-vm", "wait": True}
                    )
                    assert not cloned.is_error, cloned.content
                    assert cloned.structured_content
                    newid = cloned.structured_content["newid"]
                    clone = sim.lab.guests[newid]
                    assert (clone.name, clone.node, clone.linked_base) == (
                        "agent-vm",
                        "pve2",
                        9000,
                    )

                    started = await session.call_tool(
                        "execute_vm_command",
                        {"vmid": newid, "command": "start", "wait": True},
                        progress_callback=on_progress,
                    )
                    assert not started.is_error, started.content
                    assert started.structured_content
                    assert started.structured_content["status"] == "ok"
                    assert sim.lab.guests[newid].running
                    assert len(progress) >= 2, progress
                    assert progress[-1][0] == progress[-1][1]

                    net = await session.call_tool("get_guest_network", {"vmid": newid})
                    assert not net.is_error, net.content
                    assert net.structured_content
                    assert net.structured_content["ip"] == clone.guest_ip()

                    snap = await session.call_tool(
                        "create_snapshot", {"vmid": newid, "name": "before_delete", "wait": True}
                    )
                    assert not snap.is_error, snap.content
                    assert [s.name for s in sim.lab.guests[newid].snapshots] == ["before_delete"]

                    deletes_before = sum(1 for q in sim.request_log if q.method == "DELETE")
                    planned = await session.call_tool("delete_guest", {"vmid": newid, "stop": True})
                    assert not planned.is_error, planned.content
                    assert planned.structured_content
                    assert planned.structured_content["planned"] is True
                    assert "PLAN" in str(planned.content[0])
                    assert newid in sim.lab.guests
                    assert sim.lab.guests[newid].running
                    assert sum(1 for q in sim.request_log if q.method == "DELETE") == deletes_before

                    deleted = await session.call_tool(
                        "delete_guest", {"vmid": newid, "stop": True, "confirm": True, "wait": True}
                    )
                    assert not deleted.is_error, deleted.content
                    assert deleted.structured_content
                    assert deleted.structured_content["status"] == "ok"
                    assert newid not in sim.lab.guests
            steps = [
                "clone_guest",
                "execute_vm_command",
                "get_guest_network",
                "create_snapshot",
                "delete_guest",
                "delete_guest",
            ]
            records = await audit_records(js, len(steps))
        finally:
            await running.close()
    assert [r["tool"] for r in records] == steps
    assert all(r["subject"] == f"proxbus.audit.lab.{r['tool']}" for r in records)
    assert all(r["caller"] == "root" for r in records)
    assert all(r["transport"] == "http" for r in records)
    assert all(r["outcome"] == "ok" for r in records)
    assert records[0]["arguments"] == {"vmid": 9000, "name": "agent-vm", "wait": True}
    assert records[1]["arguments"]["vmid"] == newid
    assert "confirm" not in records[4]["arguments"]
    assert records[5]["arguments"]["confirm"] is True
