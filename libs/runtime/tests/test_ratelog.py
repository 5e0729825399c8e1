"""RateLimitedLog: a flood costs one line per interval with the counts, not a line each."""

from __future__ import annotations

import asyncio
import logging

from proxbus_runtime.ratelog import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_flood_is_one_first_line_plus_one_summary_per_interval(caplog):
    clock = Clock()
    log = logging.getLogger("test.ratelog")
    limited = RateLimitedLog(log, "refused connections", interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.ratelog"):
        for i in range(9001):
            clock.now = i / 1000  # 9 s of flood
            limited.record("per_peer", "10.0.0.1" if i % 2 else "10.0.0.2")
        assert len(caplog.records) == 1
        clock.now = 10.5
        limited.record("total", "10.0.0.3")
        clock.now = 21.0
        limited.record("total", "10.0.0.3")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "refused connections: per_peer from 10.0.0.2"
    assert lines[1].startswith("refused connections: 9000 more in the last 10s (per_peer=9000)")
    assert "10.0.0.1=4500" in lines[1]
    assert lines[2].startswith("refused connections: 1 more in the last 10s (total=1)")
    assert len(lines) == 3
    assert limited.total == 9003


def test_quiet_interval_logs_the_next_occurrence_at_once(caplog):
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("test.quiet"), "bad bodies", clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.quiet"):
        limited.record("depth", "a")
        clock.now = 30.0
        limited.record("size", "b", "300000 bytes")
    assert [r.getMessage() for r in caplog.records] == [
        "bad bodies: depth from a",
        "bad bodies: size from b (300000 bytes)",
    ]


async def test_summary_is_written_when_the_flood_stops(caplog):
    limited = RateLimitedLog(logging.getLogger("test.timer"), "refused", interval=0.05)
    done = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="test.timer"):
        for _ in range(5):
            limited.record("per_peer", "p")
        loop = asyncio.get_running_loop()
        while limited.lines < 2:
            waiter = loop.call_later(0.01, done.set)
            await asyncio.wait_for(done.wait(), 5)
            done.clear()
            waiter.cancel()
    assert caplog.records[-1].getMessage().startswith("refused: 4 more")


def test_sources_are_bounded():
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("test.bound"), "x", clock=clock)
    for i in range(5000):
        limited.record("r", f"peer{i}")
    assert len(limited._sources) <= 1024
    assert limited._other_sources == 5000 - 1 - 1024


def test_reasons_are_bounded_and_so_is_the_summary_line(caplog):
    # A reason may carry what a client chose (a request path, a command name): 10,000 distinct
    # ones in an interval must not be 10,000 counters nor a summary line listing them all.
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("test.reasons"), "refused", clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.reasons"):
        for i in range(10_000):
            limited.record(f"403 /console/dlq/{i}/discard", "10.0.0.1")
        assert len(limited._reasons) <= 65
        clock.now = 11.0
        limited.flush()
    summary = caplog.records[-1].getMessage()
    assert summary.startswith("refused: 9999 more in the last 10s (")
    assert "other reasons=" in summary
    assert len(summary) < 4000, len(summary)
