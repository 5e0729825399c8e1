"""The health page's facts: each service's ``/health`` answer and the streams' sizes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import aiohttp
from nats.js import JetStreamContext
from proxbus_events import AUDIT_STREAM, DELIVERIES_STREAM, DLQ_STREAM, EVENTS_STREAM

PROBE_TIMEOUT = 1.0
STREAMS = (EVENTS_STREAM, DELIVERIES_STREAM, DLQ_STREAM, AUDIT_STREAM)
# Each service's default health port on this machine (DESIGN.md, `proxbus up`).
DEFAULT_HEALTH_URLS = (
    "mcp-gateway=http://127.0.0.1:8080/health,"
    "ingest-pve-ws=http://127.0.0.1:8090/health,"
    "ingest-syslog=http://127.0.0.1:8092/health,"
    "ingest-email=http://127.0.0.1:8093/health,"
    "ingest-discord=http://127.0.0.1:8094/health"
)


def parse_health_urls(value: str) -> list[tuple[str, str]]:
    """``name=url,...`` → pairs.

    Raises:
        ValueError: an entry is not ``name=http(s)://...``.
    """
    out = []
    for entry in [x.strip() for x in value.split(",") if x.strip()]:
        name, sep, url = entry.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise ValueError(
                f"CONSOLE_HEALTH_URLS entries are name=http://host:port/health: {entry!r}"
            )
        out.append((name.strip(), url.strip()))
    return out


@dataclass(slots=True)
class ServiceState:
    name: str
    state: str  # "ok" | "degraded" | "down" | "not running"
    detail: str = ""
    checks: dict[str, bool] = field(default_factory=dict)


@dataclass(slots=True)
class StreamSize:
    name: str
    messages: int
    bytes: int
    consumers: int
    error: str = ""


async def probe(http: aiohttp.ClientSession, name: str, url: str) -> ServiceState:
    """One service's ``/health`` (200 ok, 503 degraded with its failing checks)."""
    try:
        async with http.get(
            url, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT), allow_redirects=False
        ) as resp:
            body = await resp.content.read(16_384)
    except aiohttp.ClientConnectorError:
        return ServiceState(name, "not running", "connection refused")
    except (TimeoutError, aiohttp.ClientError) as exc:
        return ServiceState(name, "down", type(exc).__name__)
    checks: dict[str, bool] = {}
    try:
        raw = json.loads(body)
        if isinstance(raw, dict) and isinstance(raw.get("checks"), dict):
            checks = {str(k): bool(v) for k, v in list(raw["checks"].items())[:32]}
    except ValueError:
        pass
    if resp.status == 200:
        return ServiceState(name, "ok", "", checks)
    failing = ", ".join(k for k, v in checks.items() if not v)
    return ServiceState(name, "degraded", f"HTTP {resp.status} {failing}".strip(), checks)


async def probe_all(
    http: aiohttp.ClientSession, targets: list[tuple[str, str]]
) -> list[ServiceState]:
    return list(await asyncio.gather(*(probe(http, n, u) for n, u in targets)))


async def stream_sizes(js: JetStreamContext) -> list[StreamSize]:
    out = []
    for name in STREAMS:
        try:
            info = await asyncio.wait_for(js.stream_info(name), PROBE_TIMEOUT * 2)
        except Exception as exc:
            out.append(StreamSize(name, 0, 0, 0, type(exc).__name__))
            continue
        state = info.state
        out.append(StreamSize(name, state.messages, state.bytes, state.consumer_count or 0))
    return out
