"""Frames → parsed lines → classified, filtered events (no I/O; shared by UDP, TCP and CLI)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime

from proxbus_events import Event
from pydantic import ValidationError

from .classify import Classifier
from .filters import RATE_LIMITED, LineFilter
from .frames import Frame
from .metrics import SyslogMetrics
from .normalize import NodeNamer, build_event, line_severity
from .parse import Rejection, SyslogMessage, parse_syslog
from .settings import Settings, split_list

log = logging.getLogger(__name__)

_LOG_EVERY = 10.0  # seconds between two "malformed lines" / "rate limited" log lines


class Pipeline:
    """Turns a batch of frames into events, counting every line that does not become one."""

    def __init__(self, settings: Settings, metrics: SyslogMetrics | None = None) -> None:
        self.site = settings.site
        self.tz = settings.timezone()
        self.classifier = Classifier()
        self.node_of = NodeNamer(settings.hostnames())
        self.filter = LineFilter(
            min_severity=settings.filter_min_severity,
            drop_apps=split_list(settings.filter_drop_apps),
            keep_apps=split_list(settings.filter_keep_apps),
            drop_regex=settings.filter_drop_regex,
            keep_regex=settings.filter_keep_regex,
            rate=settings.rate_limit_per_source,
            burst=settings.rate_limit_burst,
            rate_key=settings.rate_limit_by,
            hosts_per_peer=settings.rate_limit_hosts_per_peer,
        )
        self.metrics = metrics
        self._malformed_since_log: Counter[str] = Counter()
        self._last_log = 0.0
        self._logged_internal_error = False

    def parse(self, frame: Frame, received_at: datetime) -> SyslogMessage | Rejection:
        return parse_syslog(
            frame.data, received_at=received_at, tz=self.tz, truncated=frame.truncated
        )

    def event_or_rejection(
        self, frame: Frame, received_at: datetime | None = None
    ) -> Event | Rejection:
        """One frame without filters (the ``parse`` command)."""
        now = received_at or datetime.now(UTC)
        parsed = self.parse(frame, now)
        if isinstance(parsed, Rejection):
            return parsed
        try:
            return build_event(
                parsed,
                self.classifier.classify(parsed),
                site=self.site,
                node_of=self.node_of,
                received_at=now,
            )
        except ValidationError:
            return Rejection("invalid_event")

    def process(self, frames: list[Frame], transport: str, peer: str) -> list[Event]:
        """The events for a received batch, in order; rejections and filtered lines counted."""
        now = datetime.now(UTC)
        out: list[Event] = []
        malformed: Counter[str] = Counter()
        filtered: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        truncated = 0
        extra = {"transport": transport, "peer": peer}
        classify = self.classifier.classify
        check = self.filter.check
        for frame in frames:
            parsed = self.parse(frame, now)
            if isinstance(parsed, Rejection):
                malformed[parsed.reason] += 1
                continue
            truncated += frame.truncated
            try:
                cls = classify(parsed, peer)
                severity = line_severity(parsed, cls)
                reason = check(parsed, severity, peer)
                if reason is not None:
                    filtered[reason] += 1
                    continue
                event = build_event(
                    parsed,
                    cls,
                    site=self.site,
                    node_of=self.node_of,
                    received_at=now,
                    severity=severity,
                    extra=extra,
                )
            except ValidationError:
                malformed["invalid_event"] += 1
                continue
            except Exception:  # a bug must cost one line, never the connection
                malformed["internal_error"] += 1
                if not self._logged_internal_error:
                    self._logged_internal_error = True
                    log.exception("could not turn a syslog line into an event")
                continue
            kinds[cls.kind] += 1
            out.append(event)
        m = self.metrics
        if m is not None:
            m.received[transport].inc(len(frames))
            m.parsed.inc(len(frames) - sum(malformed.values()))
            if truncated:
                m.truncated.inc(truncated)
            for reason, n in malformed.items():
                m.malformed.labels(reason).inc(n)
            for reason, n in filtered.items():
                m.filtered.labels(reason).inc(n)
                if reason == RATE_LIMITED:
                    m.rate_limited.inc(n)
            for kind, n in kinds.items():
                m.events.labels(kind).inc(n)
        if malformed:
            self._malformed_since_log.update(malformed)
        if self._malformed_since_log or filtered.get(RATE_LIMITED):
            self._log_rejections()
        return out

    def _log_rejections(self) -> None:
        now = time.monotonic()
        if now - self._last_log < _LOG_EVERY:
            return
        self._last_log = now
        if self._malformed_since_log:
            counts = ", ".join(f"{k}={v}" for k, v in sorted(self._malformed_since_log.items()))
            log.warning("rejected malformed syslog frames (%s)", counts)
            self._malformed_since_log.clear()
        limiter = self.filter.limiter
        if limiter is not None:
            over = limiter.take_overflow()
            if over:
                top = ", ".join(
                    f"{s}={n}" for s, n in sorted(over.items(), key=lambda i: -i[1])[:5]
                )
                log.warning("rate limit refused lines from %d source(s): %s", len(over), top)
