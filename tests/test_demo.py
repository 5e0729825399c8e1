"""The main job: `proxbus up --demo` runs NATS, every service and a busy simulated cluster.

Everything runs as real processes, the way a user starts it; the test only chooses free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nats
import pytest
from proxbus_devtools.testing import free_port, wait_for_port
from proxbus_events import EVENTS_STREAM

# The demo starts NATS, every service and the simulator (up to 30 s on a loaded machine), then
# each test waits on its own deadline (60-120 s): longer than that, so a slow run fails with
# the demo's log instead of a bare pytest-timeout stack.
pytestmark = pytest.mark.timeout(240)

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


@contextlib.contextmanager
def running_demo(tmp_path: Path, **extra: str) -> Iterator[Demo]:
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
        **extra,
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


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    with running_demo(tmp_path) as running:
        yield running


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


WINDOW = 5  # seconds: the demo dispatcher's correlation window in the test below


class RecordingHook(BaseHTTPRequestHandler):
    """A webhook receiver: records every POSTed JSON body."""

    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def api_backups(nats_url: str) -> list[dict[str, Any]]:
    """The API watcher's backup events (one per finished vzdump task) in PROXBUS_EVENTS."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream(timeout=5)
        state = (await js.stream_info(EVENTS_STREAM)).state
        out = []
        for seq in range(state.first_seq, state.last_seq + 1):
            event = json.loads((await js.get_msg(EVENTS_STREAM, seq)).data)
            if event["source"] == "pve-api" and event["kind"].startswith("backup."):
                out.append(event)
        return out
    finally:
        await nc.close()


def arrival(event: dict[str, Any]) -> float:
    """When the event reached proxbus (its ``received_at``), as a Unix time."""
    return datetime.fromisoformat(event["received_at"].replace("Z", "+00:00")).timestamp()


def test_demo_each_simulated_backup_is_one_notification(tmp_path: Path) -> None:
    bodies: list[dict[str, Any]] = []
    handler = type("Hook", (RecordingHook,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""\
receivers:
  - {{name: rest, type: nats, subject: demo.rest}}
  - {{name: hook, type: webhook, url: "http://127.0.0.1:{server.server_port}/hook"}}
route:
  receiver: rest
  routes:
    - matchers: ["kind=~backup\\\\.(ok|failed)", "vmid=~[0-9]+"]
      receiver: hook
      group_wait: 3s
      repeat_interval: 0s
""")
    # The test's own receiver through the supervisor's per-child settings; a short window,
    # so two backups of one guest a few seconds apart are two happenings.
    extra = {
        "PROXBUS_DISPATCHER_ROUTES_FILE": str(routes),
        "PROXBUS_DISPATCHER_INCIDENT_WINDOW": str(WINDOW),
        "DEMO_ACTIVITY_SECONDS": "2",
    }
    try:
        with running_demo(tmp_path, **extra) as demo:
            deadline = time.monotonic() + 120
            while len(bodies) < 4 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(bodies) >= 4, f"{len(bodies)} notifications\n{demo.tail()}"
            # Backups the API watcher saw at least 10 s ago had every report by now; the first
            # four notifications may come before any API report is that old (the watcher
            # polls): wait for one while the deadline allows.
            while True:
                settled = time.time() - 10
                time.sleep(1)
                events = asyncio.run(api_backups(demo.nats_url))
                if any(arrival(e) <= settled for e in events) or time.monotonic() > deadline:
                    break  # past the deadline, `checked` stays 0 and the assertion says so
    finally:
        server.shutdown()
    # Match each finished backup (the API's report: node, vmid, arrival) with the notification
    # of the incident opened by that backup's first report, within the correlation window.
    incidents = [b["incident"] for b in bodies]
    matched: Counter[str] = Counter()
    checked = 0
    for event in events:
        arrived = arrival(event)
        if arrived > settled:
            continue
        checked += 1
        hits = [
            i["id"]
            for i in incidents
            if (i["node"], i["vmid"]) == (event["node"], event["vmid"])
            and abs(i["first_seen"] - arrived) <= WINDOW
        ]
        assert len(hits) == 1, (event["correlation_id"], hits, incidents)
        matched.update(hits)
    assert checked, "no backup finished early enough to check"
    assert all(n == 1 for n in matched.values()), matched
    assert len({i["id"] for i in incidents}) == len(incidents), incidents
