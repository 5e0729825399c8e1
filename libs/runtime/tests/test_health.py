import aiohttp
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
