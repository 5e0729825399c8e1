"""Issue 19: one peer cannot take every TCP connection; refusals are summarised, not logged each."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.js import JetStreamContext
from proxbus_devtools.testing import NatsServer
from proxbus_events import EVENTS_STREAM, Event
from proxbus_runtime import PullConsumer

from .conftest import free_udp_tcp_port, line, make_settings, metric, running, wait_until


async def test_one_peer_holding_its_share_does_not_lock_out_another_peer(
    nats_server: NatsServer, js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_udp_tcp_port()
    settings = make_settings(
        nats_server.url,
        port,
        syslog_host="0.0.0.0",  # 127.0.0.2 must reach it too
        syslog_udp=False,
        syslog_max_connections=20,
        syslog_peer_share=0.25,
    )
    held: list[asyncio.StreamWriter] = []
    caplog.set_level(logging.INFO, logger="proxbus_ingest_syslog")
    async with running(settings) as service:
        # The hostile peer opens as many connections as the whole service allows, and more.
        for _ in range(60):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            held.append(writer)
        await wait_until(
            lambda: (
                metric(service, "proxbus_syslog_connections_refused_total", reason="per_peer") == 55
            )
        )
        assert metric(service, "proxbus_syslog_connections") == 5
        # The budgets themselves are metrics too (alert on use / budget).
        assert metric(service, "proxbus_syslog_budget", budget="max_connections") == 20
        assert metric(service, "proxbus_syslog_budget", budget="max_connections_per_peer") == 5
        # Another peer's line is stored.
        _, other = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
        other.write(line(1, host="pve2") + b"\n")
        await other.drain()
        consumer = PullConsumer(
            js, stream=EVENTS_STREAM, durable=None, filter_subject="proxbus.events.>"
        )
        await consumer.start()
        events: list[Event] = []

        async def stored() -> bool:
            for msg in await consumer.fetch(batch=10, timeout=0.2):
                events.append(Event.from_json(msg.data))
            return bool(events)

        await wait_until(stored)
        assert [(e.node, e.metadata["peer"]) for e in events] == [("pve2", "127.0.0.2")]
        other.close()
        for writer in held:
            writer.close()
    refusals = [r for r in caplog.records if "refused syslog connection" in r.getMessage()]
    assert 1 <= len(refusals) <= 2, [r.getMessage() for r in refusals]
    assert all(r.levelno == logging.WARNING for r in refusals)
