import asyncio

import anyio
import pytest
from proxbus_events import EVENTS_STREAM, Event
from proxbus_runtime import EventConsumer, EventPublisher, ReceivedEvent


async def collect(consumer: EventConsumer, n: int) -> list[ReceivedEvent]:
    """Fetch until ``n`` events arrived (a fetch returns *up to* its batch)."""
    out: list[ReceivedEvent] = []
    with anyio.fail_after(10):
        while len(out) < n:
            out += await consumer.events(batch=n - len(out), timeout=1)
    return out


def ev(i: int) -> Event:
    return Event(source="syslog", kind="syslog.message", title=f"n{i}", metadata={"i": i})


async def test_replicas_share_one_durable_consumer(js) -> None:
    async with EventPublisher(js) as pub:
        for i in range(50):
            pub.submit(ev(i))
        assert await pub.flush(5)
    a = EventConsumer(js, stream=EVENTS_STREAM, durable="shared")
    b = EventConsumer(js, stream=EVENTS_STREAM, durable="shared")
    seen: list[int] = []
    with anyio.fail_after(10):
        while len(seen) < 50:
            for consumer in (a, b):
                for received in await consumer.events(batch=7, timeout=0.2):
                    seen.append(received.event.metadata["i"])
                    await received.ack()
    assert sorted(seen) == list(range(50))
    assert await a.events(batch=10, timeout=0.2) == []


async def test_nak_redelivers_and_term_does_not(js) -> None:
    async with EventPublisher(js) as pub:
        pub.submit(ev(1))
        pub.submit(ev(2))
        assert await pub.flush(5)
    consumer = EventConsumer(js, stream=EVENTS_STREAM, durable="naks", ack_wait=5)
    first = await collect(consumer, 2)
    assert [r.event.metadata["i"] for r in first] == [1, 2]
    await first[0].nak(delay=0.1)
    await first[1].term()
    with anyio.fail_after(5):
        again = []
        while not again:
            again = await consumer.events(batch=2, timeout=0.5)
    assert [r.event.metadata["i"] for r in again] == [1]
    assert again[0].num_delivered == 2
    await again[0].ack()


async def test_invalid_bodies_are_terminated_and_counted(js) -> None:
    await js.publish("proxbus.events.x.syslog.info._", b"{not json")
    await js.publish("proxbus.events.x.syslog.info._", ev(3).to_json())
    consumer = EventConsumer(js, stream=EVENTS_STREAM, durable="bad")
    got = await collect(consumer, 1)
    assert [r.event.metadata["i"] for r in got] == [3]
    assert await consumer.events(batch=10, timeout=0.2) == []
    assert consumer.invalid == 1


async def test_a_single_event_at_a_low_rate_is_fetched_without_waiting_for_a_batch(js) -> None:
    import time

    consumer = EventConsumer(js, durable="lowrate")
    assert await consumer.events(batch=100, timeout=0.2) == []
    async with EventPublisher(js) as pub:
        fetch = asyncio.create_task(consumer.events(batch=100, timeout=5))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await pub.publish(ev(7))
        got = await fetch
    assert [r.event.metadata["i"] for r in got] == [7]
    assert time.monotonic() - started < 2


async def test_a_deleted_consumer_raises_fetch_error_at_once(js) -> None:
    import time

    from proxbus_runtime import FetchError

    consumer = EventConsumer(js, durable="gone")
    assert await consumer.events(batch=10, timeout=0.2) == []
    await js.delete_consumer(EVENTS_STREAM, "gone")
    started = time.monotonic()
    with pytest.raises(FetchError, match="503"):
        await consumer.events(batch=10, timeout=5)
    assert time.monotonic() - started < 2


async def test_a_late_request_timeout_does_not_end_the_next_fetch(js) -> None:
    """The server's 408 for a pull request we stopped waiting for may come during the next
    fetch; it must not end that fetch (each request has its own reply subject)."""
    consumer = EventConsumer(js, durable="late408")
    for _ in range(5):
        assert await consumer.events(batch=10, timeout=0.05) == []
    async with EventPublisher(js) as pub:
        fetch = asyncio.create_task(consumer.events(batch=10, timeout=5))
        await pub.publish(ev(8))
        with anyio.fail_after(4):  # the 5 s fetch returns with the event, not by timing out
            got = await fetch
    assert [r.event.metadata["i"] for r in got] == [8]


async def test_invalid_bodies_call_on_invalid(js) -> None:
    await js.publish("proxbus.events.x.syslog.info._", b"[]")
    consumer = EventConsumer(js, stream=EVENTS_STREAM, durable="hook")
    seen: list[int] = []
    consumer.on_invalid = lambda: seen.append(1)
    with anyio.fail_after(5):
        while not seen:
            assert await consumer.events(batch=10, timeout=0.5) == []
    assert consumer.invalid == 1
