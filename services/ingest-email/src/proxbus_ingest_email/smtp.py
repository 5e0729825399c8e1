"""SMTP receiver (aiosmtpd) inside the service's event loop; ``250`` only after the ack."""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import ssl
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from proxbus_runtime import PublishError, RateLimitedLog, listening

from .body import MailBody
from .intake import MailIntake
from .metrics import IngestMetrics
from .settings import Settings

log = logging.getLogger(__name__)

TEMPFAIL = "451 4.3.0 Temporary failure, try again"
BUSY = "451 4.3.2 Too many concurrent transactions, try again later"
TOO_MANY = b"421 4.7.0 Too many connections, try again later\r\n"


class _Handler:
    """aiosmtpd handler: every accepted DATA is published before it is answered."""

    def __init__(self, intake: MailIntake, metrics: IngestMetrics) -> None:
        self._intake = intake
        self._metrics = metrics
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.tempfail_log = RateLimitedLog(log, "answered SMTP 451")
        self.error_log = RateLimitedLog(
            log, "unexpected errors handling mail (answered 451)", level=logging.ERROR
        )

    async def handle_body(self, session: Session, body: MailBody) -> str:
        """Publish the received mail; the SMTP answer to send."""
        self.inflight += 1
        self.idle.clear()
        try:
            result = await self._intake.ingest_body(body, "smtp")
        except PublishError as exc:
            self._metrics.smtp_tempfail.inc()
            self.tempfail_log.record("bus unavailable", _peer_ip(session.peer), str(exc))
            return TEMPFAIL
        except Exception as exc:
            # Never lose a mail to a bug: a temporary failure makes the sender retry.
            self._metrics.smtp_tempfail.inc()
            self.error_log.record(type(exc).__name__, _peer_ip(session.peer), exc_info=exc)
            return TEMPFAIL
        finally:
            self.inflight -= 1
            if not self.inflight:
                self.idle.set()
        if result.rejection is not None:
            return f"554 5.6.0 Message rejected: {result.rejection.reason}"
        assert result.event is not None
        return f"250 2.0.0 OK {result.event.id}"


class _Authenticator:
    """Checks AUTH PLAIN/LOGIN against the configured credentials (constant-time)."""

    def __init__(self, username: str, password: str, metrics: IngestMetrics) -> None:
        self._username = username.encode()
        self._password = password.encode()
        self._metrics = metrics
        self.failures = RateLimitedLog(log, "SMTP authentication failures")

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user_ok = hmac.compare_digest(auth_data.login, self._username)
            password_ok = hmac.compare_digest(auth_data.password, self._password)
            if user_ok and password_ok:
                return AuthResult(success=True)
        self._metrics.rejected.labels("smtp", "auth").inc()
        self.failures.record(f"AUTH {mechanism} failed", _peer_ip(session.peer))
        return AuthResult(success=False, handled=False)


def _peer_ip(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class _ProtocolLogFilter(logging.Filter):
    """aiosmtpd's own warnings and errors (logger ``mail.log``) through a RateLimitedLog.

    aiosmtpd logs a WARNING per unrecognised command, per "too many bogus commands", per
    command over its call limit and per aborted AUTH, and an ERROR with a traceback per
    exception in a session: any client could write a line per command (issue 19). Those
    records are counted and summarised instead; the reason is aiosmtpd's message without the
    client's words (bounded), the first line of an interval carries the full message.
    """

    def __init__(self, limited: RateLimitedLog) -> None:
        super().__init__()
        self._limited = limited

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        template = str(record.msg)
        peer = ""
        if template.startswith("%r ") and args:
            template, peer = template[3:], _peer_ip(args[0])
        reason = template.replace("%s", "…").replace("%r", "…")
        exc = record.exc_info[1] if record.exc_info else None
        self._limited.record(reason, peer, record.getMessage()[:200], exc_info=exc)
        return False


class _SMTP(SMTP):
    """aiosmtpd's protocol with connection budgets and a DATA phase that spools to disk."""

    def __init__(self, *args: Any, receiver: SmtpReceiver, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receiver = receiver
        self._peer_ip: str | None = None  # set once admitted
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._peer_ip is None and not self._refused:  # not the STARTTLS re-entry
            ip = _peer_ip(transport.get_extra_info("peername"))
            if not self._receiver.admit(self, ip):
                # Refused before aiosmtpd starts a session: no task, no timer, one write.
                self._refused = True
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(TOO_MANY)
                transport.close()
                return
            self._peer_ip = ip
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        if self._peer_ip is not None:
            self._receiver.release(self, self._peer_ip)
            self._peer_ip = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    async def push(self, status: AnyStr) -> None:
        text = status if isinstance(status, str) else status.decode(errors="replace")
        if text.startswith("552"):
            self._receiver.metrics.rejected.labels("smtp", "too_large").inc()
            self._receiver.size_log.record(
                "over the size limit", _peer_ip(self.session.peer if self.session else "")
            )
        await super().push(status)

    def _reset_envelope(self) -> None:
        """aiosmtpd's post-DATA state: a fresh envelope for the next transaction."""
        self.envelope = self._create_envelope()

    async def smtp_DATA(self, arg: str) -> None:
        """DATA with a transaction slot, the body spooled to disk above the threshold."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        assert self.session is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        receiver = self._receiver
        if not await receiver.begin_transaction():
            self._reset_envelope()
            await self.push(BUSY)
            return
        body = receiver.new_body()
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            problem = await self._read_data(body)
            if problem is not None:
                self._reset_envelope()
                await self.push(problem)
                return
            if body.spooled:
                receiver.metrics.smtp_spooled.inc()
            status = await receiver.process(self.session, body)
            self._reset_envelope()
            await self.push(status)
        finally:
            body.close()
            receiver.end_transaction()

    async def _read_data(self, body: MailBody) -> str | None:
        """Read DATA up to the lone dot into ``body``; an error answer, or None.

        Lines over the 1000-octet limit (RFC 5321 4.5.3.1.6) and mail over the size limit
        are read to the end and discarded, then refused, like aiosmtpd does.
        """
        limit = self.data_size_limit
        size = 0
        too_long = too_much = in_long_line = False
        spool_error = ""
        while self.transport is not None:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:
                too_long = in_long_line = True
                size += len(await self._reader.read(exc.consumed))
                continue
            except asyncio.CancelledError:
                self._writer.close()
                raise
            if in_long_line:  # the end of a line that was too long
                in_long_line = False
                size += len(line)
                continue
            if line == b".\r\n":
                break
            size += len(line)
            if limit and size > limit:
                too_much = True
            if too_long or too_much or spool_error:
                continue
            try:
                # RFC 5321 4.5.2: remove the transparency dot.
                body.write(line[1:] if line[:1] == b"." else line)
            except OSError as exc:  # spool disk full or unwritable: the sender retries
                spool_error = str(exc)
                body.close()
        if spool_error:
            self._receiver.metrics.smtp_tempfail.inc()
            self._receiver.spool_log.record("cannot spool to disk", "", spool_error)
            return TEMPFAIL
        if too_long:
            return "500 Line too long (see RFC5321 4.5.3.1.6)"
        if too_much:
            return "552 Error: Too much mail data"
        return None


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.smtp_tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(
        str(settings.smtp_tls_cert), str(settings.smtp_tls_key) if settings.smtp_tls_key else None
    )
    return context


class SmtpReceiver:
    """Listens for SMTP on ``smtp_host:smtp_port`` in the running event loop."""

    def __init__(self, settings: Settings, intake: MailIntake, metrics: IngestMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.handler = _Handler(intake, metrics)
        self.connections: set[_SMTP] = set()
        self.per_peer: dict[str, int] = {}
        self.port = settings.smtp_port
        self._server: asyncio.Server | None = None
        self._transactions = asyncio.Semaphore(settings.smtp_max_transactions)
        self._large = asyncio.Semaphore(settings.smtp_max_large_parses)
        for budget, value in (
            ("max_connections", settings.smtp_max_connections),
            ("max_connections_per_peer", settings.smtp_max_connections_per_peer),
            ("max_transactions", settings.smtp_max_transactions),
            ("max_large_parses", settings.smtp_max_large_parses),
            ("max_size_bytes", settings.smtp_max_size),
            ("spool_threshold_bytes", settings.smtp_spool_threshold),
            ("timeout_seconds", settings.smtp_timeout),
        ):
            metrics.smtp_budget.labels(budget).set(value)
        self.refused_log = RateLimitedLog(log, "refused SMTP connections")
        self.busy_log = RateLimitedLog(log, "answered SMTP DATA 451 (all transaction slots busy)")
        self.size_log = RateLimitedLog(log, "refused SMTP mail")
        self.spool_log = RateLimitedLog(log, "SMTP mails answered 451", level=logging.ERROR)
        # aiosmtpd's per-command warnings (see _ProtocolLogFilter), while listening.
        self.protocol_log = RateLimitedLog(log, "SMTP protocol errors from clients")
        self._protocol_filter = _ProtocolLogFilter(self.protocol_log)

    def admit(self, protocol: _SMTP, ip: str) -> bool:
        """Take a connection slot for ``ip``; False (counted, logged rate-limited) if over a cap."""
        s = self.settings
        reason = None
        if len(self.connections) >= s.smtp_max_connections:
            reason = "total"
        elif self.per_peer.get(ip, 0) >= s.smtp_max_connections_per_peer:
            reason = "per_peer"
        if reason is not None:
            self.metrics.smtp_refused.labels(reason).inc()
            self.refused_log.record(f"{reason} cap reached", ip)
            return False
        self.connections.add(protocol)
        self.per_peer[ip] = self.per_peer.get(ip, 0) + 1
        self.metrics.smtp_connections.set(len(self.connections))
        return True

    def release(self, protocol: _SMTP, ip: str) -> None:
        self.connections.discard(protocol)
        left = self.per_peer.get(ip, 1) - 1
        if left > 0:
            self.per_peer[ip] = left
        else:
            self.per_peer.pop(ip, None)
        self.metrics.smtp_connections.set(len(self.connections))

    async def begin_transaction(self) -> bool:
        """A DATA slot, waiting up to ``SMTP_TRANSACTION_WAIT``; False if none came."""
        try:
            await asyncio.wait_for(
                self._transactions.acquire(), self.settings.smtp_transaction_wait or None
            )
        except TimeoutError:
            self.metrics.smtp_busy.inc()
            self.busy_log.record("no free slot")
            return False
        self.metrics.smtp_transactions.inc()
        return True

    def end_transaction(self) -> None:
        self._transactions.release()
        self.metrics.smtp_transactions.dec()

    def new_body(self) -> MailBody:
        return MailBody(self.settings.smtp_spool_threshold, self.settings.smtp_spool_dir)

    async def process(self, session: Session, body: MailBody) -> str:
        """Hand the mail to the intake; spooled (large) mails are parsed a few at a time."""
        if not body.spooled:
            return await self.handler.handle_body(session, body)
        async with self._large:
            return await self.handler.handle_body(session, body)

    async def start(self) -> None:
        """Bind and listen; with port 0 the bound port is in ``self.port``.

        Raises:
            ListenError: the address cannot be bound (one line naming it and SMTP_PORT).
            OSError: the TLS certificate or key cannot be read.
            ValueError: AUTH is required but no credentials are configured.
        """
        s = self.settings
        loop = asyncio.get_running_loop()
        tls = _tls_context(s)
        hostname = s.smtp_hostname or socket.gethostname()
        authenticator: _Authenticator | None = None
        if s.smtp_username and s.smtp_password is not None:
            authenticator = _Authenticator(
                s.smtp_username, s.smtp_password.get_secret_value(), self.metrics
            )
        elif s.smtp_auth_required:
            raise ValueError("SMTP_AUTH_REQUIRED needs SMTP_USERNAME and SMTP_PASSWORD")
        if s.smtp_require_starttls and tls is None:
            raise ValueError("SMTP_REQUIRE_STARTTLS needs SMTP_TLS_CERT and SMTP_TLS_KEY")
        mail_log = logging.getLogger("mail.log")
        mail_log.setLevel(max(logging.WARNING, logging.root.level))
        mail_log.addFilter(self._protocol_filter)

        def factory() -> _SMTP:
            return _SMTP(
                self.handler,
                receiver=self,
                data_size_limit=s.smtp_max_size,
                enable_SMTPUTF8=True,
                hostname=hostname,
                ident="proxbus ingest-email",
                tls_context=tls,
                require_starttls=s.smtp_require_starttls,
                timeout=s.smtp_timeout,
                auth_required=s.smtp_auth_required,
                auth_require_tls=s.smtp_auth_require_tls,
                authenticator=authenticator,
                loop=loop,
            )

        with listening(s.smtp_host, s.smtp_port, "SMTP_PORT"):
            self._server = await loop.create_server(
                factory, s.smtp_host, s.smtp_port, reuse_address=True
            )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "SMTP on %s:%d (max %d bytes, %d connections, %d per peer, %d transactions, "
            "STARTTLS %s, AUTH %s)",
            s.smtp_host,
            self.port,
            s.smtp_max_size,
            s.smtp_max_connections,
            s.smtp_max_connections_per_peer,
            s.smtp_max_transactions,
            "required" if s.smtp_require_starttls else ("offered" if tls else "off"),
            "required" if s.smtp_auth_required else ("offered" if authenticator else "off"),
        )

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight DATA finish (up to ``grace``), close connections."""
        logging.getLogger("mail.log").removeFilter(self._protocol_filter)
        if self._server is None:
            return
        self._server.close()
        try:
            await asyncio.wait_for(self.handler.idle.wait(), grace)
        except TimeoutError:
            log.warning("%d SMTP transactions still in flight at shutdown", self.handler.inflight)
        for protocol in list(self.connections):
            if protocol.transport is not None:
                protocol.transport.close()
        await self._server.wait_closed()
        self._server = None
