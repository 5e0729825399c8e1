"""Wires the watcher, the webhook receiver and the Gotify listener into one service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry
from proxbus_events import CURSORS_BUCKET
from proxbus_runtime import (
    EventPublisher,
    HealthServer,
    connect_nats,
    ensure_streams,
    register_publisher,
)

from .cursors import CursorStore, cursor_key
from .diff import Thresholds
from .gotify import GotifyCollector, GotifyListener, server_label
from .lease import Lease
from .reader import ProxmoxReader, RpcReader
from .settings import Settings
from .watcher import ClusterWatcher, WatcherMetrics, WatchOptions
from .webhook import PveWebhook, WebhookMetrics

log = logging.getLogger(__name__)

SERVICE = "ingest-pve-ws"


def watch_options(settings: Settings) -> WatchOptions:
    """The watcher tunables from the settings."""
    return WatchOptions(
        poll_seconds=settings.pve_ws_poll_seconds,
        lookback=settings.pve_ws_task_lookback,
        log_limit=settings.pve_ws_log_limit,
        log_tail_lines=settings.pve_ws_log_tail_lines,
        thresholds=Thresholds(
            settings.pve_ws_storage_warn,
            settings.pve_ws_storage_crit,
            settings.pve_ws_storage_hysteresis,
        ),
        lease_seconds=settings.lease_seconds,
        replica_id=settings.pve_ws_replica_id,
    )


@dataclass(slots=True)
class PveWsService:
    """The running pieces; ``start()`` then ``serve(stop)``; tests reach in through fields."""

    settings: Settings
    reader: ProxmoxReader | None = None
    nc: NATS | None = None
    publisher: EventPublisher | None = None
    health: HealthServer | None = None
    watchers: list[ClusterWatcher] = field(default_factory=list)
    gotify: GotifyListener | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    async def start(self) -> None:
        """Connect, ensure streams, start the publisher and the HTTP server."""
        s = self.settings
        self.nc = await connect_nats(s, name=f"proxbus-{SERVICE}")
        js = self.nc.jetstream(timeout=s.nats_connect_timeout)
        await ensure_streams(js, s.stream_limits())
        kv = await js.key_value(CURSORS_BUCKET)
        store = CursorStore(kv)
        self.publisher = EventPublisher(js)
        await self.publisher.start()
        register_publisher(self.registry, self.publisher, SERVICE)
        self.health = HealthServer(
            s.health_host,
            s.health_port,
            self.registry,
            client_max_size=max(1024**2, s.pve_webhook_max_bytes * 2),
        )
        nc = self.nc
        self.health.add_check("nats", lambda: nc.is_connected)
        if s.pve_webhook_secret is not None and s.pve_webhook_secret.get_secret_value():
            PveWebhook(
                self.publisher,
                secret=s.pve_webhook_secret.get_secret_value(),
                site=s.site,
                max_bytes=s.pve_webhook_max_bytes,
                metrics=WebhookMetrics.create(self.registry),
            ).install(self.health.app)
        else:
            log.warning("PVE_WEBHOOK_SECRET is not set: POST /hooks/pve is disabled")
        if s.event_ws_enabled:
            reader = self.reader or RpcReader(self.nc, timeout=s.pve_ws_rpc_timeout)
            metrics = WatcherMetrics.create(self.registry)
            opts = watch_options(s)
            for cluster in s.clusters:
                lease = Lease(
                    kv, cursor_key(cluster, "lease"), s.pve_ws_replica_id, opts.lease_seconds
                )
                self.watchers.append(
                    ClusterWatcher(
                        cluster,
                        reader,
                        site=s.site,
                        options=opts,
                        store=store,
                        lease=lease,
                        metrics=metrics,
                    )
                )
        token = s.gotify_client_token.get_secret_value() if s.gotify_client_token else ""
        if s.gotify_listen_url and not token:
            log.warning("GOTIFY_CLIENT_TOKEN is not set: the Gotify stream listener is off")
        if s.gotify_listen_url and token:
            key = cursor_key("gotify", server_label(s.gotify_listen_url))
            saved, _ = await store.load(key)
            last = saved.get("last_id") if saved else None

            async def save(last_id: int) -> None:
                await store.save(key, {"last_id": last_id})

            self.gotify = GotifyListener(
                url=s.gotify_listen_url,
                token=token,
                publisher=self.publisher,
                site=s.site,
                last_id=last if isinstance(last, int) else None,
                save_cursor=save,
                timeout=s.gotify_timeout,
                backoff_max=s.gotify_backoff_max,
            )
            self.registry.register(GotifyCollector(self.gotify))
        await self.health.start()
        log.info(
            "%s started: clusters=%s poll=%.1fs webhook=%s gotify=%s",
            SERVICE,
            ",".join(w.cluster for w in self.watchers) or "-",
            s.pve_ws_poll_seconds,
            "on" if s.pve_webhook_secret else "off",
            "on" if self.gotify else "off",
        )

    async def serve(self, stop: asyncio.Event) -> None:
        """Run the watchers and the Gotify listener until ``stop``; then drain and close."""
        assert self.publisher is not None
        publish = self.publisher.publish
        try:
            async with asyncio.TaskGroup() as tg:
                for w in self.watchers:
                    tg.create_task(w.run(publish, stop), name=f"watch-{w.cluster}")
                if self.gotify is not None:
                    tg.create_task(self.gotify.run(stop), name="gotify")
                tg.create_task(stop.wait())
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop intake (HTTP), flush the publisher, close NATS."""
        if self.health is not None:
            await self.health.stop()
            self.health = None
        if self.publisher is not None:
            await self.publisher.close(timeout=5.0)
            self.publisher = None
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 2.0)
            if not self.nc.is_closed:
                await self.nc.close()
            self.nc = None


async def run(settings: Settings, stop: asyncio.Event, reader: ProxmoxReader | None = None) -> None:
    """The service's main: start, serve until ``stop``, close."""
    service = PveWsService(settings, reader=reader)
    try:
        await service.start()
    except BaseException:
        await service.close()
        raise
    await service.serve(stop)
