"""IMAP poller against a private dovecot: unseen mail in, \\Seen / moved only after the ack."""

from __future__ import annotations

import asyncio

import pytest
from aioimaplib import aioimaplib
from proxbus_events import EVENTS_STREAM, Event
from proxbus_runtime import PullConsumer


class Mailbox:
    """A second IMAP client: delivers mail by APPEND and inspects flags and folders."""

    def __init__(self, dovecot) -> None:
        self.dovecot = dovecot
        self.client: aioimaplib.IMAP4 | None = None

    async def __aenter__(self) -> Mailbox:
        self.client = aioimaplib.IMAP4(self.dovecot.host, self.dovecot.port, timeout=10)
        await self.client.wait_hello_from_server()
        response = await self.client.login(self.dovecot.user, self.dovecot.password)
        assert response.result == "OK", self.dovecot.log()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.client is not None
        await self.client.logout()

    async def append(self, raw: bytes, mailbox: str = "INBOX") -> None:
        assert self.client is not None
        response = await self.client.append(raw, mailbox=mailbox)
        assert response.result == "OK", response

    async def unseen(self, mailbox: str = "INBOX") -> int:
        assert self.client is not None
        status = await self.client.status(mailbox, "(UNSEEN)")
        line = bytes(status.lines[0]).decode()
        return int(line.rsplit("UNSEEN", 1)[1].strip(" )"))

    async def count(self, mailbox: str) -> int:
        assert self.client is not None
        status = await self.client.status(mailbox, "(MESSAGES)")
        line = bytes(status.lines[0]).decode()
        return int(line.rsplit("MESSAGES", 1)[1].strip(" )"))


def imap_settings(settings_for, nats_server, dovecot, **overrides):
    values = {
        "smtp_enabled": False,
        "imap_enabled": True,
        "imap_host": dovecot.host,
        "imap_port": dovecot.port,
        "imap_user": dovecot.user,
        "imap_password": dovecot.password,
        "imap_tls": False,
        **overrides,
    }
    return settings_for(nats_server, **values)


async def all_events(js) -> list[Event]:
    """Every event in the stream (fetching until the stream's message count is reached)."""
    expected = (await js.stream_info(EVENTS_STREAM)).state.messages
    consumer = PullConsumer(
        js, stream=EVENTS_STREAM, durable=None, filter_subject="proxbus.events.>"
    )
    await consumer.start()
    events: list[Event] = []
    for _ in range(20):
        events += [Event.from_json(m.data) for m in await consumer.fetch(batch=100, timeout=0.5)]
        if len(events) >= expected:
            break
    return events


async def test_unseen_mail_becomes_events_and_is_marked_seen(
    nats_server, js, dovecot, mails, settings_for, service_cm, until
):
    async with Mailbox(dovecot) as box:
        await box.append(mails.vzdump())  # before the poller starts
        settings = imap_settings(settings_for, nats_server, dovecot)
        async with service_cm(settings) as service:
            await until(lambda: service.imap.connected)
            await box.append(mails.replication("100-0"))  # while it IDLEs
            await until(lambda: service.imap.processed == 2)
            assert await box.unseen() == 0
            assert await box.count("INBOX") == 2  # marked seen, never deleted
    events = await all_events(js)
    assert sorted((e.kind, e.vmid, e.node) for e in events) == [
        ("backup.failed", 101, "pve1"),
        ("replication.failed", 100, "pve1"),
    ]
    assert all(e.metadata["via"] == "imap" for e in events)


async def test_broker_outage_leaves_mail_unseen_then_delivers_exactly_once(
    nats_server, js, dovecot, mails, settings_for, service_cm, until
):
    settings = imap_settings(settings_for, nats_server, dovecot)
    async with Mailbox(dovecot) as box, service_cm(settings) as service:
        await until(lambda: service.imap.connected)
        nats_server.stop()
        await box.append(mails.fencing("pve3"))
        failures = service.metrics.published.labels("imap")
        await until(lambda: service.imap._intake._publisher.stats.failures >= 1)
        assert await box.unseen() == 1
        assert failures._value.get() == 0
        nats_server.start()
        await until(lambda: service.imap.processed == 1, timeout=20)
        assert await box.unseen() == 0
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.messages == 1
    (event,) = await all_events(js)
    assert (event.kind, event.node, event.severity) == ("node.fencing", "pve3", "critical")


async def test_processed_mail_is_moved_to_the_configured_folder(
    nats_server, js, dovecot, mails, settings_for, service_cm, until
):
    settings = imap_settings(settings_for, nats_server, dovecot, imap_move_to="Proxmox Done")
    async with Mailbox(dovecot) as box, service_cm(settings) as service:
        await until(lambda: service.imap.connected)
        await box.append(mails.pbs("Verify Datastore 'store1' failed"))
        await box.append((bytes(range(128, 256)) + b"\r\n") * 10)  # garbage: rejected, moved
        await until(lambda: service.imap.processed == 2)
        assert await box.count("INBOX") == 0
        assert await box.count('"Proxmox Done"') == 2
        assert service.metrics.rejected.labels("imap", "not_a_mail")._value.get() == 1
    (event,) = await all_events(js)
    assert event.kind == "verify.failed"


async def test_oversize_mail_is_not_fetched_but_counted_and_marked(
    nats_server, js, dovecot, mails, settings_for, service_cm, until
):
    settings = imap_settings(settings_for, nats_server, dovecot, imap_max_size=64 * 1024)
    big = mails.notification("big", "x" * 200_000)
    async with Mailbox(dovecot) as box, service_cm(settings) as service:
        await until(lambda: service.imap.connected)
        await box.append(big)
        await box.append(mails.fencing("pve4"))
        await until(lambda: service.imap.processed == 2)
        assert await box.unseen() == 0
        assert service.metrics.rejected.labels("imap", "too_large")._value.get() == 1
    (event,) = await all_events(js)
    assert event.node == "pve4"


async def test_polling_mode_without_idle_processes_mail(
    nats_server, js, dovecot, mails, settings_for, service_cm, until
):
    settings = imap_settings(
        settings_for, nats_server, dovecot, imap_idle=False, imap_poll_seconds=0.2
    )
    async with Mailbox(dovecot) as box, service_cm(settings) as service:
        await until(lambda: service.imap.connected)
        await box.append(mails.updates())
        await until(lambda: service.imap.processed == 1)
        assert await box.unseen() == 0
    (event,) = await all_events(js)
    assert event.kind == "updates.available"


async def test_poller_reconnects_after_the_server_restarts(
    nats_server, js, dovecot, mails, settings_for, service_cm, until
):
    settings = imap_settings(settings_for, nats_server, dovecot)
    async with service_cm(settings) as service:
        await until(lambda: service.imap.connected)
        dovecot.stop()
        await until(lambda: not service.imap.connected)
        dovecot.start()
        async with Mailbox(dovecot) as box:
            await box.append(mails.replication("200-0"))
            await until(lambda: service.imap.processed == 1, timeout=20)
            assert await box.unseen() == 0
        assert service.metrics.imap_reconnects._value.get() >= 1
    (event,) = await all_events(js)
    assert (event.kind, event.vmid) == ("replication.failed", 200)


async def test_unreachable_server_is_retried_with_backoff_not_a_crash(
    nats_server, settings_for, service_cm, until
):
    settings = settings_for(
        nats_server,
        smtp_enabled=False,
        imap_enabled=True,
        imap_host="127.0.0.1",
        imap_port=1,  # refuses connections
        imap_tls=False,
        imap_user="pve",
        imap_password="x",
        imap_backoff_max=0.2,
    )
    async with service_cm(settings) as service:
        await until(lambda: service.metrics.imap_reconnects._value.get() >= 2)
        assert service.metrics.imap_errors._value.get() >= 2
        assert not service.imap.connected


async def test_wrong_password_is_retried_and_counted_not_a_crash(
    nats_server, dovecot, settings_for, service_cm, until
):
    settings = imap_settings(
        settings_for, nats_server, dovecot, imap_password="wrong", imap_backoff_max=0.2
    )
    async with service_cm(settings) as service:
        await until(lambda: service.metrics.imap_errors._value.get() >= 2)
        assert not service.imap.connected
        assert service.health.port  # the service itself keeps running


async def test_imap_without_credentials_is_a_clear_startup_error(nats_server, settings_for):
    from proxbus_events import ConfigError
    from proxbus_ingest_email.app import EmailService

    service = EmailService(settings_for(nats_server, imap_enabled=True, imap_user=""))
    with pytest.raises(ConfigError, match="IMAP_USER"):  # exit 2 from the console script
        await service.run(asyncio.Event())
