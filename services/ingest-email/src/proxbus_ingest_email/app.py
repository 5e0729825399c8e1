"""The SMTP receiver and the IMAP poller on the runtime (NATS, publisher, health, shutdown)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from prometheus_client import CollectorRegistry
from proxbus_events import ConfigError
from proxbus_runtime import HealthServer, Service

from .imap import ImapPoller
from .intake import MailIntake
from .metrics import IngestMetrics
from .seen import HOUR, SeenMessageIds
from .settings import Settings
from .smtp import SmtpReceiver

log = logging.getLogger(__name__)

SERVICE = "ingest-email"
_INTAKE_GRACE = 4.0  # seconds open SMTP sessions and an IMAP fetch get to finish at shutdown


class EmailService:
    """The running service; ``run(stop)`` returns after a clean shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self.runtime: Service | None = None
        self.smtp: SmtpReceiver | None = None
        self.imap: ImapPoller | None = None
        self._imap_task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    @property
    def health(self) -> HealthServer:
        assert self.runtime is not None
        return self.runtime.health

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        if s.imap_active and not (s.imap_user and s.imap_password.get_secret_value()):
            raise ConfigError("IMAP_ENABLED needs IMAP_USER and IMAP_PASSWORD")
        if not (s.smtp_active or s.imap_active):
            log.warning("neither SMTP nor IMAP intake is enabled; serving health only")
        async with Service(s, SERVICE, stop=stop, registry=self.registry) as runtime:
            self.runtime = runtime
            assert runtime.js is not None
            assert runtime.publisher is not None
            # Issue 14: Message-IDs of stored mails, so a retry hours later is one event.
            seen = await SeenMessageIds.open(
                runtime.js, s.email_dedup_hours * HOUR, lambda: runtime.connected
            )
            runtime.on_stop(self._stop_intake)
            if s.smtp_active:
                intake = MailIntake(runtime.publisher, self.metrics, site=s.site,
                                    publish_timeout=s.smtp_publish_timeout, seen=seen)  # fmt: skip
                smtp = self.smtp = SmtpReceiver(s, intake, self.metrics)
                await smtp.start()
                runtime.health.add_check("smtp", lambda: smtp.listening)
            if s.imap_active:
                intake = MailIntake(runtime.publisher, self.metrics, site=s.site,
                                    publish_timeout=s.imap_publish_timeout, seen=seen)  # fmt: skip
                self.imap = ImapPoller(s, intake, self.metrics)
                self._imap_task = runtime.start_task(self.imap.run(stop), name="imap-poller")
            await runtime.start_http()
            self.ready.set()
            await runtime.serve()
            log.info("stopping intake")

    async def _stop_intake(self, seconds: float) -> None:
        """SMTP sessions and the IMAP fetch in flight finish together, within the budget."""
        grace = max(0.5, min(_INTAKE_GRACE, seconds / 2))
        waits: list[Awaitable[object]] = []
        if self.smtp is not None:
            waits.append(self.smtp.stop(grace=grace))
        if self._imap_task is not None:
            waits.append(asyncio.wait({self._imap_task}, timeout=grace))
        await asyncio.gather(*waits)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the service until ``stop`` is set."""
    await EmailService(settings).run(stop)
