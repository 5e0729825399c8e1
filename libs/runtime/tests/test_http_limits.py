"""HTTP_REQUEST_TIMEOUT on the HealthServer (aiohttp): a connection must send a request's
headers in time, counted from the connection and on a kept-alive connection from the next
request's first byte; once they are in, nothing cuts the request. Real servers, raw sockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from proxbus_runtime import HealthServer
from proxbus_runtime.http_limits import DEFAULT_KEEPALIVE_TIMEOUT, DeadlineRunner

DEADLINE = 1.0
GET = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
async def server() -> AsyncIterator[HealthServer]:
    server = HealthServer("127.0.0.1", 0, request_timeout=DEADLINE)

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2.5 * DEADLINE)
        return web.Response(text="slow but whole")

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(8):
            await resp.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(0.3 * DEADLINE)
        await resp.write_eof()
        return resp

    async def upload(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    server.app.router.add_get("/slow", slow)
    server.app.router.add_get("/stream", stream)
    server.app.router.add_post("/upload", upload)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _connect(
    server: HealthServer,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def _closed_after(reader: asyncio.StreamReader, started: float) -> tuple[bytes, float]:
    """Everything until the server closes, and when that was (seconds after ``started``)."""
    data = await asyncio.wait_for(reader.read(), 10 * DEADLINE)
    return data, time.monotonic() - started


def _timeouts(server: HealthServer) -> float | None:
    return server.registry.get_sample_value("proxbus_http_request_timeouts_total")


async def _response(reader: asyncio.StreamReader) -> bytes:
    """One whole response with a Content-Length body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * DEADLINE)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await asyncio.wait_for(reader.readexactly(length), 10 * DEADLINE)


async def test_the_aiohttp_internals_the_deadline_relies_on_are_there() -> None:
    # http_limits.py reads these; an aiohttp upgrade that renames them must fail here loudly
    # (and the behaviour tests below with it), not silently stop closing connections.
    assert {"_request_count", "_messages"} <= set(RequestHandler.__slots__)
    assert callable(web.AppRunner._make_server)

    async def handler(_: web.BaseRequest) -> web.Response:
        return web.Response()

    built = web.Server(handler, keepalive_timeout=3.0)
    assert built._kwargs == {"keepalive_timeout": 3.0}


async def test_a_silent_connection_is_closed_at_the_deadline_and_counted(
    server: HealthServer,
) -> None:
    started = time.monotonic()
    reader, writer = await _connect(server)
    data, after = await _closed_after(reader, started)
    writer.close()
    assert data == b""
    assert DEADLINE * 0.9 <= after < DEADLINE * 5, after
    assert _timeouts(server) == 1


async def test_a_trickled_header_is_closed_at_the_deadline_from_the_connection(
    server: HealthServer,
) -> None:
    started = time.monotonic()
    reader, writer = await _connect(server)
    header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200

    async def trickle() -> None:  # one byte every tenth of the deadline, never the blank line
        for byte in header:
            writer.write(bytes([byte]))
            await asyncio.sleep(DEADLINE / 10)

    sender = asyncio.create_task(trickle())
    try:
        data, after = await _closed_after(reader, started)
    finally:
        sender.cancel()
        writer.close()
    assert data == b""
    assert DEADLINE * 0.9 <= after < DEADLINE * 5, after
    assert _timeouts(server) == 1


async def test_a_kept_alive_connection_is_answered_when_each_request_is_in_time(
    server: HealthServer,
) -> None:
    # Three requests on one connection, 0.7 deadlines apart (2.1 deadlines in all), then a
    # pause of 1.5 deadlines (idle: the deadline counts from the next request's first byte).
    reader, writer = await _connect(server)
    try:
        for pause in (0, 0.7, 0.7, 1.5):
            await asyncio.sleep(pause * DEADLINE)
            writer.write(GET)
            answer = await _response(reader)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        # A next request trickled on the same connection is closed a deadline after its
        # first byte, not earlier.
        writer.write(b"GET /health HTTP/1.1\r\n")
        started = time.monotonic()
        data, after = await _closed_after(reader, started)
    finally:
        writer.close()
    assert data == b""
    assert DEADLINE * 0.9 <= after < DEADLINE * 5, after
    assert _timeouts(server) == 1


async def test_a_request_whose_headers_came_in_time_is_never_cut(server: HealthServer) -> None:
    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}"
        async with http.get(f"{base}/slow") as resp:  # the handler takes 2.5 deadlines
            assert (resp.status, await resp.text()) == (200, "slow but whole")
        async with http.get(f"{base}/stream") as resp:  # a live feed of 2.4 deadlines
            assert await resp.text() == "".join(f"data: {i}\n\n" for i in range(8))

    # A body trickled for 2 deadlines after headers that came at once.
    reader, writer = await _connect(server)
    try:
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n")
        for _ in range(20):
            await asyncio.sleep(DEADLINE / 10)
            writer.write(b"b")
        answer = await _response(reader)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert answer.endswith(b"\r\n\r\n20"), answer
    assert _timeouts(server) == 0


async def test_timeouts_are_in_metrics_and_a_flood_costs_one_line_per_interval(
    server: HealthServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="proxbus_runtime.http_limits"):
        connections = [await _connect(server) for _ in range(50)]
        started = time.monotonic()
        closed = await asyncio.gather(*(_closed_after(r, started) for r, _ in connections))
        for _, writer in connections:
            writer.close()
    assert all(data == b"" for data, _ in closed)
    lines = [r.getMessage() for r in caplog.records if r.name == "proxbus_runtime.http_limits"]
    assert len(lines) == 1, lines
    assert "closed HTTP connections: no whole request headers within 1s from 127.0.0.1:" in lines[0]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.port}/metrics") as resp,
    ):
        assert "proxbus_http_request_timeouts_total 50.0" in await resp.text()


async def test_the_default_is_twenty_seconds_and_idle_connections_are_bounded() -> None:
    server = HealthServer("127.0.0.1", 0)
    assert server.request_deadline.timeout == 20.0
    runner = DeadlineRunner(server.app, server.request_deadline)
    assert runner._kwargs["keepalive_timeout"] == DEFAULT_KEEPALIVE_TIMEOUT
