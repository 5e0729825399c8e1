"""Tool behaviour against the simulator, through the transport-independent pipeline."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import ADMIN, READER, make_settings, sim_env
from proxbus_pvesim.simulator import Simulator


async def call(gw: Gateway, tool: str, caller: Any = ADMIN, **args: Any) -> Any:
    return await gw.call(tool, args, caller)


async def test_inventory_tools_answer_with_structured_data_and_text(gateway: Gateway) -> None:
    vms = await call(gateway, "get_vms")
    assert vms.ok, vms.error
    assert vms.result.data["count"] == len(vms.result.data["items"]) > 0
    assert vms.result.text.startswith("VMs (")
    for tool in (
        "get_nodes",
        "get_cluster_status",
        "get_lxcs",
        "get_storage",
        "get_ha_status",
        "list_clusters",
        "test_connectivity",
        "run_diagnostic",
        "whoami",
        "pbs_list_datastores",
        "get_recent_tasks",
        "get_cluster_log",
    ):
        out = await call(gateway, tool)
        assert out.ok, f"{tool}: {out.error}"


@pytest.mark.parametrize("node", ["../etc", "pve1/../../access", "pve%2f1", "pve1\n", "-x"])
async def test_invalid_node_name_never_reaches_the_api(
    sim: Simulator, gateway: Gateway, node: str
) -> None:
    before = sim.request_count
    out = await call(gateway, "get_node_status", node=node)
    assert not out.ok
    assert out.code == 400
    assert "node" in out.error
    assert sim.request_count == before


async def test_unknown_node_is_reported_as_not_in_cluster(gateway: Gateway) -> None:
    out = await call(gateway, "get_node_status", node="pve9")
    assert out.code == 404
    assert out.error == "node pve9 is not in cluster lab"


async def test_destructive_call_without_confirm_returns_a_plan_and_changes_nothing(
    sim: Simulator, gateway: Gateway
) -> None:
    running = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and g.running)
    out = await call(gateway, "execute_vm_command", vmid=running.vmid, command="stop")
    assert out.ok
    assert out.result.data["planned"] is True
    assert out.result.data["executed"] is False
    assert out.result.data["current"]["status"] == "running"
    assert "PLAN" in out.result.text
    assert sim.lab.guests[running.vmid].running
    assert not any(t.type == "qmstop" for t in sim.pve_tasks.all_tasks())


async def test_start_with_wait_reports_progress_and_ends_ok(
    sim: Simulator, gateway: Gateway
) -> None:
    stopped = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    out = await gateway.call(
        "execute_vm_command",
        {"vmid": stopped.vmid, "command": "start", "wait": True},
        ADMIN,
        progress,
    )
    assert out.ok, out.error
    assert out.result.data["status"] == "ok"
    assert sim.lab.guests[stopped.vmid].running
    assert seen
    assert seen[-1][0] == seen[-1][1]


async def test_read_scope_cannot_operate(gateway: Gateway) -> None:
    out = await call(gateway, "execute_vm_command", READER, vmid=100, command="start")
    assert out.code == 403
    assert "needs the 'operate' scope" in out.error


async def test_proxmox_token_without_privilege_gives_the_permission_error(sim: Simulator) -> None:
    gw = Gateway.from_settings(make_settings(), sim_env(sim, token=sim.tokens.auditor))
    try:
        stopped = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
        out = await call(gw, "execute_vm_command", vmid=stopped.vmid, command="start")
        assert out.code == 403
        assert out.error.startswith("403 Permission check failed (/vms/")
        assert "VM.PowerMgmt" in out.error
    finally:
        await gw.close()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"path": "/nodes/pve1/qemu/100/bogus"}, "not a PVE API path"),
        ({"path": "/cluster/resources", "params": {"nope": 1}}, "unknown parameter 'nope'"),
        ({"path": "/cluster/resources", "params": {"type": "bogus"}}, "must be one of"),
        ({"path": "/nodes/../access"}, "invalid"),
        ({"method": "PATCH", "path": "/nodes"}, "invalid arguments"),
    ],
)
async def test_proxmox_api_rejects_what_the_schema_lacks_without_a_request(
    sim: Simulator, gateway: Gateway, args: dict[str, Any], fragment: str
) -> None:
    before = sim.request_count
    out = await gateway.call("proxmox_api", args, ADMIN)
    assert not out.ok
    assert fragment in out.error
    assert sim.request_count == before


async def test_proxmox_api_get_works_and_writes_need_confirm(
    sim: Simulator, gateway: Gateway
) -> None:
    out = await call(gateway, "proxmox_api", path="/nodes/pve1/qemu/100/status/current")
    assert out.ok
    assert out.result.data["data"]["vmid"] == 100
    stopped = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
    path = f"/nodes/{stopped.node}/qemu/{stopped.vmid}/status/start"
    planned = await call(gateway, "proxmox_api", method="POST", path=path)
    assert planned.ok
    assert planned.result.data["planned"]
    assert not sim.lab.guests[stopped.vmid].running
    reader = await call(gateway, "proxmox_api", READER, method="POST", path=path, confirm=True)
    assert reader.code == 403


async def test_cache_serves_repeated_reads_and_actions_invalidate_it(
    sim: Simulator, gateway: Gateway
) -> None:
    await call(gateway, "get_vms")
    before = sim.request_count
    await call(gateway, "get_vms")
    assert sim.request_count == before
    stopped = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
    elsewhere = next(n for n in ("pve1", "pve2", "pve3") if n != stopped.node)
    await call(gateway, "get_node_status", node=elsewhere)
    await call(gateway, "get_node_status", node=stopped.node)
    await call(gateway, "execute_vm_command", vmid=stopped.vmid, command="start", wait=True)
    vms = await call(gateway, "get_vms")
    status = {v["vmid"]: v["status"] for v in vms.result.data["items"]}
    assert status[stopped.vmid] == "running"
    # The action touched one node: another node's cached answer is still served...
    before = sim.request_count
    await call(gateway, "get_node_status", node=elsewhere)
    assert sim.request_count == before
    # ...while the acting node's is fetched again.
    await call(gateway, "get_node_status", node=stopped.node)
    assert sim.request_count == before + 1


async def test_snapshot_rollback_plans_then_acts(sim: Simulator, gateway: Gateway) -> None:
    vmid = next(g.vmid for g in sim.lab.guests.values() if g.kind == "qemu")
    created = await call(gateway, "create_snapshot", vmid=vmid, name="before", wait=True)
    assert created.ok, created.error
    listed = await call(gateway, "list_snapshots", vmid=vmid)
    assert [s["name"] for s in listed.result.data["items"]] == ["before"]
    plan = await call(gateway, "delete_snapshot", vmid=vmid, name="before")
    assert plan.result.data["planned"]
    done = await call(gateway, "delete_snapshot", vmid=vmid, name="before", confirm=True, wait=True)
    assert done.ok, done.error
    missing = await call(gateway, "rollback_snapshot", vmid=vmid, name="before", confirm=True)
    assert missing.code == 404


async def test_read_only_hides_every_tool_that_changes_something(sim: Simulator) -> None:
    gw = Gateway.from_settings(make_settings(read_only=True), sim_env(sim))
    try:
        names = {t.name for t in gw.tools_for()}
        assert "get_vms" in names
        assert "proxmox_api" in names
        assert not names & {
            "execute_vm_command",
            "rollback_snapshot",
            "migrate_guest",
            "create_backup",
            "pbs_start_gc",
            "silence_alerts",
        }
        out = await call(gw, "execute_vm_command", vmid=100, command="start")
        assert out.code == 403
        assert "READ_ONLY" in out.error
        api = await call(
            gw, "proxmox_api", method="POST", path="/nodes/pve1/qemu/100/status/start", confirm=True
        )
        assert api.code == 403
    finally:
        await gw.close()


async def test_pbs_backups_carry_verification_state(gateway: Gateway) -> None:
    out = await call(gateway, "pbs_list_backups", store="store1", limit=500)
    assert out.ok, out.error
    assert {i["verify"] for i in out.result.data["items"]} <= {"ok", "failed", "none"}
    gc = await call(gateway, "pbs_start_gc", store="store1", wait=True)
    assert gc.ok, gc.error


async def test_task_status_of_a_failed_task_has_the_log_tail(
    sim: Simulator, gateway: Gateway
) -> None:
    vmid = next(g.vmid for g in sim.lab.guests.values() if g.kind == "qemu")
    sim.fail_next_backup(vmid)
    out = await call(gateway, "create_backup", vmid=vmid, wait=True)
    assert not out.ok
    assert "FAILED" in out.error
    assert "log tail" in out.error


async def test_migrate_without_confirm_is_a_plan(sim: Simulator, gateway: Gateway) -> None:
    guest = next(g for g in sim.lab.guests.values() if g.kind == "qemu")
    target = next(n for n in sim.lab.nodes if n != guest.node)
    out = await call(gateway, "migrate_guest", vmid=guest.vmid, target=target)
    assert out.ok
    assert out.result.data["planned"]
    assert sim.lab.guests[guest.vmid].node == guest.node


async def test_every_error_is_a_message_not_a_traceback(gateway: Gateway) -> None:
    for tool, args in [
        ("nope", {}),
        ("get_vms", {"bogus": 1}),
        ("get_guest_status", {"vmid": 5}),
        ("get_task_status", {"upid": "UPID:x"}),
        ("get_vms", {"cluster": "mars"}),
    ]:
        out = await gateway.call(tool, args, ADMIN)
        assert not out.ok
        assert "Traceback" not in out.error
        assert out.error


async def test_fingerprint_pinning_trusts_exactly_that_certificate(sim: Simulator) -> None:
    base = {**sim_env(sim), "VERIFY_SSL": "false"}
    pinned = Gateway.from_settings(
        make_settings(), {**base, "PVE_CLUSTER_PRIMARY_FINGERPRINT": sim.fingerprint}
    )
    wrong = Gateway.from_settings(
        make_settings(api_retries=0), {**base, "PVE_CLUSTER_PRIMARY_FINGERPRINT": "00" * 32}
    )
    untrusted = Gateway.from_settings(make_settings(api_retries=0), {**base, "VERIFY_SSL": "true"})
    try:
        ok = await call(pinned, "get_vms")
        assert ok.ok, ok.error
        bad = await call(wrong, "get_node_status", node="pve1")
        assert not bad.ok
        assert "fingerprint mismatch" in bad.error
        nope = await call(untrusted, "get_node_status", node="pve1")
        assert not nope.ok
        assert "certificate not trusted" in nope.error
    finally:
        for gw in (pinned, wrong, untrusted):
            await gw.close()


async def test_long_waits_return_a_task_handle() -> None:
    from proxbus_pvesim.testing import run_simulator

    async with run_simulator(instant=False, task_seconds=30) as slow:
        gw = Gateway.from_settings(make_settings(max_wait=0.3), sim_env(slow))
        try:
            stopped = next(
                g for g in slow.lab.guests.values() if g.kind == "qemu" and not g.running
            )
            out = await call(
                gw, "execute_vm_command", vmid=stopped.vmid, command="start", wait=True, timeout=600
            )
            assert out.ok, out.error
            assert out.result.data["status"] == "running"
            upid = out.result.data["upid"]
            assert out.result.data["task"]["handle"] == upid
            again = await call(gw, "get_task_status", upid=upid)
            assert again.ok
            assert again.result.data["status"] == "running"
        finally:
            await gw.close()


async def test_breaker_closes_again_after_the_endpoint_recovers(sim: Simulator) -> None:
    gw = Gateway.from_settings(
        make_settings(cache_ttl=0, breaker_failures=1, breaker_cooldown=0.2, api_retries=0),
        sim_env(sim),
    )
    try:
        await call(gw, "get_nodes")
        await sim.stop_api("pve")
        down = await call(gw, "get_node_status", node="pve1")
        assert not down.ok
        assert gw.pool.endpoint_status()[0]["state"] == "open"
        await sim.start_api("pve")
        deadline = asyncio.get_running_loop().time() + 5
        while gw.pool.endpoint_status()[0]["state"] != "half-open":
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        up = await call(gw, "get_node_status", node="pve1")
        assert up.ok, up.error
        assert gw.pool.endpoint_status()[0]["state"] == "closed"
    finally:
        await gw.close()


async def test_token_allowlists_filter_lists_and_refuse_other_guests(
    sim: Simulator, gateway: Gateway
) -> None:
    from proxbus_mcp_gateway.auth import Caller
    from proxbus_mcp_gateway.config import TokenSpec

    spec = TokenSpec(
        name="web",
        secret_sha256="0" * 64,
        scopes=frozenset({"read", "operate"}),
        nodes=frozenset({"pve1"}),
        vmids=((100, 199),),
    )
    caller = Caller.from_token(spec, "test")
    everything = await gateway.call("get_vms", {}, ADMIN)  # the same cached answer, unfiltered
    vms = await gateway.call("get_vms", {}, caller)
    assert vms.ok
    assert vms.result.data["items"]
    assert all(v["node"] == "pve1" and 100 <= v["vmid"] <= 199 for v in vms.result.data["items"])
    assert vms.result.data["count"] < everything.result.data["count"]
    again = await gateway.call("get_vms", {}, ADMIN)
    assert again.result.data == everything.result.data
    other = next(g for g in sim.lab.guests.values() if g.node != "pve1" and g.vmid < 200)
    refused = await gateway.call("get_guest_status", {"vmid": other.vmid}, caller)
    assert refused.code == 403
    assert "node" in refused.error
    raw = await gateway.call("proxmox_api", {"path": "/cluster/resources"}, caller)
    assert raw.code == 403


async def test_environment_ca_bundle_and_proxies_are_honoured_once_per_endpoint(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VERIFY_SSL=true (default) + REQUESTS_CA_BUNDLE pointing at a private CA works; the
    proxy variables are resolved when the client is built (NO_PROXY covers loopback here,
    so nothing is ever sent to the made-up proxy)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sim.ca_path))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    env = {k: v for k, v in sim_env(sim).items() if k != "VERIFY_SSL"}
    gw = Gateway.from_settings(make_settings(), env)
    try:
        vms = await call(gw, "get_vms")
        assert vms.ok, vms.error
        client = gw.pool.cluster(None).groups[0].clients[0]
        assert client.http.proxy is None  # loopback is in NO_PROXY
        remote_env = {**env, "PVE_CLUSTER_PRIMARY_HOST": "pve-remote.invalid:8006"}
        remote = Gateway.from_settings(make_settings(), remote_env)  # built, never called
        try:
            remote_client = remote.pool.cluster(None).groups[0].clients[0]
            assert remote_client.http.proxy == "http://proxy.invalid:3128"
        finally:
            await remote.close()
        # Without the variable, the same default verification refuses the private CA.
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        strict = Gateway.from_settings(make_settings(api_retries=0), env)
        try:
            refused = await call(strict, "get_vms")
            assert not refused.ok
            assert "certificate" in refused.error.lower()
        finally:
            await strict.close()
    finally:
        await gw.close()
