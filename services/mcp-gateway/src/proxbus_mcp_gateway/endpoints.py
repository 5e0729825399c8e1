"""Endpoint clients of the Proxmox API pool and the records the pool keeps at run time.

:class:`PoolOptions` (timeouts, retries, sizes), :class:`EndpointClient` (one endpoint's
HTTP session, circuit breaker and counters), :class:`GroupRuntime` and :class:`ClusterRuntime`
(a cluster's groups of interchangeable endpoints and its PBS servers). The HTTP session is
:class:`proxbus_mcp_gateway.upstream.UpstreamSession`; the pool itself is
:class:`proxbus_mcp_gateway.pool.ProxmoxPool`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .breaker import CircuitBreaker
from .config import ClusterConfig, Endpoint, Group
from .settings import Settings
from .upstream import UpstreamSession


@dataclass(slots=True)
class PoolOptions:
    """Timeouts, retries and sizes (from :class:`Settings`)."""

    api_timeout: float = 10.0
    connect_timeout: float = 3.0
    retries: int = 2
    backoff: float = 0.2
    workers: int = 16
    breaker_failures: int = 3
    breaker_cooldown: float = 15.0
    cache_ttl: float = 2.0
    membership_ttl: float = 30.0
    discover_endpoints: bool = True

    @classmethod
    def from_settings(cls, s: Settings) -> PoolOptions:
        return cls(
            api_timeout=s.api_timeout,
            connect_timeout=s.connect_timeout,
            retries=s.api_retries,
            backoff=s.retry_backoff,
            workers=s.pool_workers,
            breaker_failures=s.breaker_failures,
            breaker_cooldown=s.breaker_cooldown,
            cache_ttl=s.cache_ttl,
            membership_ttl=s.membership_ttl,
            discover_endpoints=s.discover_endpoints,
        )


@dataclass(slots=True)
class EndpointClient:
    """One endpoint: its HTTP session (connects on first use), breaker and counters.

    aiohttp is imported by the first call: a gateway that has not called Proxmox yet starts
    faster and idles smaller (about 10 MiB, ``_deferred.py``).
    """

    endpoint: Endpoint
    options: PoolOptions
    breaker: CircuitBreaker
    requests: int = 0
    failures: int = 0
    last_ok: float | None = None
    last_latency_ms: float | None = None
    http: UpstreamSession = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.http = UpstreamSession(
            self.endpoint,
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.api_timeout,
            max_connections=self.options.workers,
        )

    def status(self) -> dict[str, Any]:
        b = self.breaker
        return {
            "endpoint": self.endpoint.name,
            "address": self.endpoint.address,
            "state": b.state,
            "consecutive_failures": b.failures,
            "last_error": b.last_error,
            "retry_in_s": round(b.retry_in(), 1),
            "requests": self.requests,
            "failures": self.failures,
            "last_latency_ms": self.last_latency_ms,
        }


@dataclass(slots=True)
class GroupRuntime:
    """A group's endpoints (configured + discovered) and its known nodes."""

    config: Group
    clients: list[EndpointClient]
    nodes: set[str] = field(default_factory=set)
    nodes_loaded_at: float = 0.0
    preferred: int = 0
    membership_error: str | None = None


@dataclass(slots=True)
class ClusterRuntime:
    config: ClusterConfig
    groups: list[GroupRuntime]
    pbs: dict[str, EndpointClient]
