"""JetStream streams and KV buckets of the contract, created or updated idempotently."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError

from .subjects import AUDIT_PREFIX, DELIVERIES_PREFIX, DLQ_PREFIX, EVENTS_PREFIX

log = logging.getLogger(__name__)

EVENTS_STREAM = "PROXBUS_EVENTS"
DELIVERIES_STREAM = "PROXBUS_DELIVERIES"
DLQ_STREAM = "PROXBUS_DLQ"
AUDIT_STREAM = "PROXBUS_AUDIT"
SILENCES_BUCKET = "proxbus_silences"
CURSORS_BUCKET = "proxbus_cursors"

DAY = 86_400.0
GIB = 1024**3


@dataclass(slots=True, frozen=True)
class StreamLimits:
    """Retention limits; the defaults are the contract's."""

    events_max_age: float = 7 * DAY
    events_max_bytes: int = GIB
    duplicate_window: float = 120.0
    deliveries_max_age: float = 7 * DAY
    dlq_max_age: float = 30 * DAY
    audit_max_age: float = 30 * DAY
    audit_max_bytes: int = GIB
    storage: StorageType = StorageType.FILE
    replicas: int = 1


def stream_configs(limits: StreamLimits) -> list[StreamConfig]:
    """The four streams of the contract."""
    return [
        StreamConfig(
            name=EVENTS_STREAM,
            subjects=[f"{EVENTS_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=limits.events_max_age,
            max_bytes=limits.events_max_bytes,
            duplicate_window=limits.duplicate_window,
            discard=DiscardPolicy.OLD,
            storage=limits.storage,
            num_replicas=limits.replicas,
        ),
        StreamConfig(
            name=DELIVERIES_STREAM,
            subjects=[f"{DELIVERIES_PREFIX}.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            max_age=limits.deliveries_max_age,
            duplicate_window=limits.duplicate_window,
            storage=limits.storage,
            num_replicas=limits.replicas,
        ),
        StreamConfig(
            name=DLQ_STREAM,
            subjects=[f"{DLQ_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=limits.dlq_max_age,
            duplicate_window=limits.duplicate_window,
            storage=limits.storage,
            num_replicas=limits.replicas,
        ),
        StreamConfig(
            name=AUDIT_STREAM,
            subjects=[f"{AUDIT_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=limits.audit_max_age,
            max_bytes=limits.audit_max_bytes,
            duplicate_window=limits.duplicate_window,
            discard=DiscardPolicy.OLD,
            storage=limits.storage,
            num_replicas=limits.replicas,
        ),
    ]


async def ensure_streams(js: JetStreamContext, limits: StreamLimits | None = None) -> None:
    """Create the contract's streams and KV buckets, or update them to ``limits``.

    Safe to call from every service at start, concurrently.
    """
    limits = limits or StreamLimits()
    for config in stream_configs(limits):
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            try:
                await js.add_stream(config)
                log.info("created stream %s", config.name)
                continue
            except Exception:
                # Another service may have created it between our two calls.
                await js.stream_info(config.name)
        await js.update_stream(config)
    for bucket, history in ((SILENCES_BUCKET, 5), (CURSORS_BUCKET, 1)):
        try:
            await js.key_value(bucket)
        except BucketNotFoundError:
            await js.create_key_value(
                KeyValueConfig(bucket=bucket, history=history, storage=limits.storage)
            )
            log.info("created KV bucket %s", bucket)
