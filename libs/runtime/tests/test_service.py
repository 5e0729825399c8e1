"""The service runtime against real nats-servers: readiness, JetStream domains, stop budget."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from typing import Any

import aiohttp
import aiohttp.web
import pytest
from proxbus_devtools.testing import NatsServer, free_port, wait_until
from proxbus_events import EVENTS_STREAM, Event
from proxbus_runtime import ListenError, Service, ServiceSettings, StopRequested


def settings(url: str, **values: Any) -> ServiceSettings:
    return ServiceSettings(
        nats_url=url,
        health_host="127.0.0.1",
        health_port=0,
        events_max_bytes=64 * 1024**2,
        **values,
    )


async def health(svc: Service) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{svc.health.port}/health") as resp,
    ):
        return resp.status, await resp.json()


def event(title: str = "hello") -> Event:
    return Event(source="syslog", kind="syslog.message", title=title, site="lab")


async def _mine(_: aiohttp.web.Request) -> aiohttp.web.Response:
    return aiohttp.web.Response(text="mine")


async def test_a_service_publishes_through_the_runtime(nats_server: NatsServer) -> None:
    async with Service(settings(nats_server.url), "unit", defer_http=True) as svc:
        assert svc.publisher is not None
        assert svc.js is not None
        assert svc.publisher.submit(event())
        assert await svc.publisher.flush(5)
        assert (await svc.js.stream_info(EVENTS_STREAM)).state.messages == 1
        svc.health.app.router.add_get("/mine", _mine)
        await svc.start_http()  # after the service's own routes (aiohttp freezes them)
        assert await health(svc) == (200, {"status": "ok", "checks": {"nats": True}})
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{svc.health.port}/mine") as resp,
        ):
            assert await resp.text() == "mine"
        metrics = svc.registry.get_sample_value(
            "proxbus_publish_published_total", {"service": "unit"}
        )
        assert metrics == 1


async def test_without_nats_the_service_serves_at_once_and_brings_nats_up_later(
    make_nats_server,
) -> None:
    port = free_port()
    ready: list[bool] = []
    async with Service(settings(f"nats://127.0.0.1:{port}"), "unit", require_nats=False) as svc:
        svc.on_nats_ready(lambda: _append(ready))
        assert svc.nc is None or not svc.connected
        assert (await health(svc))[0] == 200  # serving without NATS
        assert not svc.nats_ready.is_set()
        make_nats_server(port=port)
        await asyncio.wait_for(svc.nats_ready.wait(), 20)
        await wait_until(lambda: ready == [True], timeout=5)
        assert svc.publisher is not None
        assert svc.publisher.submit(event())
        assert await svc.publisher.flush(5)


async def test_connected_line_names_the_url_without_credentials(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "proxbus")
    url = f"nats://bob:s3cret@127.0.0.1:{nats_server.port}"  # a server without auth accepts it
    async with Service(settings(url), "unit"):
        pass
    messages = [r.getMessage() for r in caplog.records]
    assert f"unit: NATS connected to nats://127.0.0.1:{nats_server.port}" in messages, messages
    assert not any("s3cret" in m or "ParseResult" in m for m in messages), messages


async def test_nats_errors_never_log_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "proxbus")
    port = free_port()
    url = f"nats://bob:s3cret@127.0.0.1:{port}"
    async with Service(settings(url), "unit", require_nats=False):
        await wait_until(lambda: any("NATS errors" in r.getMessage() for r in caplog.records),
                         timeout=10)  # fmt: skip
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"(nats://127.0.0.1:{port})" in m for m in messages), messages
    assert not any("s3cret" in m for m in messages), messages


async def _append(out: list[bool]) -> None:
    out.append(True)


async def test_nats_without_jetstream_logs_one_clear_line_and_retries(
    make_nats_server, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_nats_server(jetstream=False)
    caplog.set_level(logging.ERROR, "proxbus.service")
    async with Service(settings(server.url), "unit", require_nats=False) as svc:
        await wait_until(lambda: any("JetStream is not enabled on" in r.message
                                     for r in caplog.records), timeout=20)  # fmt: skip
        await asyncio.sleep(0)  # still running: no crash, no ready
        assert not svc.nats_ready.is_set()
        assert svc.connected
        # The retry loop goes on: with JetStream back, the service becomes ready.
        server.jetstream = True
        server.restart()
        await asyncio.wait_for(svc.nats_ready.wait(), 45)
    lines = [r for r in caplog.records if "JetStream is not enabled on" in r.message]
    assert len(lines) == 1, [r.message for r in lines]  # rate-limited, not one per attempt


async def test_required_nats_that_never_comes_stops_cleanly_on_stop() -> None:
    stop = asyncio.Event()
    svc = Service(settings(f"nats://127.0.0.1:{free_port()}"), "unit", stop=stop)
    entering = asyncio.create_task(svc.__aenter__())
    await wait_until(lambda: svc.health.port != 0, timeout=5)
    assert not entering.done()  # waiting for NATS, not crashing
    status, body = await health(svc)
    assert (status, body["checks"]) == (503, {"nats": False})  # alive, not ready
    stop.set()
    with pytest.raises(StopRequested):
        await asyncio.wait_for(entering, 5)


async def test_jetstream_domain_is_honoured_by_streams_kv_and_publishing(
    make_nats_server,
) -> None:
    server = make_nats_server(domain="hub")
    async with Service(settings(server.url, nats_js_domain="hub"), "unit") as svc:
        assert svc.js is not None
        assert svc.publisher is not None
        assert svc.publisher.submit(event())
        assert await svc.publisher.flush(5)
        kv = await svc.js.key_value("proxbus_silences")
        await kv.put("k", b"v")
        assert (await svc.js.stream_info(EVENTS_STREAM)).state.messages == 1
        # The domain's API answers under $JS.hub.API as well.
        info = await svc.nc.request("$JS.hub.API.STREAM.INFO." + EVENTS_STREAM, b"", timeout=5)  # type: ignore[union-attr]
        assert b'"messages":1' in info.data


async def test_a_wrong_domain_is_an_error_line_not_a_crash(
    make_nats_server, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_nats_server(domain="hub")
    caplog.set_level(logging.ERROR, "proxbus.service")
    async with Service(settings(server.url, nats_js_domain="elsewhere"), "unit",
                       require_nats=False) as svc:  # fmt: skip
        await wait_until(lambda: any("in domain 'elsewhere'" in r.message
                                     for r in caplog.records), timeout=20)  # fmt: skip
        assert not svc.nats_ready.is_set()


async def test_shutdown_runs_hooks_then_flushes_within_one_deadline(
    nats_server: NatsServer,
) -> None:
    order: list[str] = []
    given: list[float] = []

    async def slow_hook(seconds: float) -> None:
        given.append(seconds)
        order.append("intake stopped")
        await asyncio.sleep(60)  # never finishes on its own: cut at the deadline

    started = 0.0
    async with Service(settings(nats_server.url, shutdown_budget=3.0), "unit") as svc:
        svc.on_stop(slow_hook)
        assert svc.publisher is not None
        svc.publisher.submit(event())
        started = time.monotonic()
    took = time.monotonic() - started
    assert order == ["intake stopped"]
    assert 1.5 <= given[0] <= 2.0  # the budget minus the 1 s kept for closing
    assert took < 3.5, took


async def test_a_failing_background_task_stops_the_service(nats_server: NatsServer) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    async def run() -> None:
        async with Service(settings(nats_server.url), "unit") as svc:
            svc.start_task(broken(), name="broken")
            await asyncio.wait_for(svc.serve(), 5)

    with pytest.raises(RuntimeError, match="boom"):
        await run()


async def test_connect_nats_fails_fast_then_reconnects_forever(make_nats_server) -> None:
    """Regression: commands hung forever on an unreachable NATS (nats-py's first connect)."""
    import nats.errors
    from proxbus_runtime import connect_nats

    port = free_port()
    started = time.monotonic()
    with pytest.raises(nats.errors.NoServersError):
        await connect_nats(settings(f"nats://127.0.0.1:{port}"), "unit")
    assert time.monotonic() - started < 10
    server = make_nats_server(port=port)
    nc = await connect_nats(settings(server.url), "unit")
    try:
        server.stop()
        await wait_until(lambda: not nc.is_connected, timeout=10)
        await asyncio.sleep(3)  # an outage longer than two reconnect attempts (0.5 s apart)
        server.start()
        await wait_until(lambda: nc.is_connected, timeout=20)  # reconnects are not limited
    finally:
        await nc.close()


class Listener:
    """A TCP listener that accepts and hangs up at once: a NATS URL that never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"nats://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _accept(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


async def test_a_nats_that_never_answers_is_one_warning_not_one_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        Listener() as nats_url,
        Service(settings(nats_url.url), "unit", require_nats=False, health=False) as svc,
    ):
        await wait_until(lambda: nats_url.connections >= 6, timeout=20)  # still retrying
        assert not svc.nats_ready.is_set()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings  # the rest is one summary line per 30 s
    assert warnings[0].startswith(f"NATS errors ({nats_url.url})")


async def test_nats_false_never_attempts_a_connection() -> None:
    with pytest.raises(ValueError, match="require_nats"):
        Service(settings("nats://127.0.0.1:1"), "unit", nats=False)
    async with Listener() as control, Listener() as unused:
        async with (
            Service(settings(control.url), "with", require_nats=False, health=False),
            Service(
                settings(unused.url), "without", require_nats=False, nats=False, health=False
            ) as svc,  # fmt: skip
        ):
            await wait_until(lambda: control.connections >= 2, timeout=20)
            assert svc.nc is None
            assert not svc.nats_ready.is_set()
        assert unused.connections == 0


def test_without_a_health_server_aiohttp_web_is_never_imported() -> None:
    """``health=False`` (the MCP gateway, which serves its own HTTP): no aiohttp server code
    in the process (about 10 MiB of the gateway's idle RSS, issue 17)."""
    code = """
import asyncio, sys
from proxbus_runtime import Service, ServiceSettings

async def main() -> None:
    async with Service(ServiceSettings(), "unit", require_nats=False, nats=False, health=False):
        pass
    print("aiohttp.web" in sys.modules, "proxbus_runtime.health" in sys.modules)

asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "False"]


async def test_a_clean_stop_logs_no_nats_warning(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing its own connection is not an outage: no "NATS disconnected" warning when a
    service stops (it ended every service's log, `proxbus up`'s and `docker compose logs`')."""
    caplog.set_level(logging.INFO)
    async with Service(settings(nats_server.url), "unit") as svc:
        await asyncio.wait_for(svc.nats_ready.wait(), 10)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
    assert any("NATS connection closed" in r.getMessage() for r in caplog.records)


async def test_losing_the_broker_still_warns(make_nats_server: Any, caplog: Any) -> None:
    server = make_nats_server()
    caplog.set_level(logging.INFO)
    async with Service(settings(server.url), "unit", health=False) as svc:
        await asyncio.wait_for(svc.nats_ready.wait(), 10)
        server.kill()
        await wait_until(
            lambda: any("NATS disconnected" in r.getMessage() for r in caplog.records), 10
        )
    record = next(r for r in caplog.records if "NATS disconnected" in r.getMessage())
    assert record.levelno == logging.WARNING


async def test_a_command_closing_its_connection_logs_no_nats_warning(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """`connect_nats` (commands such as `proxbus-ingest-pve-ws --once`): closing is quiet."""
    from proxbus_runtime import connect_nats

    caplog.set_level(logging.INFO)
    nc = await connect_nats(settings(nats_server.url), name="unit-command")
    await nc.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_taken_health_port_is_a_listen_error_naming_the_setting() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        svc = Service(
            settings("nats://127.0.0.1:1"),
            "unit",
            require_nats=False,
            nats=False,
            listen=("127.0.0.1", port),
        )
        with pytest.raises(ListenError) as caught:
            await svc.__aenter__()
        await svc.__aexit__(None, None, None)
    assert str(caught.value) == (
        f"cannot listen on 127.0.0.1:{port}: address already in use (set HEALTH_PORT to move it)"
    )
