"""The disk spool: file format, bounds, torn records, and the outage path against real NATS."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import nats
from proxbus_devtools.testing import NatsServer, wait_until
from proxbus_events import EVENTS_STREAM, Event
from proxbus_runtime import EventPublisher
from proxbus_runtime.spool import EventSpool, SpoolFull
from proxbus_runtime.spooling import SpoolingPublisher


def ev(i: int) -> Event:
    return Event.model_validate(
        {"source": "syslog", "kind": "syslog.message", "title": f"line {i}", "node": "pve1"}
    )


async def test_events_survive_a_reopen_in_order_and_a_segment_is_removed_once_done(
    tmp_path: Path,
) -> None:
    spool = EventSpool(tmp_path, segment_bytes=2000, fsync="always")
    spool.open()
    events = [ev(i) for i in range(20)]
    for event in events:
        await spool.append(event)
    assert spool.stats.fsyncs >= 1
    # A crash: nothing closed; a new process opens the directory.
    again = EventSpool(tmp_path, segment_bytes=2000)
    again.open()
    assert again.stats.pending_records == 20
    segments = again.closed_segments()
    assert len(segments) > 1
    read = [e for n in segments for e in again.read_segment(n)]
    assert [e.id for e in read] == [e.id for e in events]
    again.remove_segment(segments[0], 3)
    assert not (tmp_path / f"spool-{segments[0]:012d}.log").exists()
    assert again.stats.pending_records < 20


async def test_a_torn_last_record_is_skipped_and_counted(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path)
    spool.open()
    for i in range(3):
        spool.append_nowait(ev(i))
    spool.close()
    [segment] = spool.closed_segments()
    path = tmp_path / f"spool-{segment:012d}.log"
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # the process died in the middle of the last write()
    again = EventSpool(tmp_path)
    again.open()
    assert [e.title for e in again.read_segment(segment)] == ["line 0", "line 1"]
    assert again.stats.corrupt == 1


def test_the_spool_is_bounded(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path, max_bytes=2000)
    spool.open()
    stored = 0
    for i in range(100):
        try:
            spool.append_nowait(ev(i))
        except SpoolFull:
            break
        stored += 1
    assert 0 < stored < 100
    assert spool.stats.refused == 1
    assert spool.stats.pending_bytes <= 2000
    spool.close()


async def test_connected_publishing_writes_nothing_to_disk(
    nats_server: NatsServer, js, tmp_path: Path
) -> None:
    nc = js._nc
    spool = EventSpool(tmp_path / "spool")
    spool.open()
    sink = SpoolingPublisher(spool)
    async with EventPublisher(js) as publisher:
        sink.attach(publisher, lambda: nc.is_connected)
        await sink.start()
        for i in range(500):
            assert sink.submit(ev(i))
        assert await publisher.flush(10)
        await sink.close()
    assert spool.stats.appended == 0
    assert list((tmp_path / "spool").iterdir()) == []
    assert (await js.stream_info(EVENTS_STREAM)).state.messages == 500


async def test_an_outage_goes_to_disk_and_is_published_once_on_reconnect(
    nats_server: NatsServer, js, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    service_js = nc.jetstream(timeout=2)
    spool = EventSpool(tmp_path / "spool", fsync="interval", fsync_interval=0.1)
    spool.open()
    sink = SpoolingPublisher(spool, check_interval=0.05)
    publisher = EventPublisher(service_js, ack_timeout=1.0)
    await publisher.start()
    sink.attach(publisher, lambda: nc.is_connected)
    await sink.start()
    try:
        for i in range(50):
            assert sink.submit(ev(i))
        assert await publisher.flush(10)
        await asyncio.to_thread(nats_server.stop)
        await wait_until(lambda: not nc.is_connected)
        for i in range(50, 300):
            assert sink.submit(ev(i))
        assert spool.stats.appended == 250
        await asyncio.to_thread(nats_server.start)
        await wait_until(lambda: spool.empty and publisher.buffered == 0)

        async def all_stored() -> bool:
            info = await js.stream_info(EVENTS_STREAM)
            return bool(info.state.messages == 300)

        await wait_until(all_stored)
        assert spool.stats.replayed == 250
    finally:
        await sink.close()
        await publisher.close(2)
        await nc.close()
    titles = set()
    sub = await js.subscribe("proxbus.events.>", ordered_consumer=True)
    for _ in range(300):
        titles.add(Event.from_json((await sub.next_msg(timeout=5)).data).title)
    assert titles == {f"line {i}" for i in range(300)}
    assert list((tmp_path / "spool").glob("spool-*.log")) == []


async def test_events_held_by_the_publisher_move_to_disk_when_nats_goes(
    nats_server: NatsServer, js, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    publisher = EventPublisher(nc.jetstream(timeout=2), ack_timeout=0.5)
    await publisher.start()
    spool = EventSpool(tmp_path / "spool")
    spool.open()
    sink = SpoolingPublisher(spool, check_interval=0.05)
    await asyncio.to_thread(nats_server.stop)
    await wait_until(lambda: not nc.is_connected)
    # Queued before the spool knew NATS was gone (the race a disconnect always has).
    for i in range(10):
        assert publisher.submit(ev(i))
    sink.attach(publisher, lambda: nc.is_connected)
    await sink.start()
    try:
        await wait_until(lambda: sink.moved == 10)
        assert publisher.buffered == 0
        assert spool.stats.pending_records == 10
    finally:
        await sink.close()
        await publisher.close(0.5)
        with contextlib.suppress(Exception):  # closing while the broker is down may raise
            await nc.close()


async def test_stopping_in_the_middle_of_a_replay_finishes_the_segment_and_deletes_it(
    nats_server: NatsServer, js, tmp_path: Path
) -> None:
    # Left on disk, a half-replayed segment would be replayed again after a restart, maybe
    # beyond JetStream's duplicate window: the published half would be stored twice.
    spool = EventSpool(tmp_path / "spool")
    spool.open()
    for i in range(3000):
        spool.append_nowait(ev(i))
    spool.close()
    nc = js._nc
    publisher = EventPublisher(js, max_in_flight=64)
    await publisher.start()
    sink = SpoolingPublisher(spool, check_interval=0.05)
    sink.attach(publisher, lambda: nc.is_connected)
    await sink.start()
    try:
        await wait_until(lambda: publisher.stats.published > 0)
        assert not spool.empty  # stopped mid-way
        await sink.close()
        assert spool.empty
        assert list((tmp_path / "spool").glob("spool-*.log")) == []
    finally:
        await publisher.close(5)
    assert (await js.stream_info(EVENTS_STREAM)).state.messages == 3000
