"""The dispatcher's Prometheus metrics (per-instance registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class DispatcherMetrics:
    """Counters and gauges exposed on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "proxbus_dispatcher_events_total", "events consumed", ["outcome"], registry=registry
        )
        self.suppressed = Counter(
            "proxbus_dispatcher_suppressed_total",
            "events (per route for deduped/grouped) not notified on their own, by reason",
            ["reason"],
            registry=registry,
        )
        self.enqueued = Counter(
            "proxbus_dispatcher_deliveries_enqueued_total",
            "notifications enqueued to PROXBUS_DELIVERIES",
            ["receiver"],
            registry=registry,
        )
        self.enqueue_failures = Counter(
            "proxbus_dispatcher_enqueue_failures_total",
            "failed delivery enqueues",
            registry=registry,
        )
        self.notifications = Counter(
            "proxbus_dispatcher_notifications_total",
            "delivery attempts by outcome (sent, retry, dead)",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "proxbus_dispatcher_delivery_seconds",
            "notifier send time",
            ["receiver"],
            registry=registry,
        )
        self.enrich = Counter(
            "proxbus_dispatcher_enrich_total",
            "enrichment calls by outcome",
            ["outcome"],
            registry=registry,
        )
        self.peer_names = Counter(
            "proxbus_dispatcher_peer_names_total",
            "node id -> name lookups of lost knet peers (get_cluster_status) by outcome",
            ["outcome"],
            registry=registry,
        )
        self.peer_names_dropped = Counter(
            "proxbus_dispatcher_peer_names_dropped_total",
            "get_cluster_status answer entries left out of a node id -> name map, by reason",
            ["reason"],
            registry=registry,
        )
        self.groups = Gauge(
            "proxbus_dispatcher_groups", "aggregation groups held", registry=registry
        )
        self.grouped_events = Gauge(
            "proxbus_dispatcher_grouped_events", "events waiting in groups", registry=registry
        )
        self.backlog, self.backlog_bytes = (
            Gauge(name, doc, ["receiver"], registry=registry)
            for name, doc in (
                (
                    "proxbus_dispatcher_backlog",
                    "deliveries waiting per receiver (as of its last take)",
                ),
                (
                    "proxbus_dispatcher_backlog_bytes",
                    "bytes of deliveries waiting per receiver (estimated: waiting x mean size taken)",
                ),
            )
        )
        self.silences = Gauge(
            "proxbus_dispatcher_silences_active", "active silences", registry=registry
        )
