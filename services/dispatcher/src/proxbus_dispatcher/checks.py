"""``--test-connection`` checks of the dispatcher beyond NATS: one per receiver.

Each check is harmless: it never sends a notification. Where the target has a read-only call
that proves the credentials it is used (Discord: GET on the webhook answers the webhook's
metadata; SMTP: EHLO, STARTTLS and AUTH, then QUIT); where it has none, the check stops at
what can be proved without side effects (Gotify: ``GET /version``, the application token can
only be tested by sending; webhook: DNS and a TCP connection, no request). Messages name the
receiver and the host, never a URL path or query (they hold tokens).
"""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib
from proxbus_runtime import Check

from .errors import ConfigError
from .notifiers import ReceiverBase
from .notifiers.apprise import AppriseReceiver
from .notifiers.discord import DiscordReceiver
from .notifiers.email import EmailReceiver
from .notifiers.gotify import GotifyReceiver
from .settings import Settings

CHECK_TIMEOUT = 5.0


def _host(url: str) -> tuple[str, int, str]:
    """(host, port, "host:port") of an http(s) URL, without its path, query or userinfo."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host, port, f"{host}:{port}"


async def _get(url: str, timeout: float) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
        http.get(url, allow_redirects=False) as response,
    ):
        return response.status, await response.content.read(64 * 1024)


async def check_discord(receiver: DiscordReceiver, timeout: float = CHECK_TIMEOUT) -> str:
    """GET on a Discord webhook URL returns the webhook (name, channel) and sends nothing."""
    _, _, where = _host(receiver.url)
    try:
        status, _ = await _get(receiver.url, timeout)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ConnectionError(f"{where}: {type(exc).__name__}") from None
    if status == 200:
        return f"{where}: webhook exists (nothing sent)"
    if status in (401, 403, 404):
        raise ConnectionError(f"{where}: webhook refused (HTTP {status}): deleted or wrong token")
    raise ConnectionError(f"{where}: HTTP {status}")


async def check_gotify(receiver: GotifyReceiver, timeout: float = CHECK_TIMEOUT) -> str:
    """``GET /version``: the server answers; an application token can only be tested by sending."""
    _, _, where = _host(receiver.url)
    try:
        status, body = await _get(receiver.url.rstrip("/") + "/version", timeout)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ConnectionError(f"{where}: {type(exc).__name__}") from None
    if status != 200 or b'"version"' not in body:
        raise ConnectionError(f"{where}: not a Gotify server (GET /version: HTTP {status})")
    return f"{where}: Gotify answers (token not tested: only sending would)"


async def check_tcp(url: str, timeout: float = CHECK_TIMEOUT) -> str:
    """DNS and a TCP connection to the URL's host: no request is sent."""
    host, port, where = _host(url)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        raise ConnectionError(f"{where}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise ConnectionError(f"{where}: {exc.strerror or type(exc).__name__}") from None
    writer.close()
    return f"{where} accepts connections (no request sent)"


async def check_email(receiver: EmailReceiver, timeout: float = CHECK_TIMEOUT) -> str:
    """Connect, EHLO, STARTTLS/TLS as configured, AUTH when a user is set, then QUIT."""
    where = f"{receiver.host}:{receiver.port}"
    context = ssl.create_default_context()
    if not receiver.validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    client = aiosmtplib.SMTP(
        hostname=receiver.host,
        port=receiver.port,
        use_tls=receiver.security == "tls",
        start_tls=receiver.security == "starttls",
        tls_context=context,
        timeout=timeout,
    )
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise ConnectionError(f"{where}: {type(exc).__name__}: {exc}") from None
    try:
        if receiver.username:
            try:
                await client.login(receiver.username, receiver.password or "")
            except aiosmtplib.SMTPAuthenticationError as exc:
                raise ConnectionError(
                    f"{where}: login as {receiver.username} refused ({exc.code})"
                ) from None
            return f"{where}: {receiver.security}, login as {receiver.username} ok"
        return f"{where}: {receiver.security}, no login configured"
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()


async def check_apprise(receiver: AppriseReceiver) -> str:
    """Every URL is one apprise understands (no network: apprise's plugins differ too much)."""
    import apprise

    bad = []
    for url in receiver.urls:
        # The first add() loads apprise's plugins; one imports the deprecated stdlib imghdr.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            understood = apprise.Apprise().add(url)
        if not understood:
            bad.append(url.split("://", 1)[0] + "://")
    if bad:
        raise ValueError(f"{len(bad)} of {len(receiver.urls)} URLs not understood: {bad}")
    return f"{len(receiver.urls)} URLs understood by apprise (nothing sent)"


# Keyed by receiver ``type`` like ``notifiers.NOTIFIERS``; types whose target is NATS itself
# (or the terminal) have nothing more to check.
RECEIVER_CHECKS: dict[str, Callable[[Any], Check]] = {
    "discord": lambda r: lambda: check_discord(r),
    "gotify": lambda r: lambda: check_gotify(r),
    "webhook": lambda r: lambda: check_tcp(r.url),
    "email": lambda r: lambda: check_email(r),
    "apprise": lambda r: lambda: check_apprise(r),
}
NOTHING_TO_CHECK = frozenset({"nats", "console"})


def receiver_check(receiver: ReceiverBase) -> Check | None:
    """The check of one receiver, or None for types with nothing outside NATS to check."""
    factory = RECEIVER_CHECKS.get(str(getattr(receiver, "type", "")))
    return factory(receiver) if factory else None


def connection_checks(settings: Settings) -> dict[str, Check]:
    """The checks ``proxbus-dispatcher --test-connection`` runs after NATS and JetStream."""
    from .app import load_dispatcher_config

    try:
        config = load_dispatcher_config(settings)
    except ConfigError as exc:
        message = str(exc)

        async def invalid() -> str:
            raise ValueError(message)

        return {"receivers": invalid}
    checks: dict[str, Check] = {}
    for name, receiver in config.receivers.items():
        check = receiver_check(receiver)
        if check is not None:
            checks[f"receiver {name} ({getattr(receiver, 'type', '?')})"] = check
    if not checks:

        async def none() -> str:
            return "no receiver with a remote target configured"

        checks["receivers"] = none
    return checks
