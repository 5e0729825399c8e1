"""Audit of issue 17, item 4: upstream failures are reported as such.

A Proxmox endpoint that times out, refuses the token, answers 500 or is down gives an
``isError`` result naming the cause (never "not found", never an empty list), audited with
outcome ``error``; PBS alike; some sources failing → what answered plus ``errors``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import ADMIN, OPS_SECRET, TOKENS, make_settings, serve, sim_env
from proxbus_pvesim.simulator import Simulator


@pytest.fixture
async def quick(sim: Simulator) -> AsyncIterator[Gateway]:
    """A gateway with a short API timeout, no retries and no read cache."""
    settings = make_settings(api_timeout=0.5, api_retries=0, cache_ttl=0, gateway_tokens=TOKENS)
    gw = Gateway.from_settings(settings, sim_env(sim))
    gw.start()
    try:
        yield gw
    finally:
        await gw.close()


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    prefix = "audit "
    return [
        json.loads(r.getMessage().removeprefix(prefix))
        for r in caplog.records
        if r.name == "proxbus.audit"
    ]


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("get_guest_status", {"vmid": 100}),
        ("execute_vm_command", {"vmid": 100, "command": "start"}),
        ("get_vms", {}),
        ("get_lxcs", {}),
        ("get_storage", {}),
    ],
)
async def test_a_resources_timeout_is_a_timeout_error_not_not_found(
    sim: Simulator,
    quick: Gateway,
    caplog: pytest.LogCaptureFixture,
    tool: str,
    args: dict[str, Any],
) -> None:
    sim.add_latency("/cluster/resources", 3.0)
    with caplog.at_level(logging.INFO, logger="proxbus.audit"):
        out = await quick.call(tool, args, ADMIN)
    assert not out.ok
    assert out.code in (502, 503, 504), (out.code, out.error)
    assert "not found" not in (out.error or "")
    assert "timed out" in (out.error or "") or "timeout" in (out.error or ""), out.error
    (record,) = audit_lines(caplog)
    assert (record["outcome"], record["code"]) == ("error", out.code)
    assert not [t for t in sim.pve_tasks.all_tasks() if t.type == "qmstart"]


@pytest.mark.parametrize(
    ("tool", "args", "path"),
    [
        ("pbs_list_datastores", {}, "/admin/datastore"),
        ("pbs_datastore_status", {"store": "store1"}, "/admin/datastore/store1/status"),
        ("pbs_get_tasks", {}, "/nodes/localhost/tasks"),
    ],
)
async def test_pbs_answering_500_is_an_error_not_an_empty_list(
    sim: Simulator, quick: Gateway, tool: str, args: dict[str, Any], path: str
) -> None:
    sim.fail_requests(path, status=500, reason="simulated failure", service="pbs")
    out = await quick.call(tool, args, ADMIN)
    assert not out.ok, out.result
    assert out.code == 502, (out.code, out.error)
    # PBS answers the message as the body under the standard phrase (proxmox-rest-server)
    assert "500 Internal Server Error: simulated failure" in (out.error or "")


async def test_pbs_down_is_an_error_naming_the_connection(sim: Simulator, quick: Gateway) -> None:
    await sim.stop_api("pbs")
    out = await quick.call("pbs_list_datastores", {}, ADMIN)
    assert not out.ok, out.result
    assert out.code in (502, 503)
    assert "connection refused" in (out.error or ""), out.error


async def test_the_official_client_sees_is_error_with_the_cause(
    sim: Simulator, quick: Gateway
) -> None:
    sim.fail_requests("/cluster/resources", status=500, reason="simulated failure")
    async with (
        serve(quick) as served,
        create_mcp_http_client(headers={"Authorization": f"Bearer {OPS_SECRET}"}) as client,
        streamable_http_client(f"{served.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        for tool, args in (("get_vms", {}), ("get_guest_status", {"vmid": 100})):
            out = await session.call_tool(tool, args)
            assert out.is_error, (tool, out)
            text = out.content[0].text  # type: ignore[union-attr]
            assert "500 simulated failure" in text, text
            assert "not found" not in text


@pytest.mark.parametrize("wait", [False, True])
async def test_get_task_status_follows_a_pbs_task_handle(
    sim: Simulator, gateway: Gateway, wait: bool
) -> None:
    """pbs_start_gc / pbs_start_verify hand back a PBS UPID to poll with get_task_status (the
    hint of a wait cut at MAX_WAIT says so): it must read it from PBS, not look for a PVE
    node named after the PBS host."""
    started = await gateway.call("pbs_start_gc", {"store": "store1"}, ADMIN)
    assert started.ok, started.error
    assert started.result is not None
    upid = started.result.data["upid"]
    out = await gateway.call("get_task_status", {"upid": upid, "wait": wait}, ADMIN)
    assert out.ok, out.error
    assert out.result is not None
    assert out.result.data["upid"] == upid


async def test_a_proxmox_permission_refusal_is_a_403_with_proxmox_reason_and_audited(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway's scope allows the call, the Proxmox token does not (PVEAuditor): the
    caller sees Proxmox's own 403 reason, the audit keeps 403 (not 500/502), no retry."""
    gw = Gateway.from_settings(make_settings(), sim_env(sim, token=sim.tokens.auditor))
    gw.start()
    try:
        vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
        before = len(sim.request_log)
        with caplog.at_level(logging.INFO, logger="proxbus.audit"):
            out = await gw.call("execute_vm_command", {"vmid": vm.vmid, "command": "start"}, ADMIN)
        assert out.code == 403, (out.code, out.error)
        assert (out.error or "").startswith("403 Permission check failed"), out.error
        (record,) = audit_lines(caplog)
        assert (record["outcome"], record["code"]) == ("error", 403)
        posts = [r for r in sim.request_log[before:] if r.method == "POST"]
        assert len(posts) == 1, posts
        assert not vm.running
    finally:
        await gw.close()
