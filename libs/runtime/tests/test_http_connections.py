"""Connection budgets of the HealthServer (aiohttp): a per-address and a global cap on open
connections, and the idle keep-alive timeout. Real servers, real sockets from several loopback
addresses (127.0.0.1 floods, 127.0.0.2 and 127.0.0.3 are other clients).

Before: no cap at all. Every connection was accepted and held (up to HTTP_REQUEST_TIMEOUT
silent, 75 s idle after a request), so one address could hold thousands of sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from proxbus_runtime import HealthServer, ServiceSettings

GET = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
FLOOD = "127.0.0.1"
OTHER = "127.0.0.2"
THIRD = "127.0.0.3"


async def _serve(**budget: float) -> HealthServer:
    server = HealthServer("127.0.0.1", 0, request_timeout=60.0, **budget)  # type: ignore[arg-type]

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(10):
            await resp.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(0.3)
        await resp.write_eof()
        return resp

    server.app.router.add_get("/stream", stream)
    await server.start()
    return server


@pytest.fixture
async def server() -> AsyncIterator[HealthServer]:
    server = await _serve(max_connections=50, max_connections_per_peer=10)
    try:
        yield server
    finally:
        await server.stop()


async def _connect(
    server: HealthServer, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(source, 0))


async def _closed_at_once(reader: asyncio.StreamReader) -> bool:
    """True when the server closes the connection (EOF or reset) within 5 s."""
    try:
        return await asyncio.wait_for(reader.read(), 5.0) == b""
    except ConnectionResetError:
        return True


async def _served(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(GET)
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)


def _metric(server: HealthServer, name: str, **labels: str) -> float:
    return server.registry.get_sample_value(name, labels) or 0.0


async def _flood(server: HealthServer, count: int, held: list[asyncio.StreamWriter]) -> int:
    """``count`` connections from FLOOD, 100 at a time; the accepted ones are kept in ``held``.
    Returns how many were closed at once."""
    closed = 0

    async def one() -> None:
        nonlocal closed
        reader, writer = await _connect(server, FLOOD)
        try:
            # The accepted ones get no close; a refused one is closed before any request.
            got = await asyncio.wait_for(reader.read(), 0.5)
        except ConnectionResetError:
            got = b""
        except TimeoutError:
            held.append(writer)
            return
        assert got == b""
        closed += 1
        writer.close()

    for start in range(0, count, 100):
        await asyncio.gather(*(one() for _ in range(min(100, count - start))))
    return closed


async def test_thousands_of_connections_from_one_address_leave_room_for_another_client(
    server: HealthServer,
) -> None:
    held: list[asyncio.StreamWriter] = []
    try:
        closed = await _flood(server, 3000, held)
        assert len(held) == 10  # its share, kept open and served
        assert closed == 2990
        assert _metric(server, "proxbus_http_connections_refused_total", reason="per_peer") == 2990
        assert _metric(server, "proxbus_http_connections") == 10
        assert server.connection_budget.peers == 1  # memory: one counter per open address
        reader, writer = await _connect(server, OTHER)
        assert (await _served(reader, writer)).startswith(b"HTTP/1.1 200")
        writer.close()
        # The flooder's accepted connections still work.
        reader, writer = await _connect(server, FLOOD)  # over its share: closed at once
        assert await _closed_at_once(reader)
        writer.close()
    finally:
        for w in held:
            w.close()

    # Its slots are given back when its connections close.
    async def freed() -> bool:
        return _metric(server, "proxbus_http_connections") == 0

    await _wait(freed)
    reader, writer = await _connect(server, FLOOD)
    assert (await _served(reader, writer)).startswith(b"HTTP/1.1 200")
    writer.close()


async def _wait(predicate: object, timeout: float = 10.0) -> None:
    from proxbus_devtools.testing import wait_until

    await wait_until(predicate, timeout)  # type: ignore[arg-type]


async def test_the_global_cap_holds_across_addresses() -> None:
    server = await _serve(max_connections=15, max_connections_per_peer=10)
    held: list[asyncio.StreamWriter] = []
    try:
        for source, n in ((FLOOD, 10), (OTHER, 5)):
            for _ in range(n):
                reader, writer = await _connect(server, source)
                assert (await _served(reader, writer)).startswith(b"HTTP/1.1 200")
                held.append(writer)
        reader, writer = await _connect(server, THIRD)
        assert await _closed_at_once(reader)
        writer.close()
        assert _metric(server, "proxbus_http_connections_refused_total", reason="total") == 1
        held.pop().close()  # one slot back

        async def one_free() -> bool:
            return _metric(server, "proxbus_http_connections") == 14

        await _wait(one_free)
        reader, writer = await _connect(server, THIRD)
        assert (await _served(reader, writer)).startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        for w in held:
            w.close()
        await server.stop()


async def test_a_live_stream_keeps_flowing_through_a_flood(server: HealthServer) -> None:
    held: list[asyncio.StreamWriter] = []
    connector = aiohttp.TCPConnector(local_addr=(OTHER, 0))
    try:
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(f"http://127.0.0.1:{server.port}/stream") as resp,
        ):
            flood = asyncio.create_task(_flood(server, 1000, held))
            body = await resp.text()
            await flood
        assert body == "".join(f"data: {i}\n\n" for i in range(10))
        assert _metric(server, "proxbus_http_connections_refused_total", reason="per_peer") == 990
    finally:
        for w in held:
            w.close()


async def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout() -> None:
    server = await _serve(keepalive_timeout=1.0)
    try:
        reader, writer = await _connect(server, OTHER)
        assert (await _served(reader, writer)).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        rest = await asyncio.wait_for(reader.read(), 10.0)  # the body, then the close
        after = time.monotonic() - started
        writer.close()
        assert rest.endswith(b"}"), rest
        assert 0.9 <= after < 5, after
    finally:
        await server.stop()


def test_the_budget_defaults_and_their_metrics() -> None:
    settings = ServiceSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.http_max_connections == 512
    assert settings.http_max_connections_per_peer == 64
    assert settings.http_keepalive_timeout == 30.0
    server = HealthServer("127.0.0.1", 0)
    assert _metric(server, "proxbus_http_budget", budget="max_connections") == 512
    assert _metric(server, "proxbus_http_budget", budget="max_connections_per_peer") == 64
    assert _metric(server, "proxbus_http_budget", budget="keepalive_timeout_seconds") == 30
    assert _metric(server, "proxbus_http_budget", budget="request_timeout_seconds") == 20


def test_a_per_peer_cap_above_the_total_is_refused() -> None:
    with pytest.raises(ValueError, match="HTTP_MAX_CONNECTIONS_PER_PEER"):
        ServiceSettings(_env_file=None, http_max_connections=10, http_max_connections_per_peer=20)  # type: ignore[call-arg]
