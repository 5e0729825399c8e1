"""The HTTP face: ``/mcp`` (streamable HTTP), ``/sse`` + ``/messages/`` (legacy SSE),
``/health`` and ``/metrics``, behind bearer-token authentication."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import Caller
from .gateway import Gateway
from .mcp_server import CALLER_STATE_KEY, GatewayMCPServer
from .transport import AdaptiveSessionManager, quiet_sdk_request_logs

PUBLIC_PATHS = frozenset({"/health", "/metrics"})


class BearerAuthMiddleware:
    """401 + ``WWW-Authenticate: Bearer`` unless the request carries a configured token.

    With no tokens configured (loopback or ``--insecure-no-auth``) every request gets
    the ``anonymous`` caller.
    """

    def __init__(
        self,
        app: ASGIApp,
        gateway: Gateway,
        anonymous: Caller | None,
        *,
        sessions: AdaptiveSessionManager | None = None,
    ) -> None:
        self.app = app
        self.sessions = sessions
        # Legacy SSE: one session per open GET /sse stream, capped like streamable HTTP's.
        self.sse_open = gateway.sse_sessions
        self.gateway = gateway
        self.anonymous = anonymous
        # Calls over the legacy SSE transport are audited (and counted) as "sse".
        self.anonymous_sse = None if anonymous is None else replace(anonymous, transport="sse")
        self.rejected = 0
        self._users: dict[str, AuthenticatedUser] = {}  # per token name (bounded by tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        legacy = path.startswith(("/sse", "/messages"))
        caller = self.anonymous_sse if legacy else self.anonymous
        if self.gateway.tokens:
            caller = None
            for key, value in scope.get("headers", []):
                if key == b"authorization":
                    text = value.decode("latin-1")
                    scheme, _, secret = text.partition(" ")
                    if scheme.lower() == "bearer" and secret.strip():
                        caller = self.gateway.tokens.lookup(
                            secret.strip(), "sse" if legacy else "http"
                        )
                    break
        if caller is None:
            self.rejected += 1
            body = json.dumps(
                {"error": "unauthorized", "error_description": "a valid Bearer token is required"}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="proxbus", error="invalid_token"'),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})[CALLER_STATE_KEY] = caller
        # The SDK binds a session to the principal that opened it (streamable HTTP and SSE
        # answer another one's requests with 404): the token name is that principal.
        scope["user"] = self._user(caller)
        if path == "/sse" and scope.get("method") == "GET":
            await self._sse_session(caller, scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _user(self, caller: Caller) -> AuthenticatedUser:
        user = self._users.get(caller.name)
        if user is None:
            token = AccessToken(token="", client_id=caller.name, scopes=sorted(caller.scopes))
            user = self._users[caller.name] = AuthenticatedUser(token)
        return user

    async def _sse_session(
        self, caller: Caller, scope: Scope, receive: Receive, send: Send
    ) -> None:
        settings = self.gateway.settings
        streamable = self.sessions.open_sessions if self.sessions is not None else 0
        mine = self.sse_open.get(caller.name, 0) + (
            self.sessions.sessions_of(caller.name) if self.sessions is not None else 0
        )
        if (
            sum(self.sse_open.values()) + streamable >= settings.max_sessions
            or mine >= settings.max_sessions_per_caller
        ):
            if self.sessions is not None:
                self.sessions.refused_sessions += 1
            body = b"Too many open sessions"
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"text/plain"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        self.sse_open[caller.name] = self.sse_open.get(caller.name, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.sse_open[caller.name] - 1
            if left:
                self.sse_open[caller.name] = left
            else:
                del self.sse_open[caller.name]


def transport_security(gateway: Gateway, host: str, port: int) -> TransportSecuritySettings:
    """Host/Origin validation (DNS rebinding): loopback names plus configured extras."""
    s = gateway.settings
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        hosts += [host, f"{host}:{port}", f"{host}:*"]
    extra_hosts = [h.strip() for h in s.gateway_allowed_hosts.split(",") if h.strip()]
    hosts += extra_hosts
    origins += [o.strip() for o in s.gateway_allowed_origins.split(",") if o.strip()]
    # "*" turns Host/Origin validation off; only honoured when bearer tokens guard the gateway,
    # since a rebinding page cannot present a token it does not know.
    protect = not ("*" in extra_hosts and gateway.tokens)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=protect, allowed_hosts=hosts, allowed_origins=origins
    )


class PoolCollector(Collector):
    """Breaker states, API request counts and cache stats at scrape time."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Any:
        pool = self.gateway.pool
        up = GaugeMetricFamily(
            "proxbus_gateway_endpoint_up",
            "1 unless the endpoint's circuit breaker is open",
            labels=["cluster", "endpoint"],
        )
        reqs = CounterMetricFamily(
            "proxbus_gateway_api_requests", "API requests sent", labels=["cluster", "endpoint"]
        )
        fails = CounterMetricFamily(
            "proxbus_gateway_api_failures",
            "API requests that failed (connection, timeout, 5xx)",
            labels=["cluster", "endpoint"],
        )
        for e in pool.endpoint_status():
            labels = [e["cluster"], e["endpoint"]]
            up.add_metric(labels, 0 if e["state"] == "open" else 1)
            reqs.add_metric(labels, e["requests"])
            fails.add_metric(labels, e["failures"])
        cache = CounterMetricFamily("proxbus_gateway_cache", "read cache events", labels=["event"])
        st = pool.cache.stats
        for name in ("hits", "misses", "coalesced", "invalidations"):
            cache.add_metric([name], getattr(st, name))
        audit = CounterMetricFamily("proxbus_gateway_audit", "audit records", labels=["result"])
        a = self.gateway.audit
        for name in ("published", "dropped", "failed"):
            audit.add_metric([name], getattr(a, name))
        sessions = GaugeMetricFamily(
            "proxbus_gateway_sessions", "open MCP sessions", labels=["transport"]
        )
        refused = CounterMetricFamily(
            "proxbus_gateway_sessions_refused", "sessions refused at a cap (503)"
        )
        manager = self.gateway.sessions
        sessions.add_metric(["streamable_http"], manager.open_sessions if manager else 0)
        sessions.add_metric(["sse"], sum(self.gateway.sse_sessions.values()))
        refused.add_metric([], manager.refused_sessions if manager else 0)
        slow = CounterMetricFamily(
            "proxbus_gateway_http_request_timeouts",
            "connections closed for not sending a whole request within HTTP_REQUEST_TIMEOUT",
        )
        slow.add_metric([], self.gateway.http_request_timeouts)
        metrics: list[Metric] = [up, reqs, fails, cache, audit, sessions, refused, slow]
        yield from metrics


def build_http_app(
    gateway: Gateway,
    server: GatewayMCPServer,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    anonymous: Caller | None = None,
) -> ASGIApp:
    """One Starlette app with every route, wrapped in bearer auth."""
    security = transport_security(gateway, host, port)
    quiet_sdk_request_logs()
    # JSON answers unless a call asked for progress (transport.py); MCP_JSON_RESPONSE=true
    # makes every answer JSON, as the SDK's own switch does.
    settings = gateway.settings
    manager = AdaptiveSessionManager(
        app=server.lowlevel_server,
        json_response=settings.mcp_json_response,
        security_settings=security,
        session_idle_timeout=settings.session_idle_timeout,
        max_sessions=settings.max_sessions,
        max_sessions_per_caller=settings.max_sessions_per_caller,
        other_sessions=gateway.sse_sessions,
    )
    gateway.sessions = manager
    sse = server.sse_app(
        sse_path="/sse", message_path="/messages/", transport_security=security, host=host
    )
    gateway.metrics.registry.register(PoolCollector(gateway))

    async def health(_: Request) -> Response:
        ok = gateway.pool.healthy()
        body = {
            "status": "ok" if ok else "degraded",
            "site": gateway.site,
            "endpoints": [
                {k: e[k] for k in ("cluster", "endpoint", "state", "last_error")}
                for e in gateway.pool.endpoint_status()
            ],
            "nats": bool(gateway.nc is not None and gateway.nc.is_connected),
            "calls_in_flight": gateway.calls_in_flight,
        }
        # Degraded Proxmox endpoints are reported, not fatal: the gateway itself is alive.
        return JSONResponse(body, status_code=200)

    async def metrics(_: Request) -> Response:
        return Response(
            generate_latest(gateway.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    routes: list[Route | Mount] = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/mcp", endpoint=StreamableHTTPASGIApp(manager)),
    ]
    routes += [r for r in sse.routes if isinstance(r, Route | Mount)]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    app = Starlette(routes=routes, lifespan=lifespan)
    return BearerAuthMiddleware(app, gateway, anonymous, sessions=manager)
