"""Suppression records: what intake did not notify on its own, and why.

Counted in ``proxbus_dispatcher_suppressed_total{reason}`` and (``PUBLISH_SUPPRESSED``)
published on core NATS ``proxbus.suppressed.<site>`` for ``proxbus events tail --suppressed``.
"""

from __future__ import annotations

import contextlib
import json
import time

from nats.aio.client import Client as NATS
from proxbus_events import Event, sanitize_token

from .metrics import DispatcherMetrics

SUPPRESSED_PREFIX = "proxbus.suppressed"
SUPPRESSED_SCHEMA = "proxbus.suppressed/v1"


def suppressed_subject(site: str) -> str:
    return f"{SUPPRESSED_PREFIX}.{sanitize_token(site)}"


class SuppressionLog:
    """Counts and (optionally) publishes suppression records; never raises."""

    def __init__(self, nc: NATS, metrics: DispatcherMetrics, *, publish: bool) -> None:
        self._nc = nc
        self._metrics = metrics
        self._publish = publish

    async def record(self, event: Event, reason: str, detail: str = "") -> None:
        self._metrics.suppressed.labels(reason).inc()
        if not self._publish:
            return
        record = {
            "schema": SUPPRESSED_SCHEMA,
            "event_id": event.id,
            "reason": reason,
            "detail": detail,
            "kind": event.kind,
            "severity": event.severity.value,
            "site": event.site,
            "node": event.node,
            "title": event.title,
            "fingerprint": event.fingerprint,
            "at": time.time(),
        }
        with contextlib.suppress(Exception):
            await self._nc.publish(suppressed_subject(event.site), json.dumps(record).encode())
