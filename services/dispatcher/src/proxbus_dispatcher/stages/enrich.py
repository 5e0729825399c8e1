"""Enrichment through the gateway's NATS RPC, under a strict overall timeout.

Adds ``guest_name``/``guest_status`` for events with node + vmid and ``task_log`` (the last
lines) for failed tasks with a UPID. A slow or absent gateway costs at most ``timeout``; after
a call fails fast (no responders) enrichment pauses for a few seconds instead of asking again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from nats.aio.client import Client as NATS
from proxbus_events import Event
from proxbus_runtime import RpcError, RpcTimeout, RpcUnavailable, call_tool

from ..metrics import DispatcherMetrics

log = logging.getLogger(__name__)

_ABSENT_PAUSE = 5.0
_CACHE_TTL = 60.0


class Enricher:
    """Adds gateway facts to events; never raises, never waits past ``timeout``."""

    def __init__(
        self,
        nc: NATS,
        metrics: DispatcherMetrics,
        *,
        enabled: bool = True,
        timeout: float = 0.5,
        guest_tool: str = "get_guest_status",
        task_log_tool: str = "get_task_log",
    ) -> None:
        self._nc = nc
        self._metrics = metrics
        self.enabled = enabled
        self.timeout = timeout
        self._guest_tool = guest_tool
        self._task_log_tool = task_log_tool
        self._paused_until = 0.0
        self._cache: dict[tuple[str, str, int], tuple[float, dict[str, Any]]] = {}

    def wants(self, event: Event) -> bool:
        return (event.node is not None and event.vmid is not None) or (
            event.kind == "task.failed" and bool(event.correlation_id)
        )

    async def enrich(self, events: list[Event]) -> dict[str, dict[str, Any]]:
        """``{event_id: facts}`` for the events the gateway could tell something about."""
        if not self.enabled or not events or time.monotonic() < self._paused_until:
            return {}
        out: dict[str, dict[str, Any]] = {}
        tasks = [asyncio.create_task(self._one(e, out)) for e in events if self.wants(e)]
        if not tasks:
            return out
        _, pending = await asyncio.wait(tasks, timeout=self.timeout)
        for task in pending:
            task.cancel()
        if pending:
            self._metrics.enrich.labels("timeout").inc(len(pending))
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        return out

    async def _call(self, tool: str, args: dict[str, Any]) -> Any:
        try:
            # No grace for "no responders": an absent gateway must cost delivery nothing.
            result = await call_tool(
                self._nc,
                tool,
                args,
                timeout=self.timeout,
                caller="dispatcher",
                no_responders_grace=0,
            )
        except RpcUnavailable:
            self._paused_until = time.monotonic() + _ABSENT_PAUSE
            self._metrics.enrich.labels("absent").inc()
            return None
        except RpcTimeout:
            self._metrics.enrich.labels("timeout").inc()
            return None
        except RpcError as exc:
            self._metrics.enrich.labels("error").inc()
            log.debug("enrichment %s failed: %s", tool, exc)
            return None
        self._metrics.enrich.labels("ok").inc()
        return result

    async def _one(self, event: Event, out: dict[str, dict[str, Any]]) -> None:
        facts: dict[str, Any] = {}
        if event.node is not None and event.vmid is not None:
            key = (event.site, event.node, event.vmid)
            cached = self._cache.get(key)
            if cached and cached[0] > time.monotonic():
                facts.update(cached[1])
            else:
                result = await self._call(
                    self._guest_tool, {"node": event.node, "vmid": event.vmid}
                )
                if isinstance(result, dict):
                    guest = {
                        "guest_name": result.get("name"),
                        "guest_status": result.get("status"),
                    }
                    self._cache[key] = (time.monotonic() + _CACHE_TTL, guest)
                    facts.update(guest)
        if event.kind == "task.failed" and event.correlation_id and event.node:
            result = await self._call(
                self._task_log_tool, {"node": event.node, "upid": event.correlation_id, "limit": 20}
            )
            if isinstance(result, dict) and isinstance(result.get("lines"), list):
                facts["task_log"] = "\n".join(str(x) for x in result["lines"][-20:])
            elif isinstance(result, list):
                facts["task_log"] = "\n".join(str(x) for x in result[-20:])
        if facts:
            out[event.id] = facts
