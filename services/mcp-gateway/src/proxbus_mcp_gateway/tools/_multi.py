"""A call without ``cluster`` on a gateway that serves several clusters (``CLUSTERS``).

Imported only then (:meth:`Gateway._run`): with one cluster nothing here runs, so the
answers, the requests and the cost of every call stay what they were.

Each tool with a ``cluster`` argument has a mode (:data:`MODES`, a test checks every such
tool has one) saying what it does without one:

- ``rows``: a listing; every cluster the caller may see answers, rows gain ``cluster``, a
  cluster that failed is named in ``errors`` (with ``node``: the node's cluster only).
- ``pbs_rows``: the same over the clusters that have a PBS server (``server``: its cluster).
- ``status`` / ``diagnostic`` / ``whoami``: one section per cluster, joined.
- ``all``: the tool covers every cluster itself (``test_connectivity``).
- ``guest``: the vmid is looked up in every cluster; in one: there; in several: a 409
  naming ``cluster/node``; in none: not found naming the clusters searched. An action is
  refused when some cluster could not be asked (it could be the guest's).
- ``node``: ``node`` names the cluster; without it the tool needs one cluster (409)
  (``delete_backup`` of a PBS snapshot: as ``pbs``).
- ``upid``: the UPID's node (a PVE task) or the PBS server names the cluster.
- ``pbs``: ``server`` names the cluster, else the only cluster with a PBS server.
- ``api``: ``proxmox_api``: a ``/nodes/{node}`` path by its node; PBS by server; another
  list GET joined over every cluster; anything else needs one cluster (409).

An answer from the one cluster a call was resolved to names it (``cluster``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from .. import schema, validate
from ..errors import EndpointDown, Forbidden, NotFound, ToolFailure, UpstreamError
from ..registry import CallContext, ToolInput, ToolResult, ToolSpec
from ._common import answered, table
from .task_control import is_pbs_upid

Mode = Literal[
    "rows", "pbs_rows", "status", "diagnostic", "whoami", "all", "guest", "node", "upid",
    "pbs", "api",
]  # fmt: skip

MODES: dict[str, Mode] = {
    "get_cluster_status": "status",
    "get_nodes": "rows",
    "get_node_status": "node",
    "get_vms": "rows",
    "get_lxcs": "rows",
    "get_storage": "rows",
    "execute_vm_command": "guest",
    "execute_lxc_command": "guest",
    "get_guest_status": "guest",
    "get_guest_config": "guest",
    "migrate_guest": "guest",
    "get_guest_network": "guest",
    "get_guest_disks": "guest",
    "resize_guest_disk": "guest",
    "get_node_network": "node",
    "get_next_vmid": "node",
    "clone_guest": "guest",
    "create_vm": "node",
    "create_container": "node",
    "delete_guest": "guest",
    "get_recent_tasks": "rows",
    "get_task_status": "upid",
    "get_cluster_log": "rows",
    "get_task_log": "upid",
    "cancel_task": "upid",
    "list_snapshots": "guest",
    "create_snapshot": "guest",
    "rollback_snapshot": "guest",
    "delete_snapshot": "guest",
    "create_backup": "guest",
    "list_storage_content": "rows",
    "restore_backup": "node",
    "delete_backup": "node",
    "prune_backups": "pbs",
    "get_ha_status": "rows",
    "test_connectivity": "all",
    "run_diagnostic": "diagnostic",
    "whoami": "whoami",
    "pbs_list_datastores": "pbs_rows",
    "pbs_datastore_status": "pbs",
    "pbs_list_backups": "pbs",
    "pbs_get_tasks": "pbs_rows",
    "pbs_start_gc": "pbs",
    "pbs_start_verify": "pbs",
    "proxmox_api": "api",
}

# Tools for one guest type: a VM 100 in one cluster and a CT 100 in another are no choice.
_KIND = {"execute_vm_command": "qemu", "execute_lxc_command": "lxc"}

# Listings cut to ``limit`` newest first: joined, they are sorted and cut again.
_NEWEST: dict[str, tuple[str, list[str], str]] = {
    "get_recent_tasks": ("starttime", ["starttime", "node", "type", "id", "status", "upid"],
                         "tasks"),
    "get_cluster_log": ("time", ["time", "node", "tag", "msg"], "cluster log"),
    "pbs_get_tasks": ("starttime", ["starttime", "type", "id", "status", "upid"], "PBS tasks"),
}  # fmt: skip


async def across_clusters(ctx: CallContext, spec: ToolSpec, args: Any) -> ToolResult:
    """Run ``spec`` for a call without ``cluster`` on a gateway with several clusters.

    Raises:
        ToolFailure: the call needs one cluster (409), names nothing found (404), or every
            cluster failed.
    """
    names = _visible(ctx)
    mode = MODES.get(spec.name)
    if len(names) == 1 or mode is None:
        # one cluster the caller may see (or a tool without a mode: a test forbids that)
        if len(names) > 1:
            raise _several(names, spec.name)
        return await _there(ctx, spec, args, names[0])
    node = getattr(args, "node", None)
    server = getattr(args, "server", None)
    if mode == "all":
        ctx.clusters = names
        return await spec.handler(ctx, args)
    if mode == "guest":
        acting = not spec.read_only
        kind = _KIND.get(spec.name)
        cluster = await _by_vmid(ctx, names, args.vmid, node, kind, acting=acting)
        return await _there(ctx, spec, args, cluster)
    if mode == "node":
        if node is None and (server is not None or getattr(args, "store", None)):
            # delete_backup of a PBS snapshot: the PBS server's cluster
            return await _there(ctx, spec, args, _by_server(ctx, names, server, spec.name))
        if node is None:
            raise _several(names, spec.name, "or node")
        return await _there(ctx, spec, args, await _by_node(ctx, names, node))
    if mode == "upid":
        if is_pbs_upid(args.upid):
            return await _there(ctx, spec, args, _by_server(ctx, names, server, spec.name))
        return await _there(
            ctx, spec, args, await _by_node(ctx, names, validate.upid_node(args.upid))
        )
    if mode == "pbs":
        return await _there(ctx, spec, args, _by_server(ctx, names, server, spec.name))
    if mode == "pbs_rows":
        if server is not None:
            return await _there(ctx, spec, args, _by_server(ctx, names, server, spec.name))
        pool = ctx.gateway.pool
        with_pbs = [n for n in names if pool.clusters[n].pbs]
        if len(with_pbs) <= 1:
            return await _there(ctx, spec, args, _by_server(ctx, names, None, spec.name))
        return _rows(spec.name, args, await _each(ctx, spec, args, with_pbs))
    if mode == "api":
        return await _api(ctx, spec, args, names)
    if node is not None:  # a listing of one node: that node's cluster
        return await _there(ctx, spec, args, await _by_node(ctx, names, node))
    answers = await _each(ctx, spec, args, names)
    if mode == "status":
        return _status(spec.name, answers)
    if mode == "diagnostic":
        return _diagnostic(spec.name, answers)
    if mode == "whoami":
        return _whoami(spec.name, answers)
    return _rows(spec.name, args, answers)


def _visible(ctx: CallContext) -> list[str]:
    names = [n for n in ctx.gateway.pool.clusters if ctx.caller.cluster_allowed(n)]
    if not names:
        raise Forbidden(
            f"forbidden: no configured cluster is in the allowlist of '{ctx.caller.name}'"
        )
    return names


def _several(names: list[str], tool: str, alternative: str = "") -> ToolFailure:
    also = f" ({alternative})" if alternative else ""
    return ToolFailure(
        f"{tool} answers for one cluster and this gateway serves several clusters "
        f"({', '.join(names)}): pass cluster{also}",
        409,
    )


async def _there(ctx: CallContext, spec: ToolSpec, args: Any, cluster: str) -> ToolResult:
    """Run in the one cluster the call was resolved to; the answer says which (``cluster``
    in the data unless the tool sets it, a ``cluster <name>:`` text prefix). A copy: a
    memoized answer (``get_vms``) must not change."""
    ctx.clusters = [cluster]
    result = await _run(ctx, spec, args, cluster)
    if "cluster" in result.data:
        return result
    return ToolResult({**result.data, "cluster": cluster}, f"cluster {cluster}: {result.text}")


async def _run(ctx: CallContext, spec: ToolSpec, args: Any, cluster: str) -> ToolResult:
    ctx.caller.require_cluster(cluster)
    one: ToolInput = args.model_copy(update={"cluster": cluster})
    return await spec.handler(ctx, one)


async def _each(
    ctx: CallContext, spec: ToolSpec, args: Any, names: list[str]
) -> list[tuple[str, ToolResult | ToolFailure]]:
    ctx.clusters = list(names)

    async def one(name: str) -> tuple[str, ToolResult | ToolFailure]:
        try:
            return name, await _run(ctx, spec, args, name)
        except ToolFailure as exc:
            return name, exc

    return list(await asyncio.gather(*(one(n) for n in names)))


def _split(
    tool: str, answers: list[tuple[str, ToolResult | ToolFailure]]
) -> tuple[list[tuple[str, ToolResult]], list[str]]:
    """(cluster, result) of the clusters that answered, ``cluster: reason`` of the others.

    Raises:
        UpstreamError: every cluster failed (with each one's reason).
    """
    good = [(n, r) for n, r in answers if isinstance(r, ToolResult)]
    failed = [(n, r) for n, r in answers if isinstance(r, ToolFailure)]
    errors = [f"{n}: {exc.message}" for n, exc in failed]
    if not good:
        codes = {exc.code for _, exc in failed}
        code = codes.pop() if len(codes) == 1 else 502
        raise UpstreamError(f"{tool} failed in every cluster: " + "; ".join(errors), code=code)
    return good, errors


def _sections(good: list[tuple[str, ToolResult]], errors: list[str]) -> str:
    """One ``cluster <name>: ...`` section per cluster (a text that starts so is kept)."""
    text = "\n".join(
        r.text if r.text.startswith(f"cluster {n}:") else f"cluster {n}: {r.text}" for n, r in good
    )
    return text + ("\nerrors: " + "; ".join(errors) if errors else "")


def _rows(tool: str, args: Any, answers: list[tuple[str, ToolResult | ToolFailure]]) -> ToolResult:
    good, failed = _split(tool, answers)
    items = [{"cluster": n, **row} for n, r in good for row in r.data.get("items") or []]
    errors = [f"{n}: {e}" for n, r in good for e in r.data.get("errors") or []] + failed
    newest = _NEWEST.get(tool)
    if newest is not None:
        key, cols, what = newest
        items.sort(key=lambda row: -int(row.get(key) or 0))
        items = items[: getattr(args, "limit", len(items))]
        text = f"{what} ({len(items)})\n" + table(items, ["cluster", *cols])
        if errors:
            text += "\nerrors: " + "; ".join(errors)
    else:
        text = _sections(good, failed)
    data: dict[str, Any] = {"items": items, "count": len(items)}
    if errors:
        data["errors"] = errors
    return ToolResult(data, text)


def _status(tool: str, answers: list[tuple[str, ToolResult | ToolFailure]]) -> ToolResult:
    good, failed = _split(tool, answers)
    known = [r.data["quorate"] for _, r in good if r.data.get("quorate") is not None]
    data = {
        "clusters": [n for n, _ in good],
        "quorate": all(known) if known else None,
        "pve_clusters": [{"cluster": n, **c} for n, r in good for c in r.data["pve_clusters"]],
        "nodes": [{"cluster": n, **node} for n, r in good for node in r.data["nodes"]],
        "errors": [f"{n}: {e}" for n, r in good for e in r.data.get("errors") or []] + failed,
    }
    return ToolResult(data, _sections(good, failed))


def _diagnostic(tool: str, answers: list[tuple[str, ToolResult | ToolFailure]]) -> ToolResult:
    good, failed = _split(tool, answers)
    findings = [{"cluster": n, **f} for n, r in good for f in r.data["findings"]]
    findings += [{"cluster": e.split(":", 1)[0], "severity": "error", "finding": e}
                 for e in failed]  # fmt: skip
    data = {
        "clusters": [n for n, _ in good],
        "healthy": not failed and all(r.data["healthy"] for _, r in good),
        "findings": findings,
    }
    return ToolResult(data, _sections(good, failed))


def _whoami(tool: str, answers: list[tuple[str, ToolResult | ToolFailure]]) -> ToolResult:
    good, failed = _split(tool, answers)
    data = dict(good[0][1].data)
    data["proxmox_permissions"] = {n: r.data["proxmox_permissions"] for n, r in good}
    errors = [f"{n}: {e}" for n, r in good for e in r.data.get("errors") or []] + failed
    data.pop("errors", None)
    if errors:
        data["errors"] = errors
    return ToolResult(data, _sections(good, failed))


async def _api(ctx: CallContext, spec: ToolSpec, args: Any, names: list[str]) -> ToolResult:
    call = schema.resolve(args.product, args.method, args.path, dict(args.params))
    if args.product == "pbs":
        return await _there(ctx, spec, args, _by_server(ctx, names, args.server, spec.name))
    if call.node is not None:
        return await _there(ctx, spec, args, await _by_node(ctx, names, call.node))
    what = f"{call.method} {call.path}"
    if call.method != "GET":
        raise _several(names, what, "or a /nodes/{node}/... path")
    good, failed = _split(what, await _each(ctx, spec, args, names))
    if not all(isinstance(r.data.get("data"), list) for _, r in good):
        raise _several(names, what, "or a /nodes/{node}/... path")
    joined = [
        {"cluster": n, **row} if isinstance(row, dict) else row
        for n, r in good
        for row in r.data["data"]
    ]
    errors = [f"{n}: {e}" for n, r in good for e in r.data.get("errors") or []] + failed
    data: dict[str, Any] = {"method": "GET", "path": call.path, "data": joined}
    if errors:
        data["errors"] = errors
    return ToolResult(data, _sections(good, failed))


async def _by_node(ctx: CallContext, names: list[str], node: str) -> str:
    """The cluster whose PVE groups have ``node``.

    Raises:
        ToolFailure: several (409), none (404), or it cannot be told (503).
    """
    pool = ctx.gateway.pool

    def has(name: str) -> bool:
        return any(node in g.nodes for g in pool.clusters[name].groups)

    await asyncio.gather(*(pool.refresh_membership(pool.clusters[n]) for n in names if not has(n)))
    found = [n for n in names if has(n)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ToolFailure(
            f"node {node} is in several clusters ({', '.join(found)}); pass cluster", 409
        )
    unknown = [
        f"{n}/{g.config.name}: {g.membership_error}"
        for n in names
        for g in pool.clusters[n].groups
        if g.membership_error is not None
    ]
    if unknown:
        raise EndpointDown(f"cannot tell which cluster has node {node}: " + "; ".join(unknown))
    raise NotFound(f"node {node} is in none of the clusters {', '.join(names)}")


def _by_server(ctx: CallContext, names: list[str], server: str | None, tool: str) -> str:
    """The cluster with PBS server ``server`` (None: the only cluster with a PBS server).

    Raises:
        ToolFailure: several (409) or none (404).
    """
    pool = ctx.gateway.pool
    found = [
        n for n in names if (server in pool.clusters[n].pbs if server else pool.clusters[n].pbs)
    ]
    if len(found) == 1:
        return found[0]
    if found:
        if server is None:
            raise ToolFailure(
                f"{tool}: several clusters ({', '.join(found)}) have a PBS server: "
                "pass cluster or server",
                409,
            )
        raise ToolFailure(
            f"PBS server {server} is in several clusters ({', '.join(found)}); pass cluster", 409
        )
    if server is None:
        raise NotFound(f"none of the clusters {', '.join(names)} has a PBS server configured")
    raise NotFound(f"PBS server {server} is in none of the clusters {', '.join(names)}")


async def _by_vmid(
    ctx: CallContext,
    names: list[str],
    vmid: int,
    node: str | None,
    kind: str | None = None,
    *,
    acting: bool,
) -> str:
    """The cluster holding guest ``vmid`` (on ``node`` if given; of type ``kind`` when one
    of the guests found is: else the tool's own lookup says what the guest is).

    The cluster-wide resource list each cluster is then asked again for is cached
    (``CACHE_TTL``): the guest's own lookup costs no second request.

    Raises:
        ToolFailure: in several clusters (409), an action while some cluster could not be
            asked (409), in none (404), or every lookup failed.
    """
    pool = ctx.gateway.pool

    async def look(name: str) -> tuple[str, list[dict[str, Any]], str | None]:
        try:
            answers = await pool.request_all(name, "/cluster/resources", {"type": "vm"})
            good, _ = answered(answers, f"looking up guest {vmid}")
        except ToolFailure as exc:
            return name, [], exc.message
        hits = [
            item
            for _, result in good
            for item in result or []
            if item.get("vmid") == vmid
            and (node is None or item.get("node") == node)
            and ctx.caller.node_allowed(item.get("node"))
        ]
        return name, hits, None

    looked = await asyncio.gather(*(look(n) for n in names))
    if kind is not None and any(h.get("type") == kind for _, hits, _ in looked for h in hits):
        looked = [(n, [h for h in hits if h.get("type") == kind], e) for n, hits, e in looked]
    found = [(n, hits) for n, hits, _ in looked if hits]
    failed = [f"{n}: {err}" for n, _, err in looked if err is not None]
    if len(found) > 1:
        where = sorted(f"{n}/{h.get('node')}" for n, hits in found for h in hits)
        raise ToolFailure(
            f"guest {vmid} exists in several clusters ({', '.join(where)}); "
            "pass cluster to choose one",
            409,
        )
    if found:
        if acting and failed:
            raise ToolFailure(
                f"guest {vmid} found in cluster {found[0][0]}, but not every cluster could be "
                f"checked ({'; '.join(failed)}); pass cluster to act on it",
                409,
            )
        return found[0][0]
    if len(failed) == len(names):
        raise UpstreamError(
            f"looking up guest {vmid} failed in every cluster: " + "; ".join(failed)
        )
    on = f" on node {node}" if node else ""
    suffix = f" ({'; '.join(failed)})" if failed else ""
    raise NotFound(f"guest {vmid} not found{on} in clusters {', '.join(names)}{suffix}")
