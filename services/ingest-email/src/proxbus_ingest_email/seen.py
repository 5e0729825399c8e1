"""Recent Message-IDs in a JetStream KV bucket, so a mail re-sent hours later is one event.

JetStream's duplicate window (2 minutes) covers an immediate redelivery only; an MTA answered
``451`` retries minutes to hours later. The bucket keeps ``Message-ID → event id`` with a TTL
of ``EMAIL_DEDUP_HOURS`` (48 h by default, at least 24 h), in the service's JetStream context
(and so in its JetStream domain).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from proxbus_runtime import open_bucket

log = logging.getLogger(__name__)

SEEN_BUCKET = "proxbus_email_ids"
HOUR = 3600.0


def message_id_key(message_id: str) -> str:
    """A KV key for a Message-ID (which may hold any character a key may not)."""
    return hashlib.sha256(message_id.strip().encode()).hexdigest()[:40]


class SeenMessageIds:
    """``Message-ID → event id`` of mails already stored, kept for ``ttl`` seconds."""

    def __init__(self, kv: KeyValue, connected: Callable[[], bool], timeout: float = 2.0) -> None:
        self._kv = kv
        self._connected = connected
        self._timeout = timeout

    @classmethod
    async def open(
        cls, js: JetStreamContext, ttl: float, connected: Callable[[], bool]
    ) -> SeenMessageIds:
        """The bucket, created with ``ttl`` if missing.

        Raises:
            nats.errors.Error: JetStream did not answer.
        """
        kv = await open_bucket(
            js, KeyValueConfig(bucket=SEEN_BUCKET, history=1, ttl=ttl, storage=StorageType.FILE)
        )
        return cls(kv, connected)

    async def get(self, message_id: str) -> str | None:
        """The id the mail was stored under, or None (also when the bucket does not answer)."""
        if not self._connected():
            return None  # the publish will be refused anyway; don't wait for a timeout
        try:
            entry = await asyncio.wait_for(self._kv.get(message_id_key(message_id)), self._timeout)
        except KeyNotFoundError:
            return None
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            log.debug("Message-ID lookup failed: %s", exc)
            return None
        return entry.value.decode() if entry.value else None

    async def remember(self, message_id: str, event_id: str) -> None:
        """Record a stored mail; failures are logged, not raised (JetStream has the event)."""
        try:
            await asyncio.wait_for(
                self._kv.put(message_id_key(message_id), event_id.encode()), self._timeout
            )
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            log.warning("could not record Message-ID of event %s: %s", event_id, exc)
