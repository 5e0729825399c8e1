"""The per-source rate limit holds against a sender that changes its claimed host name.

It used to be keyed on the host name inside the message: a flooding sender writing a new name on
every line got a fresh burst each time and was never limited. Now it is keyed on the sending
address by default (``RATE_LIMIT_BY=peer``); ``host`` keeps one bucket per claimed name for
rsyslog relays, with at most ``RATE_LIMIT_HOSTS_PER_PEER`` names per address.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from proxbus_devtools.testing import NatsServer
from proxbus_events import EVENTS_STREAM, Event
from proxbus_ingest_syslog.filters import RateKey
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.metrics import SyslogMetrics
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.settings import Settings
from proxbus_runtime import PullConsumer

from .conftest import free_udp_tcp_port, line, make_settings, metric, running, wait_until


def _pipeline(**settings: object) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    return Pipeline(Settings(**settings), SyslogMetrics(registry)), registry


def _frames(hosts: list[str]) -> list[Frame]:
    return [Frame(line(i, host=h)) for i, h in enumerate(hosts)]


def test_a_sender_rotating_host_names_is_limited_on_its_address() -> None:
    pipeline, reg = _pipeline(rate_limit_per_source=0.001, rate_limit_burst=5)
    flood = pipeline.process(_frames([f"fake{i}" for i in range(500)]), "udp", "192.0.2.9")
    assert len(flood) == 5
    assert reg.get_sample_value("proxbus_syslog_rate_limited_total") == 495
    # Another address, within its limit, is not affected.
    good = pipeline.process(_frames(["pve2"] * 5), "udp", "192.0.2.10")
    assert len(good) == 5


def test_a_relay_keeps_one_limit_per_host_with_the_host_key() -> None:
    pipeline, _ = _pipeline(
        rate_limit_per_source=0.001,
        rate_limit_burst=3,
        rate_limit_by="host",
        rate_limit_hosts_per_peer=4,
    )
    relay = "192.0.2.1"
    # Four nodes behind one rsyslog relay: each has its own burst of 3.
    nodes = pipeline.process(_frames(["pve1", "pve2", "pve3", "pve4"] * 3), "tcp", relay)
    assert len(nodes) == 12
    assert len(pipeline.process(_frames(["pve1"]), "tcp", relay)) == 0  # pve1 over its limit
    # Names beyond RATE_LIMIT_HOSTS_PER_PEER share one bucket: rotating names stops paying.
    flood = pipeline.process(_frames([f"fake{i}" for i in range(200)]), "tcp", relay)
    assert len(flood) == 3
    # The same names from another address have their own buckets.
    assert len(pipeline.process(_frames(["pve1"]), "tcp", "192.0.2.2")) == 1


def test_the_host_key_memory_stays_bounded() -> None:
    keys = RateKey("host", hosts_per_peer=50, max_names=1000)
    for peer in range(100):
        for host in range(100):
            keys.key(f"10.0.{peer}.1", f"host{host}")
    assert keys.names <= 1000
    assert len(keys.key("10.0.0.1", "x" * 100_000)) < 400  # a long name is cut


def test_an_unknown_rate_limit_by_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_limit_by"):
        Settings(rate_limit_by="hostname")


async def _send_tcp(port: int, lines: list[bytes], source: str) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(b"".join(b + b"\n" for b in lines))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def _send_udp(port: int, lines: list[bytes], source: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        for b in lines:
            s.sendto(b, ("127.0.0.1", port))


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_the_service_limits_a_rotating_sender_and_serves_another(
    nats_server: NatsServer, js: JetStreamContext, transport: str
) -> None:
    port = free_udp_tcp_port()
    rate, burst = 1.0, 10
    settings = make_settings(
        nats_server.url,
        port,
        syslog_host="0.0.0.0",  # 127.0.0.2 must reach it too
        rate_limit_per_source=rate,
        rate_limit_burst=burst,
    )
    flood = [line(i, host=f"fake{i}") for i in range(300)]
    good = [line(i, host="good") for i in range(5)]
    async with running(settings) as service:
        started = time.monotonic()
        if transport == "tcp":
            await _send_tcp(port, flood, "127.0.0.1")
            await _send_tcp(port, good, "127.0.0.2")
        else:
            _send_udp(port, flood, "127.0.0.1")
            _send_udp(port, good, "127.0.0.2")
        total = len(flood) + len(good)
        await wait_until(
            lambda: metric(service, "proxbus_syslog_received_total", transport=transport) == total
        )
        elapsed = time.monotonic() - started
        limited = metric(service, "proxbus_syslog_rate_limited_total")
        # The flood got its burst plus what refilled meanwhile; the good sender lost nothing.
        assert limited >= len(flood) - burst - rate * elapsed - 1
        consumer = PullConsumer(
            js,
            stream=EVENTS_STREAM,
            durable=None,
            filter_subject="proxbus.events.lab.syslog.*.good",
        )
        await consumer.start()
        events: list[Event] = []

        async def stored() -> bool:
            for msg in await consumer.fetch(batch=10, timeout=0.2):
                events.append(Event.from_json(msg.data))
            return len(events) >= len(good)

        await wait_until(stored)
        assert len(events) == len(good)
