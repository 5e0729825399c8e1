"""Task endpoints shared by PVE and PBS: list, status, log, stop."""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .router import Handler, Route
from .server import Call
from .tasks import PBS_UPID, PVE_UPID, Task, TaskManager


def _manager(call: Call, service: str) -> TaskManager:
    return call.sim.pve_tasks if service == "PVE" else call.sim.pbs_tasks


def _node_name(call: Call, service: str) -> str:
    node = str(call.params["node"])
    if service == "PBS" and node == "localhost":
        return call.sim.pbs_name
    return node


def _task(call: Call, service: str) -> Task:
    upid = str(call.params["upid"])
    pattern = PVE_UPID if service == "PVE" else PBS_UPID
    if not pattern.fullmatch(upid):
        raise ApiError(500, f"unable to parse worker upid '{upid[:100]}'")
    task = _manager(call, service).get(upid)
    if task is None or task.node != _node_name(call, service):
        raise ApiError(
            500, f"no such task: '{upid}'" if service == "PBS" else f"no such task '{upid}'"
        )
    return task


def _can_see(call: Call, service: str, task: Task) -> bool:
    path = f"/nodes/{task.node}" if service == "PVE" else "/system/tasks"
    return call.principal.has(path, "Sys.Audit") or task.user == call.principal.authid


def _list(service: str) -> Handler:
    async def handler(call: Call) -> Any:
        p = call.params
        node = _node_name(call, service)
        source = p.get("source", "archive")
        if service == "PBS":
            source = "active" if p.get("running") else "all"
        statuses = (
            set(str(p.get("statusfilter", "")).replace(" ", "").split(",")) - {""}
            if isinstance(p.get("statusfilter"), str)
            else set(p.get("statusfilter") or [])
        )
        out = []
        for t in _manager(call, service).all_tasks():
            if t.node != node or not _can_see(call, service, t):
                continue
            if (source == "archive" and t.running) or (source == "active" and not t.running):
                continue
            if "vmid" in p and t.id != str(p["vmid"]):
                continue
            if "typefilter" in p and t.type != p["typefilter"]:
                continue
            if "userfilter" in p and p["userfilter"] not in t.user:
                continue
            if "store" in p and not t.id.startswith(str(p["store"])):
                continue
            if p.get("errors") and not t.failed:
                continue
            if "since" in p and t.starttime < p["since"]:
                continue
            if "until" in p and t.starttime > p["until"]:
                continue
            if statuses:
                kind = (
                    "unknown"
                    if t.running
                    else "ok"
                    if t.exitstatus == "OK"
                    else "warning"
                    if (t.exitstatus or "").startswith("WARNINGS")
                    else "error"
                )
                if kind not in statuses:
                    continue
            out.append(t.as_list_item())
        start, limit = int(p.get("start", 0)), int(p.get("limit", 50) or 50)
        call.extra["total"] = len(out)
        return out[start : start + limit]

    return handler


def _status(service: str) -> Handler:
    async def handler(call: Call) -> Any:
        task = _task(call, service)
        if not _can_see(call, service, task):
            raise ApiError(403, f"Permission check failed (/nodes/{task.node}, Sys.Audit)")
        return task.as_status()

    return handler


def _log(service: str) -> Handler:
    async def handler(call: Call) -> Any:
        task = _task(call, service)
        if not _can_see(call, service, task):
            raise ApiError(403, f"Permission check failed (/nodes/{task.node}, Sys.Audit)")
        start, limit = int(call.params.get("start", 0)), int(call.params.get("limit", 50) or 50)
        lines = task.log[start : start + limit]
        call.extra["total"] = len(task.log)
        return [{"n": start + i + 1, "t": line} for i, line in enumerate(lines)]

    return handler


def _stop(service: str) -> Handler:
    async def handler(call: Call) -> Any:
        task = _task(call, service)
        owner = task.user == call.principal.authid
        path = f"/nodes/{task.node}" if service == "PVE" else "/system/tasks"
        if not owner and not call.principal.has(path, "Sys.Modify"):
            raise ApiError(403, f"Permission check failed ({path}, Sys.Modify)")
        _manager(call, service).stop(task)
        return None

    return handler


def task_routes(service: str) -> list[Route]:
    """Task routes for ``PVE`` or ``PBS``."""
    list_reads = (
        (
            "start",
            "limit",
            "vmid",
            "typefilter",
            "errors",
            "source",
            "userfilter",
            "since",
            "until",
            "statusfilter",
        )
        if service == "PVE"
        else (
            "start",
            "limit",
            "typefilter",
            "errors",
            "running",
            "userfilter",
            "since",
            "until",
            "statusfilter",
            "store",
        )
    )
    return [
        Route("GET", "/nodes/{node}/tasks", _list(service), list_reads),
        Route("GET", "/nodes/{node}/tasks/{upid}/status", _status(service)),
        Route("GET", "/nodes/{node}/tasks/{upid}/log", _log(service), ("start", "limit")),
        Route("DELETE", "/nodes/{node}/tasks/{upid}", _stop(service)),
    ]
