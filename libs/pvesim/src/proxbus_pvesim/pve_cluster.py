"""PVE read endpoints: version, cluster views, nodes, storage, access."""

from __future__ import annotations

import json
import time
from typing import Any

from .errors import ApiError
from .router import Route
from .server import Call, RawJson
from .views import (
    PVE_VERSION,
    node_status,
    resource_guest,
    resource_node,
    resource_storage,
    storage_usage,
)


async def version(call: Call) -> Any:
    """``GET /version``."""
    return {**PVE_VERSION, "console": "html5"}


async def access_ticket(call: Call) -> Any:
    """``POST /access/ticket``: password login issuing a ticket and CSRF token."""
    p = call.params
    username = str(p["username"])
    if "realm" in p and "@" not in username:
        username = f"{username}@{p['realm']}"
    issued = call.sim.pve_auth.login(username, str(p["password"]))
    if issued is None:
        raise ApiError(401, "authentication failure")
    ticket, tk = issued
    out: dict[str, Any] = {"ticket": ticket, "CSRFPreventionToken": tk.csrf, "username": tk.user}
    if call.sim.lab.cluster_name:
        out["clustername"] = call.sim.lab.cluster_name
    return out


async def access_permissions(call: Call) -> Any:
    """``GET /access/permissions`` for the caller."""
    userid = call.params.get("userid")
    if userid and userid != call.principal.authid:
        call.require("/access", "Sys.Audit")
    return call.principal.permissions_dump(call.params.get("path"))


async def cluster_status(call: Call) -> Any:
    """``GET /cluster/status``."""
    lab = call.sim.lab
    out: list[dict[str, Any]] = []
    if lab.cluster_name:
        out.append(
            {
                "type": "cluster",
                "id": "cluster",
                "name": lab.cluster_name,
                "nodes": len(lab.nodes),
                "quorate": int(lab.quorate),
                "version": len(lab.nodes) + 2,
            }
        )
    out.extend(
        {
            "type": "node",
            "id": f"node/{n.name}",
            "name": n.name,
            "nodeid": n.nodeid,
            "ip": n.ip,
            "online": int(n.online),
            "local": int(n.name == lab.local_node),
            "level": "",
        }
        for n in lab.nodes.values()
    )
    return out


def _resources(call: Call, rtype: str | None) -> list[dict[str, Any]]:
    lab, now, pr = call.sim.lab, time.time(), call.principal
    out: list[dict[str, Any]] = []
    if rtype in (None, "node"):
        out.extend(
            resource_node(n, now)
            for n in lab.nodes.values()
            if pr.has(f"/nodes/{n.name}", "Sys.Audit")
        )
    if rtype in (None, "vm"):
        out.extend(
            resource_guest(g, lab, now)
            for g in lab.guests.values()
            if pr.has(f"/vms/{g.vmid}", "VM.Audit")
        )
    if rtype in (None, "storage"):
        out.extend(
            resource_storage(s, n)
            for n in lab.nodes.values()
            for s in lab.storages.values()
            if s.available_on(n.name) and pr.has(f"/storage/{s.storage}", "Datastore.Audit")
        )
    if rtype in (None, "sdn"):
        out.extend(
            {
                "id": f"sdn/{n.name}/localnetwork",
                "type": "sdn",
                "sdn": "localnetwork",
                "node": n.name,
                "status": "ok" if n.online else "unknown",
            }
            for n in lab.nodes.values()
            if pr.has(f"/nodes/{n.name}", "Sys.Audit")
        )
    return out


async def cluster_resources(call: Call) -> Any:
    """``GET /cluster/resources`` (cached per state version and second when unfiltered)."""
    rtype = call.params.get("type")
    pr = call.principal
    sees_all = all(
        pr.uniform(p, priv) is True
        for p, priv in (
            ("/nodes", "Sys.Audit"),
            ("/vms", "VM.Audit"),
            ("/storage", "Datastore.Audit"),
        )
    )
    if not sees_all:
        return _resources(call, rtype)
    key = (call.sim.lab.version, rtype, int(time.time()))
    cached = call.sim.cache.get("resources")
    if cached is not None and cached[0] == key:
        return RawJson(cached[1])
    raw = json.dumps(_resources(call, rtype), separators=(",", ":")).encode()
    call.sim.cache["resources"] = (key, raw)
    return RawJson(raw)


def _visible_task(call: Call, node: str, user: str) -> bool:
    return call.principal.has(f"/nodes/{node}", "Sys.Audit") or user == call.principal.authid


async def cluster_tasks(call: Call) -> Any:
    """``GET /cluster/tasks``: recent tasks of all nodes, running ones without status."""
    out = []
    for t in call.sim.pve_tasks.all_tasks():
        if _visible_task(call, t.node, t.user):
            item = t.as_list_item()
            if not t.running:
                item["saved"] = "1"
            out.append(item)
            if len(out) >= 1000:
                break
    return out


async def cluster_log(call: Call) -> Any:
    """``GET /cluster/log``: newest first; without Sys.Syslog on / only the caller's entries."""
    limit = int(call.params.get("max", 50))
    clog = call.sim.cluster_log
    if call.principal.has("/", "Sys.Syslog"):
        return clog.recent(limit)
    mine = [e.as_dict() for e in reversed(clog.entries) if e.user == call.principal.user]
    return mine[:limit]


async def ha_status(call: Call) -> Any:
    """``GET /cluster/ha/status/current``."""
    return call.sim.ha_status()


async def nextid(call: Call) -> Any:
    """``GET /cluster/nextid``."""
    guests = call.sim.lab.guests
    want = call.params.get("vmid")
    if want is not None:
        if want in guests:
            raise ApiError(
                400, "Parameter verification failed.", {"vmid": f"VM {want} already exists"}
            )
        return want
    vmid = 100
    while vmid in guests:
        vmid += 1
    return vmid


async def nodes(call: Call) -> Any:
    """``GET /nodes``."""
    now = time.time()
    out = []
    for n in call.sim.lab.nodes.values():
        d = resource_node(n, now)
        d.pop("id")
        d.pop("type")
        d.pop("cgroup-mode", None)
        d["ssl_fingerprint"] = call.sim.fingerprint
        out.append(d)
    return out


async def node_status_h(call: Call) -> Any:
    """``GET /nodes/{node}/status``."""
    return node_status(call.sim.lab.nodes[call.params["node"]], time.time())


async def storage_config(call: Call) -> Any:
    """``GET /storage``: cluster storage configuration."""
    out = []
    for s in call.sim.lab.storages.values():
        if "type" in call.params and s.type != call.params["type"]:
            continue
        if not call.principal.privs(f"/storage/{s.storage}") & {
            "Datastore.Audit",
            "Datastore.AllocateSpace",
        }:
            continue
        d: dict[str, Any] = {
            "storage": s.storage,
            "type": s.type,
            "content": s.content,
            "digest": "2f0b1c6a1a4e3f2b9d1c0e7f5a3b2c1d0e9f8a7b",
        }
        if s.shared:
            d["shared"] = 1
        if s.nodes:
            d["nodes"] = ",".join(s.nodes)
        for key in ("path", "server", "datastore", "namespace"):
            if getattr(s, key):
                d[key] = getattr(s, key)
        if s.type == "lvmthin":
            d.update({"thinpool": "data", "vgname": "pve"})
        if s.type == "pbs":
            d.update({"username": "pve@pbs", "fingerprint": call.sim.fingerprint})
        out.append(d)
    return out


def _storage(call: Call) -> Any:
    s = call.sim.lab.storages.get(call.params["storage"])
    if s is None or not s.available_on(call.params["node"]):
        raise ApiError(500, f"storage '{call.params['storage']}' does not exist")
    return s


def _storage_entry(s: Any, node: str) -> dict[str, Any]:
    total, used, avail = storage_usage(s, node)
    return {
        "storage": s.storage,
        "type": s.type,
        "content": s.content,
        "active": 1,
        "enabled": int(s.enabled),
        "shared": int(s.shared),
        "total": total,
        "used": used,
        "avail": avail,
        "used_fraction": round(used / total, 6) if total else 0,
    }


async def node_storage(call: Call) -> Any:
    """``GET /nodes/{node}/storage``."""
    node, p = call.params["node"], call.params
    out = []
    for s in call.sim.lab.storages.values():
        if not s.available_on(node) or ("storage" in p and s.storage != p["storage"]):
            continue
        if "content" in p and not set(p["content"].split(",")) & set(s.content.split(",")):
            continue
        if "enabled" in p and p["enabled"] and not s.enabled:
            continue
        if not call.principal.privs(f"/storage/{s.storage}") & {
            "Datastore.Audit",
            "Datastore.AllocateSpace",
        }:
            continue
        out.append(_storage_entry(s, node))
    return out


async def storage_status(call: Call) -> Any:
    """``GET /nodes/{node}/storage/{storage}/status``."""
    entry = _storage_entry(_storage(call), call.params["node"])
    entry.pop("storage")
    entry.pop("used_fraction")
    return entry


async def storage_content(call: Call) -> Any:
    """``GET /nodes/{node}/storage/{storage}/content``."""
    s = _storage(call)
    items = call.sim.storage_volumes(s, call.params["node"])
    if "content" in call.params:
        items = [i for i in items if i["content"] == call.params["content"]]
    if "vmid" in call.params:
        items = [i for i in items if i.get("vmid") == call.params["vmid"]]
    return items


ROUTES = [
    Route("GET", "/version", version),
    Route("POST", "/access/ticket", access_ticket, ("username", "password", "realm"), public=True),
    Route("GET", "/access/permissions", access_permissions, ("path", "userid")),
    Route("GET", "/cluster/status", cluster_status),
    Route("GET", "/cluster/resources", cluster_resources, ("type",)),
    Route("GET", "/cluster/tasks", cluster_tasks),
    Route("GET", "/cluster/log", cluster_log, ("max",)),
    Route("GET", "/cluster/ha/status/current", ha_status),
    Route("GET", "/cluster/nextid", nextid, ("vmid",)),
    Route("GET", "/nodes", nodes),
    Route("GET", "/nodes/{node}/status", node_status_h),
    Route("GET", "/storage", storage_config, ("type",)),
    Route("GET", "/nodes/{node}/storage", node_storage, ("storage", "content", "enabled")),
    Route("GET", "/nodes/{node}/storage/{storage}/status", storage_status),
    Route("GET", "/nodes/{node}/storage/{storage}/content", storage_content, ("content", "vmid")),
]
