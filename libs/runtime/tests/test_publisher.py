import asyncio
import json

import anyio
import pytest
from proxbus_devtools.testing import NatsServer
from proxbus_events import EVENTS_STREAM, Event, event_subject
from proxbus_runtime import EventPublisher, PublishError


def ev(i: int = 0, **kw: object) -> Event:
    base: dict[str, object] = {
        "source": "syslog",
        "kind": "syslog.message",
        "title": f"line {i}",
        "node": "pve1",
        "metadata": {"i": i},
    }
    base.update(kw)
    return Event.model_validate(base)


async def stream_bodies(js, subject: str = "proxbus.events.>") -> list[dict]:
    """Every message in PROXBUS_EVENTS, in stream order."""
    info = await js.stream_info(EVENTS_STREAM)
    sub = await js.subscribe(subject, ordered_consumer=True)
    out = []
    for _ in range(info.state.messages):
        msg = await sub.next_msg(timeout=5)
        out.append(json.loads(msg.data))
    await sub.unsubscribe()
    return out


async def test_same_event_id_twice_stores_one_message(js) -> None:
    pub = EventPublisher(js)
    event = ev()
    first = await pub.publish(event)
    second = await pub.publish(event)
    assert not first.duplicate
    assert second.duplicate
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.messages == 1
    assert pub.stats.published == 1
    assert pub.stats.duplicates == 1


async def test_buffered_submits_dedup_too(js) -> None:
    async with EventPublisher(js) as pub:
        event = ev()
        assert pub.submit(event)
        assert await pub.flush(5)
        assert pub.submit(event)
        assert await pub.flush(5)
    assert (await js.stream_info(EVENTS_STREAM)).state.messages == 1
    assert pub.stats.published == 1
    assert pub.stats.duplicates == 1


async def test_headers_carry_msg_id_and_cloudevents_attributes(js, nc) -> None:
    sub = await nc.subscribe("proxbus.events.>")
    event = ev(kind="backup.failed", severity="error", site="lab")
    await EventPublisher(js).publish(event)
    msg = await sub.next_msg(timeout=5)
    assert msg.subject == event_subject(event)
    assert msg.headers["Nats-Msg-Id"] == event.id
    assert msg.headers["ce-specversion"] == "1.0"
    assert msg.headers["ce-id"] == event.id
    assert msg.headers["ce-source"] == "proxbus/syslog/lab"
    assert msg.headers["ce-type"] == "io.proxbus.backup.failed"
    assert msg.headers["ce-time"].endswith("Z")
    assert msg.headers["content-type"] == "application/json"


async def test_broker_outage_during_1000_publishes_loses_nothing_and_keeps_order(
    js, nats_server: NatsServer
) -> None:
    pub = EventPublisher(js, max_in_flight=64, ack_timeout=1.0, backoff_max=0.5)
    await pub.start()
    total = 1000
    for i in range(total):
        assert pub.submit(ev(i))
        if i == 300:
            # Stop the broker while earlier events are still in flight.
            await asyncio.to_thread(nats_server.stop)
        if i == 600:
            # Keep the broker down until the publisher has seen acks time out.
            with anyio.fail_after(20):
                while pub.stats.failures == 0:
                    await asyncio.sleep(0.05)
            await asyncio.to_thread(nats_server.start)
        await asyncio.sleep(0)
    assert await pub.flush(60), f"still buffered: {pub.buffered} ({pub.stats.last_error})"
    await pub.close()
    bodies = await stream_bodies(js)
    order = [b["metadata"]["i"] for b in bodies]
    assert order == list(range(total))
    # An event stored just before the outage may have lost its ack: re-sent, it is a duplicate.
    assert pub.stats.published + pub.stats.duplicates == total
    assert pub.stats.dropped == 0
    assert pub.stats.retries > 0


async def test_full_buffer_refuses_and_counts_instead_of_losing_silently(
    js, nats_server: NatsServer
) -> None:
    await asyncio.to_thread(nats_server.stop)
    pub = EventPublisher(js, buffer_limit=10, ack_timeout=0.2)
    await pub.start()
    accepted = [pub.submit(ev(i)) for i in range(15)]
    assert accepted.count(True) == 10
    assert pub.stats.dropped == 5
    assert pub.stats.accepted == 15
    await asyncio.to_thread(nats_server.start)
    assert await pub.flush(30)
    await pub.close()
    assert (await js.stream_info(EVENTS_STREAM)).state.messages == 10


async def test_submit_wait_applies_back_pressure_until_room(js, nats_server: NatsServer) -> None:
    await asyncio.to_thread(nats_server.stop)
    pub = EventPublisher(js, buffer_limit=2, ack_timeout=0.2, backoff_max=0.2)
    await pub.start()
    await pub.submit_wait(ev(1))
    await pub.submit_wait(ev(2))
    third = asyncio.create_task(pub.submit_wait(ev(3)))
    await asyncio.sleep(0.3)
    assert not third.done()
    await asyncio.to_thread(nats_server.start)
    with anyio.fail_after(20):
        await third
    assert await pub.flush(20)
    await pub.close()
    assert pub.stats.dropped == 0
    assert (await js.stream_info(EVENTS_STREAM)).state.messages == 3


async def test_direct_publish_raises_when_the_broker_is_down(js, nats_server: NatsServer) -> None:
    await asyncio.to_thread(nats_server.stop)
    pub = EventPublisher(js)
    with pytest.raises(PublishError, match="did not acknowledge"):
        await pub.publish(ev(), timeout=0.3)
    assert pub.stats.accepted == 0
    assert pub.stats.failures == 1


async def test_severity_filter_subscriber_sees_only_error_events(js, nc) -> None:
    got: list[str] = []
    done = asyncio.Event()

    async def on_msg(msg) -> None:
        got.append(json.loads(msg.data)["severity"])
        if len(got) == 3:
            done.set()

    await nc.subscribe("proxbus.events.*.*.error.>", cb=on_msg)
    await nc.flush()
    async with EventPublisher(js) as pub:
        for i, severity in enumerate(["info", "error", "warning", "error", "critical", "error"]):
            pub.submit(ev(i, severity=severity, site="lab"))
        assert await pub.flush(5)
    with anyio.fail_after(5):
        await done.wait()
    await nc.flush()
    assert got == ["error", "error", "error"]


async def test_a_refused_event_is_dropped_and_counted_without_blocking_the_rest(js) -> None:
    from nats.js.api import StreamConfig

    # A stream that refuses messages over 1 KiB: the big event is refused, not retried forever.
    await js.delete_stream("PROXBUS_EVENTS")
    await js.add_stream(
        StreamConfig(name="PROXBUS_EVENTS", subjects=["proxbus.events.>"], max_msg_size=1024)
    )
    async with EventPublisher(js, ack_timeout=2) as pub:
        assert pub.submit(ev(1))
        assert pub.submit(ev(2, message="z" * 4000))
        assert pub.submit(ev(3))
        assert await pub.flush(10)
    assert pub.stats.published == 2
    assert pub.stats.dropped == 1
    assert "maximum" in pub.stats.last_error or "size" in pub.stats.last_error
    bodies = await stream_bodies(js)
    assert [b["metadata"]["i"] for b in bodies] == [1, 3]


async def test_send_resolves_stored_duplicate_and_refused(js) -> None:
    from nats.js.api import StreamConfig

    await js.add_stream(StreamConfig(name="SMALL", subjects=["small.>"], max_msg_size=64))
    sink = EventPublisher(js)
    stored = await sink.send("small.x", b"a", {"Nats-Msg-Id": "one"})
    again = await sink.send("small.x", b"a", {"Nats-Msg-Id": "one"})
    refused = await sink.send("small.x", b"z" * 200, {"Nats-Msg-Id": "two"})
    nobody = await sink.send("nostream.x", b"a")
    assert await asyncio.wait_for(stored, 5) is True
    assert await asyncio.wait_for(again, 5) is False
    with pytest.raises(PublishError, match="refused"):
        await asyncio.wait_for(refused, 5)
    with pytest.raises(PublishError, match="503"):
        await asyncio.wait_for(nobody, 5)
    await sink.close()
    assert (await js.stream_info("SMALL")).state.messages == 1
