"""Audit of issue 17, item 3: ``proxmox_api`` scopes cannot be escaped.

Path tricks (traversal, encoded or doubled slashes, query strings, case changes, the other
product's paths) are refused before any request; remote migration is ``admin``, not
``operate``: it sends the guest and its disks to any cluster the caller names.
"""

from __future__ import annotations

from typing import Any

import pytest
from proxbus_mcp_gateway import schema
from proxbus_mcp_gateway.auth import Caller, parse_scopes
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_pvesim.simulator import Simulator

OPERATOR = Caller("audit-operator", parse_scopes("read+operate"), "test")
READER = Caller("audit-reader", parse_scopes("read"), "test")

SHADOW = "/nodes/pve1/qemu/100/agent/file-read"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/nodes/pve1/qemu/100//agent/file-read", 400),
        ("/nodes/pve1/qemu/100/agent/../agent/file-read", 400),
        ("/nodes/pve1/qemu/100/status/../agent/file-read", 400),
        ("/nodes/pve1/qemu/100/agent/file%2Dread", 400),
        ("/nodes/pve1/qemu/100/agent%2Ffile-read", 400),
        ("/nodes/pve1/qemu/100/agent/file-read?file=/etc/shadow", 400),
        ("/nodes/pve1/qemu/100/agent/file-read#x", 400),
        ("/nodes/pve1/qemu/100/agent/./file-read", 400),
        ("/api2/json/nodes/pve1/qemu/100/agent/file-read", 400),
        ("nodes/pve1/qemu/100/agent/file-read", 400),
        ("/nodes/pve1/qemu/100/agent/File-Read", 404),
        ("/NODES/pve1/qemu/100/agent/file-read", 404),
        ("/admin/datastore/store1/download-decoded", 404),  # a PBS path asked of PVE
    ],
)
async def test_path_tricks_are_refused_before_any_request(
    sim: Simulator, gateway: Gateway, path: str, code: int
) -> None:
    before = sim.request_count
    out = await gateway.call(
        "proxmox_api", {"path": path, "params": {"file": "/etc/shadow"}}, READER
    )
    assert out.code == code, (out.code, out.error)
    assert not out.ok
    assert sim.request_count == before


@pytest.mark.parametrize("path", [SHADOW, SHADOW + "/"])
async def test_a_trailing_slash_keeps_the_scope(
    sim: Simulator, gateway: Gateway, path: str
) -> None:
    out = await gateway.call(
        "proxmox_api", {"path": path, "params": {"file": "/etc/shadow"}}, READER
    )
    assert out.code == 403, (out.code, out.error)
    assert "needs the 'admin' scope" in (out.error or "")


@pytest.mark.parametrize("method", ["get", "Get", "POST ", "PATCH", "HEAD"])
async def test_methods_outside_the_four_are_invalid(gateway: Gateway, method: str) -> None:
    out = await gateway.call(
        "proxmox_api", {"method": method, "path": SHADOW, "params": {"file": "/x"}}, READER
    )
    assert out.code == 400, (out.code, out.error)


@pytest.mark.parametrize("kind", ["qemu", "lxc"])
def test_remote_migration_is_admin_not_operate(kind: str) -> None:
    """``remote_migrate`` ships the guest (and, by default, deletes the source) to a cluster
    the caller names in ``target-endpoint`` (host, API token, fingerprint): Proxmox checks only
    ``VM.Migrate`` (qemu-server PVE/API2/Qemu.pm and pve-container src/PVE/API2/LXC.pm,
    ``remote_migrate_vm``), but the gateway's ``operate`` means migration inside a cluster."""
    path = f"/nodes/pve1/{kind}/100/remote_migrate"
    template, _ = schema.match_path("pve", path)
    perm = schema.load()["pve"][template]["POST"].get("perm")
    call = schema.ResolvedCall("pve", template, path, "POST", {}, {}, perm)
    assert schema.required_scope(call) == "admin"


async def test_operate_token_cannot_migrate_a_guest_to_another_cluster(
    sim: Simulator, gateway: Gateway
) -> None:
    params: dict[str, Any] = {
        "target-endpoint": "host=192.0.2.1,apitoken=PVEAPIToken=x@pam!t=s,fingerprint=AA",
        "target-bridge": "vmbr0",
        "target-storage": "local",
    }
    before = sim.request_count
    out = await gateway.call(
        "proxmox_api",
        {
            "method": "POST",
            "path": "/nodes/pve1/qemu/100/remote_migrate",
            "params": params,
            "confirm": True,
        },
        OPERATOR,
    )
    assert out.code == 403, (out.code, out.error)
    assert "needs the 'admin' scope" in (out.error or "")
    assert sim.request_count == before


def test_operate_is_exactly_power_snapshot_backup_migrate_inside_the_cluster() -> None:
    """Every PVE/PBS method the rules put in ``operate``: a new one (e.g. after a schema
    refresh) must be looked at, not slip in."""
    ops = sorted(
        f"{product} {method} {template}"
        for product in ("pve", "pbs")
        for template, methods in schema.load()[product].items()
        for method, spec in methods.items()
        if method != "GET"
        and schema.required_scope(
            schema.ResolvedCall(product, template, template, method, {}, {}, spec.get("perm"))  # type: ignore[arg-type]
        )
        == "operate"
    )
    power = ("reboot", "reset", "resume", "shutdown", "start", "stop", "suspend")
    expected = {
        f"pve POST /nodes/{{node}}/{k}/{{vmid}}/status/{p}"
        for k in ("qemu", "lxc")
        for p in power
        if not (k == "lxc" and p == "reset")
    }
    expected |= {
        f"pve POST /nodes/{{node}}/qemu/{{vmid}}/agent/{a}"
        for a in ("shutdown", "suspend-disk", "suspend-hybrid", "suspend-ram")
    }
    for k in ("qemu", "lxc"):
        base = f"/nodes/{{node}}/{k}/{{vmid}}"
        expected |= {
            f"pve POST {base}/snapshot",
            f"pve DELETE {base}/snapshot/{{snapname}}",
            f"pve PUT {base}/snapshot/{{snapname}}/config",
            f"pve POST {base}/snapshot/{{snapname}}/rollback",
            f"pve POST {base}/migrate",
        }
    expected |= {
        "pve POST /nodes/{node}/qemu/{vmid}/dbus-vmstate",  # part of a live migration
        "pve POST /cluster/bulk-action/guest/migrate",
        "pve POST /cluster/bulk-action/guest/shutdown",
        "pve POST /cluster/bulk-action/guest/start",
        "pve POST /nodes/{node}/migrateall",
        "pve POST /nodes/{node}/startall",
        "pve POST /nodes/{node}/stopall",
        "pve POST /nodes/{node}/vzdump",
        "pve DELETE /nodes/{node}/tasks/{upid}",
        "pbs DELETE /nodes/{node}/tasks/{upid}",
        "pbs POST /admin/datastore/{store}/gc",
        "pbs POST /admin/datastore/{store}/verify",
    }
    assert set(ops) == expected


async def test_a_node_limited_token_cannot_use_pbs_node_paths(
    sim: Simulator, gateway: Gateway
) -> None:
    """A node allowlist names PVE nodes: PBS's own ``/nodes/{node}/...`` (syslog, journal,
    tasks, report) is outside it, as every other PBS path already is."""
    from hashlib import sha256

    from proxbus_mcp_gateway.config import TokenSpec

    token = TokenSpec(
        "edge-only",
        sha256(b"x").hexdigest(),
        frozenset({"read"}),
        nodes=frozenset({"pve1"}),
    )
    caller = Caller.from_token(token, "test")
    before = sim.request_count
    for path in ("/nodes/localhost/syslog", "/nodes/localhost/tasks", "/admin/datastore"):
        out = await gateway.call("proxmox_api", {"product": "pbs", "path": path}, caller)
        assert out.code == 403, (path, out.code, out.error)
    assert sim.request_count == before
    # Its own node is still reachable.
    ok = await gateway.call("proxmox_api", {"path": "/nodes/pve1/status"}, caller)
    assert ok.ok, ok.error


def _patterns() -> set[str]:
    found: set[str] = set()

    def walk(spec: Any) -> None:
        if isinstance(spec, dict):
            if isinstance(spec.get("p"), str):
                found.add(spec["p"])
            for value in spec.values():
                walk(value)
        elif isinstance(spec, list):
            for value in spec:
                walk(value)

    walk(schema.load())
    return found


def test_every_schema_pattern_is_checked() -> None:
    """A pattern that cannot be translated is not checked at all: PVE writes Perl's
    stringified ``qr//`` (``(?^:...)``, ``(?^i:...)``), e.g. for user ids and tags."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        untranslated = sorted(p for p in _patterns() if schema._compile(p) is None)
    assert untranslated == []


@pytest.mark.parametrize(
    ("method", "path", "params", "ok"),
    [
        ("GET", "/access/permissions", {"userid": "alice@pve"}, True),
        ("GET", "/access/permissions", {"userid": "alice@pve!tok"}, True),
        ("GET", "/access/permissions", {"userid": "al/ice@pve"}, False),
        ("PUT", "/cluster/options", {"registered-tags": "prod;Web"}, True),
        ("PUT", "/cluster/options", {"registered-tags": "prod;w eb"}, False),
        ("GET", "/nodes/pve1/apt/changelog", {"name": "pve-manager"}, True),
        ("GET", "/nodes/pve1/apt/changelog", {"name": "x;rm -rf"}, False),
    ],
)
def test_perl_patterns_are_enforced(
    method: str, path: str, params: dict[str, Any], ok: bool
) -> None:
    from proxbus_mcp_gateway.errors import InvalidArgument

    if ok:
        schema.resolve("pve", method, path, params)
    else:
        with pytest.raises(InvalidArgument):
            schema.resolve("pve", method, path, params)


@pytest.mark.parametrize(
    ("password", "ok"), [("correct horse battery", True), ("s3cr3t!]", True), ("a\x07b", False)]
)
def test_pbs_negated_posix_classes_are_translated(password: str, ok: bool) -> None:
    """PBS writes ``^[[:^cntrl:]]*$`` (Rust regex: anything but control characters) for
    passwords: read as a Python set it refused every ordinary password."""
    from proxbus_mcp_gateway.errors import InvalidArgument

    params = {"userid": "alice@pbs", "password": password}
    if ok:
        schema.resolve("pbs", "PUT", "/access/password", params)
    else:
        with pytest.raises(InvalidArgument):
            schema.resolve("pbs", "PUT", "/access/password", params)
