"""Dispatcher state in JetStream KV: open incidents (with the notification log) and
inhibition sources, so a restart (SIGTERM or kill -9) or a second replica sees the same state.

Bucket ``proxbus_dispatcher_state`` (history 1, file storage, ``STATE_TTL``), keys:

- ``inc.<fingerprint>``: the current incident of that fingerprint (``stages/incidents``),
  including ``notified`` (route → time of its last notification), Alertmanager's
  notification log for ``repeat_interval``;
- ``inh.<rule>.<hash of the equal labels>``: ``{"until": epoch}`` of an inhibition source.

Incidents are loaded once at start and then written with compare-and-set on the revision this
replica knows (``kv.update(last=rev)``): a write that loses a race with another replica fails,
the key is re-read and the events that depended on it are redelivered and decided again, so
two replicas never both open (and notify) one incident. Inhibition sources are few and read
on every event, so they are watched instead (every replica sees every source at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue
from proxbus_runtime import header_block, open_bucket, publish_frame

from .stages.incidents import Incident
from .stages.inhibition import INHIBIT_PREFIX

log = logging.getLogger(__name__)

STATE_BUCKET = "proxbus_dispatcher_state"
INCIDENT_PREFIX = "inc."
WRITE_TIMEOUT = 5.0
MAX_INCIDENTS_IN_MEMORY = 200_000
EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
# A JetStream publish ack: {"stream":"KV_...","seq":N}; a refusal has an "error" object.
_ACK_SEQ = re.compile(rb'"seq"\s*:\s*(\d+)')


def incident_key(fingerprint: str) -> str:
    return INCIDENT_PREFIX + fingerprint


@dataclass(slots=True)
class WriteResult:
    """The keys whose writes JetStream stored, and those that lost a race or failed."""

    stored: set[str]
    failed: set[str]


@dataclass(slots=True, eq=False)
class _AckBatch:
    """The acks of one ``write``: key → ack body; ``done`` once none is left to come."""

    done: asyncio.Future[None]
    left: int = 0
    acks: dict[str, bytes] = field(default_factory=dict)


class StateStore:
    """The KV bucket: incidents by fingerprint (memory + CAS writes), inhibition sources."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        *,
        ttl: float,
        bucket: str = STATE_BUCKET,
        max_in_memory: int = MAX_INCIDENTS_IN_MEMORY,
    ) -> None:
        self._nc = nc
        self._max_in_memory = max_in_memory
        self._js = js
        self._pre = f"$KV.{bucket}."
        self._ack_prefix = ""
        self._ack_sub: Subscription | None = None
        self._acks: dict[str, tuple[_AckBatch, str]] = {}  # reply token → (batch, key)
        self._seq = 0
        self._bucket = bucket
        self._ttl = ttl
        self.kv: KeyValue | None = None
        self.incidents: dict[str, Incident] = {}
        self.revisions: dict[str, int] = {}
        # task UPID → keys of incidents that carry it (checked on use: may be stale)
        self._by_upid: dict[str, set[str]] = {}
        # (rule, labels hash) key → until (epoch); kept current by a watch.
        self.inhibitions: dict[str, float] = {}
        self.inhibitions_loaded = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Create the bucket if needed, load the incidents, start watching inhibitions."""
        self.kv = await open_bucket(
            self._js,
            KeyValueConfig(
                bucket=self._bucket,
                history=1,
                ttl=self._ttl,
                storage=StorageType.FILE,
                description="proxbus dispatcher: incidents, notification log, inhibitions",
            ),
        )
        await self._load_incidents()
        self._watch = asyncio.create_task(self._watch_inhibitions(), name="state-inhibitions")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.inhibitions_loaded.wait(), 5.0)

    async def close(self) -> None:
        if self._ack_sub is not None:
            with contextlib.suppress(Exception):
                await self._ack_sub.unsubscribe()
            self._ack_sub = None
        for batch, _ in self._acks.values():
            batch.done.cancel()
        self._acks.clear()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def _load_incidents(self) -> None:
        assert self.kv is not None
        watcher = await self.kv.watch(INCIDENT_PREFIX + ">", ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:
                    break
                self._remember(entry.key, entry.value, entry.revision)
        finally:
            stop: Callable[[], Awaitable[None]] = watcher.stop  # untyped in nats-py
            with contextlib.suppress(Exception):
                await stop()
        log.info("loaded %d incidents from %s", len(self.incidents), self._bucket)

    def _remember(self, key: str, value: bytes | None, revision: int | None) -> None:
        if not value:
            self.incidents.pop(key, None)
            self.revisions.pop(key, None)
            return
        try:
            incident = Incident.from_json(value)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable state %s: %s", key, exc)
            return
        self.incidents[key] = incident
        self._index(key, incident)
        self.revisions[key] = int(revision or 0)

    def _index(self, key: str, incident: Incident) -> None:
        if incident.upid is not None:
            self._by_upid.setdefault(incident.upid, set()).add(key)

    def by_upid(self, upid: str) -> list[tuple[str, Incident]]:
        """The incidents in memory whose task UPID is ``upid`` (key, incident), by key."""
        keys = self._by_upid.get(upid)
        if not keys:
            return []
        out = []
        for key in sorted(keys):
            incident = self.incidents.get(key)
            if incident is not None and incident.upid == upid:
                out.append((key, incident))
            else:
                keys.discard(key)
        if not keys:
            del self._by_upid[upid]
        return out

    async def _watch_inhibitions(self) -> None:
        assert self.kv is not None
        while True:
            try:
                watcher = await self.kv.watch(INHIBIT_PREFIX + ">")
                async for entry in watcher:
                    if entry is None:
                        self.inhibitions_loaded.set()
                        continue
                    if entry.operation in ("DEL", "PURGE") or not entry.value:
                        self.inhibitions.pop(entry.key, None)
                        continue
                    with contextlib.suppress(ValueError, TypeError, KeyError):
                        self.inhibitions[entry.key] = float(json.loads(entry.value)["until"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the watch must survive broker restarts
                log.warning("inhibition watch failed (%s); re-watching in 1s", exc)
                await asyncio.sleep(1.0)

    # --- incidents --------------------------------------------------------------------

    def incident(self, fingerprint: str) -> Incident | None:
        return self.incidents.get(incident_key(fingerprint))

    def put_local(self, incident: Incident) -> str:
        """Record ``incident`` in memory (written by ``write``); returns its key."""
        key = incident_key(incident.fingerprint)
        if key not in self.incidents and len(self.incidents) >= self._max_in_memory:
            self._forget_oldest(max(1, self._max_in_memory // 10))
        self.incidents[key] = incident
        self._index(key, incident)
        return key

    def _forget_oldest(self, count: int) -> None:
        """Bound memory under a flood of new fingerprints. Forgetting is safe: the next write
        of a forgotten key is a create that fails if the key exists, and re-reads it."""
        oldest = sorted(self.incidents, key=lambda k: self.incidents[k].last)[:count]
        for key in oldest:
            del self.incidents[key]
            self.revisions.pop(key, None)
        for upid in list(self._by_upid):
            self.by_upid(upid)

    async def write(self, keys: Iterable[str]) -> WriteResult:
        """Store the in-memory incidents of ``keys`` with compare-and-set, pipelined.

        Each write carries ``Nats-Expected-Last-Subject-Sequence`` (the revision this replica
        knows, 0 for a new key) and its ack gives the new revision; one reply subscription
        serves them all (``kv.update`` would cost a request and a timer per key). A key that
        lost a race (another replica wrote it) or whose write failed is re-read, so memory
        matches JetStream again.
        """
        keys = [k for k in keys if k in self.incidents]
        result = WriteResult(set(), set())
        if not keys:
            return result
        await self._start_acks()
        # One waiter for the whole batch (not a future per key): the acks fill ``acks``.
        batch = _AckBatch(asyncio.get_running_loop().create_future())
        tokens: list[str] = []
        for key in keys:
            self._seq += 1
            token = str(self._seq)
            header = header_block({EXPECTED_LAST: str(self.revisions.get(key, 0))})
            self._acks[token] = (batch, key)  # before the publish: its ack may come at once
            tokens.append(token)
            batch.left += 1
            try:
                await publish_frame(
                    self._nc,
                    self._pre + key,
                    self._ack_prefix + token,
                    header,
                    self.incidents[key].to_json(),
                )
            except Exception as exc:
                log.debug("state write %s not sent: %s", key, exc)
                self._acks.pop(token, None)
                batch.left -= 1
        if batch.left:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(batch.done), WRITE_TIMEOUT)
        for token in tokens:
            self._acks.pop(token, None)
        for key in keys:
            ack = batch.acks.get(key)
            match = None if ack is None or b'"error"' in ack else _ACK_SEQ.search(ack)
            if match is None:
                result.failed.add(key)
            else:
                self.revisions[key] = int(match.group(1))
                result.stored.add(key)
        for key in result.failed:
            await self.reload(key)
        return result

    async def _start_acks(self) -> None:
        if self._ack_sub is None:
            self._ack_prefix = self._nc.new_inbox() + "."
            self._ack_sub = await self._nc.subscribe(self._ack_prefix + "*", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        waiting = self._acks.pop(msg.subject[len(self._ack_prefix) :], None)
        if waiting is None:
            return
        batch, key = waiting
        batch.acks[key] = msg.data or b""
        batch.left -= 1
        if batch.left <= 0 and not batch.done.done():
            batch.done.set_result(None)

    async def reload(self, key: str) -> None:
        """Re-read one key (after a lost race); on a read failure forget it, so the next
        write of it is a create that fails if the key exists."""
        assert self.kv is not None
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            self._remember(key, None, None)
            return
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            log.warning("state read %s failed: %s", key, exc)
            self._remember(key, None, None)
            return
        self._remember(key, entry.value, entry.revision)

    def prune(self, now: float, keep: float) -> int:
        """Forget (in memory) incidents idle for longer than ``keep`` seconds."""
        stale = [k for k, inc in self.incidents.items() if now - inc.last > keep]
        for key in stale:
            del self.incidents[key]
            self.revisions.pop(key, None)
        if stale:
            for upid in list(self._by_upid):
                self.by_upid(upid)  # drops the keys no longer in memory
        return len(stale)

    # --- inhibition sources -----------------------------------------------------------

    async def put_inhibition(self, key: str, until: float) -> None:
        assert self.kv is not None
        self.inhibitions[key] = until
        try:
            await self.kv.put(key, json.dumps({"until": until}).encode())
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            log.warning("storing inhibition source %s failed: %s", key, exc)

    async def delete_inhibition(self, key: str) -> None:
        assert self.kv is not None
        if self.inhibitions.pop(key, None) is None:
            return
        try:
            await self.kv.delete(key)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            log.warning("removing inhibition source %s failed: %s", key, exc)
