"""Filters: minimum severity, app and regex keep/drop, per-source token bucket."""

from __future__ import annotations

from proxbus_events import Severity
from proxbus_ingest_syslog.filters import LineFilter, SourceLimiter
from proxbus_ingest_syslog.parse import SyslogMessage


def _msg(app: str | None = "pvedaemon", text: str = "hello") -> SyslogMessage:
    return SyslogMessage(pri=30, message=text, format="rfc3164", app=app)


def test_everything_passes_by_default() -> None:
    assert LineFilter().check(_msg(), Severity.DEBUG, "a") is None


def test_minimum_severity_drops_lower_lines() -> None:
    f = LineFilter(min_severity=Severity.WARNING)
    assert f.check(_msg(), Severity.INFO, "a") == "severity"
    assert f.check(_msg(), Severity.WARNING, "a") is None


def test_drop_and_keep_by_app_name() -> None:
    assert LineFilter(drop_apps=["CRON"]).check(_msg("cron"), Severity.INFO, "a") == "app"
    keep = LineFilter(keep_apps=["pvedaemon", "kernel"])
    assert keep.check(_msg("pvedaemon"), Severity.INFO, "a") is None
    assert keep.check(_msg("systemd"), Severity.INFO, "a") == "app"
    assert keep.check(_msg(None), Severity.INFO, "a") == "app"


def test_drop_and_keep_by_regex() -> None:
    drop = LineFilter(drop_regex=r"session-\d+\.scope")
    assert drop.check(_msg(text="Started session-4.scope"), Severity.INFO, "a") == "regex"
    keep = LineFilter(keep_regex=r"UPID:")
    assert keep.check(_msg(text="no task"), Severity.INFO, "a") == "regex"
    assert keep.check(_msg(text="end task UPID:x"), Severity.INFO, "a") is None


def test_rate_limit_is_per_source_and_refills() -> None:
    now = [0.0]
    f = LineFilter(rate=2.0, burst=3, clock=lambda: now[0])
    results = [f.check(_msg(), Severity.INFO, "pve1") for _ in range(5)]
    assert results == [None, None, None, "rate_limited", "rate_limited"]
    assert f.check(_msg(), Severity.INFO, "pve2") is None
    now[0] = 1.0  # two tokens back
    assert [f.check(_msg(), Severity.INFO, "pve1") for _ in range(3)] == [
        None, None, "rate_limited",
    ]  # fmt: skip
    assert f.limiter is not None
    assert f.limiter.take_overflow() == {"pve1": 3}
    assert f.limiter.take_overflow() == {}


def test_source_limiter_forgets_oldest_sources_beyond_its_bound() -> None:
    bucket = SourceLimiter(1.0, 1, max_sources=2, clock=lambda: 0.0)
    assert bucket.allow("a")
    assert bucket.allow("b")
    assert bucket.allow("c")
    assert bucket.allow("a")  # "a" was evicted, so it starts with a full bucket again
