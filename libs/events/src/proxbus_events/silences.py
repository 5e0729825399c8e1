"""Silences: matchers + expiry, stored in the ``proxbus_silences`` KV bucket.

Written by ``proxbus silence add`` and the gateway's ``silence_alerts`` tool, read by the
dispatcher. Key = silence id, value = the ``Silence`` JSON (``proxbus_runtime.SilenceStore``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from .event import Event, new_event_id
from .matchers import Matcher, match_all


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
