"""Endpoint clients of the Proxmox API pool and the records the pool keeps at run time.

:class:`PoolOptions` (timeouts, retries, sizes), :class:`EndpointClient` (one endpoint's
proxmoxer client, circuit breaker and counters), :class:`GroupRuntime` and
:class:`ClusterRuntime` (a cluster's groups of interchangeable endpoints and its PBS servers),
and :func:`make_api`, which builds a proxmoxer client with our HTTP adapter. The pool itself
is :class:`proxbus_mcp_gateway.pool.ProxmoxPool`.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from .breaker import CircuitBreaker
from .config import ClusterConfig, Endpoint, Group
from .settings import Settings


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
    """One endpoint: its proxmoxer client (built on first use), breaker and counters.

    proxmoxer, requests and urllib3 are imported when the first call needs them: a gateway
    that has not called Proxmox yet starts faster and idles smaller (about 5 MiB).
    """

    endpoint: Endpoint
    options: PoolOptions
    breaker: CircuitBreaker
    requests: int = 0
    failures: int = 0
    last_ok: float | None = None
    last_latency_ms: float | None = None
    built: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def api(self) -> Any:
        """The proxmoxer client (built once, from any thread)."""
        if self.built is None:
            with self._lock:
                if self.built is None:
                    self.built = make_api(self.endpoint, self.options)
        return self.built

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


def make_api(ep: Endpoint, opts: PoolOptions) -> Any:
    """A proxmoxer client with our adapter (pool size, optional certificate pinning)."""
    import requests
    from proxmoxer import ProxmoxAPI
    from urllib3.exceptions import InsecureRequestWarning

    from .tls import PoolAdapter

    verify: bool | str = False if ep.fingerprint else ep.verify
    if verify is False:
        # Either pinned (checked by the adapter) or deliberately unverified (VERIFY_SSL=false).
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    # requests re-reads the proxy and CA-bundle variables (HTTPS_PROXY, NO_PROXY,
    # REQUESTS_CA_BUNDLE...) from the environment on every request (~6 % of an uncached
    # call's CPU, measured): resolve them once for this endpoint instead.
    env = requests.Session().merge_environment_settings(
        f"https://{ep.address}/", {}, None, verify, None
    )
    verify = verify if env["verify"] is None else env["verify"]
    api = ProxmoxAPI(
        ep.host,
        port=ep.port,
        user=ep.user,
        token_name=ep.token_name,
        token_value=ep.token_value,
        service="PBS" if ep.product == "pbs" else "PVE",
        verify_ssl=verify,
        timeout=(opts.connect_timeout, opts.api_timeout),
    )
    session: requests.Session = api._store["session"]
    session.trust_env = False
    session.proxies = env["proxies"]
    session.mount("https://", PoolAdapter(opts.workers, ep.fingerprint))
    return api
