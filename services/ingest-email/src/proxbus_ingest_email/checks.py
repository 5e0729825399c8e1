"""``--test-connection`` checks of ingest-email beyond NATS: the IMAP mailbox, when configured.

The SMTP receiver has nothing upstream to check (Proxmox connects to it).
"""

from __future__ import annotations

import contextlib
import ssl

import aioimaplib
from proxbus_runtime import Check

from .imap import mailbox_arg
from .settings import Settings

CHECK_TIMEOUT = 8.0


def imap_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context the poller uses: the system CAs (or ``IMAP_TLS_CA``), verification on."""
    context = ssl.create_default_context(
        cafile=str(settings.imap_tls_ca) if settings.imap_tls_ca else None
    )
    if not settings.imap_tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def check_imap(settings: Settings) -> str:
    """Log in and select the mailbox, then log out; the detail names the mailbox and its size.

    Raises:
        ConnectionError: the server refused the login or the mailbox (its answer, never the
            password), or could not be reached.
    """
    timeout = min(settings.imap_timeout, CHECK_TIMEOUT)
    host, port = settings.imap_host, settings.imap_port_effective
    client: aioimaplib.IMAP4
    if settings.imap_tls:
        client = aioimaplib.IMAP4_SSL(
            host, port, timeout=timeout, ssl_context=imap_ssl_context(settings)
        )
    else:
        client = aioimaplib.IMAP4(host, port, timeout=timeout)
    try:
        try:
            await client.wait_hello_from_server()
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectionError(f"{host}:{port}: {exc or type(exc).__name__}") from None
        password = settings.imap_password.get_secret_value()
        login = await client.login(settings.imap_user, password)
        if login.result != "OK":
            raise ConnectionError(f"{host}:{port}: login as {settings.imap_user} refused")
        selected = await client.select(mailbox_arg(settings.imap_mailbox))
        if selected.result != "OK":
            raise ConnectionError(f"{host}:{port}: mailbox {settings.imap_mailbox!r} not found")
        exists = next(
            (
                line.split()[0]
                for line in (
                    x.decode(errors="replace") for x in selected.lines if isinstance(x, bytes)
                )
                if line.endswith("EXISTS")
            ),
            "?",
        )
        return f"{settings.imap_user}@{host}:{port}/{settings.imap_mailbox}, {exists} messages"
    finally:
        # Already failing or done: the connection is dropped either way.
        with contextlib.suppress(Exception):
            await client.logout()


def connection_checks(settings: Settings) -> dict[str, Check]:
    """The checks ``proxbus-ingest-email --test-connection`` runs after NATS and JetStream."""
    checks: dict[str, Check] = {}
    if settings.imap_active:

        async def imap() -> str:
            return await check_imap(settings)

        checks["imap"] = imap
    return checks
