"""An in-memory copy of the ``proxbus_silences`` bucket, kept current by a KV watch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from proxbus_events import Event, Silence
from proxbus_runtime import SilenceStore
from pydantic import ValidationError

from .routing import route_matches

log = logging.getLogger(__name__)


class SilenceWatcher:
    """Watches every key of the silences bucket; ``muting(event)`` answers from memory."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self.silences: dict[str, Silence] = {}
        self.loaded = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        store = await SilenceStore.open(self._js)
        self._task = asyncio.create_task(self._watch(store.kv), name="silence-watch")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.loaded.wait(), 5.0)

    async def _watch(self, kv: KeyValue) -> None:
        while True:
            try:
                watcher = await kv.watchall()
                async for entry in watcher:
                    if entry is None:
                        self.loaded.set()
                        continue
                    self._apply(entry.key, entry.value, entry.operation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the watch must survive broker restarts
                log.warning("silence watch failed (%s); re-watching in 1s", exc)
                await asyncio.sleep(1.0)

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        if operation in ("DEL", "PURGE") or not value:
            self.silences.pop(key, None)
            return
        try:
            self.silences[key] = Silence.model_validate_json(value)
        except ValidationError as exc:
            log.warning("ignoring invalid silence %s: %s", key, exc.errors()[0]["msg"])

    def muting(self, event: Event) -> Silence | None:
        """The first active silence that mutes ``event``. Its matchers read an event as a
        route's do (``route_matches``): ``node = pve3`` mutes a lost pve3's alert and its end
        (``metadata.peer_node``) and what pve3 reported about others (``metadata.reporter``:
        during pve3's own reboot its lines about the peers it lost are noise too)."""
        if not self.silences:
            return None
        now = datetime.now(UTC)
        for silence in self.silences.values():
            if silence.is_active(now) and route_matches(silence.matchers, event):
                return silence
        return None

    @property
    def active(self) -> int:
        now = datetime.now(UTC)
        return sum(1 for s in self.silences.values() if s.is_active(now))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
