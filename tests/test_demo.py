"""The main job: `proxbus up --demo` runs NATS, every service and a busy simulated cluster.

Everything runs as real processes, the way a user starts it; the test only chooses free ports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxbus_devtools.testing import free_port, wait_for_port

BIN = Path(sys.executable).parent
SERVICES = ("ingest-syslog", "ingest-email", "ingest-pve-ws", "dispatcher", "mcp-gateway")


class Demo:
    def __init__(self, proc: subprocess.Popen[str], log: Path, ports: dict[str, int]) -> None:
        self.proc = proc
        self.log = log
        self.ports = ports

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports['nats']}"

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if "[INF]" not in line)[-4000:]

    def proxbus(self, *args: str) -> str:
        result = subprocess.run(
            [str(BIN / "proxbus"), "--nats-url", self.nats_url, *args],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + self.tail()
        return result.stdout


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    ports = {name: free_port() for name in ("nats", "syslog", "smtp", *SERVICES)}
    env = {
        **os.environ,
        "SYSLOG_PORT": str(ports["syslog"]),
        "SMTP_PORT": str(ports["smtp"]),
        "GATEWAY_PORT": str(ports["mcp-gateway"]),
        "PVE_WS_POLL_SECONDS": "1",
        "DEMO_ACTIVITY_SECONDS": "0.3",
        "DEMO_TASK_SECONDS": "0.2",
        "LOG_LEVEL": "INFO",
    }
    for name in ("ingest-syslog", "ingest-email", "ingest-pve-ws", "dispatcher"):
        env[f"PROXBUS_{name.upper().replace('-', '_')}_HEALTH_PORT"] = str(ports[name])
    log = tmp_path / "up.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "proxbus"), "up", "--demo", "--nats-port", str(ports["nats"]),
             "--data-dir", str(tmp_path / "data")],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
    demo = Demo(proc, log, ports)
    try:
        wait_for_port(ports["nats"], timeout=30)
        yield demo
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return int(resp.status)
    except OSError:
        return 0


def test_demo_brings_up_every_service_and_events_flow_from_every_source(demo: Demo) -> None:
    deadline = time.monotonic() + 60
    unhealthy = set(SERVICES)
    while unhealthy and time.monotonic() < deadline:
        unhealthy = {name for name in unhealthy if _health(demo.ports[name]) != 200}
        time.sleep(0.2)
    assert not unhealthy, f"not healthy: {unhealthy}\n{demo.tail()}"

    # The simulator's activity reaches the bus through syslog, mail, the webhook and the watcher.
    wanted = {"syslog", "email", "pve-webhook", "pve-api"}
    seen: set[str] = set()
    out = demo.log.with_name("tail.jsonl")
    with out.open("w") as sink:
        tail = subprocess.Popen(
            [str(BIN / "proxbus"), "--nats-url", demo.nats_url, "events", "tail", "--json"],
            stdout=sink, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not wanted <= seen and time.monotonic() < deadline:
            time.sleep(0.2)
            lines = out.read_text().splitlines()
            seen = {json.loads(line)["source"] for line in lines[:-1] if line.strip()}
    finally:
        tail.kill()
        tail.wait()
    assert wanted <= seen, f"sources seen: {seen}\n{demo.tail()}"
    stats = demo.proxbus("events", "stats")
    assert "PROXBUS_EVENTS" in stats

    # The gateway answers over NATS RPC with the simulated inventory.
    check = demo.proxbus("check")
    assert "ok    gateway RPC service proxbus-gateway" in check


def test_demo_stops_everything_on_sigterm(demo: Demo) -> None:
    wait_for_port(demo.ports["mcp-gateway"], timeout=60)
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(timeout=40) == 0, demo.tail()
    for name in ("nats", "mcp-gateway", *(s for s in SERVICES if s != "mcp-gateway")):
        with pytest.raises(TimeoutError):
            wait_for_port(demo.ports[name], timeout=0.3)
