"""Every path and parameter the dedicated tools send exists in the official API schemas of
PVE 8.4, PVE 9.1 and PBS (``shared/proxmox-api``), not only in the simulator's vendored 9.1
subset: a gateway talking to an 8.4 cluster must not send what 8.4 does not know.

The list is what the tools' code sends (provisioning.py, backups.py, task_control.py,
guest_devices.py); the simulator's own route check covers the 9.1 subset it serves.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import typing
from functools import cache
from pathlib import Path
from typing import Any

import pytest

PVE_CALLS: dict[tuple[str, str], list[str]] = {
    # qemu-server PVE/API2/Qemu.pm clone_vm / pve-container src/PVE/API2/LXC.pm clone_vm
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"): ["newid", "name", "target", "full", "storage"],
    ("POST", "/nodes/{node}/lxc/{vmid}/clone"): ["newid", "hostname", "target", "full", "storage"],
    # create_vm (also restore: archive, force) / LXC create_vm (restore: ostemplate + restore)
    ("POST", "/nodes/{node}/qemu"): [
        "vmid", "memory", "cores", "scsihw", "scsi[n]", "net[n]", "agent", "ostype", "name",
        "ide[n]", "start", "archive", "storage", "force", "unique",
    ],
    ("POST", "/nodes/{node}/lxc"): [
        "vmid", "ostemplate", "memory", "cores", "rootfs", "net[n]", "unprivileged", "hostname",
        "ssh-public-keys", "start", "restore", "storage", "force", "unique",
    ],
    ("DELETE", "/nodes/{node}/qemu/{vmid}"): ["purge"],
    ("DELETE", "/nodes/{node}/lxc/{vmid}"): ["purge"],
    ("POST", "/nodes/{node}/qemu/{vmid}/status/stop"): [],
    ("POST", "/nodes/{node}/lxc/{vmid}/status/stop"): [],
    ("GET", "/cluster/nextid"): [],
    ("GET", "/cluster/resources"): ["type"],
    # pve-manager PVE/API2/Storage/Content.pm
    ("GET", "/nodes/{node}/storage/{storage}/content"): ["content", "vmid"],
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"): [],
    # pve-manager PVE/API2/Tasks.pm
    ("GET", "/nodes/{node}/tasks/{upid}/log"): ["start", "limit"],
    ("GET", "/nodes/{node}/tasks/{upid}/status"): [],
    ("DELETE", "/nodes/{node}/tasks/{upid}"): [],
    # qemu-server PVE/API2/Qemu/Agent.pm; resize_vm of both; pve-manager PVE/API2/Network.pm
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces"): [],
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"): [],
    ("GET", "/nodes/{node}/qemu/{vmid}/config"): [],
    ("GET", "/nodes/{node}/lxc/{vmid}/config"): [],
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize"): ["disk", "size"],
    ("PUT", "/nodes/{node}/lxc/{vmid}/resize"): ["disk", "size"],
    ("GET", "/nodes/{node}/network"): ["type"],
}  # fmt: skip
PBS_CALLS: dict[tuple[str, str], list[str]] = {
    # proxmox-backup src/api2/admin/datastore.rs (list_snapshots, delete_snapshot, prune)
    ("GET", "/admin/datastore/{store}/snapshots"): ["backup-type", "backup-id"],
    ("DELETE", "/admin/datastore/{store}/snapshots"): ["backup-type", "backup-id", "backup-time"],
    ("POST", "/admin/datastore/{store}/prune"): [
        "backup-type", "backup-id", "keep-last", "keep-hourly", "keep-daily", "keep-weekly",
        "keep-monthly", "keep-yearly", "dry-run",
    ],
    # proxmox-backup src/api2/node/tasks.rs
    ("GET", "/nodes/{node}/tasks/{upid}/log"): ["start", "limit"],
    ("GET", "/nodes/{node}/tasks/{upid}/status"): [],
    ("DELETE", "/nodes/{node}/tasks/{upid}"): [],
}  # fmt: skip


VENDORED = Path(__file__).parent / "data" / "official-params.json.gz"
SHARED = Path(__file__).resolve().parents[4] / "shared" / "proxmox-api"


@cache
def official(name: str) -> dict[str, Any]:
    """Paths, methods and parameters (with enums) of an official schema, from the copy
    vendored by ``scripts/vendor_official_params.py`` (a clean checkout has no
    ``../shared/proxmox-api``)."""
    data: dict[str, dict[str, Any]] = json.loads(gzip.decompress(VENDORED.read_bytes()))
    return data[name]


@pytest.mark.parametrize("name", ["pve-8.4.json", "pve-9.1.json", "pbs.json"])
def test_the_vendored_copy_matches_the_official_schemas(name: str) -> None:
    """Where the official schemas are at hand, the vendored copy is theirs (rerun the script
    when they change). CI has them beside the clone (as libs/pvesim's drift test relies on)."""
    if not (SHARED / name).is_file():
        message = f"official schema {name} not beside the checkout ({SHARED})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    spec = importlib.util.spec_from_file_location(
        "vendor_official_params", Path(__file__).parents[1] / "scripts/vendor_official_params.py"
    )
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.methods(json.loads((SHARED / name).read_text())) == official(name)


@pytest.mark.parametrize(
    ("file", "calls"),
    [("pve-8.4.json", PVE_CALLS), ("pve-9.1.json", PVE_CALLS), ("pbs.json", PBS_CALLS)],
)
def test_every_call_of_the_tools_is_in_the_official_schema(
    file: str, calls: dict[tuple[str, str], list[str]]
) -> None:
    schema = official(file)
    problems = []
    for (method, path), params in calls.items():
        entry = schema.get(path, {}).get(method)
        if entry is None:
            problems.append(f"{method} {path}: missing")
            continue
        props = (entry.get("parameters") or {}).get("properties") or {}
        problems += [f"{method} {path}: no parameter {p}" for p in params if p not in props]
    assert problems == []


@pytest.mark.parametrize("file", ["pve-8.4.json", "pve-9.1.json"])
def test_enumerated_tool_arguments_are_values_proxmox_accepts(file: str) -> None:
    """``get_node_network`` ``type`` and ``list_storage_content`` ``content`` offer only
    values of the schema's enum / ``pve-storage-content`` format (pve-storage)."""
    from proxbus_mcp_gateway.tools import build_registry

    schema = official(file)
    reg = build_registry()
    net_type = reg.tools["get_node_network"].input_model.model_fields["type"].annotation
    offered = {a for arg in typing.get_args(net_type) for a in typing.get_args(arg)}
    allowed = set(
        schema["/nodes/{node}/network"]["GET"]["parameters"]["properties"]["type"]["enum"]
    )
    assert offered
    assert offered <= allowed
    content = reg.tools["list_storage_content"].input_model.model_fields["content"].annotation
    kinds = {a for arg in typing.get_args(content) for a in typing.get_args(arg)}
    assert kinds
    assert kinds <= {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"}


def test_the_simulator_serves_every_call_of_the_tools() -> None:
    """Each of those routes is served by pvesim (schema-checked there: unknown or malformed
    parameters are a 400 with the per-parameter error map, as PVE answers)."""
    from proxbus_pvesim import pbs_routes, pve_routes

    pve = {(r.method, r.path) for r in pve_routes()}
    pbs = {(r.method, r.path) for r in pbs_routes()}
    assert sorted(set(PVE_CALLS) - pve) == []
    assert sorted(set(PBS_CALLS) - pbs) == []
