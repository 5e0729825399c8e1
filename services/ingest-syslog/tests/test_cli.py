"""The console script: ``parse`` output, and ``serve`` as a real subprocess with SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from nats.js import JetStreamContext
from proxbus_devtools.testing import NatsServer, free_port
from proxbus_events import EVENTS_STREAM

from .conftest import free_udp_tcp_port, line, script_env, wait_until

SCRIPT = str(Path(sys.executable).parent / "proxbus-ingest-syslog")


def test_parse_prints_one_event_or_rejection_per_line(tmp_path: Path) -> None:
    raw = tmp_path / "lines.log"
    raw.write_bytes(
        b"<30>Nov 24 10:00:00 pve1.lab.example qmeventd[9]: Starting cleanup for 100\n"
        b"not syslog at all\n"
        b"<30>Nov 24 10:00:00 pve1 kernel: hello\r\n"
    )
    env = {**os.environ, "PROXBUS_SITE": "lab", "HOSTNAME_MAP": "pve1.lab.example=alpha"}
    out = subprocess.run(
        [SCRIPT, "parse", str(raw)], capture_output=True, check=True, env=env, timeout=30
    ).stdout.decode()
    records = [json.loads(x) for x in out.splitlines()]
    assert len(records) == 3
    assert (records[0]["kind"], records[0]["node"], records[0]["vmid"]) == (
        "vm.stopped",
        "alpha",
        100,
    )
    assert records[0]["site"] == "lab"
    assert records[1] == {"rejected": "no_header"}
    assert records[2]["message"] == "hello"


def test_parse_reads_stdin() -> None:
    out = subprocess.run(
        [SCRIPT, "parse", "-"], input=b"<30>Nov 24 10:00:00 pve1 app: x\n", capture_output=True,
        check=True, timeout=30,
    ).stdout  # fmt: skip
    assert json.loads(out)["kind"] == "syslog.message"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


async def test_sigterm_mid_stream_leaves_every_received_line_in_jetstream(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    port, health = free_udp_tcp_port(), free_port()
    env = script_env(nats_server.url, port, health, EVENTS_MAX_BYTES=str(256 * 1024**2))
    log_path = tmp_path / "service.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen([SCRIPT], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    frozen = False
    try:

        async def healthy() -> bool:
            status, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{health}/health")
            return status == 200

        await wait_until(healthy, timeout=20)
        # Freeze the broker so that, deterministically, the received lines are still in
        # the publisher's buffer when SIGTERM arrives; it thaws right after the signal.
        assert nats_server.proc is not None
        os.kill(nats_server.proc.pid, signal.SIGSTOP)
        frozen = True
        total = 3000
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(line(i) + b"\n" for i in range(total)))
        await writer.drain()
        received = re.compile(r'^proxbus_syslog_received_total\{transport="tcp"\} (\S+)$', re.M)
        buffered = re.compile(r"^proxbus_publish_buffered\{[^}]*\} (\S+)$", re.M)
        pending = 0.0

        async def all_received() -> bool:
            nonlocal pending
            _, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{health}/metrics")
            m, b = received.search(body), buffered.search(body)
            pending = float(b[1]) if b else 0.0
            return bool(m) and float(m[1]) == total

        await wait_until(all_received, timeout=20)
        proc.send_signal(signal.SIGTERM)
        os.kill(nats_server.proc.pid, signal.SIGCONT)
        frozen = False
        assert pending == total  # nothing was acknowledged before SIGTERM
        rc = await asyncio.to_thread(proc.wait, 10)
        writer.close()
        assert rc == 0, log_path.read_text()[-2000:]
        info = await js.stream_info(EVENTS_STREAM)
        assert info.state.messages == total
    finally:
        if frozen and nats_server.proc is not None:
            os.kill(nats_server.proc.pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_file.close()
