import asyncio
import logging

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from proxbus_runtime import EventPublisher, HealthServer, register_publisher


async def test_health_and_metrics_answer_and_reflect_checks(js) -> None:
    registry = CollectorRegistry()
    pub = EventPublisher(js)
    register_publisher(registry, pub, "unit")
    healthy = True
    server = HealthServer("127.0.0.1", 0, registry)
    server.add_check("nats", lambda: healthy)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{server.port}/health") as resp:
                assert resp.status == 200
                assert (await resp.json())["checks"] == {"nats": True}
            healthy = False
            async with http.get(f"http://127.0.0.1:{server.port}/health") as resp:
                assert resp.status == 503
            async with http.get(f"http://127.0.0.1:{server.port}/metrics") as resp:
                text = await resp.text()
            assert 'proxbus_publish_published_total{service="unit"} 0.0' in text
            assert 'proxbus_publish_buffered{service="unit"} 0.0' in text
    finally:
        await server.stop()


async def test_a_flood_of_malformed_requests_costs_one_line_per_interval_not_one_each(
    caplog,
) -> None:
    # Issue 19: aiohttp logs "Error handling request" at ERROR with a traceback for every
    # request it cannot parse; the webhook, Discord and console routes share this server, so
    # any client could fill the log. 1,000 malformed requests must cost at most two lines.
    server = HealthServer("127.0.0.1", 0)
    await server.start()
    bad = [
        b"GET /health HTTP/1.1\r\nHost: x\r\nno colon in this header\r\n\r\n",
        b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    answers: list[bytes] = []
    try:
        with caplog.at_level(logging.DEBUG):
            for i in range(1000):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(bad[i % len(bad)])
                await writer.drain()
                answers.append(await asyncio.wait_for(reader.read(), 5))
                writer.close()
            async with (
                aiohttp.ClientSession() as http,  # still serving
                http.get(f"http://127.0.0.1:{server.port}/health") as resp,
            ):
                assert resp.status == 200
    finally:
        await server.stop()
    assert all(a.split(b" ", 2)[1] == b"400" for a in answers), {a[:40] for a in answers}
    noisy = [r for r in caplog.records if r.levelno >= logging.INFO and r.name != __name__]
    noisy = [r for r in noisy if "health/metrics on" not in r.getMessage()]
    assert len(noisy) <= 2, [r.getMessage() for r in noisy[:5]]
    assert server.bad_requests.total == 1000
    assert not any(r.exc_info for r in noisy)  # a client's garbage is not a traceback


async def test_a_route_that_fails_for_every_request_is_logged_once_with_its_traceback(
    caplog,
) -> None:
    server = HealthServer("127.0.0.1", 0)

    async def broken(_: web.Request) -> web.Response:
        raise ValueError("handler bug")

    server.app.router.add_get("/broken", broken)
    await server.start()
    try:
        with caplog.at_level(logging.INFO):
            async with aiohttp.ClientSession() as http:
                for _ in range(200):
                    async with http.get(f"http://127.0.0.1:{server.port}/broken") as resp:
                        assert resp.status == 500
    finally:
        await server.stop()
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines[:5]]
    assert lines[0].exc_info is not None  # the first one says where the bug is
    assert "ValueError" in lines[0].getMessage()
    assert server.request_errors.total == 200
