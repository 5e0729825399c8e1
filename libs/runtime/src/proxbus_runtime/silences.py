"""Read and write silences in the ``proxbus_silences`` KV bucket."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue
from proxbus_events import SILENCES_BUCKET, Silence


class SilenceStore:
    """Silences by id (value: the ``Silence`` JSON)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> SilenceStore:
        return cls(await js.key_value(SILENCES_BUCKET))

    async def add(self, silence: Silence) -> Silence:
        await self.kv.put(silence.id, silence.model_dump_json().encode())
        return silence

    async def get(self, silence_id: str) -> Silence | None:
        try:
            entry = await self.kv.get(silence_id)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return Silence.model_validate_json(entry.value)

    async def list(self, include_expired: bool = False) -> list[Silence]:
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        out = []
        now = datetime.now(UTC)
        for key in keys:
            silence = await self.get(key)
            if silence and (include_expired or silence.ends_at > now):
                out.append(silence)
        return sorted(out, key=lambda s: s.starts_at)

    async def expire(self, silence_id: str) -> Silence | None:
        """End a silence now; ``None`` if there is no such silence."""
        silence = await self.get(silence_id)
        if silence is None:
            return None
        silence.ends_at = min(silence.ends_at, datetime.now(UTC))
        await self.kv.put(silence.id, silence.model_dump_json().encode())
        return silence
