"""``proxbus up --sites 2``: a hub and two leaf sites on one machine, no Docker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from proxbus_devtools.testing import free_port, nats_server_binary, require_binary
from proxbus_events import AUDIT_STREAM, DELIVERIES_STREAM, DLQ_STREAM, EVENTS_STREAM

PROXBUS = str(Path(sys.executable).parent / "proxbus")
STREAMS = (EVENTS_STREAM, DELIVERIES_STREAM, DLQ_STREAM, AUDIT_STREAM)


def _consecutive_free_ports(count: int) -> int:
    """A first port such that ``count`` ports from it were free a moment ago."""
    while True:
        first = free_port()
        if first + count > 65535:
            continue
        try:
            socks = []
            for port in range(first, first + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()


async def _hub_replicas(port: int, deadline: float) -> dict[str, int]:
    """The replicas of the hub's streams and the dispatcher's bucket, once all are there
    and R3 (or what they are at ``deadline``)."""
    names = (*STREAMS, "KV_proxbus_dispatcher_state")
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        js = nc.jetstream(timeout=5)
        while True:
            found = {}
            for info in await js.streams_info():
                if info.config.name in names:
                    found[info.config.name] = info.config.num_replicas
            if (len(found) == len(names) and set(found.values()) == {3}) or (
                time.monotonic() > deadline
            ):
                return found
            await asyncio.sleep(0.5)  # polling interval
    finally:
        await nc.close()


@contextlib.contextmanager
def up_sites(tmp_path: Path, *extra: str) -> Iterator[tuple[int, int, list[str], Any]]:
    """``proxbus up --sites 2 [extra]``: (hub NATS port, first of the two syslog ports, the
    lines printed so far, the process). Five consecutive ports: two syslog, three health. On
    leaving, SIGTERM, and the exit code must be 0."""
    require_binary("nats-server", nats_server_binary())
    syslog = _consecutive_free_ports(5)  # two syslog ports, then three health ports
    hub_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PVE_", "PBS_", "NATS_"))}
    proc = subprocess.Popen(
        [PROXBUS, "up", "--sites", "2", *extra, "--data-dir", str(tmp_path),
         "--nats-port", str(hub_port), "--syslog-port", str(syslog),
         "--health-port", str(syslog + 2)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    output: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield hub_port, syslog, output, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        reader.join(5)
    assert code == 0, "".join(output)[-3000:]


@pytest.mark.timeout(150)
@pytest.mark.parametrize("hub_cluster", [False, True], ids=["hub", "hub-cluster"])
def test_up_sites_2_carries_each_sites_syslog_to_the_hub_dispatcher(
    tmp_path: Path, hub_cluster: bool
) -> None:
    run = secrets.token_hex(4)
    want = {f"upsites-{run}-site1", f"upsites-{run}-site2"}
    with up_sites(tmp_path, *(["--hub-cluster"] if hub_cluster else [])) as running:
        hub_port, syslog, output, proc = running
        # Well inside the test's timeout, so a slow start fails with the children's output.
        deadline = time.monotonic() + 90
        sent: set[str] = set()
        # Each ingest accepts TCP once it is up; a line is sent once per site.
        while sent != want:
            assert proc.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)
            for i, mark in enumerate(sorted(want)):
                if mark in sent:
                    continue
                try:
                    with socket.create_connection(("127.0.0.1", syslog + i), timeout=2) as s:
                        s.sendall(
                            f"<27>Nov 30 03:00:00 pve{i + 1} test: disk fail {mark}\n".encode()
                        )
                    sent.add(mark)
                except OSError:
                    pass
            time.sleep(0.2)  # polling interval of the ingest ports
        while not all(any(m in line for line in output) for m in want):
            assert proc.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)
            time.sleep(0.1)
        text = "".join(output)
        for mark in want:  # the console line names the event's site
            site = mark.rsplit("-", 1)[1]
            assert any(mark in line and f"[{site}]" in line for line in output), text
        assert "site1: NATS" in text
        assert "site2: NATS" in text
        if hub_cluster:  # R3: the streams and the dispatcher's bucket survive losing a node
            replicas = asyncio.run(_hub_replicas(hub_port, deadline))
            assert set(replicas.values()) == {3}, replicas


@pytest.mark.timeout(150)
def test_up_sites_2_demo_brings_each_sites_simulated_cluster_to_the_hub(tmp_path: Path) -> None:
    """``--demo``: one Proxmox simulator per site, its activity (guests started and stopped,
    backups) sent as syslog to its site's ingest; the hub's console receiver prints both sites'."""
    with up_sites(tmp_path, "--demo") as (_, _, output, proc):
        # The simulators act every 15 s: one action each, well inside the deadline.
        deadline = time.monotonic() + 110
        # The console receiver's lines: "🔔 <time> INFO     [site1] Task vzdump 109 started ..."
        while not all(
            any("🔔" in line and f"[{site}]" in line for line in output)
            for site in ("site1", "site2")
        ):
            assert proc.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)[-4000:]
            time.sleep(0.2)  # polling interval of the output
        assert "pvesim-site1" in "".join(output)
