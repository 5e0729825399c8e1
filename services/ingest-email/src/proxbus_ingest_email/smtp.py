"""SMTP receiver (aiosmtpd) inside the service's event loop; ``250`` only after the ack."""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import ssl
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from proxbus_events import PublishError

from .intake import MailIntake
from .metrics import IngestMetrics
from .settings import Settings

log = logging.getLogger(__name__)

TEMPFAIL = "451 4.3.0 Temporary failure, try again"


class _Handler:
    """aiosmtpd handler: every accepted DATA is published before it is answered."""

    def __init__(self, intake: MailIntake, metrics: IngestMetrics) -> None:
        self._intake = intake
        self._metrics = metrics
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.inflight += 1
        self.idle.clear()
        try:
            result = await self._intake.ingest(bytes(raw), "smtp")
        except PublishError as exc:
            self._metrics.smtp_tempfail.inc()
            log.warning("answering 451 to %s: %s", session.peer, exc)
            return TEMPFAIL
        except Exception:
            # Never lose a mail to a bug: a temporary failure makes the sender retry.
            self._metrics.smtp_tempfail.inc()
            log.exception("unexpected error handling mail from %s; answering 451", session.peer)
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

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user_ok = hmac.compare_digest(auth_data.login, self._username)
            password_ok = hmac.compare_digest(auth_data.password, self._password)
            if user_ok and password_ok:
                return AuthResult(success=True)
        self._metrics.rejected.labels("smtp", "auth").inc()
        log.warning("SMTP AUTH %s failed from %s", mechanism, session.peer)
        return AuthResult(success=False, handled=False)


class _SMTP(SMTP):
    """aiosmtpd's protocol, tracking connections and counting size-limit refusals."""

    def __init__(self, *args: Any, receiver: SmtpReceiver, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receiver = receiver

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._receiver.connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._receiver.connections.discard(self)
        super().connection_lost(exc)

    async def push(self, status: AnyStr) -> None:
        text = status if isinstance(status, str) else status.decode(errors="replace")
        if text.startswith("552"):
            self._receiver.metrics.rejected.labels("smtp", "too_large").inc()
            log.warning("refused a mail over the size limit (%d bytes)", self.data_size_limit or 0)
        await super().push(status)


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
        self.port = settings.smtp_port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind and listen; with port 0 the bound port is in ``self.port``.

        Raises:
            OSError: the address cannot be bound.
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
        logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.root.level))

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

        self._server = await loop.create_server(
            factory, s.smtp_host, s.smtp_port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "SMTP on %s:%d (max %d bytes, STARTTLS %s, AUTH %s)",
            s.smtp_host,
            self.port,
            s.smtp_max_size,
            "required" if s.smtp_require_starttls else ("offered" if tls else "off"),
            "required" if s.smtp_auth_required else ("offered" if authenticator else "off"),
        )

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight DATA finish (up to ``grace``), close connections."""
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
