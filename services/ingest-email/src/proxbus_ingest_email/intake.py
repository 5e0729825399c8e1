"""Mail intake shared by SMTP and IMAP: parse, classify, publish, count."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from proxbus_events import Event, event_subject
from proxbus_runtime import EventPublisher, RateLimitedLog

from .body import MailBody, release_memory
from .classify import Rejection, build_event
from .metrics import IngestMetrics
from .mime import parse_mail
from .seen import SeenMessageIds

log = logging.getLogger(__name__)

# Mails larger than this are parsed in a worker thread so the event loop keeps serving.
_THREAD_PARSE_BYTES = 256 * 1024


@dataclass(slots=True)
class IngestResult:
    """The outcome of one mail: an acknowledged event, or a rejection."""

    event: Event | None = None
    rejection: Rejection | None = None
    duplicate: bool = False


def mail_to_event(raw: bytes, *, site: str, via: str = "") -> Event | Rejection:
    """Parse and classify ``raw`` (pure; never raises)."""
    return build_event(raw, parse_mail(raw), site=site, via=via)


class MailIntake:
    """Turns raw mail into events and publishes each, waiting for the JetStream ack."""

    def __init__(
        self,
        publisher: EventPublisher,
        metrics: IngestMetrics,
        *,
        site: str,
        publish_timeout: float = 10.0,
        seen: SeenMessageIds | None = None,
    ) -> None:
        self._publisher = publisher
        self._metrics = metrics
        self._site = site
        self._timeout = publish_timeout
        self._seen = seen
        self._late_tasks: set[asyncio.Task[None]] = set()
        self._rejected_log = RateLimitedLog(log, "rejected mail")

    def prepare(self, raw: bytes, via: str) -> Event | Rejection:
        """Parse and classify, counting received / parsed / rejected / anomalies."""
        self._metrics.received.labels(via).inc()
        mail = parse_mail(raw)
        for anomaly in mail.anomalies:
            self._metrics.anomalies.labels(anomaly).inc()
        result = build_event(raw, mail, site=self._site, via=via)
        if isinstance(result, Rejection):
            self._metrics.rejected.labels(via, result.reason).inc()
        else:
            self._metrics.parsed.labels(result.kind).inc()
            if mail.anomalies:
                log.info("mail %s read best-effort: %s", mail.message_id, ",".join(mail.anomalies))
        return result

    def _prepare_body(self, body: MailBody, via: str) -> Event | Rejection:
        raw = body.read()
        try:
            return self.prepare(raw, via)
        finally:
            del raw
            release_memory()

    async def ingest_body(self, body: MailBody, via: str) -> IngestResult:
        """``ingest`` for a received DATA body (a spooled one is read back in a thread).

        Raises:
            PublishError: JetStream did not acknowledge; the caller must not ack its source.
        """
        if body.spooled or body.size > _THREAD_PARSE_BYTES:
            result = await asyncio.to_thread(self._prepare_body, body, via)
        else:
            result = self.prepare(body.read(), via)
        return await self._publish(result, via)

    async def ingest(self, raw: bytes, via: str) -> IngestResult:
        """Parse, classify and publish ``raw``; returns once JetStream acknowledged.

        Raises:
            PublishError: JetStream did not acknowledge; the caller must not ack its source.
        """
        if len(raw) > _THREAD_PARSE_BYTES:
            result = await asyncio.to_thread(self.prepare, raw, via)
        else:
            result = self.prepare(raw, via)
        return await self._publish(result, via)

    async def _publish(self, result: Event | Rejection, via: str) -> IngestResult:
        if isinstance(result, Rejection):
            # Any sender can make this happen: one line per interval, the rest counted.
            self._rejected_log.record(result.reason, via, result.detail)
            return IngestResult(rejection=result)
        message_id = result.metadata.get("message_id")
        if self._seen is not None and isinstance(message_id, str) and message_id:
            stored_as = await self._seen.get(message_id)
            if stored_as is not None:
                # Re-sent after JetStream's 2-minute duplicate window (an MTA retrying
                # after a 451): already stored, acknowledge without storing it again.
                self._metrics.duplicates.labels(via).inc()
                log.info("mail via %s: Message-ID %s already stored as %s",
                         via, message_id, stored_as)  # fmt: skip
                stored = result.model_copy(update={"id": stored_as})
                return IngestResult(event=stored, duplicate=True)
        late_ack = None
        if self._seen is not None and isinstance(message_id, str) and message_id:
            seen, event_id = self._seen, result.id

            def late_ack() -> None:
                # Stored after we answered 451 (a stalled broker read it late): record it,
                # so the sender's retry is recognised instead of stored a second time.
                task = asyncio.get_running_loop().create_task(seen.remember(message_id, event_id))
                self._late_tasks.add(task)
                task.add_done_callback(self._late_tasks.discard)

        ack = await self._publisher.publish(result, timeout=self._timeout, late_ack=late_ack)
        if self._seen is not None and isinstance(message_id, str) and message_id:
            await self._seen.remember(message_id, result.id)
        self._metrics.published.labels(via).inc()
        if ack.duplicate:
            self._metrics.duplicates.labels(via).inc()
        log.info(
            "mail via %s -> %s %s (%s)%s",
            via,
            result.kind,
            event_subject(result),
            result.title,
            " [duplicate]" if ack.duplicate else "",
        )
        return IngestResult(event=result, duplicate=bool(ack.duplicate))
