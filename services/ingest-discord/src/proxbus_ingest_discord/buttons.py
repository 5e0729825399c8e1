"""Once per notification button: its tag claimed in a JetStream KV bucket, across replicas.

A genuine "Silence 1h" / "Acknowledge" button (its tag checked, ``components.button_refusal``)
is honoured once: the first click creates ``<tag>`` in ``proxbus_discord_buttons``
(``kv.create`` fails if the key exists, so two replicas cannot both win) with who clicked.
The click's answer removes the buttons from the message; the claim also stops the same id
copied into another message (whoever holds the webhook URL can post one) from acting again.
Entries expire after the buttons do (``BUTTON_LIFETIME`` and an hour of clock skew).
"""

from __future__ import annotations

import json

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from proxbus_events import BUTTON_LIFETIME
from proxbus_runtime import open_bucket

BUTTONS_BUCKET = "proxbus_discord_buttons"


class UsedButtons:
    """Claims notification buttons by tag in ``proxbus_discord_buttons``."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(
        cls, js: JetStreamContext, *, ttl: float = BUTTON_LIFETIME + 3600.0, replicas: int = 1
    ) -> UsedButtons:
        """Open the bucket, creating it when missing (safe to race with other replicas)."""
        kv = await open_bucket(
            js,
            KeyValueConfig(
                bucket=BUTTONS_BUCKET,
                history=1,
                ttl=ttl,
                max_value_size=1024,
                storage=StorageType.FILE,
                replicas=replicas,
            ),
        )
        return cls(kv)

    async def use(self, tag: str, by: str) -> str | None:
        """Claim the button with ``tag`` for ``by``: ``None`` if this is its first use, else
        who used it before (the tag is base64url: a valid KV key as it is)."""
        try:
            await self.kv.create(tag, json.dumps({"by": by[:100]}).encode())
            return None
        except KeyWrongLastSequenceError:
            pass
        entry = await self.kv.get(tag)
        try:
            stored = json.loads(entry.value or b"{}")
        except ValueError:
            stored = {}
        return str(stored.get("by") or "someone")
