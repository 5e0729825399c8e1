"""The Proxmox API pool: one asyncio HTTP session per endpoint (:mod:`.upstream`).

Every call has a timeout; reads retry with exponential backoff and fail over between the
members of a cluster; a failing endpoint is skipped while its circuit breaker is open;
hot reads are cached briefly and coalesced; a write invalidates what its node(s) answered
plus the cluster-wide reads (a write outside ``/nodes/<node>/`` invalidates the cluster's).

Here: :class:`ProxmoxPool` and the path/cache-key helpers it uses (:func:`path_node`,
:func:`touched_nodes`). In :mod:`.endpoints`: the runtime records (``PoolOptions``,
``EndpointClient``, ``GroupRuntime``, ``ClusterRuntime``). In :mod:`.upstream`: the HTTP
session of an endpoint. In :mod:`.upstream_errors`: ``map_exception`` and
``describe_resource_error`` (upstream errors → the gateway's ``ToolFailure`` subclasses).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from . import validate
from .breaker import CircuitBreaker
from .cache import ReadCache
from .config import ClusterConfig, Endpoint, env_key
from .endpoints import ClusterRuntime, EndpointClient, GroupRuntime, PoolOptions
from .errors import (
    EndpointDown,
    InvalidArgument,
    NotFound,
    ToolFailure,
    UpstreamError,
)
from .upstream_errors import _Transient, map_exception

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET"})


def _split(path: str) -> list[str]:
    return [seg for seg in path.strip("/").split("/") if seg]


class ProxmoxPool:
    """All configured clusters; one HTTP session per endpoint."""

    def __init__(self, clusters: Iterable[ClusterConfig], options: PoolOptions | None = None):
        self.options = options or PoolOptions()
        self.cache = ReadCache(self.options.cache_ttl)
        self.clusters: dict[str, ClusterRuntime] = {}
        self.http_requests = 0
        for cfg in clusters:
            groups = [
                GroupRuntime(
                    config=g,
                    clients=[self._client(ep) for ep in g.endpoints],
                    nodes=set(g.nodes),
                )
                for g in cfg.groups
            ]
            pbs = {ep.name: self._client(ep) for ep in cfg.pbs}
            self.clusters[cfg.name] = ClusterRuntime(cfg, groups, pbs)
        self._discovery_lock = asyncio.Lock()

    def _client(self, ep: Endpoint) -> EndpointClient:
        return EndpointClient(
            endpoint=ep,
            options=self.options,
            breaker=CircuitBreaker(self.options.breaker_failures, self.options.breaker_cooldown),
        )

    @property
    def default_cluster(self) -> str | None:
        return next(iter(self.clusters), None)

    async def close(self) -> None:
        """Close every endpoint's connections (those never used have none)."""
        for cluster in self.clusters.values():
            for client in self._all_clients(cluster):
                await client.http.close()

    @staticmethod
    def _all_clients(cluster: ClusterRuntime) -> list[EndpointClient]:
        return [c for g in cluster.groups for c in g.clients] + list(cluster.pbs.values())

    # -- lookup --------------------------------------------------------------------------

    def cluster(self, name: str | None) -> ClusterRuntime:
        """The named cluster (or the default one).

        Raises:
            NotFound: no such cluster is configured.
        """
        if name is None:
            name = self.default_cluster
            if name is None:
                raise NotFound("no Proxmox cluster is configured")
        runtime = self.clusters.get(name)
        if runtime is None:
            known = ", ".join(self.clusters) or "none"
            raise NotFound(f"unknown cluster {name!r} (configured: {known})")
        return runtime

    async def group_for_node(self, cluster: ClusterRuntime, node: str) -> GroupRuntime:
        """The group serving ``node``.

        Raises:
            NotFound: ``node`` is not a member of any group of the cluster.
        """
        for group in cluster.groups:
            if node in group.nodes:
                return group
        await self.refresh_membership(cluster)
        for group in cluster.groups:
            if node in group.nodes:
                return group
        unknown = [g for g in cluster.groups if g.membership_error is not None]
        if len(unknown) == 1:
            # Membership could not be read; let the call itself report the real cause.
            return unknown[0]
        if unknown:
            causes = "; ".join(f"{g.config.name}: {g.membership_error}" for g in unknown)
            raise EndpointDown(f"cannot tell which endpoint serves node {node}: {causes}")
        raise NotFound(f"node {node} is not in cluster {cluster.config.name}")

    async def refresh_membership(self, cluster: ClusterRuntime, *, force: bool = False) -> None:
        """Learn each group's nodes (``/cluster/status`` or ``/nodes``), at most every TTL."""
        async with self._discovery_lock:
            now = time.monotonic()
            for group in cluster.groups:
                if not force and now - group.nodes_loaded_at < self.options.membership_ttl:
                    continue
                try:
                    if group.config.clustered:
                        status = await self._group_request(
                            cluster, group, "GET", "/cluster/status", None
                        )
                        names = {
                            str(item["name"])
                            for item in status or []
                            if item.get("type") == "node" and item.get("name")
                        }
                        if self.options.discover_endpoints:
                            self._add_discovered(cluster, group, status or [])
                    else:
                        nodes = await self._group_request(cluster, group, "GET", "/nodes", None)
                        names = {str(item["node"]) for item in nodes or [] if item.get("node")}
                except ToolFailure as exc:
                    log.warning(
                        "membership of %s/%s unknown: %s",
                        cluster.config.name,
                        group.config.name,
                        exc.message,
                    )
                    group.membership_error = exc.message
                    continue
                group.nodes = names | set(group.config.nodes)
                group.nodes_loaded_at = now
                group.membership_error = None

    def _add_discovered(
        self, cluster: ClusterRuntime, group: GroupRuntime, status: list[dict[str, Any]]
    ) -> None:
        """Add members seen in ``/cluster/status`` as failover endpoints (primary's port and
        token, the member's IP; a pinned primary needs ``<NODE>_FINGERPRINT`` per member)."""
        if not group.clients:
            return
        template = group.clients[0].endpoint
        known = {c.endpoint.name for c in group.clients} | {c.endpoint.host for c in group.clients}
        for item in status:
            name, ip = str(item.get("name") or ""), str(item.get("ip") or "")
            if item.get("type") != "node" or not name or not ip or name in known or ip in known:
                continue
            if item.get("local"):
                continue  # the member that answered: already reachable through its endpoint
            try:
                validate.node_name(name)
            except InvalidArgument:
                continue
            fingerprint = cluster.config.fingerprints.get(env_key(name).lower())
            if template.fingerprint and not fingerprint:
                log.warning(
                    "member %s (%s) not used for failover: the primary is pinned; set %s_FINGERPRINT",
                    name,
                    ip,
                    env_key(name),
                )
                known.add(name)
                continue
            ep = replace(template, name=name, host=ip, fingerprint=fingerprint)
            group.clients.append(self._client(ep))
            known |= {name, ip}
            log.info("discovered member %s at %s in %s", name, ep.address, cluster.config.name)

    # -- requests ------------------------------------------------------------------------

    async def request(
        self,
        cluster_name: str | None,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        node: str | None = None,
        cache: bool = True,
    ) -> Any:
        """One API call in a cluster, routed to the group serving ``node`` (if given).

        ``path`` must be built from validated parts. GETs are cached for the TTL and
        coalesced; anything else invalidates the cache of the nodes it touches
        (:func:`touched_nodes`) and the cluster-wide reads.

        Raises:
            ToolFailure: the call failed (with a message for the caller).
        """
        cluster = self.cluster(cluster_name)
        if node is not None:
            group = await self.group_for_node(cluster, node)
        elif cluster.groups:
            group = cluster.groups[0]
        else:
            raise NotFound(f"cluster {cluster.config.name} has no PVE endpoint")
        return await self._cached(cluster, group, method, path, params, cache)

    def several_groups(self, cluster_name: str | None) -> bool:
        """True when the cluster has several PVE groups (standalone hosts, MIXED)."""
        return len(self.cluster(cluster_name).groups) > 1

    def require_one_group(self, cluster_name: str | None, path: str) -> None:
        """Refuse a call for ``path`` (no ``{node}`` in it) in a cluster of several groups
        (standalone hosts, MIXED): it could only go to the first group, which would act on (or
        answer for) that host alone.

        Raises:
            ToolFailure: 409, naming the groups.
        """
        cluster = self.cluster(cluster_name)
        if len(cluster.groups) > 1:
            names = ", ".join(g.config.name for g in cluster.groups)
            raise ToolFailure(
                f"{path} is not node-scoped and cluster {cluster.config.name} has several "
                f"independent hosts ({names}): use a /nodes/{{node}}/... path, or configure "
                "each host as its own cluster (CLUSTERS)",
                409,
            )

    async def request_all(
        self, cluster_name: str | None, path: str, params: dict[str, Any] | None = None
    ) -> list[tuple[GroupRuntime, Any | ToolFailure]]:
        """The same GET on every group of a cluster (standalone nodes each answer for themselves)."""
        cluster = self.cluster(cluster_name)

        async def one(group: GroupRuntime) -> tuple[GroupRuntime, Any | ToolFailure]:
            try:
                return group, await self._cached(cluster, group, "GET", path, params, True)
            except ToolFailure as exc:
                return group, exc

        return list(await asyncio.gather(*(one(g) for g in cluster.groups)))

    async def pbs_request(
        self,
        cluster_name: str | None,
        server: str | None,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One call to a PBS server of the cluster (the first one when ``server`` is None).

        Raises:
            ToolFailure: no such server, or the call failed.
        """
        cluster = self.cluster(cluster_name)
        if not cluster.pbs:
            raise NotFound(f"cluster {cluster.config.name} has no PBS server configured")
        if server is None:
            client = next(iter(cluster.pbs.values()))
        else:
            found = cluster.pbs.get(server)
            if found is None:
                names = ", ".join(cluster.pbs)
                raise NotFound(
                    f"PBS server {server} is not in cluster {cluster.config.name} "
                    f"(configured: {names})"
                )
            client = found
        scope = (cluster.config.name, "pbs", client.endpoint.name)
        if method in READ_METHODS:
            key = (method, path, _freeze(params))
            return await self.cache.get_or_fetch(
                scope, key, lambda: self._with_retries([client], method, path, params, None)
            )
        self.cache.invalidate(scope)
        return await self._with_retries([client], method, path, params, None)

    async def _cached(
        self,
        cluster: ClusterRuntime,
        group: GroupRuntime,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        cache: bool,
    ) -> Any:
        scope = cluster.config.name
        if method in READ_METHODS:
            if not cache:
                return await self._group_request(cluster, group, method, path, params)
            key = (group.config.name, method, path, _freeze(params))
            return await self.cache.get_or_fetch(
                scope,
                key,
                lambda: self._group_request(cluster, group, method, path, params),
                path_node(path),
            )
        nodes = touched_nodes(path, params)
        self.cache.invalidate(scope, nodes)
        try:
            return await self._group_request(cluster, group, method, path, params)
        finally:
            self.cache.invalidate(scope, nodes)

    async def _group_request(
        self,
        cluster: ClusterRuntime,
        group: GroupRuntime,
        method: str,
        path: str,
        params: dict[str, Any] | None,
    ) -> Any:
        order = group.clients[group.preferred :] + group.clients[: group.preferred]
        return await self._with_retries(order, method, path, params, group)

    async def _with_retries(
        self,
        clients: list[EndpointClient],
        method: str,
        path: str,
        params: dict[str, Any] | None,
        group: GroupRuntime | None,
    ) -> Any:
        idempotent = method in READ_METHODS
        attempts = 1 + (self.options.retries if idempotent else 0)
        errors: list[str] = []
        skipped: list[str] = []
        for attempt in range(attempts):
            tried_any = False
            for client in clients:
                if not client.breaker.allow():
                    if client.endpoint.name not in skipped:
                        skipped.append(client.endpoint.name)
                    continue
                tried_any = True
                try:
                    result = await self._call(client, method, path, params)
                except _Transient as exc:
                    errors.append(str(exc))
                    if exc.sent and not idempotent:
                        raise UpstreamError(
                            f"{exc} (the request may have been applied; check the task list)"
                        ) from None
                    continue
                if group is not None:
                    group.preferred = group.clients.index(client)
                return result
            if not tried_any:
                break
            if attempt + 1 < attempts:
                await asyncio.sleep(self.options.backoff * (2**attempt))
        if errors:
            raise UpstreamError("; ".join(dict.fromkeys(errors)), code=502)
        down = ", ".join(skipped) or "none"
        raise EndpointDown(f"all endpoints are marked down (circuit open): {down}")

    async def _call(
        self, client: EndpointClient, method: str, path: str, params: dict[str, Any] | None
    ) -> Any:
        ep = client.endpoint
        if method not in ("GET", "POST", "PUT", "DELETE"):
            raise InvalidArgument(f"unsupported method {method}")
        client.requests += 1
        self.http_requests += 1
        started = time.perf_counter()
        try:
            # The session's timeouts bound connect and each read; this bounds the whole call,
            # including waiting for one of the endpoint's connections.
            budget = self.options.connect_timeout + self.options.api_timeout + 2.0
            async with asyncio.timeout(budget):
                result = await client.http.request(method, "/" + "/".join(_split(path)), params)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            mapped = map_exception(exc, ep, sent=True)
            if isinstance(mapped, _Transient) and not mapped.answered:
                client.failures += 1
                client.breaker.record_failure(str(mapped))
                if client.breaker.state != "closed":
                    log.warning("endpoint %s marked down: %s", ep.name, mapped)
                raise mapped from None
            client.breaker.record_success()  # it answered, even if with an error
            raise mapped from None
        client.breaker.record_success()
        client.last_ok = time.time()
        client.last_latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return result

    async def probe(self, client: EndpointClient) -> Any:
        """``GET /version`` on one endpoint, bypassing its group (connectivity checks).

        Raises:
            ToolFailure: the endpoint failed, refused the token, or its circuit is open.
        """
        return await self._with_retries([client], "GET", "/version", None, None)

    # -- reporting -----------------------------------------------------------------------

    def endpoint_status(self) -> list[dict[str, Any]]:
        """Every endpoint with its breaker state (for list_clusters / health)."""
        out = [
            {"cluster": name, "group": group.config.name, "product": "pve", **client.status()}
            for name, cluster in self.clusters.items()
            for group in cluster.groups
            for client in group.clients
        ]
        out += [
            {"cluster": name, "group": "pbs", "product": "pbs", **client.status()}
            for name, cluster in self.clusters.items()
            for client in cluster.pbs.values()
        ]
        return out

    def healthy(self) -> bool:
        """False when some group has no endpoint with a closed or half-open breaker."""
        for cluster in self.clusters.values():
            for group in cluster.groups:
                if all(c.breaker.state == "open" for c in group.clients):
                    return False
        return True


def path_node(path: str) -> str | None:
    """The node a ``/nodes/<node>/...`` path concerns; None for cluster-wide paths."""
    if path.startswith("/nodes/"):
        node = path[7:].split("/", 1)[0]
        return node or None
    return None


def touched_nodes(path: str, params: dict[str, Any] | None) -> set[str] | None:
    """Nodes whose cached reads a write may change; None = the whole cluster.

    A migration also changes its ``target`` node; a write outside ``/nodes/<node>/``
    (HA, cluster options, pools, ACLs) may change anything.
    """
    node = path_node(path)
    if node is None:
        return None
    nodes = {node}
    for key in ("target", "node"):
        value = (params or {}).get(key)
        if isinstance(value, str) and value:
            nodes.add(value)
    return nodes


def _freeze(params: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    if not params:
        return ()
    return tuple(sorted((k, str(v)) for k, v in params.items()))


PathBuilder = Callable[..., str]
