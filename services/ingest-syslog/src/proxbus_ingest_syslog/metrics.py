"""Prometheus metrics of one service instance (own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SyslogMetrics:
    """Counters for every stage a line passes: received → parsed → filtered → published."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        received = Counter(
            "proxbus_syslog_received", "frames received", ["transport"], registry=registry
        )
        self.received = {t: received.labels(t) for t in ("udp", "tcp", "tls")}
        self.parsed = Counter("proxbus_syslog_parsed", "frames parsed", registry=registry)
        self.malformed = Counter(
            "proxbus_syslog_malformed", "frames rejected as not syslog", ["reason"],
            registry=registry,
        )  # fmt: skip
        self.truncated = Counter(
            "proxbus_syslog_truncated", "frames cut at the line limit", registry=registry
        )
        self.filtered = Counter(
            "proxbus_syslog_filtered", "lines filtered before publishing", ["reason"],
            registry=registry,
        )  # fmt: skip
        self.rate_limited = Counter(
            "proxbus_syslog_rate_limited", "lines over a source's rate limit", registry=registry
        )
        self.dropped = Counter(
            "proxbus_syslog_dropped", "events lost (UDP buffer full, shutdown)", ["reason"],
            registry=registry,
        )  # fmt: skip
        self.events = Counter(
            "proxbus_syslog_events", "events handed to the publisher", ["kind"], registry=registry
        )
        self.connections = Gauge(
            "proxbus_syslog_connections", "open TCP/TLS connections", registry=registry
        )
        self.connections_refused = Counter(
            "proxbus_syslog_connections_refused",
            "TCP connections refused (reason: total or per_peer cap, shutdown)",
            ["reason"], registry=registry,
        )  # fmt: skip
        self.budget = Gauge(
            "proxbus_syslog_budget",
            "configured listener budgets (max_connections, max_connections_per_peer, "
            "max_line_bytes, idle_timeout_seconds)",
            ["budget"], registry=registry,
        )  # fmt: skip
        self.idle_closed = Counter(
            "proxbus_syslog_idle_closed", "TCP connections closed after the idle timeout",
            registry=registry,
        )  # fmt: skip
