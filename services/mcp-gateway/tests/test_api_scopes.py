"""proxmox_api: scopes from the schema's permission data, PBS patterns, array parameters."""

from __future__ import annotations

from typing import Any

import pytest
from proxbus_mcp_gateway import schema
from proxbus_mcp_gateway.auth import Caller, parse_scopes
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import ADMIN, READER, make_settings, sim_env
from proxbus_pvesim.simulator import Simulator

OPERATOR = Caller("test-operator", parse_scopes("read+operate"), "test")


@pytest.mark.parametrize(
    ("product", "method", "path", "scope"),
    [
        ("pve", "GET", "/cluster/resources", "read"),
        ("pve", "GET", "/nodes/pve1/qemu/100/config", "read"),
        ("pve", "GET", "/nodes/pve1/qemu/100/agent/get-osinfo", "read"),
        ("pve", "GET", "/nodes/pve1/storage/local/content", "read"),
        ("pve", "GET", "/nodes/pve1/qemu/100/agent/file-read", "admin"),
        ("pve", "GET", "/nodes/pve1/scan/nfs", "admin"),
        ("pve", "GET", "/nodes/pve1/scan/lvm", "admin"),
        ("pve", "GET", "/nodes/pve1/storage/local/file-restore/download", "admin"),
        ("pve", "GET", "/nodes/pve1/syslog", "admin"),
        ("pve", "GET", "/cluster/log", "read"),
        (
            "pve",
            "GET",
            "/nodes/pve1/tasks/UPID:pve1:0000123A:00AB12CD:6560F00D:qmstart:100:root@pam:/log",
            "read",
        ),
        ("pve", "GET", "/cluster/ha/status/current", "read"),
        ("pve", "GET", "/cluster/tasks", "read"),
        ("pve", "POST", "/nodes/pve1/qemu/100/status/start", "operate"),
        ("pve", "POST", "/nodes/pve1/lxc/200/status/stop", "operate"),
        ("pve", "POST", "/nodes/pve1/qemu/100/snapshot", "operate"),
        ("pve", "POST", "/nodes/pve1/qemu/100/snapshot/s1/rollback", "operate"),
        ("pve", "POST", "/nodes/pve1/qemu/100/migrate", "operate"),
        ("pve", "POST", "/nodes/pve1/vzdump", "operate"),
        ("pve", "DELETE", "/nodes/pve1/qemu/100", "admin"),
        ("pve", "POST", "/nodes/pve1/qemu/100/config", "admin"),
        ("pve", "PUT", "/nodes/pve1/qemu/100/config", "admin"),
        ("pve", "POST", "/nodes/pve1/qemu/100/agent/exec", "admin"),
        ("pve", "POST", "/nodes/pve1/qemu/100/agent/set-user-password", "admin"),
        ("pve", "POST", "/nodes/pve1/qemu/100/monitor", "admin"),
        ("pve", "POST", "/nodes/pve1/qemu", "admin"),
        (
            "pve",
            "DELETE",
            "/nodes/pve1/storage/local/content/local:vzdump-qemu-100.vma.zst",
            "admin",
        ),
        ("pve", "PUT", "/access/acl", "admin"),
        ("pbs", "GET", "/admin/datastore/store1/snapshots", "read"),
        ("pbs", "GET", "/admin/datastore/store1/download-decoded", "admin"),
        ("pbs", "POST", "/admin/datastore/store1/gc", "operate"),
        ("pbs", "POST", "/admin/datastore/store1/verify", "operate"),
        ("pbs", "POST", "/admin/datastore/store1/prune", "admin"),
        ("pbs", "DELETE", "/admin/datastore/store1/snapshots", "admin"),
        ("pbs", "POST", "/config/sync", "admin"),
    ],
)
def test_scope_follows_the_schema_permissions(
    product: Any, method: str, path: str, scope: str
) -> None:
    template, _ = schema.match_path(product, path)
    spec = schema.load()[product][template][method]
    call = schema.ResolvedCall(product, template, path, method, {}, {}, spec.get("perm"))
    assert schema.required_scope(call) == scope


def shadow(vmid: int, node: str) -> dict[str, Any]:
    return {
        "path": f"/nodes/{node}/qemu/{vmid}/agent/file-read",
        "params": {"file": "/etc/shadow"},
    }


async def test_read_token_cannot_read_guest_files_or_scan_storage(
    sim: Simulator, gateway: Gateway
) -> None:
    before = sim.request_count
    for args in (
        shadow(100, "pve1"),
        {"path": "/nodes/pve1/scan/nfs", "params": {"server": "10.0.0.5"}},
    ):
        out = await gateway.call("proxmox_api", args, READER)
        assert out.code == 403, args
        assert "needs the 'admin' scope" in out.error
    assert sim.request_count == before
    ok = await gateway.call("proxmox_api", {"path": "/cluster/resources"}, READER)
    assert ok.ok, ok.error


async def test_read_only_mode_refuses_guest_file_reads_even_for_admin(sim: Simulator) -> None:
    gw = Gateway.from_settings(make_settings(read_only=True), sim_env(sim))
    try:
        before = sim.request_count
        out = await gw.call("proxmox_api", shadow(100, "pve1"), ADMIN)
        assert out.code == 403
        assert "READ_ONLY" in out.error
        assert sim.request_count == before
        ok = await gw.call("proxmox_api", {"path": "/nodes/pve1/qemu/100/config"}, ADMIN)
        assert ok.ok, ok.error
    finally:
        await gw.close()


@pytest.mark.parametrize(
    ("method", "suffix", "params"),
    [
        ("DELETE", "", {"purge": 1}),
        ("POST", "/config", {"hookscript": "local:snippets/evil.sh"}),
        ("POST", "/agent/set-user-password", {"username": "root", "password": "x12345"}),
        ("POST", "/agent/exec", {"command": ["sh", "-c", "id"]}),
    ],
)
async def test_operate_token_cannot_delete_reconfigure_or_enter_a_guest(
    sim: Simulator, gateway: Gateway, method: str, suffix: str, params: dict[str, Any]
) -> None:
    vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu")
    args = {
        "method": method,
        "path": f"/nodes/{vm.node}/qemu/{vm.vmid}{suffix}",
        "params": params,
        "confirm": True,
    }
    before = sim.request_count
    out = await gateway.call("proxmox_api", args, OPERATOR)
    assert out.code == 403, out.error
    assert "needs the 'admin' scope" in out.error
    assert sim.request_count == before
    assert vm.vmid in sim.lab.guests


async def test_operate_token_can_power_and_snapshot_through_the_api(
    sim: Simulator, gateway: Gateway
) -> None:
    vm = next(g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.running)
    base = f"/nodes/{vm.node}/qemu/{vm.vmid}"
    start = await gateway.call(
        "proxmox_api", {"method": "POST", "path": f"{base}/status/start", "confirm": True}, OPERATOR
    )
    assert start.ok, start.error
    snap = await gateway.call(
        "proxmox_api",
        {
            "method": "POST",
            "path": f"{base}/snapshot",
            "params": {"snapname": "s1"},
            "confirm": True,
        },
        OPERATOR,
    )
    assert snap.ok, snap.error


async def test_pbs_patterned_parameters_are_checked_without_the_slashes(
    sim: Simulator, gateway: Gateway
) -> None:
    group = next(iter(sim.lab.pbs.datastores["store1"].snapshots))
    out = await gateway.call(
        "proxmox_api",
        {
            "product": "pbs",
            "path": "/admin/datastore/store1/snapshots",
            "params": {"backup-type": group.backup_type, "backup-id": group.backup_id},
        },
        READER,
    )
    assert out.ok, out.error
    assert out.result.data["data"]
    before = sim.request_count
    bad = await gateway.call(
        "proxmox_api",
        {
            "product": "pbs",
            "path": "/admin/datastore/store1/snapshots",
            "params": {"backup-id": "../x"},
        },
        READER,
    )
    assert bad.code == 400
    assert "backup-id does not match" in bad.error
    assert sim.request_count == before


def test_posix_classes_in_patterns_are_translated() -> None:
    spec = {"t": "string", "p": r"/^(?:[^\s:/[:cntrl:]]+)@pbs$/"}
    assert schema.check_param("userid", "alice@pbs", spec) == "alice@pbs"
    with pytest.raises(Exception, match="does not match"):
        schema.check_param("userid", "al\x01ce@pbs", spec)


async def test_array_parameters_are_accepted_and_planned(gateway: Gateway) -> None:
    command = ["ls", "-l", "/tmp dir"]
    out = await gateway.call(
        "proxmox_api",
        {
            "method": "POST",
            "path": "/nodes/pve1/qemu/100/agent/exec",
            "params": {"command": command},
        },
        ADMIN,
    )
    assert out.ok, out.error
    assert out.result.data["planned"]
    assert out.result.data["current"]["params"]["command"] == command
    with pytest.raises(Exception, match="list of strings or numbers"):
        schema.check_param("command", [["nested"]], {"t": "array"})
    with pytest.raises(Exception, match="control characters"):
        schema.check_param("command", ["a\nb"], {"t": "array"})
