import anyio
from proxbus_events import EVENTS_STREAM, Event, EventConsumer, EventPublisher


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
    first = await consumer.events(batch=2, timeout=2)
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
    got = await consumer.events(batch=10, timeout=1)
    assert [r.event.metadata["i"] for r in got] == [3]
    assert consumer.invalid == 1
