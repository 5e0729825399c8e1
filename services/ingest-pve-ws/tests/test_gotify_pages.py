"""A broken or hostile Gotify's message list (``GET /message``, the catch-up after a connect).

Gotify's ``PagedMessages`` (``api/message.go`` ``buildWithPaging``): ``messages`` a list,
``paging.size == len(messages)``, ``paging.since`` a uint (the id of the page's last message
when ``paging.next`` is set, else 0). A page with anything else used to raise in the listener
(``int(paging["since"])``, ``page.get`` on a list...): every reconnect failed before the stream
was read, so nothing was delivered any more. Now such a page is counted
(``invalid_pages``), logged rate-limited, and the listener follows the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp import web
from hypothesis import example, given, settings
from hypothesis import strategies as st
from proxbus_devtools.testing import serve_app
from proxbus_events import Event
from proxbus_ingest_pve_ws.gotify import (
    MAX_PAGE_BYTES,
    MAX_UINT64,
    GotifyListener,
    InvalidPage,
    Page,
    parse_page,
)
from proxbus_ingest_pve_ws.testing import stored_events, wait_until

from .test_gotify import TOKEN, FakeGotify

PROPS = settings(max_examples=60, deadline=None, derandomize=True)


class PagedGotify(FakeGotify):
    """The stand-in with pages of ``page_size`` and, for chosen ``GET /message`` requests
    (numbered from 1), a hostile answer instead of the real page."""

    def __init__(self, page_size: int = 100) -> None:
        super().__init__()
        self.page_size = page_size
        self.hostile: dict[int, Any] = {}
        self.requests = 0

    async def _list(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.requests in self.hostile:
            return web.Response(
                text=json.dumps(self.hostile.pop(self.requests)), content_type="application/json"
            )
        limit = min(int(request.query.get("limit", "100")), self.page_size)
        since = int(request.query.get("since", "0"))
        newest_first = sorted(self.messages, key=lambda m: -m["id"])
        if since:
            newest_first = [m for m in newest_first if m["id"] < since]
        page = newest_first[:limit]
        more = len(newest_first) > limit
        last = page[-1]["id"] if more else 0
        nxt = f"{self.url}/message?limit={limit}&since={last}" if more else ""
        return web.json_response(
            {
                "messages": page,
                "paging": {"size": len(page), "since": last, "limit": limit, "next": nxt},
            }
        )


def _good_page() -> dict[str, Any]:
    msg = {"id": 1, "appid": 1, "title": "t", "message": "m", "priority": 5, "extras": {}}
    return {"messages": [msg], "paging": {"size": 1, "since": 0, "limit": 100, "next": ""}}


_WRONG_UINT = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(max_value=-1),
    st.integers(min_value=MAX_UINT64 + 1),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_WRONG_LIST = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_WRONG_OBJECT = st.one_of(st.none(), st.integers(), st.text(max_size=6), st.lists(st.none()))


@st.composite
def hostile_pages(draw: st.DrawFn) -> Any:
    """A Gotify page with one part of the wrong type or range."""
    page = _good_page()
    where = draw(st.sampled_from(["since", "size", "messages", "paging", "page"]))
    if where == "page":
        return draw(_WRONG_OBJECT)
    if where == "paging":
        page["paging"] = draw(_WRONG_OBJECT)
    elif where == "messages":
        page["messages"] = draw(_WRONG_LIST)
    else:
        page["paging"][where] = draw(_WRONG_UINT)
    return page


async def _listen_once(page: Any) -> tuple[GotifyListener, list[Event]]:
    """A real listener against the stand-in whose catch-up page is ``page``: returns once a
    message sent on the stream afterwards is stored (or fails after 10 s)."""
    server = PagedGotify()
    server.hostile[1] = page
    stored: list[Event] = []

    async def store(event: Event) -> None:
        stored.append(event)

    async with serve_app(server.app) as server.port:
        listener = GotifyListener(
            url=server.url, token=TOKEN, store=store, site="lab", last_id=0, timeout=5.0
        )
        stop = asyncio.Event()
        task = asyncio.create_task(listener.run(stop))
        try:
            await asyncio.wait_for(listener.connected.wait(), 10)
            await server.push("after the page")

            async def delivered() -> bool:
                return bool(stored)

            await wait_until(delivered, timeout=10)
        finally:
            stop.set()
            await server.drop()
            await asyncio.wait_for(task, 10)
    return listener, stored


@PROPS
@given(page=hostile_pages())
@example(page={"messages": [], "paging": {"size": 0, "since": "5", "next": "x"}})
@example(page={"messages": [], "paging": {"size": 0, "since": None, "next": "x"}})
@example(page={"messages": [], "paging": {"size": 0, "since": {"a": 1}, "next": "x"}})
@example(page={"messages": [], "paging": {"size": 0, "since": -1, "next": "x"}})
@example(page={"messages": [], "paging": {"size": 10**30, "since": 0, "next": ""}})
@example(page={"messages": [], "paging": {"size": "0", "since": 0, "next": ""}})
@example(page={"messages": {"id": 1}, "paging": {"size": 1, "since": 0, "next": ""}})
@example(page={"messages": 7, "paging": {"size": 1, "since": 0, "next": ""}})
@example(page={"messages": [], "paging": [1]})
@example(page=[{"id": 1}])
def test_a_hostile_page_is_counted_and_the_stream_still_delivers(page: Any) -> None:
    listener, stored = asyncio.run(_listen_once(page))
    assert listener.stats.invalid_pages == 1
    assert listener.stats.connects == 1  # no failed connection, no reconnect
    assert [e.title for e in stored] == ["after the page"]
    assert listener.last_id == 1


@PROPS
@given(page=hostile_pages())
def test_parse_page_answers_a_page_or_invalid_page(page: Any) -> None:
    try:
        parse_page(page)
    except InvalidPage:
        return
    raise AssertionError(f"accepted {page!r}")


@PROPS
@given(
    ids=st.lists(st.integers(1, MAX_UINT64), unique=True, max_size=5),
    more=st.booleans(),
    junk=st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=3)), max_size=2),
)
def test_parse_page_accepts_what_gotify_builds(ids: list[int], more: bool, junk: list[Any]) -> None:
    # buildWithPaging: newest first, since = last id on the page when there is a next page.
    ids.sort(reverse=True)
    messages: list[Any] = [{"id": i} for i in ids]
    since = ids[-1] if more and ids else 0
    paging = {"size": len(messages) + len(junk), "since": since, "limit": 100}
    paging["next"] = f"http://g/message?limit=100&since={since}" if since else ""
    page = parse_page({"messages": messages + junk, "paging": paging})
    assert page == Page([{"id": i} for i in ids], since or None)
    if since:  # the next page must ask for older messages, or the catch-up could loop
        with pytest.raises(InvalidPage, match="does not move to older messages"):
            parse_page({"messages": messages, "paging": {**paging, "size": len(ids)}}, since)


async def _titles(js: Any) -> list[str]:
    return [e.title for e in await stored_events(js) if e.kind == "gotify.message"]


async def test_the_service_counts_hostile_pages_and_keeps_delivering(
    services: Any, js: Any, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="proxbus_ingest_pve_ws")
    gotify = PagedGotify(page_size=2)
    async with serve_app(gotify.app) as gotify.port:
        # The baseline (first GET /message, no cursor yet) is hostile: no catch-up, the stream.
        gotify.hostile[1] = {"messages": 7, "paging": {"size": "0", "since": None, "next": ""}}
        svc = await services.start(gotify_listen_url=gotify.url, gotify_client_token=TOKEN)
        assert svc.gotify is not None
        listener = svc.gotify

        async def ready() -> bool:
            return listener.connected.is_set()

        async def has(n: int) -> bool:
            return len(await _titles(js)) >= n

        await wait_until(ready)
        assert listener.stats.invalid_pages == 1
        await gotify.push("live 1")
        await wait_until(lambda: has(1))

        # Away while 2..6 arrive; the catch-up's first page (6, 5) is good, its second is not.
        await gotify.drop()
        for n in range(2, 7):
            await gotify.push(f"missed {n}")
        gotify.hostile[gotify.requests + 2] = {
            "messages": [{"id": 4, "title": "missed 4"}, {"id": 3, "title": "missed 3"}],
            "paging": {"size": 2, "since": "three", "next": "x"},
        }

        async def reconnected() -> bool:
            return gotify.connects >= 2 and listener.connected.is_set()

        await wait_until(reconnected)
        await gotify.push("live 2")
        await wait_until(lambda: has(4))
        # Messages older than the invalid page (2..4) are not caught up: said in the README.
        assert await _titles(js) == ["live 1", "missed 5", "missed 6", "live 2"]
        assert listener.stats.invalid_pages == 2
        assert listener.stats.connects == 2  # the drop only: no failed connection
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.WARNING and "message list" in r.getMessage()
        ]
        assert len(lines) == 1, lines  # the second is summarised later (rate-limited)
        assert "messages is int" in lines[0]
        await services.stop(svc)


async def _catch_up(server: PagedGotify) -> tuple[GotifyListener, list[Event]]:
    """A real listener (cursor 0) that connected and caught up on ``server``'s messages."""
    stored: list[Event] = []

    async def store(event: Event) -> None:
        stored.append(event)

    async with serve_app(server.app) as server.port:
        listener = GotifyListener(
            url=server.url, token=TOKEN, store=store, site="lab", last_id=0, timeout=10.0
        )
        stop = asyncio.Event()
        task = asyncio.create_task(listener.run(stop))
        try:
            await asyncio.wait_for(listener.connected.wait(), 20)
        finally:
            stop.set()
            await server.drop()
            await asyncio.wait_for(task, 10)
    return listener, stored


def _message(n: int, size: int) -> dict[str, Any]:
    return {"id": n, "appid": 1, "title": f"m{n}", "message": "x" * size, "priority": 5}


async def test_a_large_page_arriving_in_many_chunks_is_read_whole() -> None:
    # 100 messages of 40 KB: a 4 MB answer that loopback TCP hands over in many reads.
    server = PagedGotify()
    server.messages = [_message(n, 40_000) for n in range(1, 101)]
    listener, stored = await _catch_up(server)
    assert listener.stats.invalid_pages == 0
    assert [e.title for e in stored] == [f"m{n}" for n in range(1, 101)]


async def test_a_page_over_the_size_limit_is_an_invalid_page() -> None:
    server = PagedGotify()
    server.messages = [_message(1, 10)]
    # well-formed but over the limit: not read into memory, not published
    server.hostile[1] = {
        "messages": [_message(2, MAX_PAGE_BYTES)],
        "paging": {"size": 1, "since": 0, "limit": 100, "next": ""},
    }
    listener, stored = await _catch_up(server)
    assert listener.stats.invalid_pages == 1
    assert stored == []
