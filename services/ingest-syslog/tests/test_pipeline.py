"""Pipeline: every frame is an event or is counted (malformed, filtered, rate limited)."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry
from proxbus_ingest_syslog.classify import Classification, Classifier, rule
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.metrics import SyslogMetrics
from proxbus_ingest_syslog.parse import SyslogMessage
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.settings import Settings


def _run(frames: list[bytes], **settings: object) -> tuple[int, CollectorRegistry]:
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(**settings), SyslogMetrics(registry))
    events = pipeline.process([Frame(f) for f in frames], "udp", "192.0.2.9")
    return len(events), registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_every_frame_is_an_event_or_counted() -> None:
    frames = [
        b"<30>Nov 24 10:00:00 pve1 cron[1]: noise",
        b"<31>Nov 24 10:00:00 pve1 app[1]: debug line",
        b"<27>Nov 24 10:00:00 pve1 app[1]: real error",
        b"garbage",
        b"",
    ]
    n, reg = _run(frames, filter_min_severity="info", filter_drop_apps="cron")
    assert n == 1
    assert _value(reg, "proxbus_syslog_received_total", transport="udp") == 5
    assert _value(reg, "proxbus_syslog_parsed_total") == 3
    assert _value(reg, "proxbus_syslog_malformed_total", reason="no_header") == 1
    assert _value(reg, "proxbus_syslog_malformed_total", reason="empty") == 1
    assert _value(reg, "proxbus_syslog_filtered_total", reason="severity") == 1
    assert _value(reg, "proxbus_syslog_filtered_total", reason="app") == 1
    assert _value(reg, "proxbus_syslog_events_total", kind="syslog.message") == 1


def test_classified_error_survives_a_severity_filter_through_its_floor() -> None:
    upid = "UPID:pve1:00003039:00A1B2C3:65F0A1B2:qmstart:100:root@pam:"
    line = f"<30>Nov 24 10:00:00 pve1 pvedaemon[1]: <root@pam> end task {upid} boom".encode()
    n, _ = _run([line], filter_min_severity="error")
    assert n == 1


def test_rate_limit_overflow_is_counted_per_source() -> None:
    frames = [f"<30>Nov 24 10:00:00 pve1 app[1]: line {i}".encode() for i in range(10)]
    n, reg = _run(frames, rate_limit_per_source=1, rate_limit_burst=4)
    assert n == 4
    assert _value(reg, "proxbus_syslog_rate_limited_total") == 6
    assert _value(reg, "proxbus_syslog_filtered_total", reason="rate_limited") == 6


def test_a_failing_rule_costs_one_line_not_the_batch(caplog: pytest.LogCaptureFixture) -> None:
    def broken(m: re.Match[str], msg: SyslogMessage) -> Classification:
        raise RuntimeError("bug")

    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(), SyslogMetrics(registry))
    pipeline.classifier = Classifier([rule("broken", "app", "^boom", "disk.error", broken)])
    frames = [
        Frame(b"<30>Nov 24 10:00:00 pve1 app[1]: boom"),
        Frame(b"<30>Nov 24 10:00:00 pve1 app[1]: fine"),
    ]
    events = pipeline.process(frames, "tcp", "192.0.2.9")
    assert [e.message for e in events] == ["fine"]
    assert _value(registry, "proxbus_syslog_malformed_total", reason="internal_error") == 1
    assert "could not turn a syslog line into an event" in caplog.text
