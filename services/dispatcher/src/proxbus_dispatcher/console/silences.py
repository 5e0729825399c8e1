"""Active silences for the console page, read in one pass of the bucket.

``SilenceStore.list`` reads every key with one request each (3,000 silences: 1.5 s per page
view) and raises on a value that is not a silence (the page answered 503). Here one KV watch
delivers the current value of every key; a damaged value is counted and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import nats.js.errors
from nats.js import JetStreamContext
from proxbus_events import SILENCES_BUCKET, Silence
from pydantic import ValidationError

READ_TIMEOUT = 5.0


@dataclass(slots=True)
class ActiveSilences:
    """The active silences, newest first, and how many values were not silences."""

    silences: list[Silence] = field(default_factory=list)
    unreadable: int = 0


async def active_silences(js: JetStreamContext, now: datetime | None = None) -> ActiveSilences:
    """Every silence of ``proxbus_silences`` that has not ended, newest first.

    Raises:
        TimeoutError: the bucket did not deliver its values within ``READ_TIMEOUT``.
    """
    now = now or datetime.now(UTC)
    out = ActiveSilences()
    try:
        kv = await js.key_value(SILENCES_BUCKET)
    except nats.js.errors.BucketNotFoundError:
        return out
    watcher = await kv.watch(">", ignore_deletes=True)
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            async for entry in watcher:
                if entry is None:  # every current value delivered
                    break
                if not entry.value:
                    continue
                try:
                    silence = Silence.model_validate_json(entry.value)
                except (ValidationError, ValueError):
                    out.unreadable += 1
                    continue
                if silence.ends_at > now:
                    out.silences.append(silence)
    finally:
        stop: Callable[[], Awaitable[None]] = watcher.stop  # untyped in nats-py
        with contextlib.suppress(Exception):
            await asyncio.shield(stop())
    out.silences.sort(key=lambda s: s.starts_at, reverse=True)
    return out
