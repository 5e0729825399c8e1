"""A KV lease (compare-and-set on the key's revision): one active poller per cluster."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)


class Lease:
    """``{"holder", "expires"}`` under ``key``; taken when absent, ours, or expired."""

    def __init__(self, kv: KeyValue, key: str, holder: str, ttl: float) -> None:
        self.kv = kv
        self.key = key
        self.holder = holder
        self.ttl = ttl
        self.held = False
        self.current_holder: str | None = None
        self._revision = 0

    async def renew(self) -> bool:
        """Acquire or extend the lease; ``True`` while we hold it."""
        now = time.time()
        try:
            entry = await self.kv.get(self.key)
            revision = entry.revision or 0
            try:
                data = json.loads(entry.value or b"{}")
            except json.JSONDecodeError:
                data = {}
        except KeyNotFoundError:
            revision, data = 0, {}
        holder = data.get("holder") if isinstance(data, dict) else None
        expires = data.get("expires", 0) if isinstance(data, dict) else 0
        self.current_holder = holder if isinstance(holder, str) else None
        if holder and holder != self.holder and isinstance(expires, int | float) and expires > now:
            self._lose(f"held by {holder}")
            return False
        value = json.dumps({"holder": self.holder, "expires": now + self.ttl}).encode()
        try:
            if revision:
                self._revision = await self.kv.update(self.key, value, last=revision)
            else:
                self._revision = await self.kv.create(self.key, value)
        except KeyWrongLastSequenceError:
            self._lose("another replica renewed first")
            return False
        except Exception as exc:  # e.g. create() racing with another replica
            if "wrong last sequence" in str(exc).lower() or "key exists" in str(exc).lower():
                self._lose("another replica acquired first")
                return False
            raise
        if not self.held:
            log.info("lease %s acquired by %s", self.key, self.holder)
        self.held = True
        self.current_holder = self.holder
        return True

    def _lose(self, why: str) -> None:
        if self.held:
            log.warning("lease %s lost (%s)", self.key, why)
        self.held = False

    async def release(self, timeout: float = 2.0) -> None:
        """Give the lease up (expired at once) so another replica takes over without waiting."""
        if not self.held:
            return
        value = json.dumps({"holder": self.holder, "expires": 0}).encode()
        try:
            await asyncio.wait_for(self.kv.update(self.key, value, last=self._revision), timeout)
        except Exception as exc:  # it simply expires later
            log.info("lease %s not released (%s); it will expire", self.key, exc)
        self.held = False
