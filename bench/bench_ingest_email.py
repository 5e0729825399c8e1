"""ingest-email benchmark: mails/s through the SMTP receiver into JetStream.

Run: ``uv run python bench/bench_ingest_email.py [--mails 1000] [--concurrency 8]``

Senders run in a separate process (aiosmtplib, N concurrent clients) so the receiver's
process measures only its own work. Rows, all on the same nats-server and machine:

- floor, raw JetStream: the same event bytes published with ``js.publish`` (awaited,
  N concurrent publishers), no SMTP, no parsing;
- floor, aiosmtpd no-op: the same senders against aiosmtpd with a handler that answers 250
  without doing anything (SMTP protocol cost alone);
- ingest-email: the real receiver (parse, classify, publish, 250 after the ack), once with
  persistent SMTP connections (a relay) and once with a new connection per mail (what the
  PVE ``smtp`` notification target does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
from aiosmtpd.smtp import SMTP
from proxbus_devtools.testing import NatsServer, free_port, nats_server_binary
from proxbus_events import EVENTS_STREAM, Event, StreamLimits, event_subject
from proxbus_ingest_email.app import EmailService
from proxbus_ingest_email.intake import mail_to_event
from proxbus_ingest_email.settings import Settings
from proxbus_runtime import ensure_streams

ROWS = [
    ("100", "web01", "ok", "1m 32s", "2.13 GiB", "vzdump-qemu-100-2026_11_24-01_00_02.vma.zst"),
    ("101", "db01", "err", "4s", "0 B", "null"),
    ("102", "ct-dns", "ok", "12s", "301.4 MiB", "vzdump-lxc-102-2026_11_24-01_01_38.tar.zst"),
    ("103", "mon", "ok", "44s", "5.02 GiB", "vzdump-qemu-103-2026_11_24-01_01_50.vma.zst"),
]


def vzdump_mail(index: int) -> bytes:
    """A realistic PVE 8 vzdump notification (text + HTML alternative, ~6 KiB)."""
    from email.message import EmailMessage

    header = ("VMID", "Name", "Status", "Time", "Size", "Filename")
    widths = [max(len(r[i]) for r in [header, *ROWS]) for i in range(6)]
    table = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *ROWS]
    )
    logs = "\n".join(
        f"{r[0]}: 2026-11-24 01:00:{i:02d} INFO: {line}"
        for r in ROWS
        for i, line in enumerate(
            ["Starting Backup of VM", "backup mode: snapshot", "creating vzdump archive"] * 6
        )
    )
    text = (
        f"Details\n=======\n{table}\n\nTotal running time: 2m 32s\nTotal size: 7.45 GiB\n\n"
        f"Logs\n====\nvzdump 100 101 102 103 --mode snapshot --storage pbs1\n\n{logs}\n"
    )
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in ROWS)
    msg = EmailMessage()
    msg["Subject"] = "vzdump backup status (pve1.example.com): backup failed"
    msg["From"] = "Proxmox VE <root@pve1.example.com>"
    msg["To"] = "ops@example.com"
    msg["Date"] = "Tue, 24 Nov 2026 01:02:03 +0000"
    msg["Message-ID"] = f"<bench-{index}-{os.getpid()}-{time.time_ns()}@pve1.example.com>"
    msg.set_content(text)
    msg.add_alternative(
        f"<html><body><table>{cells}</table><pre>{logs}</pre></body></html>", subtype="html"
    )
    return msg.as_bytes()


# --------------------------------------------------------------------------- sender process


async def _send_all(
    port: int, count: int, concurrency: int, reconnect: bool, start_at: float
) -> dict[str, float]:
    import aiosmtplib

    mails = [vzdump_mail(i) for i in range(count)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for m in mails:
        queue.put_nowait(m)
    failures = 0

    async def worker() -> None:
        nonlocal failures
        client: aiosmtplib.SMTP | None = None
        while True:
            try:
                raw = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            try:
                if client is None or reconnect:
                    client = aiosmtplib.SMTP(
                        hostname="127.0.0.1", port=port, timeout=30, start_tls=False
                    )
                    await client.connect()
                await client.sendmail("root@pve1.example.com", ["ops@example.com"], raw)
                if reconnect:
                    await client.quit()
            except aiosmtplib.SMTPException:
                failures += 1
                client = None
        if client is not None and not reconnect:
            await client.quit()

    # Start together with the other sender processes (they build their mails first).
    await asyncio.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "seconds": time.perf_counter() - started,
        "finished_at": time.time(),
        "failures": failures,
    }


SENDERS = 2


def run_sender(port: int, count: int, concurrency: int, reconnect: bool) -> dict[str, float]:
    """``count`` mails from ``SENDERS`` sender processes; wall time of the slowest."""
    share = [count // SENDERS + (1 if i < count % SENDERS else 0) for i in range(SENDERS)]
    start_at = time.time() + 3.0  # time for the senders to start and build their mails
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--sender",
                str(port),
                str(n),
                str(concurrency),
                "1" if reconnect else "0",
                str(start_at),
            ],
            stdout=subprocess.PIPE,
        )
        for n in share
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        results.append(json.loads(out))
    # Wall time from the common start to the last sender's end (a late starter counts).
    return {
        "seconds": max(r["finished_at"] for r in results) - start_at,
        "failures": sum(r["failures"] for r in results),
    }


# --------------------------------------------------------------------------- rows


async def floor_raw_publish(url: str, count: int, concurrency: int) -> tuple[float, float]:
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=10)
    event = mail_to_event(vzdump_mail(0), site="bench")
    assert isinstance(event, Event), event
    payload = event.to_json()
    subject = event_subject(event)
    counter = iter(range(count))

    async def worker() -> None:
        for i in counter:
            await js.publish(subject, payload, headers={"Nats-Msg-Id": f"raw-{i}-{time.time_ns()}"})

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_ms = (time.process_time() - cpu) * 1000 / count
    await nc.close()
    return elapsed, cpu_ms


class _NoopHandler:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


async def floor_noop_smtp(count: int, concurrency: int, reconnect: bool) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(_NoopHandler(), hostname="bench", loop=loop, data_size_limit=10 * 2**20),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    cpu = time.process_time()
    try:
        result = await asyncio.to_thread(run_sender, port, count, concurrency, reconnect)
        result["cpu_ms"] = (time.process_time() - cpu) * 1000 / count
        return result
    finally:
        server.close()
        await server.wait_closed()


async def ingest_row(url: str, count: int, concurrency: int, reconnect: bool) -> dict[str, float]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=url,
        proxbus_site="bench",
        smtp_host="127.0.0.1",
        smtp_port=0,
        health_host="127.0.0.1",
        health_port=0,
        log_level="WARNING",
    )
    service = EmailService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.ready.wait(), 15)
    assert service.smtp is not None
    cpu = time.process_time()
    try:
        result = await asyncio.to_thread(
            run_sender, service.smtp.port, count, concurrency, reconnect
        )
        result["cpu_ms"] = (time.process_time() - cpu) * 1000 / count
    finally:
        stop.set()
        await task
    published = service.metrics.published.labels("smtp")._value.get()
    result["published"] = published
    return result


async def main(count: int, concurrency: int) -> None:
    binary = nats_server_binary()
    if binary is None:
        sys.exit("nats-server not found (run the README's install command)")
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-email-") as tmp:
        server = NatsServer(binary, Path(tmp), free_port())
        server.start()
        try:
            nc = await nats.connect(server.url)
            await ensure_streams(nc.jetstream(), StreamLimits(events_max_bytes=2 * 1024**3))
            rows: list[tuple[str, float, float, str]] = []
            raw_s, raw_cpu = await floor_raw_publish(server.url, count, concurrency)
            rows.append(
                ("floor: raw JetStream publish (same event bytes)", count / raw_s, raw_cpu, "")
            )
            for reconnect in (False, True):
                mode = "new connection per mail" if reconnect else "persistent connections"
                noop = await floor_noop_smtp(count, concurrency, reconnect)
                rows.append(
                    (
                        f"floor: aiosmtpd no-op handler, {mode}",
                        count / noop["seconds"],
                        noop["cpu_ms"],
                        "",
                    )
                )
                real = await ingest_row(server.url, count, concurrency, reconnect)
                note = f"{int(real['published'])} acked, {int(real['failures'])} failed"
                rows.append(
                    (
                        f"ingest-email SMTP -> JetStream, {mode}",
                        count / real["seconds"],
                        real["cpu_ms"],
                        note,
                    )
                )
            info = await nc.jetstream().stream_info(EVENTS_STREAM)
            await nc.close()
        finally:
            server.stop()
    size = len(vzdump_mail(0))
    print(
        f"ingest-email benchmark: {count} vzdump mails ({size} bytes, text+HTML) per row, "
        f"{SENDERS} sender processes x {concurrency} concurrent aiosmtplib clients, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    print(
        "| row | mails/s | receiver CPU ms/mail | receiver capacity mails/s/core | notes |\n"
        "| --- | ---: | ---: | ---: | --- |"
    )
    for name, rate, cpu_ms, note in rows:
        print(f"| {name} | {rate:,.0f} | {cpu_ms:.2f} | {1000 / cpu_ms:,.0f} | {note} |")
    print(f"\nmessages in {EVENTS_STREAM}: {info.state.messages}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--sender":
        port, count, concurrency, reconnect = (int(a) for a in sys.argv[2:6])
        start_at = float(sys.argv[6])
        result = asyncio.run(_send_all(port, count, concurrency, bool(reconnect), start_at))
        print(json.dumps(result))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.mails, args.concurrency))
