"""Prometheus collectors for the shared pieces (publisher counters)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .publisher import EventPublisher


class PublisherCollector(Collector):
    """Exposes an ``EventPublisher``'s counters as ``proxbus_publish_*`` metrics."""

    def __init__(self, publisher: EventPublisher, service: str) -> None:
        self._pub = publisher
        self._service = service

    def collect(self) -> Iterator[Metric]:
        stats = self._pub.stats
        counters: tuple[tuple[str, float, str], ...] = (
            ("accepted", stats.accepted, "events handed to the publisher"),
            ("published", stats.published, "events acknowledged by JetStream"),
            ("duplicates", stats.duplicates, "events JetStream already had (same id)"),
            ("dropped", stats.dropped, "events refused because the buffer was full or closed"),
            ("retries", stats.retries, "events re-sent after a failed publish"),
            ("failures", stats.failures, "publish attempts that failed"),
        )
        for name, value, doc in counters:
            c = CounterMetricFamily(f"proxbus_publish_{name}", doc, labels=["service"])
            c.add_metric([self._service], value)
            yield c
        g = GaugeMetricFamily(
            "proxbus_publish_buffered", "events waiting for a JetStream ack", labels=["service"]
        )
        g.add_metric([self._service], self._pub.buffered)
        yield g
        lat = sorted(stats.publish_seconds)
        q = GaugeMetricFamily(
            "proxbus_publish_latency_seconds",
            "publish-to-ack latency over the last 1024 acks",
            labels=["service", "quantile"],
        )
        for quantile in (0.5, 0.99):
            value = lat[min(len(lat) - 1, int(quantile * len(lat)))] if lat else 0.0
            q.add_metric([self._service, str(quantile)], value)
        yield q


def register_publisher(
    registry: CollectorRegistry, publisher: EventPublisher, service: str
) -> None:
    registry.register(PublisherCollector(publisher, service))
