"""Issue 19: kill -9 while NATS is down loses nothing; a restart listens (TCP and UDP) while NATS
is still down.

The console script as a real subprocess, a real nats-server stopped and started, lines
numbered so the test can tell a lost line from a duplicate.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from proxbus_devtools.procs import stop_process
from proxbus_devtools.testing import NatsServer, free_port, wait_for_port
from proxbus_events import EVENTS_STREAM, Event

from .conftest import free_udp_tcp_port, make_settings, metric, running, script_env, wait_until

SCRIPT = str(Path(sys.executable).parent / "proxbus-ingest-syslog")
RECEIVED = 'proxbus_syslog_received_total{transport="tcp"}'
RECEIVED_UDP = 'proxbus_syslog_received_total{transport="udp"}'
UP = 'proxbus_spool_nats_up{service="ingest-syslog"}'
PENDING = 'proxbus_spool_pending_events{service="ingest-syslog"}'


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _numbered(i: int) -> bytes:
    return f"<30>Nov 24 10:00:00 pve1 pvedaemon[42]: numbered line {i}\n".encode()


async def _send_tcp(port: int, numbers: range) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in numbers:
        writer.write(_numbered(i))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def _send_udp(port: int, numbers: range) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in numbers:
            sock.sendto(_numbered(i), ("127.0.0.1", port))


@pytest.mark.timeout(120)
async def test_kill_9_while_nats_is_down_then_restart_then_nats_back_stores_every_line_once(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    port, health = free_udp_tcp_port(), free_port()
    env = script_env(nats_server.url, port, health, SPOOL_DIR=str(tmp_path / "spool"))
    log = (tmp_path / "service.log").open("wb")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([SCRIPT], env=env, stdout=subprocess.DEVNULL, stderr=log)

    async def count() -> int:
        try:
            return int((await js.stream_info(EVENTS_STREAM)).state.messages)
        except Exception:  # the broker is (re)starting
            return -1

    def all_in(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await count() >= n

        return check

    proc = start()
    try:
        await asyncio.to_thread(wait_for_port, health, "127.0.0.1", 30)
        await asyncio.to_thread(wait_for_port, port, "127.0.0.1", 10)
        await wait_until(lambda: _metric(health, UP) == 1)
        await _send_tcp(port, range(100))  # NATS up: published at once
        await wait_until(all_in(100))
        await asyncio.to_thread(nats_server.stop)
        await _send_tcp(port, range(100, 600))  # NATS down: to the spool
        await wait_until(lambda: _metric(health, RECEIVED) >= 600)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # Restarted while NATS is still down: it must listen and take lines.
        proc = start()
        await asyncio.to_thread(wait_for_port, port, "127.0.0.1", 30)
        await _send_tcp(port, range(600, 800))
        await wait_until(lambda: _metric(health, RECEIVED) >= 200)
        # UDP too: a restart while NATS is down listens, and datagrams go to the spool.
        _send_udp(port, range(800, 850))
        await wait_until(lambda: _metric(health, RECEIVED_UDP) >= 50)
        # What the killed process read is on disk, with what the new one read since.
        await wait_until(lambda: _metric(health, PENDING) == 750)
        await asyncio.to_thread(nats_server.start)

        try:
            await wait_until(all_in(850), timeout=60)
        except AssertionError:
            log.flush()
            raise AssertionError(
                f"{await count()} of 850 stored; service log:\n"
                + "\n".join(
                    x
                    for x in (tmp_path / "service.log").read_text().splitlines()
                    if '"level": "info"' not in x or "spool" in x or "publisher" in x
                )
            ) from None
        numbers: list[int] = []
        sub = await js.subscribe("proxbus.events.>", ordered_consumer=True)
        for _ in range(await count()):
            event = Event.from_json((await sub.next_msg(timeout=5)).data)
            numbers.append(int(event.message.rsplit(" ", 1)[1]))
        await sub.unsubscribe()
        assert sorted(numbers) == list(range(850))  # every line, each once
    finally:
        stop_process(proc, 10)
        log.close()


@pytest.mark.timeout(120)
async def test_a_full_spool_back_pressures_tcp_instead_of_dropping_lines(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    # The READMEs promise it: when the spool is full, TCP senders are back-pressured (the
    # reader stops), nothing read is dropped. 4,000 numbered lines are ~3 MB of events: three
    # times the 1 MiB spool. They are all stored, each once, after NATS is back.
    port = free_udp_tcp_port()
    settings = make_settings(
        nats_server.url,
        port,
        syslog_udp=False,
        spool_dir=tmp_path / "spool",
        spool_max_bytes=1024 * 1024,
    )
    total = 4000
    async with running(settings) as service:
        sink = service.publisher
        assert sink is not None
        await asyncio.to_thread(nats_server.stop)
        await wait_until(lambda: not getattr(sink, "up", True))
        sender = asyncio.create_task(_send_tcp(port, range(total)))
        refused = ("proxbus_spool_refused_total", {"service": "ingest-syslog"})
        await wait_until(lambda: (service.registry.get_sample_value(*refused) or 0) > 0, timeout=30)
        # Full: the connection waits (its sender with it) rather than reading and dropping.
        assert metric(service, "proxbus_syslog_dropped_total", reason="shutdown") == 0
        await asyncio.to_thread(nats_server.start)

        async def stored() -> bool:
            try:
                return int((await js.stream_info(EVENTS_STREAM)).state.messages) >= total
            except Exception:  # the broker is restarting
                return False

        await wait_until(stored, timeout=60)
        await asyncio.wait_for(sender, 30)
        assert metric(service, "proxbus_syslog_dropped_total", reason="shutdown") == 0
    numbers: list[int] = []
    sub = await js.subscribe("proxbus.events.>", ordered_consumer=True)
    for _ in range(total):
        event = Event.from_json((await sub.next_msg(timeout=5)).data)
        numbers.append(int(event.message.rsplit(" ", 1)[1]))
    await sub.unsubscribe()
    assert sorted(numbers) == list(range(total))


def _limit_file_size() -> None:
    """In the child: files can grow to 64 KiB (the kernel refuses writes beyond with EFBIG;
    Python ignores SIGXFSZ). A real disk that stops taking writes, without a mock."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


@pytest.mark.timeout(120)
async def test_a_disk_that_refuses_spool_writes_costs_counted_drops_not_a_log_line_each(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    # Issue 19: every datagram (and every TCP chunk) a peer sends while the spool cannot be
    # written was one ERROR line. They are counted drops and one summary line per interval;
    # what reached the disk before is stored once when NATS is back.
    port, health = free_udp_tcp_port(), free_port()
    await asyncio.to_thread(nats_server.stop)
    env = script_env(nats_server.url, port, health, SPOOL_DIR=str(tmp_path / "spool"))
    proc = subprocess.Popen(
        [SCRIPT], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=_limit_file_size,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    try:
        await asyncio.to_thread(wait_for_port, health, "127.0.0.1", 30)
        await asyncio.to_thread(wait_for_port, port, "127.0.0.1", 10)
        _send_udp(port, range(1000))
        await wait_until(lambda: _metric(health, RECEIVED_UDP) >= 1000)
        for start in range(1000, 1500, 10):  # 50 connections of 10 lines
            await _send_tcp(port, range(start, start + 10))
        await wait_until(lambda: _metric(health, RECEIVED) >= 500)
        spooled = _metric(health, 'proxbus_spool_appended_total{service="ingest-syslog"}')
        assert 0 < spooled < 200  # 64 KiB of events
        dropped = _metric(health, 'proxbus_syslog_dropped_total{reason="spool_error"}')
        dropped += _metric(health, 'proxbus_syslog_dropped_total{reason="buffer_full"}')
        assert spooled + dropped == 1500
        await asyncio.to_thread(nats_server.start)

        async def stored() -> int:
            try:
                return int((await js.stream_info(EVENTS_STREAM)).state.messages)
            except Exception:  # the broker is restarting
                return -1

        await wait_until(lambda: _at_least(stored, int(spooled)), timeout=60)
    finally:
        stop_process(proc, 10)
        reader.join(10)
    text = b"".join(lines).decode(errors="replace")
    failures = [x for x in text.splitlines() if "spool" in x and '"level": "error"' in x]
    failures += [x for x in text.splitlines() if "lines from" in x and "lost" in x]
    assert len(failures) <= 4, failures[:6]


async def _at_least(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() >= n
