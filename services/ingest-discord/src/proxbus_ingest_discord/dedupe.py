"""Once per interaction id, across retries and replicas: a claim in a JetStream KV bucket.

The first delivery creates ``<interaction id>`` (``kv.create`` fails if the key exists, so two
replicas cannot both win); when it is answered the response is stored on the same key. A
second delivery of the id gets the stored response (or "still working" while the first
runs) and executes nothing. Entries expire with the interaction token (15 minutes).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from proxbus_runtime import open_bucket

log = logging.getLogger(__name__)

INTERACTIONS_BUCKET = "proxbus_discord_interactions"
TOKEN_LIFETIME = 15 * 60.0
PENDING, DEFERRED, DONE = "pending", "deferred", "done"


@dataclass(slots=True, frozen=True)
class Claim:
    """The outcome of claiming an id: ``first`` or the state the earlier delivery left."""

    first: bool
    state: str = PENDING
    response: dict[str, Any] | None = None


class InteractionLedger:
    """Claims interaction ids and remembers their answers in ``proxbus_discord_interactions``."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(
        cls, js: JetStreamContext, *, ttl: float = TOKEN_LIFETIME, replicas: int = 1
    ) -> InteractionLedger:
        """Open the bucket, creating it when missing (safe to race with other replicas)."""
        kv = await open_bucket(
            js,
            KeyValueConfig(
                bucket=INTERACTIONS_BUCKET,
                history=1,
                ttl=ttl,
                storage=StorageType.FILE,
                replicas=replicas,
            ),
        )
        return cls(kv)

    async def claim(self, interaction_id: str) -> Claim:
        """Claim ``interaction_id``; ``first=False`` with the earlier state if already claimed."""
        try:
            await self.kv.create(interaction_id, json.dumps({"state": PENDING}).encode())
            return Claim(True)
        except KeyWrongLastSequenceError:
            pass
        entry = await self.kv.get(interaction_id)
        try:
            stored = json.loads(entry.value or b"{}")
        except ValueError:
            stored = {}
        response = stored.get("response")
        return Claim(
            False,
            str(stored.get("state", PENDING)),
            response if isinstance(response, dict) else None,
        )

    async def settle(
        self, interaction_id: str, state: str, response: dict[str, Any] | None
    ) -> None:
        """Record how the interaction was answered (``deferred`` or ``done`` + response)."""
        value: dict[str, Any] = {"state": state}
        if response is not None:
            value["response"] = response
        await self.kv.put(interaction_id, json.dumps(value).encode())
