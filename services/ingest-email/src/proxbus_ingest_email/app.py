"""Wires NATS, the publisher, the SMTP receiver, the IMAP poller and /health + /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CollectorRegistry
from proxbus_runtime import (
    EventPublisher,
    HealthServer,
    connect_nats,
    ensure_streams,
    register_publisher,
)

from .imap import ImapPoller
from .intake import MailIntake
from .metrics import IngestMetrics
from .seen import HOUR, SeenMessageIds
from .settings import Settings
from .smtp import SmtpReceiver

log = logging.getLogger(__name__)

SERVICE = "ingest-email"


class EmailService:
    """The running service; ``run(stop)`` returns after a clean shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self.health = HealthServer(settings.health_host, settings.health_port, self.registry)
        self.smtp: SmtpReceiver | None = None
        self.imap: ImapPoller | None = None
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        if s.imap_active and not (s.imap_user and s.imap_password.get_secret_value()):
            raise ValueError("IMAP_ENABLED needs IMAP_USER and IMAP_PASSWORD")
        if not (s.smtp_active or s.imap_active):
            log.warning("neither SMTP nor IMAP intake is enabled; serving health only")
        nc = await connect_nats(s, name=f"proxbus-{SERVICE}")
        imap_task: asyncio.Task[None] | None = None
        publisher: EventPublisher | None = None
        try:
            js = nc.jetstream(timeout=5)
            await ensure_streams(js, s.stream_limits())
            publisher = EventPublisher(js)
            register_publisher(self.registry, publisher, SERVICE)
            # Issue 14: Message-IDs of stored mails, so a retry hours later is one event.
            seen = await SeenMessageIds.open(
                js, s.email_dedup_hours * HOUR, lambda: nc.is_connected
            )
            intake_smtp = MailIntake(
                publisher,
                self.metrics,
                site=s.site,
                publish_timeout=s.smtp_publish_timeout,
                seen=seen,
            )
            intake_imap = MailIntake(
                publisher,
                self.metrics,
                site=s.site,
                publish_timeout=s.imap_publish_timeout,
                seen=seen,
            )
            self.health.add_check("nats", lambda: nc.is_connected)
            if s.smtp_active:
                self.smtp = SmtpReceiver(s, intake_smtp, self.metrics)
                await self.smtp.start()
                smtp = self.smtp
                self.health.add_check("smtp", lambda: smtp.listening)
            if s.imap_active:
                self.imap = ImapPoller(s, intake_imap, self.metrics)
                imap_task = asyncio.create_task(self.imap.run(stop), name="imap-poller")
            await self.health.start()
            self.ready.set()
            await stop.wait()
            log.info("stopping intake")
        finally:
            if self.smtp is not None:
                await self.smtp.stop(grace=4.0)
            if imap_task is not None:
                try:
                    await asyncio.wait_for(imap_task, 4.0)
                except (TimeoutError, asyncio.CancelledError):
                    imap_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await imap_task
            if publisher is not None:
                await publisher.close(timeout=2.0)
            await self.health.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.drain(), 2.0)
            if not nc.is_closed:
                await nc.close()


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the service until ``stop`` is set."""
    await EmailService(settings).run(stop)
