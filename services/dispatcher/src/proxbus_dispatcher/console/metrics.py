"""The console's own counters on the dispatcher's ``/metrics``: what it refused and how its
live pages fare (a flood of live pages or a page that stops reading shows here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class _LiveCollector(Collector):
    """Values read when ``/metrics`` is scraped (nothing to update on the hot path)."""

    def __init__(
        self,
        live_pages: Callable[[], int],
        dropped: Callable[[], int],
        oversize: Callable[[], int],
    ) -> None:
        self._live_pages = live_pages
        self._dropped = dropped
        self._oversize = oversize

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "proxbus_dispatcher_console_live_pages",
            "live pages (server-sent event streams) open now",
            value=self._live_pages(),
        )
        yield CounterMetricFamily(
            "proxbus_dispatcher_console_live_dropped",
            "events a live page did not get because it did not keep up (its queue was full)",
            value=self._dropped(),
        )
        yield CounterMetricFamily(
            "proxbus_dispatcher_console_oversize_events",
            "events over 256 KiB of JSON the console did not keep or show (still routed)",
            value=self._oversize(),
        )


class ConsoleMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        live_pages: Callable[[], int],
        dropped: Callable[[], int],
        oversize: Callable[[], int],
    ) -> None:
        self.refused = Counter(
            "proxbus_dispatcher_console_refused_total",
            "console requests refused, by reason (csrf, cross_origin, no_token, scope, "
            "bad_token, throttled, foreign_host, body_too_large, too_many_live_pages)",
            ["reason"],
            registry=registry,
        )
        self.stalled = Counter(
            "proxbus_dispatcher_console_live_stalled_total",
            "live pages disconnected because a write to them blocked past "
            "CONSOLE_LIVE_WRITE_TIMEOUT",
            registry=registry,
        )
        registry.register(_LiveCollector(live_pages, dropped, oversize))
