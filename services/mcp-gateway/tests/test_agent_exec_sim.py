"""proxmox_api's array parameters against the simulator (not only a stand-in): the QEMU guest
agent's ``agent/exec`` (``command`` is an array in the official schema, sent as repeated form
values ``command=a&command=b`` as proxmoxer does) and ``agent/exec-status``, through the
official MCP Python client over streamable HTTP. The stand-in test of the exact bytes sent is
``test_upstream.py::test_pve_post_sends_the_token_and_repeated_form_fields``; the simulator's
side of exec is in ``libs/pvesim/tests/test_agent_exec.py``.
"""

from __future__ import annotations

from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from proxbus_mcp_gateway import schema
from proxbus_mcp_gateway.testing import (
    ADMIN_SECRET,
    OPS_SECRET,
    HttpGateway,
)
from proxbus_pvesim.simulator import Simulator


async def _call(url: str, secret: str, arguments: dict[str, Any]) -> Any:
    with anyio.fail_after(30):
        async with (
            create_mcp_http_client(headers={"Authorization": f"Bearer {secret}"}) as client,
            streamable_http_client(f"{url}/mcp", http_client=client) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            return await session.call_tool("proxmox_api", arguments)


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def test_agent_exec_array_reaches_the_simulator_intact(
    sim: Simulator, http_gateway: HttpGateway
) -> None:
    """With the default read cache on: guest agent reads are live, never cached (a repeated
    exec-status poll was answered from the cache for CACHE_TTL)."""
    url = http_gateway.url
    vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and g.running and g.agent)
    base = f"/nodes/{vm.node}/qemu/{vm.vmid}/agent"
    # spaces, an '=' and a leading '-' inside elements: one element each, in order
    command = ["echo", "hello world", "--flag=a b", "-n"]
    started = await _call(
        url,
        ADMIN_SECRET,
        {"method": "POST", "path": f"{base}/exec", "params": {"command": command}, "confirm": True},
    )
    assert not started.is_error, _text(started)
    pid = started.structured_content["data"]["pid"]
    run = sim.agent_exec.history[-1]
    assert (run.vmid, run.pid, run.command) == (vm.vmid, pid, tuple(command))

    status = await _call(
        url,
        ADMIN_SECRET,
        {"method": "GET", "path": f"{base}/exec-status", "params": {"pid": pid}},
    )
    assert not status.is_error, _text(status)
    assert status.structured_content["data"] == {
        "exited": 1,
        "exitcode": 0,
        "out-data": "hello world --flag=a b -n\n",
    }
    # reported once, as qemu-ga does: the simulator's error comes back through the gateway
    again = await _call(
        url,
        ADMIN_SECRET,
        {"method": "GET", "path": f"{base}/exec-status", "params": {"pid": pid}},
    )
    assert again.is_error
    assert "Invalid parameter 'pid'" in _text(again)


async def test_a_stopped_vm_answers_pve_wording(sim: Simulator, http_gateway: HttpGateway) -> None:
    vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
    out = await _call(
        http_gateway.url,
        ADMIN_SECRET,
        {
            "method": "POST",
            "path": f"/nodes/{vm.node}/qemu/{vm.vmid}/agent/exec",
            "params": {"command": ["hostname"]},
            "confirm": True,
        },
    )
    assert out.is_error
    assert f"VM {vm.vmid} is not running" in _text(out)
    assert sim.agent_exec.history == []


async def test_agent_exec_and_its_status_stay_admin_only(
    sim: Simulator, http_gateway: HttpGateway
) -> None:
    # The issue requires it: running commands in a guest is admin, whatever else operate may do.
    for method, path in (
        ("POST", "/nodes/pve1/qemu/100/agent/exec"),
        ("GET", "/nodes/pve1/qemu/100/agent/exec-status"),
    ):
        template, _ = schema.match_path("pve", path)
        spec = schema.load()["pve"][template][method]
        call = schema.ResolvedCall("pve", template, path, method, {}, {}, spec.get("perm"))
        assert schema.required_scope(call) == "admin"
    vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and g.running and g.agent)
    before = sim.request_count
    out = await _call(
        http_gateway.url,
        OPS_SECRET,
        {
            "method": "POST",
            "path": f"/nodes/{vm.node}/qemu/{vm.vmid}/agent/exec",
            "params": {"command": ["id"]},
            "confirm": True,
        },
    )
    assert out.is_error
    assert "needs the 'admin' scope" in _text(out)
    assert sim.request_count == before
    assert sim.agent_exec.history == []
