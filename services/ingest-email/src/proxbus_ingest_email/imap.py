"""IMAP poller (aioimaplib): unseen mail in, marked seen or moved only after the ack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl

from aioimaplib import aioimaplib
from proxbus_runtime import PublishError

from .intake import MailIntake
from .metrics import IngestMetrics
from .settings import Settings

log = logging.getLogger(__name__)

_SIZE_RE = re.compile(rb"RFC822\.SIZE (\d+)")


class ImapError(Exception):
    """Raised when the IMAP server refuses a command the poller depends on."""


def _check(response: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if response.result != "OK":
        detail = b" ".join(bytes(line) for line in response.lines)[:300]
        raise ImapError(f"{what}: {response.result} {detail.decode(errors='replace')}")
    return response


def mailbox_arg(name: str) -> str:
    """A mailbox name as an IMAP argument: quoted when it has spaces or specials."""
    if name and not re.search(r'[\s"\\(){%*\]]', name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(response: aioimaplib.Response) -> bytes | None:
    """The message bytes of a ``FETCH (BODY[])`` response (the literal)."""
    for line in response.lines:
        if isinstance(line, bytearray):
            return bytes(line)
    return None


class ImapPoller:
    """Processes unseen mail of one mailbox; IDLE where offered, polling otherwise."""

    def __init__(self, settings: Settings, intake: MailIntake, metrics: IngestMetrics) -> None:
        self.settings = settings
        self._intake = intake
        self._metrics = metrics
        self.connected = False
        self.processed = 0
        self._client: aioimaplib.IMAP4 | None = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        s = self.settings
        if not s.imap_tls:
            return None
        context = ssl.create_default_context(cafile=str(s.imap_tls_ca) if s.imap_tls_ca else None)
        if not s.imap_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set, reconnecting with backoff after any failure."""
        backoff = 1.0
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.imap_errors.inc()
                log.warning(
                    "IMAP %s:%d: %s: %s; reconnecting in %.0fs",
                    self.settings.imap_host,
                    self.settings.imap_port_effective,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
            finally:
                self.connected = False
                self._metrics.imap_connected.set(0)
                await self._close()
            if stop.is_set():
                break
            if await _wait(stop, backoff * (0.5 + random.random() / 2)):  # noqa: S311
                break
            backoff = min(backoff * 2, self.settings.imap_backoff_max)
            self._metrics.imap_reconnects.inc()

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if client.has_pending_idle():
                client.idle_done()
            await asyncio.wait_for(client.logout(), 2.0)
        with contextlib.suppress(Exception):
            if client.protocol is not None and client.protocol.transport is not None:
                client.protocol.transport.close()

    async def _session(self, stop: asyncio.Event) -> None:
        s = self.settings
        context = self._ssl_context()
        client: aioimaplib.IMAP4
        if context is not None:
            client = aioimaplib.IMAP4_SSL(
                s.imap_host, s.imap_port_effective, timeout=s.imap_timeout, ssl_context=context
            )
        else:
            client = aioimaplib.IMAP4(s.imap_host, s.imap_port_effective, timeout=s.imap_timeout)
        self._client = client
        lost = asyncio.Event()
        client.protocol.conn_lost_cb = lambda exc: lost.set()
        await client.wait_hello_from_server()
        _check(await client.login(s.imap_user, s.imap_password.get_secret_value()), "LOGIN")
        if s.imap_move_to:
            created = await client.create(mailbox_arg(s.imap_move_to))
            if created.result == "OK":
                log.info("created IMAP folder %r", s.imap_move_to)
        _check(await client.select(mailbox_arg(s.imap_mailbox)), f"SELECT {s.imap_mailbox}")
        self.connected = True
        self._metrics.imap_connected.set(1)
        idle = s.imap_idle and client.has_capability("IDLE")
        log.info(
            "IMAP %s@%s:%d/%s selected (%s)",
            s.imap_user,
            s.imap_host,
            s.imap_port_effective,
            s.imap_mailbox,
            "IDLE" if idle else f"polling every {s.imap_poll_seconds:g}s",
        )
        retry = 1.0
        while not stop.is_set():
            if not await self._drain(client, stop):
                # JetStream is not acknowledging: leave the mail unseen and retry later.
                if await _wait(stop, retry, lost):
                    return
                retry = min(retry * 2, s.imap_backoff_max)
                continue
            retry = 1.0
            if idle:
                await self._idle(client, stop, lost)
            elif await _wait(stop, s.imap_poll_seconds, lost):
                return
            if lost.is_set():
                raise ConnectionError("IMAP connection lost")

    async def _idle(
        self, client: aioimaplib.IMAP4, stop: asyncio.Event, lost: asyncio.Event
    ) -> None:
        """Wait in IDLE for a push, the idle period, ``stop`` or the connection's loss."""
        idle_task = await asyncio.wait_for(
            client.idle_start(timeout=self.settings.imap_idle_seconds), self.settings.imap_timeout
        )
        push = asyncio.ensure_future(
            client.wait_server_push(timeout=self.settings.imap_idle_seconds + 30)
        )
        stopper = asyncio.ensure_future(stop.wait())
        dropped = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait(
                {push, stopper, dropped, idle_task}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (push, stopper, dropped):
                task.cancel()
            await asyncio.gather(push, stopper, dropped, return_exceptions=True)
        if lost.is_set():
            idle_task.cancel()
            await asyncio.gather(idle_task, return_exceptions=True)
            raise ConnectionError("IMAP connection lost")
        if client.has_pending_idle():
            client.idle_done()
        await asyncio.wait_for(idle_task, self.settings.imap_timeout)

    async def _drain(self, client: aioimaplib.IMAP4, stop: asyncio.Event) -> bool:
        """Publish every unseen mail; ``False`` when JetStream stopped acknowledging."""
        s = self.settings
        while not stop.is_set():
            response = _check(await client.uid_search("UNSEEN", charset=None), "UID SEARCH")
            uids = [u for line in response.lines[:1] for u in bytes(line).split() if u.isdigit()]
            if not uids:
                return True
            for uid in uids[: s.imap_batch]:
                if stop.is_set():
                    return True
                if not await self._process(client, uid.decode()):
                    return False
            if len(uids) <= s.imap_batch:
                return True
        return True

    async def _process(self, client: aioimaplib.IMAP4, uid: str) -> bool:
        sized = _check(await client.uid("fetch", uid, "(RFC822.SIZE)"), f"UID FETCH {uid}")
        match = next((m for line in sized.lines if (m := _SIZE_RE.search(bytes(line)))), None)
        if match and int(match.group(1)) > self.settings.imap_max_size:
            self._metrics.received.labels("imap").inc()
            self._metrics.rejected.labels("imap", "too_large").inc()
            log.warning(
                "IMAP UID %s is %s bytes (limit %d): not fetched, marked as processed",
                uid,
                match.group(1).decode(),
                self.settings.imap_max_size,
            )
            await self._acknowledge(client, uid)
            self.processed += 1
            return True
        # BODY.PEEK so that fetching alone never sets \Seen.
        fetched = _check(await client.uid("fetch", uid, "(BODY.PEEK[])"), f"UID FETCH {uid}")
        raw = _literal(fetched)
        if raw is None:
            log.warning("IMAP UID %s vanished before it was fetched", uid)
            return True
        try:
            result = await self._intake.ingest(raw, "imap")
        except PublishError as exc:
            log.warning("IMAP UID %s left unseen: %s", uid, exc)
            return False
        await self._acknowledge(client, uid)
        self.processed += 1
        if result.rejection is not None:
            log.info("IMAP UID %s rejected (%s) and marked seen", uid, result.rejection.reason)
        return True

    async def _acknowledge(self, client: aioimaplib.IMAP4, uid: str) -> None:
        """Mark seen, or move to the configured folder (only ever after the ack)."""
        if not self.settings.imap_move_to:
            _check(await client.uid("store", uid, "+FLAGS.SILENT", r"(\Seen)"), "UID STORE")
            return
        folder = mailbox_arg(self.settings.imap_move_to)
        if client.has_capability("MOVE"):
            _check(await client.uid("move", uid, folder), f"UID MOVE {folder}")
            return
        _check(await client.uid("copy", uid, folder), f"UID COPY {folder}")
        _check(await client.uid("store", uid, "+FLAGS.SILENT", r"(\Seen \Deleted)"), "UID STORE")
        if client.has_capability("UIDPLUS"):
            _check(await client.uid("expunge", uid), "UID EXPUNGE")


async def _wait(stop: asyncio.Event, seconds: float, lost: asyncio.Event | None = None) -> bool:
    """Sleep up to ``seconds`` (less if ``lost`` is set); ``True`` if ``stop`` was set."""
    waiters = {asyncio.ensure_future(stop.wait())}
    if lost is not None:
        waiters.add(asyncio.ensure_future(lost.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return stop.is_set()
