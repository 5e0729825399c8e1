"""Audit of every command and click, in the gateway's record shape, on PROXBUS_AUDIT.

Subject ``proxbus.audit.<site>.discord_<name>``; body ``proxbus.audit/v1`` with the same keys
the gateway writes (ts, site, tool, caller, transport, arguments, outcome, code, message,
duration_ms), ``transport="discord"`` and the Discord ids in ``arguments``. The
``Nats-Msg-Id`` is derived from the interaction id, so a retried publish is stored once.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from proxbus_events import audit_subject
from proxbus_runtime import RateLimitedLog

log = logging.getLogger(__name__)

AUDIT_SCHEMA = "proxbus.audit/v1"


@dataclass(slots=True)
class DiscordAuditRecord:
    """One command or click and what came of it."""

    tool: str
    caller: str
    arguments: dict[str, Any]
    outcome: str
    site: str
    interaction_id: str
    duration_ms: float = 0.0
    message: str | None = None
    code: int | None = None
    ts: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "schema": AUDIT_SCHEMA,
                "ts": self.ts,
                "site": self.site,
                "tool": self.tool,
                "caller": self.caller,
                "transport": "discord",
                "arguments": self.arguments,
                "outcome": self.outcome,
                "code": self.code,
                "message": self.message,
                "duration_ms": self.duration_ms,
            },
            default=str,
            separators=(",", ":"),
        ).encode()


class DiscordAudit:
    """Publishes records and waits for the JetStream ack (failures counted, logged rate-limited)."""

    def __init__(self, js: JetStreamContext, *, timeout: float = 5.0) -> None:
        self._js = js
        self._timeout = timeout
        self.published = 0
        self.failed = 0
        self._warn = RateLimitedLog(log, "audit records not stored")

    async def record(self, rec: DiscordAuditRecord) -> bool:
        """Store ``rec``; ``False`` (counted) when JetStream did not acknowledge it."""
        try:
            await self._js.publish(
                audit_subject(rec.site, rec.tool),
                rec.to_json(),
                timeout=self._timeout,
                headers={"Nats-Msg-Id": f"discord-{rec.interaction_id}-{rec.tool}-{rec.outcome}"},
            )
        except Exception as exc:
            self.failed += 1
            self._warn.record(type(exc).__name__, detail=rec.tool)
            return False
        self.published += 1
        return True
