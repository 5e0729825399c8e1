"""Issue 17's smaller items: output schemas the official client accepts, audit transport and
codes, human progress text, no-op starts, no retries for unknown tasks, readable text,
tools/list per scope, READ_ONLY annotations."""

from __future__ import annotations

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import (
    ADMIN,
    ADMIN_SECRET,
    OPS_SECRET,
    READ_SECRET,
    TOKENS,
    HttpGateway,
    make_settings,
    serve,
    sim_env,
)
from proxbus_pvesim.simulator import Simulator


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "proxbus.audit"]


async def test_official_client_accepts_ha_status_with_null_state(
    sim: Simulator, http_gateway: HttpGateway
) -> None:
    with anyio.fail_after(30):
        async with (
            create_mcp_http_client(headers=bearer(READ_SECRET)) as client,
            streamable_http_client(f"{http_gateway.url}/mcp", http_client=client) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            out = await session.call_tool("get_ha_status", {})
    assert not out.is_error
    assert out.structured_content is not None
    items = out.structured_content["items"]
    assert any(item["state"] is None for item in items)  # quorum / master / lrm entries


async def test_sse_calls_are_audited_as_sse(
    http_gateway: HttpGateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="proxbus.audit"), anyio.fail_after(30):
        async with (
            sse_client(f"{http_gateway.url}/sse", headers=bearer(READ_SECRET)) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            out = await session.call_tool("list_clusters", {})
            assert not out.is_error
    lines = audit_lines(caplog)
    assert len(lines) == 1
    assert '"transport":"sse"' in lines[0]
    assert '"caller":"reader"' in lines[0]


async def test_tools_list_shows_only_what_the_scope_allows(http_gateway: HttpGateway) -> None:
    seen: dict[str, set[str]] = {}
    with anyio.fail_after(30):
        for name, secret in (("read", READ_SECRET), ("ops", OPS_SECRET), ("admin", ADMIN_SECRET)):
            async with (
                create_mcp_http_client(headers=bearer(secret)) as client,
                streamable_http_client(f"{http_gateway.url}/mcp", http_client=client) as (r, w),
                ClientSession(r, w) as session,
            ):
                await session.initialize()
                seen[name] = {t.name for t in (await session.list_tools()).tools}
    gw = http_gateway.gateway
    operate_tools = {s.name for s in gw.registry.tools.values() if s.scope == "operate"}
    assert operate_tools
    assert not seen["read"] & operate_tools
    assert {"get_vms", "proxmox_api", "whoami"} <= seen["read"]
    assert operate_tools <= seen["ops"]
    assert seen["admin"] == set(gw.registry.tools)


async def test_read_only_mode_lists_proxmox_api_as_read_only(sim: Simulator) -> None:
    gw = Gateway.from_settings(make_settings(read_only=True, gateway_tokens=TOKENS), sim_env(sim))
    gw.start()
    try:
        async with serve(gw) as served:
            with anyio.fail_after(30):
                async with (
                    create_mcp_http_client(headers=bearer(ADMIN_SECRET)) as client,
                    streamable_http_client(f"{served.url}/mcp", http_client=client) as (r, w),
                    ClientSession(r, w) as session,
                ):
                    await session.initialize()
                    tools = (await session.list_tools()).tools
        api = next(t for t in tools if t.name == "proxmox_api")
        assert api.annotations is not None
        assert api.annotations.destructive_hint is False
        assert api.annotations.read_only_hint is True
        assert all(t.annotations and t.annotations.read_only_hint for t in tools)
    finally:
        await gw.close()


async def test_pbs_progress_says_what_runs(sim: Simulator, gateway: Gateway) -> None:
    messages: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    out = await gateway.call("pbs_start_gc", {"store": "store1", "wait": True}, ADMIN, progress)
    assert out.ok, out.error
    assert messages[0] == "garbage collection on store1: started"
    assert messages[-1] == "garbage collection on store1: finished, OK"
    assert not any(m.startswith("task ") for m in messages)


async def test_vm_progress_names_the_action_and_guest(sim: Simulator, gateway: Gateway) -> None:
    vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
    messages: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    args = {"vmid": vm.vmid, "command": "start", "wait": True}
    out = await gateway.call("execute_vm_command", args, ADMIN, progress)
    assert out.ok, out.error
    assert messages[0] == f"start of VM {vm.vmid}: started"


async def test_start_on_a_running_vm_answers_already_running_without_a_task(
    sim: Simulator, gateway: Gateway
) -> None:
    vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and g.running)
    tasks_before = len(sim.pve_tasks.all_tasks())
    out = await gateway.call("execute_vm_command", {"vmid": vm.vmid, "command": "start"}, ADMIN)
    assert out.ok, out.error
    assert out.result.data["executed"] is False
    assert out.result.data["status"] == "already running"
    assert "already running" in out.result.text
    assert len(sim.pve_tasks.all_tasks()) == tasks_before


async def test_stop_on_a_stopped_container_is_a_no_op_too(sim: Simulator, gateway: Gateway) -> None:
    ct = next(g for g in sim.lab.guests.values() if g.kind == "lxc" and not g.running)
    tasks_before = len(sim.pve_tasks.all_tasks())
    args = {"vmid": ct.vmid, "command": "stop", "confirm": True}
    out = await gateway.call("execute_lxc_command", args, ADMIN)
    assert out.ok, out.error
    assert out.result.data["status"] == "already stopped"
    assert len(sim.pve_tasks.all_tasks()) == tasks_before


async def test_unknown_upid_is_asked_once_and_answers_404(sim: Simulator, gateway: Gateway) -> None:
    upid = "UPID:pve1:00001234:00ABCDEF:65000000:qmstart:100:root@pam:"
    before = [r for r in sim.request_log if upid in r.path]
    out = await gateway.call("get_task_status", {"upid": upid}, ADMIN)
    assert out.code == 404
    assert "no such task" in out.error
    asked = [r for r in sim.request_log if upid in r.path]
    assert len(asked) - len(before) == 1


async def test_text_keeps_spaces(sim: Simulator, gateway: Gateway) -> None:
    out = await gateway.call("get_ha_status", {}, ADMIN)
    assert out.ok, out.error
    assert "(active, " in out.result.text
    assert "_(active" not in out.result.text
    running = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and g.running)
    plan = await gateway.call(
        "execute_vm_command", {"vmid": running.vmid, "command": "stop"}, ADMIN
    )
    assert "hard power-off now (like pulling the plug)" in plan.result.text


async def test_audit_keeps_the_upstream_status(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    # A path in the official schema that the simulator does not serve: it answers 501,
    # as pveproxy does for a method it lacks.
    gw = Gateway.from_settings(make_settings(), sim_env(sim))
    try:
        with caplog.at_level("INFO", logger="proxbus.audit"):
            out = await gw.call("proxmox_api", {"path": "/cluster/sdn/zones"}, ADMIN)
        served = [r for r in sim.request_log if r.path.endswith("/cluster/sdn/zones")]
        assert served
        assert served[-1].status == 501
        assert out.code == 501
        lines = audit_lines(caplog)
        assert '"code":501' in lines[-1]
    finally:
        await gw.close()


async def test_official_client_accepts_every_argument_free_read_tool(
    http_gateway: HttpGateway,
) -> None:
    """The official client checks structuredContent against each tool's output schema."""
    called = []
    with anyio.fail_after(60):
        async with (
            create_mcp_http_client(headers=bearer(ADMIN_SECRET)) as client,
            streamable_http_client(f"{http_gateway.url}/mcp", http_client=client) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            for tool in (await session.list_tools()).tools:
                ro = tool.annotations is not None and tool.annotations.read_only_hint
                if not ro or tool.input_schema.get("required"):
                    continue
                out = await session.call_tool(tool.name, {})  # raises on a schema mismatch
                if not out.is_error:
                    called.append(tool.name)
    assert {"get_vms", "get_ha_status", "get_nodes", "get_storage", "list_clusters"} <= set(called)
