"""PBS backup namespaces (``ns``) in the gateway's PBS tools, against the simulator over HTTPS.

PBS keeps each namespace's groups apart (proxmox-backup src/api2/admin/datastore.rs: ``ns``
on snapshots, groups, delete, prune and verify; src/api2/admin/namespace.rs lists them);
the namespace format is pbs-api-types' BACKUP_NAMESPACE_SCHEMA (PROXMOX_SAFE_ID components,
at most MAX_NAMESPACE_DEPTH = 7 levels), checked by the gateway before any request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import ADMIN, READER, gateway_on
from proxbus_pvesim.model import BackupSnapshot, Datastore
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator

LAB: dict[str, Any] = {
    "cluster": {"name": "lab", "nodes": 1},
    "guests": {"qemu": 0, "lxc": 0, "list": [
        {"vmid": 100, "type": "qemu", "name": "web1", "node": "pve1", "status": "running"},
    ]},
}  # fmt: skip
T0 = 1_750_000_000
DAY = 86400


def stamp(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def store(sim: Simulator) -> Datastore:
    assert sim.lab.pbs is not None
    return sim.lab.pbs.datastores["store1"]


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[tuple[Simulator, Gateway]]:
    """Root: the lab's own snapshots plus vm/500 at T0. ``cluster-a/prod``: three of vm/500
    (T0, +1 day, +2 days); ``cluster-a``: one of ct/501; ``empty``: nothing."""
    async with run_simulator(LAB, instant=True) as sim, gateway_on(sim) as gw:
        ds = store(sim)
        ds.add_namespace("cluster-a/prod")
        ds.add_namespace("empty")
        ds.snapshots.append(BackupSnapshot("vm", "500", T0, 1000))
        for k in range(3):
            ds.snapshots.append(
                BackupSnapshot("vm", "500", T0 + k * DAY, 1000, ns="cluster-a/prod")
            )
        ds.snapshots.append(BackupSnapshot("ct", "501", T0, 1000, ns="cluster-a"))
        yield sim, gw


async def ok(gw: Gateway, tool: str, **args: Any) -> dict[str, Any]:
    out = await gw.call(tool, args, ADMIN)
    assert out.ok, (tool, args, out.error)
    assert out.result is not None
    return out.result.data


def pbs_writes(sim: Simulator) -> int:
    assert sim.pbs is not None
    return sum(1 for r in sim.pbs.request_log if r.method != "GET")


async def test_list_in_a_namespace_root_unchanged_and_recursive(
    lab: tuple[Simulator, Gateway],
) -> None:
    sim, gw = lab
    at_root = [s for s in store(sim).snapshots if s.ns == ""]
    root = await ok(gw, "pbs_list_backups", store="store1", limit=1000)
    assert root["count"] == len(at_root)
    assert {i["ns"] for i in root["items"]} == {""}
    assert root["ns"] == ""
    assert "namespaces" not in root

    prod = await ok(gw, "pbs_list_backups", store="store1", ns="cluster-a/prod")
    assert [(i["backup-id"], i["backup-time"], i["ns"]) for i in prod["items"]] == [
        ("500", T0 + 2 * DAY, "cluster-a/prod"),
        ("500", T0 + DAY, "cluster-a/prod"),
        ("500", T0, "cluster-a/prod"),
    ]
    group = await ok(gw, "pbs_list_backups", store="store1", ns="cluster-a", group="ct/501")
    assert [(i["backup-id"], i["ns"]) for i in group["items"]] == [("501", "cluster-a")]
    groups = await ok(gw, "pbs_list_backups", store="store1", ns="cluster-a/prod", groups_only=True)
    assert [(g["group"], g["count"], g["ns"]) for g in groups["items"]] == [
        ("vm/500", 3, "cluster-a/prod")
    ]
    assert (await ok(gw, "pbs_list_backups", store="store1", ns="empty"))["count"] == 0

    # recursion: each row says its namespace; the namespaces seen are listed (empty ones too)
    every = await ok(gw, "pbs_list_backups", store="store1", max_depth=7, limit=1000)
    assert every["namespaces"] == ["", "cluster-a", "cluster-a/prod", "empty"]
    assert every["count"] == len(store(sim).snapshots)
    seen = sorted(
        (i["ns"], i["backup-id"]) for i in every["items"] if i["backup-id"] in ("500", "501")
    )
    assert seen == [("", "500")] + [("cluster-a", "501")] + [("cluster-a/prod", "500")] * 3
    below = await ok(gw, "pbs_list_backups", store="store1", ns="cluster-a", max_depth=1)
    assert below["namespaces"] == ["cluster-a", "cluster-a/prod"]
    assert below["count"] == 4
    shallow = await ok(gw, "pbs_list_backups", store="store1", max_depth=1, groups_only=True)
    assert shallow["namespaces"] == ["", "cluster-a", "empty"]
    assert "cluster-a/prod" not in {g["ns"] for g in shallow["items"]}

    # a namespace that does not exist: PBS's bare ENOENT becomes a 404 that names it
    out = await gw.call("pbs_list_backups", {"store": "store1", "ns": "nosuch"}, ADMIN)
    assert out.code == 404, out.error
    assert "namespace 'nosuch' does not exist" in str(out.error)


async def test_delete_in_a_namespace_plans_then_touches_that_namespace_only(
    lab: tuple[Simulator, Gateway],
) -> None:
    sim, gw = lab
    ds = store(sim)
    args = {"store": "store1", "snapshot": f"vm/500/{stamp(T0)}", "ns": "cluster-a/prod"}
    before = pbs_writes(sim)
    planned = await ok(gw, "delete_backup", **args)
    assert (planned["planned"], planned["ns"]) == (True, "cluster-a/prod")
    assert "cluster-a/prod" in planned["target"]
    assert pbs_writes(sim) == before
    done = await ok(gw, "delete_backup", confirm=True, **args)
    assert (done["executed"], done["ns"]) == (True, "cluster-a/prod")
    left = sorted((s.ns, s.backup_time) for s in ds.snapshots if s.backup_id == "500")
    assert left == [("", T0), ("cluster-a/prod", T0 + DAY), ("cluster-a/prod", T0 + 2 * DAY)]
    # deleted already, and not in another namespace: a 404 that says where it looked
    again = await gw.call("delete_backup", {**args, "confirm": True}, ADMIN)
    assert again.code == 404
    assert "namespace cluster-a/prod" in str(again.error)
    missing = await gw.call("delete_backup", {**args, "ns": "empty"}, ADMIN)
    assert missing.code == 404
    # ns belongs to PBS snapshots: with a PVE volid it is refused, nothing sent
    sent = sim.request_count
    volid = await gw.call("delete_backup", {"volid": "local:backup/x.vma", "ns": "a"}, ADMIN)
    assert volid.code == 400
    assert "ns is for a PBS" in str(volid.error)
    assert sim.request_count == sent


async def test_prune_in_a_namespace_plans_then_prunes_that_namespace_only(
    lab: tuple[Simulator, Gateway],
) -> None:
    sim, gw = lab
    ds = store(sim)
    args = {"store": "store1", "group": "vm/500", "keep": "last=1", "ns": "cluster-a/prod"}
    before = pbs_writes(sim)
    planned = await ok(gw, "prune_backups", **args)
    assert planned["planned"] is True
    assert [(i["backup-time"], i["keep"], i["ns"]) for i in planned["items"]] == [
        (T0 + 2 * DAY, True, "cluster-a/prod"),
        (T0 + DAY, False, "cluster-a/prod"),
        (T0, False, "cluster-a/prod"),
    ]
    assert pbs_writes(sim) == before + 1  # PBS's own dry-run, nothing removed
    assert len([s for s in ds.snapshots if s.backup_id == "500"]) == 4
    done = await ok(gw, "prune_backups", confirm=True, **args)
    assert (done["removed"], done["ns"]) == (2, "cluster-a/prod")
    assert {i["ns"] for i in done["items"]} == {"cluster-a/prod"}
    left = sorted((s.ns, s.backup_time) for s in ds.snapshots if s.backup_id == "500")
    assert left == [("", T0), ("cluster-a/prod", T0 + 2 * DAY)]
    nosuch = await gw.call("prune_backups", {**args, "ns": "nosuch"}, ADMIN)
    assert nosuch.code == 404
    assert "namespace 'nosuch' does not exist" in str(nosuch.error)
    # the root's prune is as before: its vm/500 is alone and stays
    root = await ok(gw, "prune_backups", store="store1", group="vm/500", keep="last=1")
    assert [(i["backup-time"], i["ns"]) for i in root["items"]] == [(T0, "")]


async def test_verify_of_a_namespace(lab: tuple[Simulator, Gateway]) -> None:
    sim, gw = lab
    started = await ok(gw, "pbs_start_verify", store="store1", ns="cluster-a", wait=True)
    assert (started["status"], started["ns"]) == ("ok", "cluster-a")
    states = {(s.ns, s.backup_id, s.backup_time): s.verify_state for s in store(sim).snapshots}
    # PBS's default max-depth: the namespace and everything below it, not the root
    assert states[("cluster-a", "501", T0)] == "ok"
    assert states[("cluster-a/prod", "500", T0 + DAY)] == "ok"
    assert states[("", "500", T0)] is None
    root = await ok(gw, "pbs_start_verify", store="store1")
    assert root["ns"] == ""


BAD_NS = [
    "a//b",
    "../a",
    "a/../b",
    "..",
    "/a",
    "a/",
    ".hidden",
    "-x",
    "a b",
    "a/b\n",
    "a%2Fb",
    "a\\b",
    "/".join("abcdefgh"),  # 8 levels: PBS allows 7
    "x" * 257,
]


@pytest.mark.parametrize("bad", BAD_NS)
async def test_a_bad_namespace_is_refused_before_any_request(
    lab: tuple[Simulator, Gateway], bad: str
) -> None:
    sim, gw = lab
    calls: list[tuple[str, dict[str, Any]]] = [
        ("pbs_list_backups", {"store": "store1"}),
        ("pbs_list_backups", {"store": "store1", "max_depth": 2}),
        ("delete_backup", {"store": "store1", "snapshot": f"vm/500/{stamp(T0)}"}),
        ("delete_backup", {"store": "store1", "snapshot": f"vm/500/{stamp(T0)}", "confirm": True}),
        ("prune_backups", {"store": "store1", "group": "vm/500", "keep": "last=1"}),
        ("pbs_start_verify", {"store": "store1"}),
    ]
    sent = sim.request_count
    for tool, args in calls:
        out = await gw.call(tool, {**args, "ns": bad}, ADMIN)
        assert out.code == 400, (tool, bad, out.error)
        assert "namespace" in str(out.error) or "ns: " in str(out.error), (tool, bad, out.error)
        assert "Traceback" not in str(out.error)
    assert sim.request_count == sent
    assert len([s for s in store(sim).snapshots if s.backup_id == "500"]) == 4


async def test_scopes_are_unchanged_with_a_namespace(lab: tuple[Simulator, Gateway]) -> None:
    sim, gw = lab
    listed = await gw.call("pbs_list_backups", {"store": "store1", "ns": "cluster-a"}, READER)
    assert listed.ok, listed.error
    sent = sim.request_count
    args = {"store": "store1", "group": "vm/500", "keep": "last=1", "ns": "cluster-a/prod"}
    refused = await gw.call("prune_backups", {**args, "confirm": True}, READER)
    assert refused.code == 403
    assert sim.request_count == sent


async def test_a_pve_storage_in_a_namespace_lists_and_deletes_there(
    lab: tuple[Simulator, Gateway],
) -> None:
    """A PVE storage of type pbs with ``namespace`` (pve-storage PBSPlugin) shows that
    namespace's snapshots as volumes; deleting one by volid removes it there only."""
    sim, gw = lab
    sim.lab.storages["pbs-store"].namespace = "cluster-a/prod"
    listed = await ok(gw, "list_storage_content", storage="pbs-store")
    volids = [i["volid"] for i in listed["items"]]
    assert volids == [f"pbs-store:backup/vm/500/{stamp(T0 + k * DAY)}" for k in (2, 1, 0)]
    await ok(gw, "delete_backup", volid=volids[-1], confirm=True)
    left = sorted((s.ns, s.backup_time) for s in store(sim).snapshots if s.backup_id == "500")
    assert left == [("", T0), ("cluster-a/prod", T0 + DAY), ("cluster-a/prod", T0 + 2 * DAY)]
