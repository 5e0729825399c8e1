"""The service against a real nats-server: listeners, replicas, broker outage, limits, TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from proxbus_devtools.testing import NatsServer
from proxbus_events import EVENTS_STREAM, Event
from proxbus_runtime import EventPublisher, SpoolingPublisher

from .conftest import free_udp_tcp_port, line, make_settings, metric, running, wait_until

UPID = "UPID:pve1:00003039:00A1B2C3:65F0A1B2:qmstart:100:root@pam:"


async def _stream_count(js: JetStreamContext) -> int:
    info = await js.stream_info(EVENTS_STREAM)
    return int(info.state.messages)


async def test_udp_and_tcp_lines_of_both_framings_arrive_on_their_subjects(
    nats_server: NatsServer, nc, js
) -> None:
    port = free_udp_tcp_port()
    received: asyncio.Queue[tuple[str, Event]] = asyncio.Queue()

    async def on_msg(msg) -> None:  # type: ignore[no-untyped-def]
        await received.put((msg.subject, Event.from_json(msg.data)))

    await nc.subscribe("proxbus.events.lab.syslog.>", cb=on_msg)
    async with running(make_settings(nats_server.url, port)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(
                f"<27>Nov 24 10:00:00 pve1 pvedaemon[1]: <root@pam> end task {UPID} boom".encode(),
                ("127.0.0.1", port),
            )
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"<30>Nov 24 10:00:00 pve2.lab.example qmeventd[9]: Starting cleanup for 101\n"
        )
        await writer.drain()
        _, octet = await asyncio.open_connection("127.0.0.1", port)
        body = b"<84>1 2026-11-24T10:00:00Z pve3 sshd 77 - - Failed password for root from 192.0.2.1 port 2222 ssh2"
        octet.write(b"%d %s" % (len(body), body))
        await octet.drain()
        got = {}
        for _ in range(3):
            subject, event = await asyncio.wait_for(received.get(), 10)
            got[event.kind] = (subject, event)
        writer.close()
        octet.close()
    assert got["task.failed"][0] == "proxbus.events.lab.syslog.error.pve1"
    assert got["task.failed"][1].correlation_id == UPID
    assert got["task.failed"][1].metadata["transport"] == "udp"
    assert got["vm.stopped"][0] == "proxbus.events.lab.syslog.info.pve2"
    assert got["vm.stopped"][1].vmid == 101
    assert got["auth.failed"][0] == "proxbus.events.lab.syslog.warning.pve3"
    assert got["auth.failed"][1].metadata["transport"] == "tcp"


async def test_two_replicas_on_one_port_receive_every_tcp_frame(
    nats_server: NatsServer, js
) -> None:
    port = free_udp_tcp_port()
    settings = make_settings(nats_server.url, port, syslog_udp=False)
    connections, per_connection = 24, 50
    async with running(settings) as first, running(settings) as second:

        async def send(c: int) -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"".join(line(c * 1000 + i) + b"\n" for i in range(per_connection)))
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        await asyncio.gather(*(send(c) for c in range(connections)))
        total = connections * per_connection

        async def all_stored() -> bool:
            return await _stream_count(js) == total

        await wait_until(all_stored)
        counts = [
            metric(s, "proxbus_syslog_received_total", transport="tcp") for s in (first, second)
        ]
    assert sum(counts) == total
    assert all(c > 0 for c in counts), counts  # the kernel spread connections over both


async def test_broker_restart_during_a_tcp_stream_loses_no_line_without_a_spool(
    nats_server: NatsServer, js
) -> None:
    port = free_udp_tcp_port()
    settings = make_settings(
        nats_server.url,
        port,
        syslog_udp=False,
        publish_ack_timeout=0.5,
        publish_buffer=50,
        spool_enabled=False,
    )
    async with running(settings) as service:
        publisher = service.publisher
        assert isinstance(publisher, EventPublisher)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0

        async def send(n: int) -> None:
            nonlocal sent
            for _ in range(n):
                writer.write(line(sent) + b"\n")
                sent += 1
                if sent % 20 == 0:
                    await writer.drain()
            await writer.drain()

        await send(100)

        async def count_is(n: int) -> bool:
            return await _stream_count(js) == n

        await wait_until(lambda: count_is(100))
        await asyncio.to_thread(nats_server.stop)
        sender = asyncio.create_task(send(400))
        # The buffer fills, acks time out and are retried, and the reader waits (TCP
        # back-pressure) instead of dropping: fewer lines accepted than sent, none dropped.
        await wait_until(lambda: publisher.buffered == 50 and publisher.stats.failures > 0)
        await sender
        assert publisher.stats.accepted < 500
        await asyncio.to_thread(nats_server.start)
        await wait_until(lambda: count_is(500), timeout=40)
        writer.close()
        assert metric(service, "proxbus_syslog_dropped_total", reason="shutdown") == 0
        assert publisher.stats.dropped == 0


async def test_broker_restart_during_a_tcp_stream_spools_and_loses_no_line(
    nats_server: NatsServer, js
) -> None:
    port = free_udp_tcp_port()
    settings = make_settings(
        nats_server.url, port, syslog_udp=False, publish_ack_timeout=0.5, publish_buffer=50
    )
    async with running(settings) as service:
        sink = service.publisher
        assert isinstance(sink, SpoolingPublisher)
        await wait_until(lambda: sink.up)  # listening before NATS was ready; now it is
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(100):
            writer.write(line(i) + b"\n")
        await writer.drain()

        async def count_is(n: int) -> bool:
            return await _stream_count(js) == n

        await wait_until(lambda: count_is(100))
        assert sink.spool.stats.appended == 0  # NATS up: nothing touched the disk
        await asyncio.to_thread(nats_server.stop)
        for i in range(100, 500):
            writer.write(line(i) + b"\n")
        await writer.drain()
        # Read at full speed and kept on disk instead of back-pressuring the sender.
        await wait_until(
            lambda: metric(service, "proxbus_syslog_received_total", transport="tcp") == 500
        )
        assert sink.spool.stats.pending_records == 400
        await asyncio.to_thread(nats_server.start)
        await wait_until(lambda: count_is(500), timeout=40)
        await wait_until(lambda: sink.spool.empty)
        writer.close()
        assert metric(service, "proxbus_syslog_dropped_total", reason="shutdown") == 0
        assert sink.spool.stats.replayed == 400
        replayed = service.registry.get_sample_value(
            "proxbus_spool_replayed_total", {"service": "ingest-syslog"}
        )
        assert replayed == 400


async def test_udp_during_an_outage_goes_to_the_spool_and_is_stored_later(
    nats_server: NatsServer, js
) -> None:
    port = free_udp_tcp_port()
    settings = make_settings(nats_server.url, port, syslog_tcp=False, publish_buffer=5)
    async with running(settings) as service:
        sink = service.publisher
        assert isinstance(sink, SpoolingPublisher)
        await wait_until(lambda: sink.up)
        await asyncio.to_thread(nats_server.stop)
        await wait_until(lambda: not sink.up)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for i in range(20):
                udp.sendto(line(i), ("127.0.0.1", port))
        await wait_until(lambda: sink.spool.stats.appended == 20)
        assert metric(service, "proxbus_syslog_dropped_total", reason="buffer_full") == 0
        await asyncio.to_thread(nats_server.start)

        async def all_stored() -> bool:
            return await _stream_count(js) == 20

        await wait_until(all_stored, timeout=40)


async def test_udp_beyond_the_buffer_during_an_outage_is_counted_as_dropped_without_a_spool(
    nats_server: NatsServer, js
) -> None:
    port = free_udp_tcp_port()
    settings = make_settings(
        nats_server.url, port, syslog_tcp=False, publish_buffer=5, spool_enabled=False
    )
    async with running(settings) as service:
        await asyncio.to_thread(nats_server.stop)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for i in range(20):
                udp.sendto(line(i), ("127.0.0.1", port))
        await wait_until(
            lambda: metric(service, "proxbus_syslog_received_total", transport="udp") == 20
        )
        assert metric(service, "proxbus_syslog_dropped_total", reason="buffer_full") == 15
        await asyncio.to_thread(nats_server.start)

        async def five_stored() -> bool:
            return await _stream_count(js) == 5

        await wait_until(five_stored, timeout=40)


async def test_connection_limit_and_idle_timeout_close_connections(
    nats_server: NatsServer,
) -> None:
    port = free_udp_tcp_port()
    settings = make_settings(
        nats_server.url, port, syslog_udp=False, syslog_max_connections=1, syslog_idle_timeout=0.3
    )
    async with running(settings) as service:
        first_reader, first = await asyncio.open_connection("127.0.0.1", port)
        first.write(line(1) + b"\n")
        await first.drain()
        await wait_until(lambda: metric(service, "proxbus_syslog_connections") == 1)
        second_reader, second = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(second_reader.read(), 5) == b""
        assert metric(service, "proxbus_syslog_connections_refused_total", reason="total") == 1
        assert await asyncio.wait_for(first_reader.read(), 5) == b""  # idle timeout
        assert metric(service, "proxbus_syslog_idle_closed_total") == 1
        first.close()
        second.close()


async def test_malformed_and_oversize_frames_are_counted_and_the_connection_survives(
    nats_server: NatsServer, nc
) -> None:
    port = free_udp_tcp_port()
    settings = make_settings(nats_server.url, port, syslog_udp=False, syslog_max_line=256)
    sub = await nc.subscribe("proxbus.events.lab.syslog.>")
    async with running(settings) as service:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"\x01\x02\x03\x04\x05\x06\n" + line(1) + b"x" * 1000 + b"\n" + line(2) + b"\n"
        )
        await writer.drain()
        first = Event.from_json((await sub.next_msg(10)).data)
        second = Event.from_json((await sub.next_msg(10)).data)
        writer.close()
        assert first.metadata["truncated"] is True
        assert second.message == "test line 2"
        assert metric(service, "proxbus_syslog_malformed_total", reason="binary") == 1
        assert metric(service, "proxbus_syslog_truncated_total") == 1


async def test_tls_listener_receives_lines(nats_server: NatsServer, nc, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port, tls_port = free_udp_tcp_port(), free_udp_tcp_port()
    settings = make_settings(
        nats_server.url, port, syslog_tls_port=tls_port, syslog_tls_cert=cert, syslog_tls_key=key
    )
    sub = await nc.subscribe("proxbus.events.lab.syslog.>")
    async with running(settings):
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        _, writer = await asyncio.open_connection("127.0.0.1", tls_port, ssl=ctx)
        body = line(7)
        writer.write(b"%d %s" % (len(body), body))
        await writer.drain()
        event = Event.from_json((await sub.next_msg(10)).data)
        writer.close()
    assert event.metadata["transport"] == "tls"
    assert event.message == "test line 7"


@pytest.mark.parametrize(
    "bad",
    [
        "HOSTNAME_MAP=broken",
        "FILTER_DROP_REGEX=([",
        "SYSLOG_TIMEZONE=Mars/Base",
        "SYSLOG_TLS_PORT=6514",
    ],
)
def test_invalid_configuration_is_a_clear_error(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from proxbus_ingest_syslog.__main__ import main

    name, _, value = bad.partition("=")
    monkeypatch.setenv(name, value)
    assert main(["parse", "/nonexistent"]) == 2


async def test_disabled_by_the_seed_toggle_listens_on_nothing_but_stays_healthy(
    nats_server: NatsServer,
) -> None:
    import aiohttp

    port = free_udp_tcp_port()
    async with running(make_settings(nats_server.url, port, event_syslog_enabled=False)) as svc:
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        sink = svc.publisher
        assert isinstance(sink, SpoolingPublisher)
        await wait_until(lambda: sink.up)  # /health says 503 until events reach JetStream
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{svc.runtime.health.port}/health") as resp,
        ):
            assert resp.status == 200
