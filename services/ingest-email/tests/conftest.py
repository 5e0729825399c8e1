"""Fixtures: real-shaped Proxmox notification mails, a private dovecot, a running service."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from proxbus_devtools.testing import (
    NatsServer,
    free_port,
    require_binary,
    wait_for_port,
    wait_until,
)
from proxbus_ingest_email.app import EmailService
from proxbus_ingest_email.settings import Settings
from proxbus_pvesim.tls import generate_tls

# --------------------------------------------------------------------------- mails
# Wording from the proxmox-notify default templates (pve-manager, pve-ha-manager,
# proxmox-backup templates/default/*.hbs); bodies as PVE 8 / PBS 3 render them.


def notification(
    subject: str,
    text: str,
    html: str | None = None,
    *,
    sender: str = "Proxmox VE <root@pve1.example.com>",
    message_id: str | None = "auto",
    date: bool = True,
) -> bytes:
    """A mail as proxmox-notify's sendmail/smtp targets build it (text + optional HTML)."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = "ops@example.com"
    if date:
        msg["Date"] = format_datetime(datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC))
    if message_id == "auto":
        msg["Message-ID"] = make_msgid(domain="pve1.example.com")
    elif message_id:
        msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated;"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


VZDUMP_ROWS_MIXED = [
    ("100", "web01", "ok", "1m 32s", "2.13 GiB", "vzdump-qemu-100-2026_11_24-01_00_02.vma.zst"),
    ("101", "db01", "err", "4s", "0 B", "null"),
    ("102", "ct-dns", "ok", "12s", "301.4 MiB", "vzdump-lxc-102-2026_11_24-01_01_38.tar.zst"),
]


def vzdump_text(rows: list[tuple[str, ...]], error: str = "") -> str:
    header = ("VMID", "Name", "Status", "Time", "Size", "Filename")
    # proxmox-notify's plaintext table: every column left-aligned, padded to its widest
    # cell + 4 (trailing padding included).
    widths = [max(len(r[i]) for r in [header, *rows]) + 4 for i in range(6)]
    lines = ["".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    logs = []
    for r in rows:
        logs.append(f"{r[0]}: 2026-11-24 01:00:02 INFO: Starting Backup of VM {r[0]} (qemu)")
        if r[2] == "err":
            logs.append(
                f"{r[0]}: 2026-11-24 01:01:34 ERROR: Backup of VM {r[0]} failed - "
                "job failed with err -5 - Input/output error"
            )
        else:
            logs.append(
                f"{r[0]}: 2026-11-24 01:01:34 INFO: Finished Backup of VM {r[0]} (00:01:32)"
            )
    ids = " ".join(r[0] for r in rows)
    return (
        (f"{error}\n" if error else "")
        + "Details\n=======\n"
        + "\n".join(lines)
        + "\n\nTotal running time: 1m 48s\nTotal size: 2.43 GiB\n\nLogs\n====\n"
        + f"vzdump {ids} --mode snapshot --storage pbs1 --mailnotification always "
        "--compress zstd --node pve1\n\n" + "\n".join(logs) + "\n"
    )


def vzdump_html(rows: list[tuple[str, ...]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>\n" for r in rows)
    return (
        "<html><body><h3>Details</h3><table><thead><tr><th>VMID</th><th>Name</th>"
        "<th>Status</th><th>Time</th><th>Size</th><th>Filename</th></tr></thead><tbody>\n"
        f"{cells}</tbody></table><p>Total running time: 1m 48s<br>Total size: 2.43 GiB</p>"
        "</body></html>"
    )


def vzdump_mail(
    rows: list[tuple[str, ...]] = VZDUMP_ROWS_MIXED,
    host: str = "pve1.example.com",
    *,
    message_id: str | None = "auto",
    html: bool = True,
) -> bytes:
    failed = any(r[2] != "ok" for r in rows)
    status = "backup failed" if failed else "backup successful"
    return notification(
        f"vzdump backup status ({host}): {status}",
        vzdump_text(rows),
        vzdump_html(rows) if html else None,
        message_id=message_id,
    )


PBS_SENDER = "Proxmox Backup Server <root@pbs1.example.com>"
PBS_LINK = "<https://pbs1.example.com:8007/#pbsServerAdministration:tasks>"


class Mails:
    """Builders for the mails the tests send (a fixture, so tests need no imports)."""

    notification = staticmethod(notification)
    vzdump = staticmethod(vzdump_mail)
    vzdump_text = staticmethod(vzdump_text)
    vzdump_html = staticmethod(vzdump_html)
    rows_mixed = VZDUMP_ROWS_MIXED

    @staticmethod
    def replication(job: str = "100-0") -> bytes:
        return notification(
            f"Replication Job: '{job}' failed",
            f"Replication job '{job}' with target 'pve2' and schedule '*/15' failed!\n\n"
            "Last successful sync: 2026-11-24 00:45:00\nNext sync try: 2026-11-24 01:20:00\n"
            "Failure count: 1\n\nError:\nstart replication job failed - "
            "zfs error: cannot open 'rpool/data/vm-100-disk-0': dataset does not exist\n",
        )

    @staticmethod
    def fencing(node: str = "pve2", success: bool = False) -> bytes:
        subject = (
            f"Successfully fenced node '{node}'" if success else f"Trying to fence node '{node}'"
        )
        verb = "successfully fenced" if success else "will now fence"
        return notification(
            subject,
            f"The node '{node}' in cluster 'lab' failed\nand needs manual intervention.\n\n"
            f"The PVE HA manager {verb} '{node}'.\nStatus:    FENCE\n"
            "Timestamp: 2026-11-24 01:02:03\n\nCluster Node Status:\n--------------------\n"
            f"  - pve1: online [master]\n  - {node}: unknown\n",
        )

    @staticmethod
    def updates(host: str = "pve1.example.com", pbs: bool = False) -> bytes:
        return notification(
            f"New software packages available ({host})",
            "The following updates are available:\n\n"
            "Package          Old Version  New Version\n"
            "pve-manager      8.4.1        8.4.5\n"
            "proxmox-kernel   6.8.12-9     6.8.12-11\n",
            sender=PBS_SENDER if pbs else "Proxmox VE <root@pve1.example.com>",
        )

    @staticmethod
    def pbs(subject: str, body: str = "") -> bytes:
        return notification(
            subject,
            body + f"\n\nPlease visit the web interface for further details:\n\n{PBS_LINK}\n",
            sender=PBS_SENDER,
        )


@pytest.fixture
def mails() -> type[Mails]:
    return Mails


# --------------------------------------------------------------------------- dovecot


@dataclass
class Dovecot:
    """A dovecot subprocess; ``stop()``/``start()`` keep its port, config and mail."""

    host: str
    port: int
    user: str
    password: str
    root: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def start(self) -> None:
        # Own process group: stop() ends the master and every imap/login child at once.
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            wait_for_port(self.port, timeout=15)
        except TimeoutError:
            raise RuntimeError(f"dovecot did not start:\n{self.log()}") from None

    def stop(self) -> None:
        """Stop the server and drop every client connection (like a crash of the host)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        for name in ("master.pid",):
            with contextlib.suppress(FileNotFoundError):
                (self.root / "run" / name).unlink()


def _dovecot_users() -> tuple[str, str, int, int]:
    """(internal user, login user, mail uid, mail gid) that dovecot accepts here."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        return me, me, os.geteuid(), os.getegid()
    # As root dovecot refuses to run imap-login or mail processes as root (uid 0).
    mail_user = pwd.getpwnam("dovecot")
    return "dovecot", "dovenull", mail_user.pw_uid, mail_user.pw_gid


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A private dovecot (IMAP, plaintext auth, maildir) on a free loopback port."""
    binary = require_binary(
        "dovecot",
        shutil.which("dovecot")
        or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None),
    )
    root = Path(tempfile.mkdtemp(prefix="proxbus-dovecot-"))
    root.chmod(0o755)  # login processes run as an unprivileged user and need to traverse it
    internal, login, uid, gid = _dovecot_users()
    port = free_port()
    (root / "mail").mkdir()
    for sub in ("run", "state"):
        (root / sub).mkdir()
    if os.geteuid() == 0:
        os.chown(root / "mail", uid, gid)
    (root / "users").write_text("pve:{PLAIN}s3cret-pw\n")
    conf = root / "dovecot.conf"
    conf.write_text(
        f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
default_login_user = {login}
first_valid_uid = 0
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""
    )
    server = Dovecot("127.0.0.1", port, "pve", "s3cret-pw", root, [binary, "-F", "-c", str(conf)])
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- service


def service_settings(nats_server: NatsServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "nats_url": nats_server.url,
        "proxbus_site": "lab",
        "health_host": "127.0.0.1",
        "health_port": 0,
        "smtp_host": "127.0.0.1",
        "smtp_port": 0,
        "smtp_publish_timeout": 2.0,
        "imap_publish_timeout": 2.0,
        "imap_poll_seconds": 0.5,
        "imap_timeout": 5.0,
        "imap_backoff_max": 1.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[EmailService]:
    """The service running in this loop until the block ends."""
    service = EmailService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    ready = asyncio.create_task(service.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()
    assert ready in done, "service did not become ready"
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 12)


@pytest.fixture
def settings_for() -> Any:
    return service_settings


@pytest.fixture
def service_cm() -> Any:
    return running_service


@pytest.fixture
def until() -> Any:
    return wait_until


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (SMTP STARTTLS tests), from the simulator's CA."""
    tls = generate_tls(tmp_path, "smtp")
    return tls.cert_path, tls.key_path
