"""Message ids a broken or hostile Gotify server sends (the stream, the catch-up list, the cursor).

Gotify's ids are an auto-increment ``uint`` (``model/message.go``); its web UI reads them as
JavaScript numbers, so a genuine server stays below 2**53. The listener used to skip every
message at or below the highest id it had published: one message with id 2**62 (or 2**70, past
Go's int64) made every later genuine message a "duplicate", silently lost, and the poisoned
cursor was stored in KV so a restart did not help either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from proxbus_devtools.testing import serve_app
from proxbus_events import CURSORS_BUCKET
from proxbus_ingest_pve_ws.cursors import cursor_key
from proxbus_ingest_pve_ws.gotify import RecentIds, server_label
from proxbus_ingest_pve_ws.testing import stored_events, wait_until

from .test_gotify import TOKEN, FakeGotify


@pytest.fixture
async def gotify() -> AsyncIterator[FakeGotify]:
    server = FakeGotify()
    async with serve_app(server.app) as server.port:
        yield server
        await server.drop()


async def _titles(js: Any) -> list[str]:
    return [e.title for e in await stored_events(js) if e.kind == "gotify.message"]


async def _send(server: FakeGotify, msg_id: int, title: str, *, live: bool = True) -> None:
    """A message with a chosen id: stored for ``GET /message``, and on the stream if ``live``."""
    msg = {"id": msg_id, "appid": 3, "title": title, "message": title, "priority": 5}
    server.messages.append(msg)
    if live:
        for ws in list(server.sockets):
            await ws.send_str(json.dumps(msg))


async def _stored_cursor(js: Any, server: FakeGotify) -> Any:
    kv = await js.key_value(CURSORS_BUCKET)
    entry = await kv.get(cursor_key("gotify", server_label(server.url)))
    return json.loads(entry.value)["last_id"]


def _ready(svc: Any) -> Any:
    async def ready() -> bool:
        return svc.gotify is not None and svc.gotify.connected.is_set()

    return ready


def _has(js: Any, *titles: str) -> Any:
    async def has() -> bool:
        return set(titles) <= set(await _titles(js))

    return has


def _start(services: Any, server: FakeGotify, **over: Any) -> Any:
    return services.start(gotify_listen_url=server.url, gotify_client_token=TOKEN, **over)


@pytest.mark.parametrize("hostile", [2**62, 2**63 - 1, 2**70, -7, 0])
async def test_a_huge_or_negative_id_on_the_stream_does_not_hide_later_messages(
    services: Any, gotify: FakeGotify, js: Any, hostile: int
) -> None:
    svc = await _start(services, gotify, health_port=0)
    await wait_until(_ready(svc))
    await gotify.push("m1")  # id 1
    await wait_until(_has(js, "m1"))
    await _send(gotify, hostile, "hostile")
    await gotify.push("m2")  # id 3
    await gotify.push("m3")  # id 4
    await wait_until(_has(js, "m2", "m3"))
    assert svc.gotify.last_id == 4
    assert await _stored_cursor(js, gotify) == 4
    assert svc.gotify.stats.implausible_ids == 1
    # The stored cursor is sane, so a restart catches up on what arrived while down.
    await services.stop(svc)
    await gotify.push("while down")
    again = await _start(services, gotify)
    await wait_until(_ready(again))
    await gotify.push("after")
    await wait_until(_has(js, "while down", "after"))
    titles = await _titles(js)
    assert [t for t in titles if t != "hostile"] == ["m1", "m2", "m3", "while down", "after"]


async def test_a_huge_id_in_the_catch_up_list_does_not_poison_the_cursor(
    services: Any, gotify: FakeGotify, js: Any
) -> None:
    svc = await _start(services, gotify)
    await wait_until(_ready(svc))
    await gotify.push("m1")
    await wait_until(_has(js, "m1"))
    await gotify.drop()
    await _send(gotify, 2**62, "hostile", live=False)
    await gotify.push("m2")  # while disconnected: from the REST catch-up
    await wait_until(lambda: _connects(gotify, 2))
    await wait_until(_ready(svc))
    await gotify.push("m3")
    await gotify.push("m4")
    await wait_until(_has(js, "m2", "m3", "m4"))
    assert svc.gotify.last_id == 5
    assert await _stored_cursor(js, gotify) == 5
    titles = await _titles(js)
    assert [t for t in titles if t != "hostile"] == ["m1", "m2", "m3", "m4"]


async def _connects(server: FakeGotify, n: int) -> bool:
    return server.connects >= n


@pytest.mark.parametrize("poisoned", [2**62, 2**40])
async def test_a_poisoned_stored_cursor_is_repaired(
    services: Any, gotify: FakeGotify, js: Any, poisoned: int
) -> None:
    # An older version stored the hostile id as the cursor.
    await gotify.push("old")  # id 1, published before
    kv = await js.key_value(CURSORS_BUCKET)
    await kv.put(
        cursor_key("gotify", server_label(gotify.url)), json.dumps({"last_id": poisoned}).encode()
    )
    svc = await _start(services, gotify)
    await wait_until(_ready(svc))
    await gotify.push("m2")
    await gotify.push("m3")
    await wait_until(_has(js, "m2", "m3"))
    assert await _titles(js) == ["m2", "m3"]
    assert svc.gotify.last_id == 3
    assert await _stored_cursor(js, gotify) == 3


async def test_a_real_jump_in_ids_is_followed_once_a_second_message_confirms_it(
    services: Any, gotify: FakeGotify, js: Any
) -> None:
    # Other users' messages share Gotify's id sequence: a long quiet spell for this client can
    # be a big gap. One message past GOTIFY_MAX_ID_JUMP does not move the cursor; a second one
    # just after it does.
    svc = await _start(services, gotify, gotify_max_id_jump=1000)
    await wait_until(_ready(svc))
    await gotify.push("m1")
    await wait_until(_has(js, "m1"))
    await _send(gotify, 50_000, "far")
    await wait_until(_has(js, "far"))
    assert svc.gotify.last_id == 1
    assert svc.gotify.stats.implausible_ids == 1
    await _send(gotify, 50_007, "far again")
    await wait_until(_has(js, "far again"))
    assert svc.gotify.last_id == 50_007
    assert await _stored_cursor(js, gotify) == 50_007
    assert await _titles(js) == ["m1", "far", "far again"]


async def test_a_repeated_id_on_the_stream_is_still_a_duplicate(
    services: Any, gotify: FakeGotify, js: Any
) -> None:
    svc = await _start(services, gotify)
    await wait_until(_ready(svc))
    await gotify.push("m1")
    await wait_until(_has(js, "m1"))
    await _send(gotify, 1, "m1 again")
    await gotify.push("m3")
    await wait_until(_has(js, "m3"))
    assert await _titles(js) == ["m1", "m3"]
    assert svc.gotify.stats.duplicates_skipped == 1


def test_recent_ids_keep_the_newest_in_bounded_memory() -> None:
    seen = RecentIds(100)
    for i in range(100_000):
        seen.add(i)
    assert len(seen) == 100
    assert 99_999 in seen
    assert 99_900 in seen
    assert 99_899 not in seen
    seen.add(99_950)  # seen again: becomes the newest, so it outlives the others
    for i in range(200_000, 200_099):
        seen.add(i)
    assert 99_950 in seen
    assert 99_951 not in seen


async def test_an_unusable_message_with_an_old_id_does_not_move_the_cursor_back(
    services: Any, gotify: FakeGotify, js: Any
) -> None:
    # A usable new message below the cursor means the server's ids restarted; one the listener
    # cannot use (no text) is no such evidence, and a rewind would republish on the next catch-up.
    svc = await _start(services, gotify)
    await wait_until(_ready(svc))
    await gotify.push("m1")
    await _send(gotify, 10, "m10")
    await wait_until(_has(js, "m10"))
    for ws in list(gotify.sockets):
        await ws.send_str(json.dumps({"id": 5, "title": "", "message": ""}))
    await _send(gotify, 11, "m11")
    await wait_until(_has(js, "m11"))
    assert svc.gotify.stats.invalid == 1
    assert svc.gotify.stats.cursor_rewinds == 0
    assert svc.gotify.last_id == 11


@pytest.mark.parametrize("outlier", [2**62, 50_000])
async def test_a_published_outlier_is_not_published_again_after_a_restart(
    services: Any, gotify: FakeGotify, js: Any, outlier: int
) -> None:
    # An id the cursor did not move to (implausible, or an unconfirmed jump) stays above the
    # cursor, so every catch-up after a restart listed it as new: it was published again, and
    # only JetStream's 2-minute duplicate window hid that. The stored cursor now remembers it.
    svc = await _start(services, gotify, gotify_max_id_jump=1000)
    await wait_until(_ready(svc))
    await gotify.push("m1")
    await _send(gotify, outlier, "outlier")
    await wait_until(_has(js, "m1", "outlier"))
    assert svc.gotify.last_id == 1
    await services.stop(svc)
    await gotify.push("while down")
    again = await _start(services, gotify, gotify_max_id_jump=1000)
    await wait_until(_ready(again))
    await wait_until(_has(js, "while down"))
    assert again.gotify.stats.backfilled == 1  # "while down" only
    assert again.gotify.stats.duplicates_skipped == 1
    # and a third start still knows it (the cursor moved to "while down" in between)
    await services.stop(again)
    third = await _start(services, gotify, gotify_max_id_jump=1000)
    await wait_until(_ready(third))
    await gotify.push("after")
    await wait_until(_has(js, "after"))
    assert third.gotify.stats.backfilled == 0
    assert third.gotify.stats.duplicates_skipped == 1
