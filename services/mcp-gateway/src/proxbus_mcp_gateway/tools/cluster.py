"""Cluster-wide tools: HA state, configured clusters, connectivity, diagnostics, whoami."""

import time
from typing import Any

from ..errors import ToolFailure
from ..registry import CallContext, Registry, ToolInput, ToolResult, list_output
from ._common import ClusterArg, ClusterIn, answered, listing, pct
from ._compact import STRINGS, shape, typed_out


def register(reg: Registry) -> None:
    @reg.tool("HA status", output=list_output({"id": "string", "state": "string"}))
    async def get_ha_status(ctx: CallContext, args: ClusterIn) -> ToolResult:
        """HA manager state: quorum, master, services."""
        # Standalone hosts each run their own HA manager: ask every group.
        answers, errors = answered(
            await ctx.gateway.pool.request_all(args.cluster, "/cluster/ha/status/current"),
            "reading the HA status",
        )
        items = [
            {
                k: e.get(k)
                for k in (
                    "id",
                    "type",
                    "node",
                    "status",
                    "state",
                    "sid",
                    "crm_state",
                    "request_state",
                    "quorate",
                )
            }
            for _, result in answers
            for e in result or []
        ]
        return listing(items, ["id", "type", "node", "state", "status"], "HA status", errors)

    @reg.tool(
        "List clusters",
        open_world=False,
        output=shape(
            "clusters default",
            clusters={
                "type": "array",
                "items": shape(
                    "name mode endpoints",
                    name="string",
                    mode="string",
                    # breaker state: closed (in use), open (failing), half-open (probing)
                    endpoints={"type": "array", "items": shape("state", state="string")},
                ),
            },
            default="string?",
        ),
    )
    async def list_clusters(ctx: CallContext, args: ToolInput) -> ToolResult:
        """Configured clusters/sites, their endpoints and circuit-breaker state."""
        pool = ctx.gateway.pool
        status = pool.endpoint_status()
        clusters: list[dict[str, Any]] = []
        for name, c in pool.clusters.items():
            if (
                ctx.caller.token
                and ctx.caller.token.clusters is not None
                and name not in ctx.caller.token.clusters
            ):
                continue
            clusters.append(
                {
                    "name": name,
                    "mode": c.config.mode,
                    "groups": [
                        {
                            "name": g.config.name,
                            "clustered": g.config.clustered,
                            "nodes": sorted(g.nodes),
                        }
                        for g in c.groups
                    ],
                    "pbs": list(c.pbs),
                    "endpoints": [s for s in status if s["cluster"] == name],
                }
            )
        lines = []
        for entry in clusters:
            lines.append(f"{entry['name']} ({entry['mode']}) pbs={','.join(entry['pbs']) or '-'}")
            lines.extend(
                f"  {e['endpoint']} {e['address']} {e['state']}"
                + (f" last_error={e['last_error']}" if e["state"] != "closed" else "")
                for e in entry["endpoints"]
            )
        return ToolResult(
            {"clusters": clusters, "default": pool.default_cluster},
            "\n".join(lines) or "no clusters configured",
        )

    class ConnIn(ToolInput):
        cluster: ClusterArg = None

    @reg.tool("Test connectivity", output=typed_out(ok="integer", count="integer"))
    async def test_connectivity(ctx: CallContext, args: ConnIn) -> ToolResult:
        """Probe every API endpoint (PVE and PBS): version, latency, breaker state."""
        import asyncio

        pool = ctx.gateway.pool
        names = (
            [args.cluster]
            if args.cluster
            else [n for n in pool.clusters if ctx.caller.cluster_allowed(n)]
        )
        results: list[dict[str, Any]] = []

        async def probe(cname: str, client: Any) -> None:
            started = time.perf_counter()
            try:
                version = await pool.probe(client)
                results.append(
                    {
                        "cluster": cname,
                        "endpoint": client.endpoint.name,
                        "ok": True,
                        "version": (version or {}).get("version"),
                        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                        "state": client.breaker.state,
                    }
                )
            except ToolFailure as exc:
                results.append(
                    {
                        "cluster": cname,
                        "endpoint": client.endpoint.name,
                        "ok": False,
                        "error": exc.message,
                        "state": client.breaker.state,
                    }
                )

        jobs = []
        for cname in names:
            c = pool.cluster(cname)
            jobs += [probe(cname, cl) for g in c.groups for cl in g.clients]
            jobs += [probe(cname, cl) for cl in c.pbs.values()]
        await asyncio.gather(*jobs)
        ok = sum(1 for r in results if r["ok"])
        text = f"{ok}/{len(results)} endpoints answer\n" + "\n".join(
            f"{r['cluster']}/{r['endpoint']}: "
            + (f"OK {r['version']} {r['latency_ms']}ms" if r["ok"] else f"FAIL {r['error']}")
            for r in results
        )
        return ToolResult({"items": results, "ok": ok, "count": len(results)}, text)

    @reg.tool("Run diagnostic", output=typed_out(healthy="boolean"))
    async def run_diagnostic(ctx: CallContext, args: ClusterIn) -> ToolResult:
        """Cluster health findings by severity: quorum, offline nodes, CPU/RAM/storage pressure,
        failed tasks, HA errors, unreachable endpoints.
        """
        pool = ctx.gateway.pool
        name = pool.cluster(args.cluster).config.name
        findings: list[dict[str, Any]] = []

        def add(sev: str, what: str) -> None:
            findings.append({"severity": sev, "finding": what})

        for e in pool.endpoint_status():
            if e["cluster"] == name and e["state"] != "closed":
                add("warning", f"endpoint {e['endpoint']} is {e['state']}: {e['last_error']}")
        for group, res in await pool.request_all(args.cluster, "/cluster/status"):
            if isinstance(res, ToolFailure):
                add("error", f"{group.config.name}: {res.message}")
                continue
            for item in res or []:
                if item.get("type") == "cluster" and not item.get("quorate"):
                    add("critical", f"cluster {item.get('name')} has lost quorum")
                if item.get("type") == "node" and not item.get("online"):
                    add("error", f"node {item.get('name')} is offline")
        for _, res in await pool.request_all(args.cluster, "/cluster/resources"):
            if isinstance(res, ToolFailure):
                continue
            for r in res or []:
                if r.get("type") == "node" and r.get("status") == "online":
                    m = pct(r.get("mem"), r.get("maxmem")) or 0
                    if m >= 90:
                        add("warning", f"node {r.get('node')} memory at {m}%")
                    if float(r.get("cpu") or 0) >= 0.9:
                        add("warning", f"node {r.get('node')} CPU at {100 * float(r['cpu']):.0f}%")
                if r.get("type") == "storage" and r.get("status") == "available":
                    u = pct(r.get("disk"), r.get("maxdisk")) or 0
                    if u >= 85:
                        add(
                            "error" if u >= 95 else "warning",
                            f"storage {r.get('storage')} on {r.get('node')} at {u}%",
                        )
        for _, res in await pool.request_all(args.cluster, "/cluster/tasks"):
            if isinstance(res, ToolFailure):
                continue
            cutoff = time.time() - 86400
            for t in res or []:
                st = str(t.get("status") or "")
                if (
                    st
                    and st != "OK"
                    and not st.startswith("WARNINGS")
                    and int(t.get("starttime") or 0) >= cutoff
                ):
                    add(
                        "warning",
                        f"task {t.get('type')} {t.get('id') or ''} on {t.get('node')} failed: {st}",
                    )
        # Standalone hosts each run their own HA manager: ask every group.
        for group, res in await pool.request_all(args.cluster, "/cluster/ha/status/current"):
            if isinstance(res, ToolFailure):
                add("warning", f"{group.config.name}: HA status unreadable: {res.message}")
                continue
            for h in res or []:
                if h.get("type") == "service" and h.get("state") in ("error", "fence", "recovery"):
                    add("error", f"HA service {h.get('sid')} is in state {h.get('state')}")
        order = {"critical": 0, "error": 1, "warning": 2, "info": 3}
        findings.sort(key=lambda f: order.get(f["severity"], 9))
        healthy = not any(f["severity"] in ("critical", "error") for f in findings)
        text = (
            f"cluster {name}: {'healthy' if healthy else 'PROBLEMS'} ({len(findings)} findings)\n"
        )
        text += "\n".join(f"[{f['severity']}] {f['finding']}" for f in findings) or "no findings"
        return ToolResult({"cluster": name, "healthy": healthy, "findings": findings}, text)

    # /access/permissions returns "Map of path => (Map of privilege => propagate boolean)"
    # (pve-access-control PVE/API2/AccessControl.pm ``permissions``); with several standalone
    # hosts: host => that map, and ``errors`` for hosts that did not answer.
    @reg.tool(
        "Who am I",
        output=shape(
            "caller scopes read_only proxmox_permissions",
            caller="string",
            scopes=STRINGS,
            read_only="boolean",
            proxmox_permissions="object",
            errors=STRINGS,
        ),
    )
    async def whoami(ctx: CallContext, args: ClusterIn) -> ToolResult:
        """The caller's scopes/allowlists and the API token's real Proxmox permissions (per
        standalone host)."""
        c = ctx.caller
        pool = ctx.gateway.pool
        by_host: dict[str, Any] | None = None
        errors: list[str] = []
        if len(pool.cluster(args.cluster).groups) > 1:
            # each standalone host has its own token: show every one's
            good, errors = answered(
                await pool.request_all(args.cluster, "/access/permissions"), "reading permissions"
            )
            by_host = {g.config.name: p for g, p in good}
            perms: Any = by_host
        else:
            perms = await pool.request(args.cluster, "GET", "/access/permissions")
        token = c.token
        data = {
            "caller": c.name,
            "transport": c.transport,
            "scopes": sorted(c.scopes),
            "allowlists": {
                "clusters": sorted(token.clusters) if token and token.clusters else None,
                "nodes": sorted(token.nodes) if token and token.nodes else None,
                "vmids": [list(r) for r in token.vmids] if token and token.vmids else None,
                "tools": sorted(token.tools) if token and token.tools else None,
            },
            "read_only": ctx.gateway.settings.read_only,
            "proxmox_permissions": perms,
        }
        lines = [
            f"caller {c.name} via {c.transport}: scopes {'+'.join(sorted(c.scopes))}",
            "proxmox token permissions:",
        ]
        for host, host_perms in sorted(by_host.items()) if by_host else [("", perms)]:
            if host:
                lines.append(f" {host}:")
            for path, privs in sorted((host_perms or {}).items()):
                lines.append(f"  {path}: {','.join(sorted(k for k, v in privs.items() if v))}")
        if errors:
            data["errors"] = errors
            lines += [f" unreadable: {e}" for e in errors]
        return ToolResult(data, "\n".join(lines))
