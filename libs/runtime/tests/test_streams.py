import asyncio

from nats.js.api import RetentionPolicy
from proxbus_events import (
    AUDIT_STREAM,
    CURSORS_BUCKET,
    DELIVERIES_STREAM,
    DLQ_STREAM,
    EVENTS_STREAM,
    SILENCES_BUCKET,
    StreamLimits,
)
from proxbus_runtime import ensure_streams


async def test_ensure_streams_creates_everything_of_the_contract(nc) -> None:
    js = nc.jetstream(timeout=5)
    await ensure_streams(js)
    events = await js.stream_info(EVENTS_STREAM)
    assert events.config.subjects == ["proxbus.events.>"]
    assert events.config.duplicate_window == 120
    assert events.config.max_age == 7 * 86400
    assert events.config.max_bytes == 1024**3
    deliveries = await js.stream_info(DELIVERIES_STREAM)
    assert deliveries.config.retention == RetentionPolicy.WORK_QUEUE
    assert (await js.stream_info(DLQ_STREAM)).config.subjects == ["proxbus.dlq.>"]
    assert (await js.stream_info(AUDIT_STREAM)).config.subjects == ["proxbus.audit.>"]
    await js.key_value(SILENCES_BUCKET)
    await js.key_value(CURSORS_BUCKET)


async def test_ensure_streams_is_idempotent_concurrent_and_updates_limits(nc) -> None:
    js = nc.jetstream(timeout=5)
    await asyncio.gather(*(ensure_streams(js) for _ in range(4)))
    await ensure_streams(js, StreamLimits(events_max_age=3600, events_max_bytes=10 * 1024**2))
    info = await js.stream_info(EVENTS_STREAM)
    assert info.config.max_age == 3600
    assert info.config.max_bytes == 10 * 1024**2


async def test_ensure_streams_keeps_what_an_operator_added(make_nats_server) -> None:
    """Sources (and replicas, placement) belong to the operator: an update must keep them."""
    import dataclasses

    import nats
    from nats.js.api import StreamSource

    server = make_nats_server()
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream(timeout=5)
        await ensure_streams(js)
        await js.add_stream(name="UPSTREAM", subjects=["upstream.>"])
        info = await js.stream_info(EVENTS_STREAM)
        await js.update_stream(
            dataclasses.replace(info.config, sources=[StreamSource(name="UPSTREAM")])
        )
    finally:
        await nc.close()
    server.restart()
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream(timeout=5)
        await ensure_streams(js, StreamLimits(events_max_age=3600))  # an owned field changes
        info = await js.stream_info(EVENTS_STREAM)
        assert info.config.max_age == 3600
        assert [s.name for s in info.config.sources or []] == ["UPSTREAM"]
        assert info.config.num_replicas == 1
        assert info.config.subjects == ["proxbus.events.>"]
    finally:
        await nc.close()


async def test_open_bucket_creates_once_uses_an_existing_one_and_survives_a_race(nc) -> None:
    """Several services and replicas open their KV buckets at start: ten at once with two
    different configurations all get the one bucket (JetStream refuses the losing creates
    whose configuration differs); an existing bucket is used as it is."""
    from nats.js.api import KeyValueConfig, StorageType
    from proxbus_runtime import open_bucket

    js = nc.jetstream()
    configs = [
        KeyValueConfig(bucket="race", history=1, ttl=60 + i % 2, storage=StorageType.FILE)
        for i in range(10)
    ]
    buckets = await asyncio.gather(*(open_bucket(js, c) for c in configs))
    await buckets[0].put("k", b"v")
    for kv in buckets:
        assert (await kv.get("k")).value == b"v"
    status = await buckets[0].status()
    assert status.ttl in (60, 61)  # whichever create won
    again = await open_bucket(js, KeyValueConfig(bucket="race", history=5, ttl=999))
    assert (await again.status()).ttl == status.ttl  # used as it is
