"""Filters applied before publishing: minimum severity, app/regex keep/drop, rate limit."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from proxbus_events import Severity
from proxbus_runtime import TokenBucket

from .parse import SyslogMessage

# Why a line was filtered; also the ``reason`` label of the metric.
SEVERITY = "severity"
APP = "app"
REGEX = "regex"
RATE_LIMITED = "rate_limited"


class SourceLimiter:
    """One ``TokenBucket`` per source (``rate`` lines/s, ``burst`` capacity), bounded in number."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_sources = max_sources
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.overflow: dict[str, int] = {}

    def allow(self, source: str, now: float | None = None) -> bool:
        """Take one token for ``source``; ``False`` (counted in ``overflow``) if none is left."""
        now = self._clock() if now is None else now
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._buckets.popitem(last=False)
            bucket = self._buckets[source] = TokenBucket(self.rate, self.burst, now=now)
        else:
            self._buckets.move_to_end(source)
        if bucket.try_take(now):
            return True
        self.overflow[source] = self.overflow.get(source, 0) + 1
        return False

    def take_overflow(self) -> dict[str, int]:
        """Per-source refused counts since the last call (for a periodic log line)."""
        out, self.overflow = self.overflow, {}
        return out


class LineFilter:
    """Decides whether a parsed line is published; ``check`` returns ``None`` or a reason."""

    def __init__(
        self,
        *,
        min_severity: Severity = Severity.DEBUG,
        drop_apps: Iterable[str] = (),
        keep_apps: Iterable[str] = (),
        drop_regex: str = "",
        keep_regex: str = "",
        rate: float = 0.0,
        burst: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_rank = min_severity.rank
        self.drop_apps = frozenset(a.lower() for a in drop_apps)
        self.keep_apps = frozenset(a.lower() for a in keep_apps)
        self.drop_regex = re.compile(drop_regex) if drop_regex else None
        self.keep_regex = re.compile(keep_regex) if keep_regex else None
        self.limiter = SourceLimiter(rate, burst, clock=clock) if rate > 0 else None
        self._content = bool(self.drop_apps or self.keep_apps or self.drop_regex or self.keep_regex)

    def check(self, msg: SyslogMessage, severity: Severity, source: str) -> str | None:
        if severity.rank < self.min_rank:
            return SEVERITY
        if self._content:
            app = (msg.app or "").lower()
            if app in self.drop_apps or (self.keep_apps and app not in self.keep_apps):
                return APP
            if self.drop_regex is not None and self.drop_regex.search(msg.message):
                return REGEX
            if self.keep_regex is not None and not self.keep_regex.search(msg.message):
                return REGEX
        if self.limiter is not None and not self.limiter.allow(source):
            return RATE_LIMITED
        return None
