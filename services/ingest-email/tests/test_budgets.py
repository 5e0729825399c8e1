"""Issue 19: the SMTP listener stays bounded under hostile load (the service as a subprocess).

Memory is read from ``/proc/<pid>/status`` (VmRSS) of the real console-script process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from proxbus_devtools.procs import stop_process
from proxbus_devtools.testing import free_port, wait_for_port
from proxbus_events import EVENTS_STREAM

MIB = 1024 * 1024


def script() -> list[str]:
    found = shutil.which("proxbus-ingest-email", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "proxbus_ingest_email"]


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def service_process(
    nats_url: str, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """``proxbus-ingest-email`` as a subprocess; yields (process, smtp port, health port)."""
    smtp_port, health_port = free_port(), free_port()
    full_env = {
        **os.environ,
        "NATS_URL": nats_url,
        "PROXBUS_SITE": "lab",
        "SMTP_HOST": "0.0.0.0",  # 127.0.0.2 must reach it too
        "SMTP_PORT": str(smtp_port),
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": str(health_port),
        "LOG_FORMAT": "json",
        **env,
    }
    proc = subprocess.Popen(
        script(), env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(health_port, timeout=20)
        wait_for_port(smtp_port, timeout=5)
        yield proc, smtp_port, health_port
    finally:
        stop_process(proc, 10)


def metrics_text(health_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def big_mails(count: int, size: int = 9 * MIB) -> list[bytes]:
    """Notification mails with a base64 attachment, ``size`` bytes each on the wire."""
    msg = EmailMessage()
    msg["Subject"] = "vzdump backup status (pve1.example.com): backup successful"
    msg["From"] = "root@pve1.example.com"
    msg["To"] = "ops@example.com"
    msg.set_content("Details\n=======\nVMID 100 ok\n")
    raw_len = size * 3 // 4 - 64 * 1024
    msg.add_attachment(
        os.urandom(raw_len), maintype="application", subtype="octet-stream", filename="log.bin"
    )
    body = msg.as_bytes()  # encoded once; each mail differs by its Message-ID
    assert abs(len(body) - size) < 512 * 1024, len(body)
    return [f"Message-ID: <big-{i}@pve1.example.com>\r\n".encode() + body for i in range(count)]


# 180 MB through SMTP on a shared 2-core machine: more than the default 60 s per test.
@pytest.mark.timeout(180)
async def test_twenty_concurrent_9mb_mails_keep_rss_under_200mb_and_release_it(nats_server, js):
    mails = big_mails(20)
    with service_process(nats_server.url) as (proc, port, health):
        peak = rss_mib(proc.pid)
        sampling = True

        async def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, rss_mib(proc.pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())

        async def send(raw: bytes) -> str:
            _, response = await aiosmtplib.send(
                raw,
                sender="root@pve1.example.com",
                recipients=["ops@example.com"],
                hostname="127.0.0.1",
                port=port,
                timeout=120,
                start_tls=False,
            )
            return response

        try:
            responses = await asyncio.gather(*(send(m) for m in mails))
        finally:
            sampling = False
            await sampler
        assert all(r.startswith("2.0.0 OK") for r in responses), responses
        assert peak < 200, f"peak RSS {peak:.0f} MiB"
        started = time.monotonic()
        while (now := rss_mib(proc.pid)) >= 100:
            assert time.monotonic() - started < 30, f"RSS still {now:.0f} MiB after 30 s"
            await asyncio.sleep(0.25)
        print(f"20 x 9 MB: peak RSS {peak:.0f} MiB, {now:.0f} MiB after "
              f"{time.monotonic() - started:.1f} s")  # fmt: skip
        text = metrics_text(health)
        assert metric(text, "proxbus_email_smtp_spooled_total") == 20
        assert metric(text, "proxbus_email_smtp_transactions") == 0
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.messages == 20


async def test_connection_flood_from_one_peer_is_capped_and_another_peer_still_delivers(
    nats_server, js, mails
):
    per_peer, total = 20, 100
    with service_process(
        nats_server.url,
        SMTP_MAX_CONNECTIONS=str(total),
        SMTP_MAX_CONNECTIONS_PER_PEER=str(per_peer),
    ) as (_proc, port, health):
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        greeted = refused = failed = 0

        async def attempt() -> None:
            nonlocal greeted, refused, failed
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 10
                )
            except OSError:
                failed += 1
                return
            banner = await asyncio.wait_for(reader.readline(), 10)
            if banner.startswith(b"220"):
                greeted += 1
                held.append((reader, writer))
            else:
                assert banner.startswith(b"421"), banner
                refused += 1
                writer.close()

        try:
            for _ in range(50):  # 5,000 attempts, 100 at a time
                await asyncio.gather(*(attempt() for _ in range(100)))
            assert greeted == per_peer
            assert refused + failed == 5000 - per_peer
            text = metrics_text(health)
            assert metric(text, "proxbus_email_smtp_connections") == per_peer
            # The budgets themselves are metrics too (alert on use / budget).
            budget = "proxbus_email_smtp_budget"
            assert metric(text, f'{budget}{{budget="max_connections"}}') == total
            assert metric(text, f'{budget}{{budget="max_connections_per_peer"}}') == per_peer
            assert metric(text, f'{budget}{{budget="max_transactions"}}') == 8
            assert metric(text, f'{budget}{{budget="spool_threshold_bytes"}}') == MIB
            assert metric(text, 'proxbus_email_smtp_refused_total{reason="per_peer"}') >= 4000
            # Another peer (127.0.0.2) is still served while the first one holds its share.
            _, response = await aiosmtplib.send(
                mails.fencing(),
                sender="root@pve1.example.com",
                recipients=["ops@example.com"],
                hostname="127.0.0.1",
                port=port,
                timeout=15,
                start_tls=False,
                source_address=("127.0.0.2", 0),
            )
            assert response.startswith("2.0.0 OK")
        finally:
            for _, writer in held:
                writer.close()
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.messages == 1
