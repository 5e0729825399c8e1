"""The gateway core: configuration, pool, tools and the single call pipeline."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from proxbus_runtime import EventPublisher
from pydantic import ValidationError

from .audit import AuditLog, AuditRecord
from .auth import Caller, TokenTable, parse_scopes
from .config import ClusterConfig, load_tokens_file, parse_clusters, parse_tokens
from .endpoints import PoolOptions
from .errors import ConfigError, Forbidden, InvalidArgument, NotFound, ToolFailure
from .pool import ProxmoxPool
from .registry import CallContext, ProgressFn, Registry, ToolResult, ToolSpec
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    """What a call produced: a result, or an error with an HTTP-like code."""

    tool: str
    result: ToolResult | None = None
    error: str | None = None
    code: int = 200
    duration_ms: float = 0.0
    clusters: list[str] | None = None  # several clusters, no ``cluster`` given: where it went

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    calls: Counter = field(init=False)
    duration: Histogram = field(init=False)

    def __post_init__(self) -> None:
        self.calls = Counter(
            "proxbus_gateway_tool_calls",
            "tool calls",
            ["tool", "outcome", "transport"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "proxbus_gateway_tool_seconds",
            "tool call duration",
            ["tool"],
            buckets=(
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                30,
                60,
            ),
            registry=self.registry,
        )


def gateway_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` with ``.env`` values underneath (the environment wins)."""
    env: dict[str, str] = {}
    if os.path.exists(".env"):
        from dotenv import dotenv_values

        env.update({k: v for k, v in dotenv_values(".env").items() if v is not None})
    env.update(os.environ)
    if extra:
        env.update(extra)
    return env


class Gateway:
    """Owns the pool, the tool registry, tokens and audit; runs every tool call."""

    def __init__(
        self,
        settings: Settings,
        clusters: list[ClusterConfig],
        *,
        tokens: TokenTable | None = None,
        registry: Registry | None = None,
        nc: Any | None = None,
        js: Any | None = None,
    ) -> None:
        from .tools import build_registry

        self.settings = settings
        self.site = settings.site
        self.pool = ProxmoxPool(clusters, PoolOptions.from_settings(settings))
        self.tokens = tokens or TokenTable([])
        self.registry = registry or build_registry()
        self.nc = nc
        self.js = js
        self.audit = AuditLog(self.site)
        self.metrics = GatewayMetrics()
        self.stdio_caller = Caller("stdio", parse_scopes(settings.stdio_scopes), "stdio")
        self.rpc_scopes = parse_scopes(settings.rpc_scopes)
        self._limit = asyncio.Semaphore(settings.max_concurrent_calls)
        # Set by the HTTP face: the streamable HTTP session manager and open SSE streams
        # per caller (caps MAX_SESSIONS / MAX_SESSIONS_PER_CALLER, metrics).
        self.sessions: Any = None
        self.sse_sessions: dict[str, int] = {}
        self.http_request_timeouts = 0  # connections closed by HTTP_REQUEST_TIMEOUT
        self.calls_in_flight = 0
        # Calls in flight per caller name: one caller (e.g. many wait=true calls) must not
        # take every MAX_CONCURRENT_CALLS slot from the others.
        self.in_flight_by_caller: dict[str, int] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Gateway:
        """Build from settings plus the seed variables in ``env`` (default: the environment).

        Raises:
            ConfigError: invalid endpoint or token configuration.
        """
        env = env if env is not None else gateway_environment()
        clusters = parse_clusters(env, settings.default_cluster or settings.site)
        tokens = parse_tokens(
            settings.gateway_tokens.get_secret_value() if settings.gateway_tokens else None
        )
        if settings.gateway_tokens_file:
            tokens += load_tokens_file(settings.gateway_tokens_file)
        names = [t.name for t in tokens]
        if len(names) != len(set(names)):
            raise ConfigError("a token name is used twice (GATEWAY_TOKENS and the tokens file)")
        return cls(settings, clusters, tokens=TokenTable(tokens), **kwargs)

    def start(self) -> None:
        self.audit.start()

    def attach_nats(self, nc: Any, js: Any, publisher: EventPublisher) -> None:
        """NATS arrived (possibly long after start): event tools on, and the audit goes to
        JetStream through the runtime's ``publisher``."""
        self.nc, self.js = nc, js
        if self.settings.audit_enabled:
            self.audit.attach(publisher)

    def detach_nats(self) -> None:
        self.nc = self.js = None
        self.audit.detach()

    async def close(self, timeout: float = 5.0) -> None:
        """Flush the audit queue (up to ``timeout``), then close the pool's connections."""
        await self.audit.close(timeout)
        await self.pool.close()

    # -- catalogue -------------------------------------------------------------------------

    def visible(self, spec: ToolSpec, caller: Caller | None = None) -> bool:
        """READ_ONLY hides every tool that changes something; a caller sees only the tools
        its scopes and tool allowlist let it call."""
        if self.settings.read_only and not spec.read_only and spec.name != "proxmox_api":
            return False
        if caller is not None and spec.scope not in caller.scopes:
            return False
        if caller is not None and caller.token is not None and caller.token.tools is not None:
            return spec.name in caller.token.tools
        return True

    def tools_for(self, caller: Caller | None = None) -> list[ToolSpec]:
        return [t for t in self.registry.tools.values() if self.visible(t, caller)]

    def rpc_caller(self, name: str) -> Caller:
        return Caller(name[:64] or "unknown", self.rpc_scopes, "nats")

    # -- the pipeline ----------------------------------------------------------------------

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        caller: Caller,
        progress: ProgressFn | None = None,
    ) -> Outcome:
        """Validate, authorize, run and audit one tool call; never raises for tool errors."""
        started = time.perf_counter()
        args = dict(arguments or {})
        outcome = Outcome(name)
        mine = self.in_flight_by_caller.get(caller.name, 0)
        if mine >= self.settings.max_calls_per_caller:
            outcome.error = (
                f"too many calls in flight for '{caller.name}' ({mine}, MAX_CALLS_PER_CALLER)"
            )
            outcome.code = 429
            self._finish(outcome, args, caller, started)
            return outcome
        self.in_flight_by_caller[caller.name] = mine + 1
        try:
            async with self._limit:
                self.calls_in_flight += 1
                try:
                    outcome.result = await self._run(name, args, caller, progress, outcome)
                finally:
                    self.calls_in_flight -= 1
        except ToolFailure as exc:
            outcome.error, outcome.code = exc.message, exc.code
        except asyncio.CancelledError:
            outcome.error, outcome.code = "cancelled", 499
            self._finish(outcome, args, caller, started)
            raise
        except Exception as exc:  # a bug must not leak a traceback to the caller
            log.exception("tool %s failed unexpectedly", name)
            outcome.error, outcome.code = f"internal error ({type(exc).__name__})", 500
        finally:
            left = self.in_flight_by_caller[caller.name] - 1
            if left:
                self.in_flight_by_caller[caller.name] = left
            else:
                del self.in_flight_by_caller[caller.name]
        self._finish(outcome, args, caller, started)
        return outcome

    def refuse(
        self, name: str, arguments: Mapping[str, Any] | None, caller: Caller, error: str, code: int
    ) -> Outcome:
        """Audit (and count) a call a transport refused before the pipeline (a body too
        large or not a JSON object, a contradicting cluster): every call leaves one record."""
        outcome = Outcome(name, error=error, code=code)
        self._finish(outcome, dict(arguments or {}), caller, time.perf_counter())
        return outcome

    def _finish(
        self, outcome: Outcome, args: dict[str, Any], caller: Caller, started: float
    ) -> None:
        outcome.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        status = "ok" if outcome.ok else "error"
        known = outcome.tool in self.registry.tools
        label = outcome.tool if known else "_unknown"
        self.metrics.calls.labels(label, status, caller.transport).inc()
        self.metrics.duration.labels(label).observe(outcome.duration_ms / 1000)
        self.audit.record(
            AuditRecord(
                tool=outcome.tool if known else "_unknown",
                caller=caller.name,
                transport=caller.transport,
                arguments=args if known else {"tool": outcome.tool[:64], **args},
                outcome=status,
                duration_ms=outcome.duration_ms,
                site=self.site,
                message=outcome.error,
                code=outcome.code if not outcome.ok else None,
                clusters=outcome.clusters,
            )
        )

    async def _run(
        self,
        name: str,
        args: dict[str, Any],
        caller: Caller,
        progress: ProgressFn | None,
        outcome: Outcome,
    ) -> ToolResult:
        spec = self.registry.tools.get(name)
        if spec is None or not self.visible(spec):
            if spec is not None:
                raise Forbidden(f"tool {name} is disabled (READ_ONLY=true)")
            raise NotFound(f"unknown tool {name!r}")
        caller.require_tool(name)
        caller.require_scope(spec.scope, f"tool {name}")
        try:
            parsed = spec.input_model.model_validate(args)
        except ValidationError as exc:
            raise InvalidArgument(_validation_message(exc)) from None
        cluster = getattr(parsed, "cluster", None)
        # Several clusters and none named: tools/_multi.py (imported only then) says where.
        across = cluster is None and len(self.pool.clusters) > 1
        if not across and "cluster" in type(parsed).model_fields:
            resolved = self.pool.cluster(cluster).config.name if self.pool.clusters else cluster
            if resolved:
                caller.require_cluster(resolved)
        node = getattr(parsed, "node", None)
        if isinstance(node, str):
            caller.require_node(node)
        vmid = getattr(parsed, "vmid", None)
        if isinstance(vmid, int):
            caller.require_vmid(vmid)
        ctx = CallContext(self, caller, progress)
        if across and "cluster" in type(parsed).model_fields:
            from .tools._multi import across_clusters

            try:
                return await across_clusters(ctx, spec, parsed)
            finally:
                outcome.clusters = ctx.clusters
        return await spec.handler(ctx, parsed)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown argument"
        parts.append(f"{loc}: {msg}")
    return "invalid arguments: " + "; ".join(parts)
