"""``--test-connection`` checks of the gateway beyond NATS: every PVE/PBS endpoint with its token.

Each endpoint is asked ``GET /version`` (it needs a valid token, so a refused token shows as
401) once, without retries, all at the same time: a check line costs at most one connect plus
one API timeout however many endpoints are down. The runtime's ``main`` prints one line per
check (``pve lab/pve1: ok (...)`` / ``FAIL <reason>``) after its ``nats`` and ``jetstream``
lines and exits 0 or 1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from .settings import Settings

Check = Callable[[], Awaitable[str | None]]
CONNECT_TIMEOUT = 3.0
API_TIMEOUT = 5.0


def connection_checks(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Check]:
    """One check per configured endpoint, named ``<product> <cluster>/<endpoint>``.

    Raises:
        ConfigError: invalid endpoint configuration.
    """
    from .config import parse_clusters
    from .endpoints import EndpointClient, PoolOptions
    from .errors import ToolFailure
    from .gateway import gateway_environment
    from .pool import ProxmoxPool

    clusters = parse_clusters(
        env if env is not None else gateway_environment(), settings.default_cluster or settings.site
    )
    options = replace(
        PoolOptions.from_settings(settings),
        retries=0,
        connect_timeout=min(settings.connect_timeout, CONNECT_TIMEOUT),
        api_timeout=min(settings.api_timeout, API_TIMEOUT),
        cache_ttl=0,
        discover_endpoints=False,
    )
    pool = ProxmoxPool(clusters, options)
    targets: list[tuple[str, EndpointClient]] = []
    for name, cluster in pool.clusters.items():
        for group in cluster.groups:
            targets += [(f"pve {name}/{c.endpoint.name}", c) for c in group.clients]
        targets += [(f"pbs {name}/{c.endpoint.name}", c) for c in cluster.pbs.values()]
    if not targets:

        async def nothing() -> str | None:
            raise ConnectionError(
                "no PVE/PBS endpoint configured (PVE_NODES / PVE_CLUSTER_PRIMARY_HOST / PBS_NODES)"
            )

        return {"proxmox": nothing}

    probes: asyncio.Task[list[str | BaseException]] | None = None

    async def probe(client: EndpointClient) -> str:
        started = time.perf_counter()
        try:
            version = await pool.probe(client)
        except ToolFailure as exc:
            raise ConnectionError(exc.message) from None
        ep = client.endpoint
        token = f"{ep.user}!{ep.token_name}" if ep.token_name else ep.user
        ms = round((time.perf_counter() - started) * 1000)
        release = (version or {}).get("version") if isinstance(version, dict) else None
        return f"{ep.product} {release or '?'}, {ep.address}, token {token}, {ms} ms"

    async def run_all() -> list[str | BaseException]:
        try:
            return await asyncio.gather(*(probe(c) for _, c in targets), return_exceptions=True)
        finally:
            await pool.close()

    def check_for(index: int) -> Check:
        async def check() -> str | None:
            nonlocal probes
            if probes is None:
                probes = asyncio.ensure_future(run_all())
            result = (await asyncio.shield(probes))[index]
            if isinstance(result, BaseException):
                raise result
            return result

        return check

    return {name: check_for(i) for i, (name, _) in enumerate(targets)}
