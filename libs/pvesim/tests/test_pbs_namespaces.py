"""PBS backup namespaces on the simulator's PBS routes, as proxmox-backup serves them.

Sources: src/api2/admin/namespace.rs ``list_namespaces`` (the anchor first, then every
namespace below it down to ``max-depth``), src/api2/admin/datastore.rs (``ns`` on groups,
snapshots, delete, prune, verify; no recursion for listings), pbs-datastore src/hierarchy.rs
(a missing namespace directory: ``ENOENT`` from ``read_subdir``, a 400), pbs-api-types
``BackupNamespace`` (at most 7 levels of PROXMOX_SAFE_ID components).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from proxbus_pvesim.model import BackupSnapshot
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import api_session, run_simulator

LAB: dict[str, Any] = {
    "cluster": {"name": "lab", "nodes": 1},
    "guests": {"qemu": 0, "lxc": 0, "list": [
        {"vmid": 100, "type": "qemu", "name": "web1", "node": "pve1", "status": "running"},
    ]},
}  # fmt: skip
BASE = "/api2/json/admin/datastore/store1"
T0 = 1_750_000_000


def seed(sim: Simulator) -> None:
    """Three snapshots of vm/500 in ``a/b``, one of vm/501 in ``a``, none at the root."""
    assert sim.lab.pbs is not None
    ds = sim.lab.pbs.datastores["store1"]
    ds.add_namespace("a/b")
    ds.add_namespace("other")
    for k in range(3):
        ds.snapshots.append(BackupSnapshot("vm", "500", T0 + k * 86400, 1000, ns="a/b"))
    ds.snapshots.append(BackupSnapshot("vm", "501", T0, 1000, ns="a"))


async def _get(s: aiohttp.ClientSession, path: str, **params: Any) -> tuple[int, Any]:
    async with s.get(BASE + path, params=params) as r:
        if r.status != 200:
            return r.status, await r.text()
        return 200, (await r.json())["data"]


async def test_namespaces_are_listed_recursively_from_an_anchor() -> None:
    async with run_simulator(LAB, instant=True) as sim, api_session(sim, service="PBS") as s:
        seed(sim)
        status, data = await _get(s, "/namespace")
        assert status == 200, data
        assert [n["ns"] for n in data] == ["", "a", "a/b", "other"]
        assert [n["ns"] for n in (await _get(s, "/namespace", **{"max-depth": "1"}))[1]] == [
            "",
            "a",
            "other",
        ]
        assert [n["ns"] for n in (await _get(s, "/namespace", parent="a"))[1]] == ["a", "a/b"]
        # an unknown anchor is still listed first (ListNamespacesRecursive), nothing below it
        assert (await _get(s, "/namespace", parent="nosuch"))[1] == [{"ns": "nosuch"}]


async def test_listings_see_one_namespace_and_an_unknown_one_is_pbs_error() -> None:
    async with run_simulator(LAB, instant=True) as sim, api_session(sim, service="PBS") as s:
        seed(sim)
        root = (await _get(s, "/snapshots"))[1]
        assert not [x for x in root if x["backup-id"] in ("500", "501")]
        deep = (await _get(s, "/snapshots", ns="a/b"))[1]
        assert sorted(x["backup-time"] for x in deep) == [T0, T0 + 86400, T0 + 2 * 86400]
        assert [x["backup-id"] for x in (await _get(s, "/snapshots", ns="a"))[1]] == ["501"]
        groups = (await _get(s, "/groups", ns="a/b"))[1]
        assert [(g["backup-id"], g["backup-count"]) for g in groups] == [("500", 3)]
        assert (await _get(s, "/snapshots", ns="nosuch")) == (
            400,
            "ENOENT: No such file or directory",
        )
        assert (await _get(s, "/groups", ns="nosuch"))[0] == 400
        # a group named by type and id in a missing namespace is just empty
        one = {"ns": "nosuch", "backup-type": "vm", "backup-id": "500"}
        assert (await _get(s, "/snapshots", **one)) == (200, [])
        # the schema's pattern and BackupNamespace's depth limit
        for bad in ("a//b", "../a", "a/.x", "/a"):
            status, text = await _get(s, "/snapshots", ns=bad)
            assert status == 400, bad
            assert "parameter 'ns'" in text, (bad, text)
        status, text = await _get(s, "/snapshots", ns="/".join("abcdefgh"))
        assert (status, "namespace too deep" in text) == (400, True), text


async def test_delete_prune_and_verify_act_in_their_namespace_only() -> None:
    async with run_simulator(LAB, instant=True) as sim, api_session(sim, service="PBS") as s:
        seed(sim)
        assert sim.lab.pbs is not None
        ds = sim.lab.pbs.datastores["store1"]
        # the same group at the root must not be touched by work in a/b
        ds.snapshots.append(BackupSnapshot("vm", "500", T0, 1000))
        snap = {"backup-type": "vm", "backup-id": "500", "backup-time": str(T0)}
        async with s.delete(BASE + "/snapshots", params={**snap, "ns": "a/b"}) as r:
            assert r.status == 200, await r.text()
        left = sorted((x.ns, x.backup_time) for x in ds.snapshots if x.backup_id == "500")
        assert left == [("", T0), ("a/b", T0 + 86400), ("a/b", T0 + 2 * 86400)]

        prune = {"backup-type": "vm", "backup-id": "500", "keep-last": "1", "ns": "a/b"}
        async with s.post(BASE + "/prune", data={**prune, "dry-run": "1"}) as r:
            marks = (await r.json())["data"]
        assert sorted((m["backup-time"], m["keep"]) for m in marks) == [
            (T0 + 86400, False),
            (T0 + 2 * 86400, True),
        ]
        async with s.post(BASE + "/prune", data=prune) as r:
            assert r.status == 200
        left = sorted((x.ns, x.backup_time) for x in ds.snapshots if x.backup_id == "500")
        assert left == [("", T0), ("a/b", T0 + 2 * 86400)]
        async with s.post(BASE + "/prune", data={**prune, "ns": "nosuch"}) as r:
            assert (r.status, await r.text()) == (400, "ENOENT: No such file or directory")

        async with s.post(BASE + "/verify", data={"ns": "a", "max-depth": "0"}) as r:
            upid = (await r.json())["data"]
        assert ":store1\\x3ans-a:" in upid
        task = sim.pbs_tasks.get(upid)
        assert task is not None
        assert task.runner is not None
        await asyncio.wait_for(asyncio.shield(task.runner), 10)
        assert task.exitstatus == "OK", task.log
        states = {(x.ns, x.backup_id): x.verify_state for x in ds.snapshots}
        assert states[("a", "501")] == "ok"
        assert states[("a/b", "500")] is None  # max-depth 0: a/b is below a
        assert states[("", "500")] is None


async def test_a_pbs_storage_with_a_namespace_sees_and_fills_that_namespace() -> None:
    """pve-storage PBSPlugin: the storage option ``namespace`` scopes its content listing and
    where vzdump writes (a PVE cluster's backups in its own namespace)."""
    async with run_simulator(LAB, instant=True) as sim, api_session(sim) as s:
        seed(sim)
        storage = sim.lab.storages["pbs-store"]
        storage.namespace = "a/b"
        content = "/api2/json/nodes/pve1/storage/pbs-store/content"
        async with s.get(content) as r:
            listed = (await r.json())["data"]
        assert sorted(v["volid"].rsplit("/", 2)[1] for v in listed) == ["500", "500", "500"]
        async with s.get("/api2/json/storage") as r:
            config = {d["storage"]: d for d in (await r.json())["data"]}
        assert config["pbs-store"]["namespace"] == "a/b"
        async with s.post(
            "/api2/json/nodes/pve1/vzdump", data={"vmid": "100", "storage": "pbs-store"}
        ) as r:
            upid = (await r.json())["data"]
        task = sim.pve_tasks.get(upid)
        assert task is not None
        assert task.runner is not None
        await asyncio.wait_for(asyncio.shield(task.runner), 10)
        assert sim.lab.pbs is not None
        made = [x for x in sim.lab.pbs.datastores["store1"].snapshots if x.backup_id == "100"]
        assert [x.ns for x in made if x.ns] == ["a/b"]  # the lab's own ones stay at the root
        async with s.get(content) as r:
            assert any("/100/" in v["volid"] for v in (await r.json())["data"])
        storage.namespace = None
        async with s.get(content) as r:
            at_root = (await r.json())["data"]
        assert not [v for v in at_root if "/500/" in v["volid"] or "/501/" in v["volid"]]
