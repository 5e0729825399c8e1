"""The service: UDP/TCP/TLS listeners → pipeline → the runtime's publisher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from proxbus_runtime import (
    EventPublisher,
    PublishError,
    RateLimitedLog,
    Service,
    SpoolingPublisher,
    SpoolWriteError,
    attach_spooling,
    listening,
    open_spooling,
)

from .frames import Frame, SyslogFramer, datagram_frame
from .metrics import SyslogMetrics
from .pipeline import Pipeline
from .settings import Settings

log = logging.getLogger(__name__)

SERVICE = "ingest-syslog"
_READ_CHUNK = 64 * 1024
_DRAIN_QUIET = 0.2  # while draining, a connection silent this long is done


@dataclass(slots=True, eq=False)
class _Connection:
    peer: str
    task: asyncio.Task[Any] | None
    timeout: asyncio.Timeout | None = None
    transport: str = "tcp"
    frames: int = field(default=0)


class _UdpProtocol(asyncio.DatagramProtocol):
    """Collects the datagrams of one loop iteration and hands them over as one batch."""

    def __init__(self, service: SyslogService) -> None:
        self._service = service
        self._pending: list[tuple[bytes, str]] = []
        self._scheduled = False

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._pending.append((data, addr[0] if isinstance(addr, tuple) else str(addr)))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            self._service.handle_datagrams(batch)

    def error_received(self, exc: Exception) -> None:
        log.warning("UDP socket error: %s", exc)


class SyslogService:
    """The listeners: frames → pipeline → ``publisher`` (the runtime owns NATS and health)."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = SyslogMetrics(self.registry)
        for budget, value in (
            ("max_connections", settings.syslog_max_connections),
            ("max_connections_per_peer", settings.max_connections_per_peer),
            ("max_line_bytes", settings.syslog_max_line),
            ("idle_timeout_seconds", settings.syslog_idle_timeout),
        ):
            self.metrics.budget.labels(budget).set(value)
        self.pipeline = Pipeline(settings, self.metrics)
        self.publisher: EventPublisher | SpoolingPublisher | None = None
        self.runtime: Service | None = None
        self._servers: list[asyncio.Server] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_protocol: _UdpProtocol | None = None
        self._connections: set[_Connection] = set()
        self._per_peer: dict[str, int] = {}
        self._refused_log = RateLimitedLog(log, "refused syslog connections")
        self._idle_log = RateLimitedLog(log, "closed idle syslog connections", level=logging.INFO)
        self._ended_log = RateLimitedLog(log, "syslog connections ended", level=logging.INFO)
        self._spool_error_log = RateLimitedLog(log, "syslog lines lost (spool write failed)")
        self._draining = False
        self.tcp_port: int | None = None
        self.udp_port: int | None = None
        self.tls_port: int | None = None

    def listening(self) -> bool:
        """For ``/health``: listening, or told not to."""
        return not self.settings.event_syslog_enabled or bool(self._servers or self._udp)

    async def start(self, publisher: EventPublisher | SpoolingPublisher) -> None:
        """Listen, handing events to ``publisher``.

        Raises:
            ListenError: a port could not be bound (one line naming it and its setting).
            ssl.SSLError: the TLS certificate or key could not be loaded.
        """
        s = self.settings
        self.publisher = publisher
        if not s.event_syslog_enabled:
            log.warning("EVENT_SYSLOG_ENABLED=false: not listening for syslog")
            return
        loop = asyncio.get_running_loop()
        if s.syslog_udp:
            with listening(s.syslog_host, s.syslog_port, "SYSLOG_PORT"):
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self),
                    local_addr=(s.syslog_host, s.syslog_port),
                    reuse_port=s.syslog_reuse_port,
                )
            self._udp, self._udp_protocol = transport, protocol
            self.udp_port = transport.get_extra_info("sockname")[1]
            self._grow_udp_buffer(transport.get_extra_info("socket"))
        if s.syslog_tcp:
            with listening(s.syslog_host, s.syslog_port, "SYSLOG_PORT"):
                server = await asyncio.start_server(
                    lambda r, w: self._handle_connection(r, w, "tcp"),
                    s.syslog_host,
                    s.syslog_port,
                    reuse_port=s.syslog_reuse_port,
                    limit=s.syslog_max_line + 64,
                )
            self._servers.append(server)
            self.tcp_port = server.sockets[0].getsockname()[1]
        if s.tls_enabled:
            tls = self._tls_context()
            assert s.syslog_tls_port is not None  # tls_enabled
            with listening(s.syslog_host, s.syslog_tls_port, "SYSLOG_TLS_PORT"):
                server = await asyncio.start_server(
                    lambda r, w: self._handle_connection(r, w, "tls"),
                    s.syslog_host,
                    s.syslog_tls_port,
                    reuse_port=s.syslog_reuse_port,
                    ssl=tls,
                    ssl_handshake_timeout=10.0,
                    limit=s.syslog_max_line + 64,
                )
            self._servers.append(server)
            self.tls_port = server.sockets[0].getsockname()[1]
        log.info(
            "syslog listening on %s (udp %s, tcp %s, tls %s), site %s",
            s.syslog_host, self.udp_port, self.tcp_port, self.tls_port, s.site,
        )  # fmt: skip

    def _grow_udp_buffer(self, sock: socket.socket | None) -> None:
        """A bigger receive buffer rides out short stalls instead of dropping datagrams."""
        wanted = self.settings.syslog_udp_recv_buffer
        if sock is None or not wanted:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
        except OSError as exc:
            log.warning("could not set the UDP receive buffer to %d bytes: %s", wanted, exc)
            return
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if got < wanted:  # Linux reports double what it grants; less means rmem_max capped it
            log.warning(
                "UDP receive buffer is %d bytes (asked %d; raise net.core.rmem_max)", got, wanted
            )

    def _tls_context(self) -> ssl.SSLContext:
        s = self.settings
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        assert s.syslog_tls_cert is not None
        ctx.load_cert_chain(str(s.syslog_tls_cert), str(s.syslog_tls_key or s.syslog_tls_cert))
        return ctx

    # --- intake ------------------------------------------------------------------------

    def handle_datagrams(self, batch: list[tuple[bytes, str]]) -> None:
        """UDP: parse the batch, then queue without waiting; a full buffer drops (counted)."""
        publisher = self.publisher
        assert publisher is not None
        limit = self.settings.syslog_max_line
        by_peer: dict[str, list[Frame]] = {}
        for data, peer in batch:
            by_peer.setdefault(peer, []).append(datagram_frame(data, limit))
        dropped = 0
        for peer, frames in by_peer.items():
            for event in self.pipeline.process(frames, "udp", peer):
                if not publisher.submit(event):
                    dropped += 1
        if dropped:
            self.metrics.dropped.labels("buffer_full").inc(dropped)

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) else str(peername)
        reason = self._refusal(peer)
        if reason is not None:
            self.metrics.connections_refused.labels(reason).inc()
            self._refused_log.record(reason, peer)
            writer.close()
            return
        conn = _Connection(peer, asyncio.current_task(), transport=transport)
        self._connections.add(conn)
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        self.metrics.connections.inc()
        framer = SyslogFramer(self.settings.syslog_max_line)
        try:
            await self._read_loop(conn, reader, framer)
            await self._publish(conn, framer.finish())
        except (ConnectionError, ssl.SSLError) as exc:
            self._ended_log.record(type(exc).__name__, peer, str(exc))
        finally:
            self._connections.discard(conn)
            left = self._per_peer.get(peer, 1) - 1
            if left > 0:
                self._per_peer[peer] = left
            else:
                self._per_peer.pop(peer, None)
            self.metrics.connections.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    def _refusal(self, peer: str) -> str | None:
        """Why a new connection from ``peer`` is refused, or None to accept it."""
        if self._draining:
            return "shutdown"
        if len(self._connections) >= self.settings.syslog_max_connections:
            return "total"
        if self._per_peer.get(peer, 0) >= self.settings.max_connections_per_peer:
            return "per_peer"
        return None

    async def _read_loop(
        self, conn: _Connection, reader: asyncio.StreamReader, framer: SyslogFramer
    ) -> None:
        idle = self.settings.syslog_idle_timeout
        while True:
            wait = _DRAIN_QUIET if self._draining else idle
            try:
                async with asyncio.timeout(wait) as timeout:
                    conn.timeout = timeout
                    data = await reader.read(_READ_CHUNK)
            except TimeoutError:
                if not self._draining:
                    self.metrics.idle_closed.inc()
                    self._idle_log.record(f"idle for {idle:.0f}s", conn.peer)
                return
            finally:
                conn.timeout = None
            if not data:
                return
            await self._publish(conn, framer.feed(data))
            # read() does not yield while data is buffered: let the publisher and the
            # other connections run between chunks.
            await asyncio.sleep(0)

    async def _publish(self, conn: _Connection, frames: list[Frame]) -> None:
        """TCP: parse the chunk, then wait for buffer room per event (back-pressure)."""
        if not frames:
            return
        publisher = self.publisher
        assert publisher is not None
        events = self.pipeline.process(frames, conn.transport, conn.peer)
        conn.frames += len(frames)
        for i, event in enumerate(events):
            if (
                isinstance(publisher, EventPublisher)
                and publisher.buffered < publisher.buffer_limit
            ):
                if not publisher.submit(event):  # only when the publisher is closed
                    self.metrics.dropped.labels("shutdown").inc()
                continue
            try:
                # The spooling publisher: to JetStream while NATS is up, else to disk.
                await publisher.submit_wait(event)
            except SpoolWriteError as exc:  # the disk refused it (the spool logs why)
                lost = len(events) - i
                self.metrics.dropped.labels("spool_error").inc(lost)
                self._spool_error_log.record("spool write failed", conn.peer, str(exc))
                return
            except PublishError:
                lost = len(events) - i
                self.metrics.dropped.labels("shutdown").inc(lost)
                log.error("publisher closed; %d received lines from %s lost", lost, conn.peer)
                return
            except asyncio.CancelledError:
                self.metrics.dropped.labels("shutdown").inc(len(events) - i)
                raise

    # --- shutdown ----------------------------------------------------------------------

    async def stop(self, seconds: float) -> None:
        """Stop accepting and read what open connections already sent (within ``seconds``).

        The runtime flushes the publisher and closes NATS afterwards.
        """
        self._draining = True
        for server in self._servers:
            server.close()
        if self._udp is not None:
            assert self._udp_protocol is not None
            self._udp_protocol.flush()
            self._udp.close()
        loop = asyncio.get_running_loop()
        for conn in list(self._connections):
            if conn.timeout is not None:
                conn.timeout.reschedule(loop.time() + _DRAIN_QUIET)
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            drain = min(self.settings.syslog_drain_timeout, max(0.0, seconds - 0.5))
            _, pending = await asyncio.wait(tasks, timeout=drain)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("cut %d syslog connection(s) still sending at shutdown", len(pending))
                await asyncio.wait(pending, timeout=0.5)


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, stop: asyncio.Event | None = None
) -> AsyncIterator[SyslogService]:
    """The runtime with the listeners started; shuts both down when the block ends."""
    service = SyslogService(settings)
    options = {
        "max_in_flight": settings.publish_max_in_flight,
        "buffer_limit": settings.publish_buffer,
        "ack_timeout": settings.publish_ack_timeout,
    }
    # Issue 19: with the disk spool the service listens (and keeps what it reads) while NATS
    # is unreachable, and publishes the spool once it is back.
    sink = open_spooling(settings, SERVICE, service.registry)
    async with Service(
        settings,
        SERVICE,
        stop=stop,
        registry=service.registry,
        publisher_options=options,
        require_nats=sink is None,
    ) as runtime:
        if sink is not None:
            await attach_spooling(runtime, sink)  # first: its stop hook runs last
        runtime.on_stop(service.stop)
        runtime.health.add_check("listening", service.listening)
        publisher: EventPublisher | SpoolingPublisher | None = sink or runtime.publisher
        assert publisher is not None  # without a spool the runtime waited for NATS
        await service.start(publisher)
        await runtime.start_http()
        service.runtime = runtime
        yield service


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then drain and flush within the shutdown budget."""
    async with serving(settings, stop) as service:
        assert service.runtime is not None
        await service.runtime.serve()
