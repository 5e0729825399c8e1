"""``frames``: the header block built once is what ``Client.publish`` sends (a real server)."""

from __future__ import annotations

import random
import string
from typing import Any

import nats.errors
import pytest
from proxbus_runtime.frames import header_block, publish_frame

TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
VALUE_CHARS = string.printable + "\r\n\t éü€✓"


async def _both_ways(nc: Any, headers: dict[str, str], payload: bytes) -> tuple[Any, Any]:
    """The message as received after ``nc.publish`` and after ``publish_frame``."""
    sub = await nc.subscribe("frames.>")
    try:
        await nc.publish("frames.a", payload, reply="r.1", headers=headers)
        await publish_frame(nc, "frames.a", "r.1", header_block(headers), payload)
        first = await sub.next_msg(timeout=5)
        second = await sub.next_msg(timeout=5)
    finally:
        await sub.unsubscribe()
    return first, second


async def test_the_event_headers_arrive_as_nats_py_sends_them(nc: Any) -> None:
    headers = {
        "Nats-Msg-Id": "0193b1e0c4a87c5b9f2e1d3c4b5a6978",
        "ce-specversion": "1.0",
        "ce-source": "proxbus/syslog/site1",
        "ce-time": "2026-11-30T05:00:00.123456Z",
        "content-type": "application/json",
    }
    first, second = await _both_ways(nc, headers, b'{"title":"x"}')
    assert second.headers == first.headers == headers
    assert (second.subject, second.reply, second.data) == (first.subject, first.reply, first.data)


async def test_values_are_trimmed_and_newlines_cannot_inject_a_header(nc: Any) -> None:
    headers = {"X-A": "  one\r\nX-Injected: yes  ", " X-B ": "two\n", "": "skipped"}
    first, second = await _both_ways(nc, headers, b"")
    assert second.headers == first.headers == {"X-A": "one  X-Injected: yes", "X-B": "two"}


async def test_random_headers_arrive_alike(nc: Any) -> None:
    rng = random.Random(20261130)
    for _ in range(150):
        headers = {
            "".join(rng.choices(TOKEN_CHARS, k=rng.randint(1, 20))): "".join(
                rng.choices(VALUE_CHARS, k=rng.randint(0, 40))
            )
            for _ in range(rng.randint(1, 6))
        }
        payload = rng.randbytes(rng.randint(0, 64))
        first, second = await _both_ways(nc, headers, payload)
        assert second.headers == first.headers, headers
        assert second.data == first.data == payload


async def test_bad_keys_subjects_and_sizes_fail_as_in_nats_py(nc: Any) -> None:
    with pytest.raises(nats.errors.BadHeaderError):
        header_block({"bad key": "v"})
    with pytest.raises(nats.errors.BadSubjectError):
        await publish_frame(nc, "has space", "", header_block({"A": "b"}), b"")
    with pytest.raises(nats.errors.BadSubjectError):
        await publish_frame(nc, "ok", "bad\r\nreply", header_block({"A": "b"}), b"")
    with pytest.raises(nats.errors.MaxPayloadError):
        await publish_frame(nc, "ok", "", header_block({"A": "b"}), b"x" * (nc.max_payload + 1))
    await nc.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await publish_frame(nc, "ok", "", header_block({"A": "b"}), b"")
