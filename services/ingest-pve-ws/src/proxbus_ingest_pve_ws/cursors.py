"""JSON cursors in the ``proxbus_cursors`` KV bucket (one key per watched thing)."""

from __future__ import annotations

import json
import logging
from typing import Any

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from proxbus_events import sanitize_token

log = logging.getLogger(__name__)

KEY_PREFIX = "pve-ws"


def cursor_key(*parts: str) -> str:
    """``pve-ws.<part>.<part>``, each part made safe for a KV key token."""
    return ".".join([KEY_PREFIX, *(sanitize_token(p) for p in parts)])


class CursorStore:
    """Reads and writes JSON documents under keys of the cursors bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def load(self, key: str) -> tuple[dict[str, Any] | None, int]:
        """The document under ``key`` and its revision (``None, 0`` when absent or unreadable)."""
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None, 0
        try:
            value = json.loads(entry.value or b"null")
        except json.JSONDecodeError:
            log.warning("cursor %s is not JSON; starting over", key)
            return None, entry.revision or 0
        return (value if isinstance(value, dict) else None), entry.revision or 0

    async def save(self, key: str, value: dict[str, Any]) -> int:
        """Store ``value`` under ``key``; the new revision."""
        return await self.kv.put(key, json.dumps(value, separators=(",", ":")).encode())
