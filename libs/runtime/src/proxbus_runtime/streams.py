"""Create the contract's streams and KV buckets, or bring the fields the contract owns up to date;
``open_bucket`` for a service's own KV bucket."""

from __future__ import annotations

import dataclasses
import logging

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from proxbus_events.streams import (
    BUCKETS,
    OWNED_STREAM_FIELDS,
    StreamLimits,
    StreamSpec,
    stream_specs,
)

log = logging.getLogger(__name__)

_RETENTION = {"limits": RetentionPolicy.LIMITS, "workqueue": RetentionPolicy.WORK_QUEUE}
_DISCARD = {"old": DiscardPolicy.OLD, "new": DiscardPolicy.NEW}
_STORAGE = {"file": StorageType.FILE, "memory": StorageType.MEMORY}


def _owned(spec: StreamSpec) -> dict[str, object]:
    """The contract's fields of ``spec`` in nats-py's terms (see ``OWNED_STREAM_FIELDS``)."""
    owned: dict[str, object] = {
        "subjects": list(spec.subjects),
        "max_age": spec.max_age,
        "max_bytes": spec.max_bytes,
        "duplicate_window": spec.duplicate_window,
        "discard": _DISCARD[spec.discard],
    }
    assert tuple(owned) == OWNED_STREAM_FIELDS
    return owned


def _new_config(spec: StreamSpec, limits: StreamLimits) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        retention=_RETENTION[spec.retention],
        storage=_STORAGE[limits.storage],
        num_replicas=limits.replicas,
        **_owned(spec),  # type: ignore[arg-type]
    )


def _changes(current: StreamConfig, owned: dict[str, object]) -> dict[str, object]:
    out = {}
    for name, wanted in owned.items():
        have = getattr(current, name)
        if name == "subjects" and current.mirror is not None:
            continue  # a mirror has no subjects of its own
        if name in ("max_age", "duplicate_window") and have is not None:
            if abs(float(have) - float(wanted)) < 1e-3:  # type: ignore[arg-type]
                continue
        elif have == wanted:
            continue
        out[name] = wanted
    return out


async def ensure_streams(js: JetStreamContext, limits: StreamLimits | None = None) -> None:
    """Create the contract's streams and KV buckets, or update the fields the contract owns.

    Sources, mirrors, replicas and placement an operator set are kept. Safe to call from every
    service at start, concurrently.

    Raises:
        nats.js.errors.Error: JetStream is not enabled, or the domain does not answer.
    """
    limits = limits or StreamLimits()
    for spec in stream_specs(limits):
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            try:
                await js.add_stream(_new_config(spec, limits))
                log.info("created stream %s", spec.name)
                continue
            except BadRequestError:
                # Another service may have created it between our two calls.
                info = await js.stream_info(spec.name)
        changes = _changes(info.config, _owned(spec))
        if changes:
            await js.update_stream(dataclasses.replace(info.config, **changes))  # type: ignore[arg-type]
            log.info("updated stream %s: %s", spec.name, ", ".join(sorted(changes)))
    for bucket in BUCKETS:
        await open_bucket(
            js,
            KeyValueConfig(
                bucket=bucket.name,
                history=bucket.history,
                storage=_STORAGE[limits.storage],
                replicas=limits.replicas,
            ),
        )


async def open_bucket(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """The KV bucket ``config.bucket``, created with ``config`` when it is missing.

    Safe when several services or replicas start at once: a create that loses the race to
    another process (JetStream refuses it when the configurations differ) reads the bucket
    the other one made. An existing bucket is used as it is, whatever its configuration.

    Raises:
        nats.errors.Error: JetStream did not answer, or refused for another reason.
    """
    assert config.bucket is not None
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        pass
    try:
        kv = await js.create_key_value(config)
    except BadRequestError:  # created by another process between the two calls
        return await js.key_value(config.bucket)
    log.info("created KV bucket %s", config.bucket)
    return kv
