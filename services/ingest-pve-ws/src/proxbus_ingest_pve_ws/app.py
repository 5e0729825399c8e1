"""Wires the watcher, the webhook receiver and the Gotify listener into one service."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry
from proxbus_events import CURSORS_BUCKET, Event
from proxbus_runtime import (
    EventPublisher,
    HealthServer,
    Service,
    SpoolingPublisher,
    attach_spooling,
    open_spooling,
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
    """The running pieces; ``start()`` then ``serve(stop)``; tests reach in through fields.

    Runs on the runtime's ``Service``. With the disk spool (default) the HTTP server — the
    webhook — listens before NATS is reachable, and a webhook event is answered 202 once it is
    in JetStream or fsynced in the spool; the watchers and the Gotify listener start once NATS
    is ready (they need the KV cursors and the gateway's RPC).
    """

    settings: Settings
    reader: ProxmoxReader | None = None
    runtime: Service | None = None
    sink: SpoolingPublisher | None = None
    watchers: list[ClusterWatcher] = field(default_factory=list)
    gotify: GotifyListener | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    intake_ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def health(self) -> HealthServer | None:
        return self.runtime.health if self.runtime is not None else None

    @property
    def publisher(self) -> EventPublisher | None:
        return self.runtime.publisher if self.runtime is not None else None

    @property
    def nc(self) -> NATS | None:
        return self.runtime.nc if self.runtime is not None else None

    async def start(self, *, wait_for_nats: bool = True) -> None:
        """Listen (HTTP, webhook); with ``wait_for_nats`` also wait until the watchers run.

        Raises:
            OSError: the HTTP port cannot be bound, or the spool directory not created.
        """
        s = self.settings
        self.sink = open_spooling(s, SERVICE, self.registry)
        runtime = Service(s, SERVICE, registry=self.registry, require_nats=self.sink is None)
        if s.pve_webhook_secret is not None and s.pve_webhook_secret.get_secret_value():
            PveWebhook(
                self._store_webhook_event,
                secret=s.pve_webhook_secret.get_secret_value(),
                site=s.site,
                max_bytes=s.pve_webhook_max_bytes,
                max_depth=s.pve_webhook_max_depth,
                metrics=WebhookMetrics.create(self.registry),
            ).install(runtime.health.app)  # before the HTTP server starts
        else:
            log.warning("PVE_WEBHOOK_SECRET is not set: POST /hooks/pve is disabled")
        await runtime.__aenter__()
        self.runtime = runtime
        if self.sink is not None:
            await attach_spooling(runtime, self.sink)
        runtime.on_nats_ready(self._start_nats_intake)
        if wait_for_nats:
            await self.intake_ready.wait()

    async def _store_webhook_event(self, event: Event, timeout: float) -> str:
        if self.sink is not None:
            return await self.sink.store(event, timeout)
        assert self.publisher is not None  # without a spool the runtime waited for NATS
        ack = await self.publisher.publish(event, timeout=timeout)
        return "duplicate" if ack.duplicate else "stored"

    async def _store_gotify_event(self, event: Event) -> str:
        return await self._store_webhook_event(event, 5.0)

    async def _start_nats_intake(self) -> None:
        """Once NATS is ready: the KV cursors, the watchers and the Gotify listener."""
        s = self.settings
        runtime = self.runtime
        assert runtime is not None
        assert runtime.js is not None
        assert runtime.nc is not None
        kv = await runtime.js.key_value(CURSORS_BUCKET)
        store = CursorStore(kv)
        if s.event_ws_enabled:
            reader = self.reader or RpcReader(runtime.nc, timeout=s.pve_ws_rpc_timeout)
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
            outliers = saved.get("outliers") if saved else None

            async def save(doc: dict[str, Any]) -> None:
                await store.save(key, doc)

            self.gotify = GotifyListener(
                url=s.gotify_listen_url,
                token=token,
                store=self._store_gotify_event,
                site=s.site,
                last_id=last if isinstance(last, int) else None,
                save_cursor=save,
                timeout=s.gotify_timeout,
                backoff_max=s.gotify_backoff_max,
                max_id_jump=s.gotify_max_id_jump,
                recent_ids=s.gotify_recent_ids,
                outliers=outliers if isinstance(outliers, list) else (),
            )
            self.registry.register(GotifyCollector(self.gotify))
        assert runtime.publisher is not None
        publish = runtime.publisher.publish
        for w in self.watchers:
            runtime.start_task(w.run(publish, runtime.stop), name=f"watch-{w.cluster}")
        if self.gotify is not None:
            runtime.start_task(self.gotify.run(runtime.stop), name="gotify")
        log.info(
            "%s started: clusters=%s poll=%.1fs webhook=%s gotify=%s",
            SERVICE,
            ",".join(w.cluster for w in self.watchers) or "-",
            s.pve_ws_poll_seconds,
            "on" if s.pve_webhook_secret else "off",
            "on" if self.gotify else "off",
        )
        self.intake_ready.set()

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` (or a background task fails); then drain and close."""
        runtime = self.runtime
        assert runtime is not None
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(runtime.stop.wait())
        try:
            await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            failed.cancel()
            await self.close()

    async def close(self) -> None:
        """Stop intake, close the spool (what NATS did not take stays on disk), flush, close."""
        if self.runtime is not None:
            runtime, self.runtime = self.runtime, None
            await runtime.__aexit__(None, None, None)


async def run(settings: Settings, stop: asyncio.Event, reader: ProxmoxReader | None = None) -> None:
    """The service's main: listen at once (NATS may come later), serve until ``stop``."""
    service = PveWsService(settings, reader=reader)
    try:
        await service.start(wait_for_nats=False)
    except BaseException:
        await service.close()
        raise
    await service.serve(stop)
