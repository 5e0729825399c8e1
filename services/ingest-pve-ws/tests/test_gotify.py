from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from proxbus_devtools.testing import serve_app
from proxbus_ingest_pve_ws.testing import stored_events, wait_until

TOKEN = "Cclienttoken"


class FakeGotify:
    """A local server speaking Gotify's client API: ``/stream`` WebSocket and ``GET /message``."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.connects = 0
        self.app = web.Application()
        self.app.router.add_get("/stream", self._stream)
        self.app.router.add_get("/message", self._list)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _authorized(self, request: web.Request) -> bool:
        return TOKEN in (request.headers.get("X-Gotify-Key"), request.query.get("token"))

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error": "Unauthorized"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connects += 1
        self.sockets.append(ws)
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
        if ws in self.sockets:
            self.sockets.remove(ws)
        return ws

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "Unauthorized"}, status=401)
        limit = int(request.query.get("limit", "100"))
        since = int(request.query.get("since", "0"))
        newest_first = sorted(self.messages, key=lambda m: -m["id"])
        if since:
            newest_first = [m for m in newest_first if m["id"] < since]
        page = newest_first[:limit]
        more = len(newest_first) > limit
        last = page[-1]["id"] if page and more else 0  # Gotify's buildWithPaging: 0 on the last
        nxt = f"{self.url}/message?limit={limit}&since={last}" if more else ""
        return web.json_response(
            {
                "messages": page,
                "paging": {"size": len(page), "since": last, "limit": limit, "next": nxt},
            }
        )

    async def push(self, title: str, priority: int = 5) -> dict[str, Any]:
        msg = {
            "id": len(self.messages) + 1,
            "appid": 3,
            "title": title,
            "message": f"{title} body",
            "priority": priority,
            "date": datetime.now(UTC).isoformat(),
            "extras": {},
        }
        self.messages.append(msg)
        for ws in list(self.sockets):
            await ws.send_str(json.dumps(msg))
        return msg

    async def drop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        self.sockets.clear()


@pytest.fixture
async def gotify() -> AsyncIterator[FakeGotify]:
    server = FakeGotify()
    async with serve_app(server.app) as server.port:
        yield server
        await server.drop()


async def _titles(js: Any) -> list[str]:
    return [e.title for e in await stored_events(js) if e.kind == "gotify.message"]


async def test_messages_arrive_as_events(services: Any, gotify: FakeGotify, js: Any) -> None:
    svc = await services.start(gotify_listen_url=gotify.url, gotify_client_token=TOKEN)
    assert svc.gotify is not None
    await wait_until(lambda: _ready(svc))
    await gotify.push("disk alert", priority=8)
    await wait_until(lambda: _has(js, 1))
    [ev] = await stored_events(js)
    assert (ev.kind, ev.severity, ev.source, ev.title) == (
        "gotify.message",
        "error",
        "gotify",
        "disk alert",
    )


async def test_dropped_connection_is_reestablished_without_gaps_or_duplicates(
    services: Any, gotify: FakeGotify, js: Any
) -> None:
    svc = await services.start(gotify_listen_url=gotify.url, gotify_client_token=TOKEN)
    await wait_until(lambda: _ready(svc))
    await gotify.push("m1")
    await wait_until(lambda: _has(js, 1))
    await gotify.drop()
    await gotify.push("m2")  # while disconnected: must come from the REST backfill
    await gotify.push("m3")
    await wait_until(lambda: _connects(gotify, 2))
    await wait_until(lambda: _ready(svc))
    await gotify.push("m4")
    await wait_until(lambda: _has(js, 4))
    assert await _titles(js) == ["m1", "m2", "m3", "m4"]
    assert svc.gotify is not None
    assert svc.gotify.stats.connects >= 2


async def test_restart_resumes_from_the_stored_cursor(
    services: Any, gotify: FakeGotify, js: Any
) -> None:
    first = await services.start(
        gotify_listen_url=gotify.url, gotify_client_token=TOKEN, health_port=0
    )
    await wait_until(lambda: _ready(first))
    await gotify.push("before")
    await wait_until(lambda: _has(js, 1))
    await services.stop(first)
    await gotify.push("while down")
    second = await services.start(gotify_listen_url=gotify.url, gotify_client_token=TOKEN)
    await wait_until(lambda: _ready(second))
    await gotify.push("after")
    await wait_until(lambda: _has(js, 3))
    assert await _titles(js) == ["before", "while down", "after"]


async def _ready(svc: Any) -> bool:
    return svc.gotify is not None and svc.gotify.connected.is_set()


async def _has(js: Any, n: int) -> bool:
    return len(await _titles(js)) >= n


async def _connects(server: FakeGotify, n: int) -> bool:
    return server.connects >= n


async def test_messages_during_a_nats_outage_go_to_the_spool_and_are_stored_once(
    services: Any, gotify: FakeGotify, js: Any, nats_server: Any
) -> None:
    # Issue 19: the Gotify stream keeps flowing while NATS is down; the spool keeps it.
    svc = await services.start(gotify_listen_url=gotify.url, gotify_client_token=TOKEN)
    await wait_until(lambda: _ready(svc))
    await gotify.push("before")
    await wait_until(lambda: _has(js, 1))
    nats_server.stop()

    async def spooled(n: int) -> bool:
        return svc.sink.spool.stats.appended >= n

    await wait_until(lambda: _not_up(svc))
    await gotify.push("during 1")
    await gotify.push("during 2")
    await wait_until(lambda: spooled(2))

    async def moved_on() -> bool:  # not stuck retrying: message 3 done once fsynced
        return svc.gotify.last_id == 3

    await wait_until(moved_on)
    nats_server.start()
    await wait_until(lambda: _has(js, 3), timeout=30)
    await gotify.push("after")
    await wait_until(lambda: _has(js, 4))
    assert await _titles(js) == ["before", "during 1", "during 2", "after"]


async def _not_up(svc: Any) -> bool:
    return not svc.sink.up


async def test_a_flood_of_unusable_messages_costs_counters_not_log_lines(
    services: Any, gotify: FakeGotify, js: Any, caplog: Any
) -> None:
    # Issue 19: any Gotify application can post; what the listener cannot use is counted and
    # summarised, not one WARNING per message.
    caplog.set_level("INFO", logger="proxbus_ingest_pve_ws")
    svc = await services.start(gotify_listen_url=gotify.url, gotify_client_token=TOKEN)
    await wait_until(lambda: _ready(svc))
    for _ in range(500):
        empty = {"id": len(gotify.messages) + 1, "title": "", "message": ""}
        gotify.messages.append(empty)
        for ws in list(gotify.sockets):
            await ws.send_str("not json {")
            await ws.send_str(json.dumps(empty))
    await gotify.push("after the flood")
    await wait_until(lambda: _has(js, 1))
    assert await _titles(js) == ["after the flood"]
    assert svc.gotify.stats.invalid == 1000
    lines = [r for r in caplog.records if r.levelno >= 30 and "gotify" in r.getMessage()]
    assert len(lines) <= 4, [r.getMessage() for r in lines[:6]]
