"""Fire-and-forget emission to SMTP, syslog and webhook targets; never blocks the simulator."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiohttp
import aiosmtplib

from .notify import Notification

log = logging.getLogger(__name__)
_SEVERITY = {
    "emerg": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}
_FACILITY = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "authpriv": 10,
    "local0": 16,
}


@dataclass(slots=True)
class SmtpTarget:
    """Where notification mails go."""

    host: str
    port: int
    mail_from: str = "root@pve1.lab.example"
    mail_to: str = "root@lab.example"


@dataclass(slots=True)
class SyslogTarget:
    """A syslog receiver; ``fmt`` is ``rfc3164`` or ``rfc5424``, ``protocol`` udp or tcp."""

    host: str
    port: int
    protocol: str = "udp"
    fmt: str = "rfc3164"


@dataclass(slots=True)
class WebhookTarget:
    """A PVE webhook notification target (JSON body, bearer secret)."""

    url: str
    secret: str | None = None


def syslog_line(
    fmt: str,
    host: str,
    app: str,
    pid: int | None,
    severity: str,
    msg: str,
    facility: str = "daemon",
    when: float | None = None,
) -> str:
    """Render one syslog message as rsyslog forwards it (RFC 3164 or RFC 5424)."""
    pri = _FACILITY.get(facility, 3) * 8 + _SEVERITY.get(severity, 6)
    when = time.time() if when is None else when
    if fmt == "rfc5424":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(when))
        frac = f"{when % 1:.6f}"[1:]
        tz = time.strftime("%z", time.localtime(when))
        return (
            f"<{pri}>1 {stamp}{frac}{tz[:3]}:{tz[3:]} {host} {app} "
            f"{pid if pid is not None else '-'} - - {msg}"
        )
    lt = time.localtime(when)
    stamp = f"{time.strftime('%b', lt)} {lt.tm_mday:2d} {time.strftime('%H:%M:%S', lt)}"
    tag = f"{app}[{pid}]" if pid is not None else app
    return f"<{pri}>{stamp} {host} {tag}: {msg}"


class Emitter:
    """Sends what a real system would emit; failures are logged and counted, never raised."""

    def __init__(self) -> None:
        self.smtp: SmtpTarget | None = None
        self.syslog: SyslogTarget | None = None
        self.webhook: WebhookTarget | None = None
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._pending: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._udp: socket.socket | None = None

    def configure(self, targets: dict[str, Any]) -> None:
        """Set targets from a scenario ``targets`` mapping (``smtp``, ``syslog``, ``webhook``)."""
        if targets.get("smtp"):
            self.smtp = SmtpTarget(**targets["smtp"])
        if targets.get("syslog"):
            self.syslog = SyslogTarget(**targets["syslog"])
        if targets.get("webhook"):
            self.webhook = WebhookTarget(**targets["webhook"])

    def _spawn(self, kind: str, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._guard(kind, coro))
        except RuntimeError:
            coro.close()
            self.failed[kind] += 1
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _guard(self, kind: str, coro: Any) -> None:
        try:
            await asyncio.wait_for(coro, timeout=10)
            self.sent[kind] += 1
        except Exception as exc:
            self.failed[kind] += 1
            log.warning("emission to %s target failed: %s", kind, exc)

    def notify(self, n: Notification) -> None:
        """Send a notification to the mail and webhook targets (if configured)."""
        if self.smtp is not None:
            self._spawn("smtp", self._send_mail(self.smtp, n))
        if self.webhook is not None:
            self._spawn("webhook", self._send_webhook(self.webhook, n))

    def log(
        self,
        host: str,
        app: str,
        pid: int | None,
        severity: str,
        msg: str,
        facility: str = "daemon",
    ) -> None:
        """Send one syslog line to the syslog target (if configured)."""
        target = self.syslog
        if target is None:
            return
        line = syslog_line(target.fmt, host, app, pid, severity, msg, facility)
        if target.protocol == "udp":
            try:
                if self._udp is None:
                    self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    self._udp.setblocking(False)
                self._udp.sendto(line.encode(), (target.host, target.port))
                self.sent["syslog"] += 1
            except OSError as exc:
                self.failed["syslog"] += 1
                log.warning("syslog UDP send failed: %s", exc)
        else:
            self._spawn("syslog", self._send_tcp(target, line))

    @staticmethod
    async def _send_tcp(target: SyslogTarget, line: str) -> None:
        _, writer = await asyncio.open_connection(target.host, target.port)
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    @staticmethod
    async def _send_mail(target: SmtpTarget, n: Notification) -> None:
        msg = EmailMessage()
        msg["From"] = f"Proxmox VE <{target.mail_from}>"
        msg["To"] = target.mail_to
        msg["Subject"] = n.title
        msg["Date"] = formatdate(n.timestamp, localtime=True)
        msg["Message-ID"] = make_msgid(domain=target.mail_from.partition("@")[2] or None)
        msg["Auto-Submitted"] = "auto-generated;"
        msg.set_content(n.text)
        msg.add_alternative(n.html, subtype="html")
        await aiosmtplib.send(
            msg, hostname=target.host, port=target.port, start_tls=False, use_tls=False, timeout=10
        )

    async def _send_webhook(self, target: WebhookTarget, n: Notification) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        body = {
            "title": n.title,
            "message": n.text,
            "severity": n.severity,
            "timestamp": n.timestamp,
            "fields": n.fields,
        }
        headers = {"Content-Type": "application/json"}
        if target.secret:
            headers["Authorization"] = f"Bearer {target.secret}"
        async with self._session.post(target.url, data=json.dumps(body), headers=headers) as r:
            if r.status >= 400:
                raise RuntimeError(f"webhook answered {r.status}")

    async def drain(self) -> None:
        """Wait until every emission in flight has finished (or failed)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        """Finish pending sends and release sockets."""
        await self.drain()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
