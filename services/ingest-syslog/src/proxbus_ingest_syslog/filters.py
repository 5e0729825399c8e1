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


RATE_KEYS = ("peer", "host")
_MAX_NAME = 255  # RFC 5424's HOSTNAME is at most 255 characters; longer claims are cut


class RateKey:
    """What a line's rate-limit bucket is keyed on.

    ``peer``: the sending address. A sender cannot escape it by changing the host name it
    claims, but every host behind one rsyslog relay shares the relay's bucket.
    ``host``: the claimed host name, per sending address (for relays): each address has at most
    ``hosts_per_peer`` names with their own bucket; further names from it share one, so
    rotating names buys at most ``hosts_per_peer`` buckets. At most ``max_names`` names are
    kept in all (the least recently seen address is forgotten first).
    """

    def __init__(self, mode: str, *, hosts_per_peer: int = 256, max_names: int = 10_000) -> None:
        if mode not in RATE_KEYS:
            raise ValueError(f"rate limit key {mode!r} is not one of {', '.join(RATE_KEYS)}")
        self.mode = mode
        self.hosts_per_peer = hosts_per_peer
        self.max_names = max_names
        self._hosts: OrderedDict[str, set[str]] = OrderedDict()
        self.names = 0

    def key(self, peer: str, host: str | None) -> str:
        """The bucket key of a line from ``peer`` claiming ``host``."""
        if self.mode == "peer" or not host:
            return peer
        host = host[:_MAX_NAME]
        names = self._hosts.get(peer)
        if names is None:
            names = self._hosts[peer] = set()
        else:
            self._hosts.move_to_end(peer)
        if host in names:
            return f"{peer} {host}"
        if len(names) >= self.hosts_per_peer:
            return f"{peer} *"
        while self.names >= self.max_names and len(self._hosts) > 1:
            _, old = self._hosts.popitem(last=False)
            self.names -= len(old)
        if self.names >= self.max_names:  # this one address holds every name: share
            return f"{peer} *"
        names.add(host)
        self.names += 1
        return f"{peer} {host}"


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
        rate_key: str = "peer",
        hosts_per_peer: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_rank = min_severity.rank
        self.drop_apps = frozenset(a.lower() for a in drop_apps)
        self.keep_apps = frozenset(a.lower() for a in keep_apps)
        self.drop_regex = re.compile(drop_regex) if drop_regex else None
        self.keep_regex = re.compile(keep_regex) if keep_regex else None
        self.limiter = SourceLimiter(rate, burst, clock=clock) if rate > 0 else None
        self.rate_key = RateKey(rate_key, hosts_per_peer=hosts_per_peer)
        self._content = bool(self.drop_apps or self.keep_apps or self.drop_regex or self.keep_regex)

    def check(self, msg: SyslogMessage, severity: Severity, peer: str) -> str | None:
        """``None`` to publish the line from ``peer`` (the sending address), else why not."""
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
        if self.limiter is not None and not self.limiter.allow(
            self.rate_key.key(peer, msg.hostname)
        ):
            return RATE_LIMITED
        return None
