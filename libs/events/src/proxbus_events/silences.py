"""Silences: matchers + expiry in the ``proxbus_silences`` KV bucket.

Written by ``proxbus silence add`` and the gateway's ``silence_alerts`` tool, read by the
dispatcher. Key = silence id, value = the ``Silence`` JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from .event import Event, new_event_id
from .matchers import Matcher, match_all
from .streams import SILENCES_BUCKET


def _now() -> datetime:
    return datetime.now(UTC)


class Silence(BaseModel):
    """Mutes matching events between ``starts_at`` and ``ends_at``."""

    id: str = Field(default_factory=new_event_id)
    matchers: list[Matcher] = Field(min_length=1)
    starts_at: datetime = Field(default_factory=_now)
    ends_at: datetime
    created_by: str = Field(default="unknown", max_length=128)
    comment: str = Field(default="", max_length=1024)

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or _now()
        return self.starts_at <= now < self.ends_at

    def mutes(self, event: Event, now: datetime | None = None) -> bool:
        return self.is_active(now) and match_all(self.matchers, event)

    @classmethod
    def for_duration(
        cls, matchers: list[Matcher], duration: timedelta, created_by: str, comment: str = ""
    ) -> Silence:
        now = _now()
        return cls(
            matchers=matchers,
            starts_at=now,
            ends_at=now + duration,
            created_by=created_by,
            comment=comment,
        )


class SilenceStore:
    """Read/write silences in the KV bucket."""

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
        now = _now()
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
        silence.ends_at = min(silence.ends_at, _now())
        await self.kv.put(silence.id, silence.model_dump_json().encode())
        return silence
