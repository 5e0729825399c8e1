"""StreamFollower against a real nats-server: from now, each message once, across a lost
consumer and a broker restart (what ``proxbus events tail`` and the console's live feed read)."""

from __future__ import annotations

from typing import Any

import nats.errors
import nats.js.errors
import pytest
from nats.aio.msg import Msg
from proxbus_devtools.testing import NatsServer, wait_until
from proxbus_events import EVENTS_STREAM
from proxbus_runtime.follow import StreamFollower


def collector() -> tuple[list[bytes], Any]:
    got: list[bytes] = []

    async def on_msg(msg: Msg) -> None:
        got.append(msg.data)

    return got, on_msg


async def publish(js: Any, *names: str) -> None:
    for name in names:
        await js.publish(f"proxbus.events.lab.syslog.info.{name}", name.encode())


async def test_from_now_each_once_and_again_after_the_consumer_is_deleted(js: Any) -> None:
    await publish(js, "old1", "old2", "old3")
    got, on_msg = collector()
    follower = StreamFollower(js, EVENTS_STREAM, "proxbus.events.>", on_msg, heartbeat=0.5)
    await follower.start()
    try:
        assert follower.start_sseq == 3  # a back-fill stops there
        await publish(js, "new1", "new2")
        await wait_until(lambda: len(got) == 2, timeout=5, what="the new messages")
        # The consumer goes away (as with the server it lived on); messages keep coming.
        for name in [c.name async for c in _consumers(js)]:
            await js.delete_consumer(EVENTS_STREAM, name)
        await publish(js, "new3", "new4")
        await wait_until(lambda: len(got) == 4, timeout=10, what="the messages after the loss")
        await publish(js, "new5")  # after anything handed out twice would have been
        await wait_until(lambda: got[-1] == b"new5", timeout=5, what="a later message")
        assert got == [b"new1", b"new2", b"new3", b"new4", b"new5"]
        assert follower.recreated >= 1
        assert follower.last_sseq == 8
    finally:
        await follower.stop()
    assert [c async for c in _consumers(js)] == []  # stop deletes its consumer


async def test_across_a_broker_restart_nothing_twice_nothing_older(
    nats_server: NatsServer, nc: Any, js: Any
) -> None:
    await publish(js, "old1")
    got, on_msg = collector()
    follower = StreamFollower(js, EVENTS_STREAM, "proxbus.events.>", on_msg)
    await follower.start()
    try:
        await publish(js, "before")
        await wait_until(lambda: got == [b"before"], timeout=5, what="the first message")
        nats_server.restart()  # the memory consumer is gone, the file stream stays
        await wait_until(lambda: nc.is_connected, timeout=20, what="reconnected")
        await wait_until(
            lambda: js.stream_info(EVENTS_STREAM),
            timeout=20,
            ignore=(nats.errors.Error, nats.js.errors.Error, TimeoutError),
            what="JetStream back",
        )
        await publish(js, "after1", "after2")
        await wait_until(lambda: len(got) == 3, timeout=20, what="the messages after the restart")
        await publish(js, "after3")
        await wait_until(lambda: got[-1] == b"after3", timeout=10, what="a later message")
        assert got == [b"before", b"after1", b"after2", b"after3"]
    finally:
        await follower.stop()


async def test_a_missing_stream_is_an_error_at_start(nc: Any) -> None:
    _, on_msg = collector()
    follower = StreamFollower(nc.jetstream(timeout=2), "NO_SUCH_STREAM", ">", on_msg)
    with pytest.raises(nats.js.errors.NotFoundError):
        await follower.start()
    await follower.stop()
    assert nc.is_connected


async def test_try_start_says_why_it_does_not_follow(js: Any, make_nats_server: Any) -> None:
    """None when following; else the reason a reader shows before taking the live publishes."""
    import asyncio

    import nats

    _, on_msg = collector()
    following = StreamFollower(js, EVENTS_STREAM, "proxbus.events.>", on_msg)
    assert await following.try_start(5) is None
    await following.stop()

    missing = StreamFollower(js, "NO_SUCH_STREAM", ">", on_msg)
    assert await missing.try_start(5) == "no NO_SUCH_STREAM"

    # The caller's error callback saw a permission violation: the wait ends at once.
    refused = asyncio.Event()
    refused.set()
    denied = StreamFollower(js, EVENTS_STREAM, "proxbus.events.>", on_msg)
    assert await denied.try_start(5, refused) == "no JetStream access"
    assert not [c async for c in _consumers(js)]  # nothing left behind

    plain = make_nats_server(jetstream=False)
    nc = await nats.connect(plain.url)
    try:
        why = await StreamFollower(nc.jetstream(timeout=2), EVENTS_STREAM, ">", on_msg).try_start(5)
        assert why is not None
        assert why.startswith("JetStream: "), why
    finally:
        await nc.close()


async def _consumers(js: Any) -> Any:
    for info in await js.consumers_info(EVENTS_STREAM):
        yield info
