"""Fixtures for the cross-service tests: the services as real subprocesses, a webhook sink.

Every service runs through its console script (the container command) with its listeners on
free loopback ports, pointed at the per-test ``nats_server``. Each process writes its log to a
file under ``tmp_path``; ``Stack.report()`` gives the tails, so a failing assertion says what the
services saw. Teardown SIGKILLs whatever is still running, whether the test passed or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
import pytest
from aiohttp import web
from proxbus_devtools.testing import NatsServer, free_port, serve_app, wait_until
from proxbus_events import DELIVERIES_STREAM, EVENTS_STREAM

BIN = Path(sys.executable).parent
SITE = "lab"
WEBHOOK_SECRET = "sink-hmac-secret"
PVE_WEBHOOK_SECRET = "pve-webhook-token"
# Only what a process needs to run: nothing from the developer's shell (PVE_*, GOTIFY_*, ...)
# may reach the services and change what they do.
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


# ---------------------------------------------------------------------------------------------
# webhook sink


@dataclass(slots=True)
class Receipt:
    """One request the sink answered (raw: nothing is de-duplicated)."""

    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    at: float

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self.payload.get("events", []))


@dataclass
class Sink:
    """A loopback HTTP server standing in for n8n: records every POST and answers 200 at once."""

    secret: str = WEBHOOK_SECRET
    port: int = 0
    receipts: list[Receipt] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        signature = request.headers.get("X-Proxbus-Signature", "")
        self.receipts.append(
            Receipt(
                request.path,
                dict(request.headers),
                body,
                hmac.compare_digest(signature, expected),
                time.monotonic(),
            )
        )
        return web.json_response({"ok": True})

    def on(self, path: str) -> list[Receipt]:
        """Receipts of one receiver (each receiver posts to its own path)."""
        return [r for r in self.receipts if r.path == path]

    def events(self, path: str) -> list[dict[str, Any]]:
        """Every event listed in every receipt on ``path``, duplicates included."""
        return [e for r in self.on(path) for e in r.events]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", s.handle)
    async with serve_app(app) as s.port:
        yield s


# ---------------------------------------------------------------------------------------------
# service processes


# What a launch needs that must be fresh each time: (health port, named ports, env naming them).
PortPlan = Callable[[], tuple[int, dict[str, int], dict[str, str]]]


@dataclass
class Service:
    """A console script running as a subprocess, its log file and its ports."""

    name: str
    launch: Callable[[Service], None]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = Path()
    health_port: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    launches: int = 0

    def tail(self, chars: int = 2500) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-chars:]

    @property
    def running(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crash, an OOM kill)."""
        if self.alive:
            self.running.send_signal(signal.SIGKILL)
        self.running.wait(10)

    async def healthy(self, timeout: float, report: Callable[[], str]) -> None:
        """Wait until ``GET /health`` answers 200; fail with the logs if it never does.

        A port picked by ``free_port`` can be taken by someone else before the service binds
        it (other suites run in parallel): such a start is retried on fresh ports, twice.
        """
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            while True:
                code = self.running.poll()
                if code is not None:
                    if "address already in use" in self.tail() and self.launches < 3:
                        self.launch(self)
                        continue
                    raise AssertionError(
                        f"{self.name} exited with {code} before it was healthy\n" + report()
                    )
                try:
                    url = f"http://127.0.0.1:{self.health_port}/health"
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} not healthy after {timeout}s\n" + report())
                await asyncio.sleep(0.05)


def _one_port(name: str, *env_names: str) -> PortPlan:
    """A plan with a free health port and one more port ``name`` set in ``env_names``."""

    def plan() -> tuple[int, dict[str, int], dict[str, str]]:
        port = free_port()
        return free_port(), {name: port}, dict.fromkeys(env_names, str(port))

    return plan


def _health_only() -> tuple[int, dict[str, int], dict[str, str]]:
    return free_port(), {}, {}


def _health_is_http() -> tuple[int, dict[str, int], dict[str, str]]:
    port = free_port()
    return port, {"http": port}, {}


class Stack:
    """The proxbus services of one test, on one nats-server, with their logs."""

    pve_webhook_secret = PVE_WEBHOOK_SECRET

    def __init__(self, nats_server: NatsServer, tmp_path: Path) -> None:
        self.nats = nats_server
        self.dir = tmp_path
        self.services: list[Service] = []
        self._logs = 0

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        return {
            **base,
            "NATS_URL": self.nats.url,
            "PROXBUS_SITE": SITE,
            "HEALTH_HOST": "127.0.0.1",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "console",
            "EVENTS_MAX_BYTES": str(256 * 1024**2),
            **extra,
        }

    def spawn(self, name: str, script: str, plan: PortPlan, **env: str) -> Service:
        """Start ``script`` (no waiting); its stdout+stderr go to ``<tmp>/<name>-<n>.log``."""

        def launch(service: Service) -> None:
            health, ports, port_env = plan()
            self._logs += 1
            service.log_path = self.dir / f"{name}-{self._logs}.log"
            with service.log_path.open("wb") as log:
                service.proc = subprocess.Popen(
                    [str(BIN / script)],
                    env=self.env(HEALTH_PORT=str(health), **port_env, **env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.dir,  # no stray .env is read
                )
            service.health_port, service.ports = health, ports
            service.launches += 1

        service = Service(name, launch)
        launch(service)
        self.services.append(service)
        return service

    def ingest_syslog(self, **env: str) -> Service:
        return self.spawn(
            "ingest-syslog",
            "proxbus-ingest-syslog",
            _one_port("syslog", "SYSLOG_PORT"),
            SYSLOG_HOST="127.0.0.1",
            SYSLOG_UDP="false",  # TCP only: the UDP twin of a free TCP port may be taken
            **env,
        )

    def ingest_email(self, **env: str) -> Service:
        return self.spawn(
            "ingest-email",
            "proxbus-ingest-email",
            _one_port("smtp", "SMTP_PORT"),
            SMTP_HOST="127.0.0.1",
            SMTP_HOSTNAME="proxbus.test",
            **env,
        )

    def ingest_pve_ws(self, **env: str) -> Service:
        """Webhook receiver; no API watcher unless ``env`` points it at a simulator
        (``EVENT_WS_ENABLED=true`` and the simulator's ``PVE_*`` variables)."""
        return self.spawn(
            "ingest-pve-ws",
            "proxbus-ingest-pve-ws",
            _health_is_http,
            **{"EVENT_WS_ENABLED": "false", "PVE_WEBHOOK_SECRET": PVE_WEBHOOK_SECRET, **env},
        )

    def dispatcher(self, routes: Path, sink: Sink, **env: str) -> Service:
        return self.spawn(
            "dispatcher",
            "proxbus-dispatcher",
            _health_only,
            ROUTES_FILE=str(routes),
            SINK_URL=sink.url,
            SINK_SECRET=sink.secret,
            ENRICH_ENABLED="false",  # no gateway in these tests
            **env,
        )

    def routes(self, child: str = "") -> Path:
        """A routes.yaml: receiver ``rest`` (sink path ``/rest``) takes everything, except what
        ``child`` (YAML of the root's ``routes:`` list, may use receiver ``oncall`` →
        ``/oncall``) takes."""
        text = """\
receivers:
  - {name: rest, type: webhook, url: "${SINK_URL}/rest", secret: "${SINK_SECRET}"}
  - {name: oncall, type: webhook, url: "${SINK_URL}/oncall", secret: "${SINK_SECRET}"}
route:
  receiver: rest
  group_by: ["..."]
  repeat_interval: 0s  # the dispatcher's fingerprint dedup must not hide a duplicate either
"""
        if child:
            text += "  routes:\n" + child
        path = self.dir / f"routes-{len(list(self.dir.glob('routes-*.yaml')))}.yaml"
        path.write_text(text)
        return path

    async def healthy(self, *services: Service, timeout: float = 25.0) -> None:
        await asyncio.gather(*(s.healthy(timeout, self.report) for s in services))

    def report(self) -> str:
        """The tail of every service log and of the broker's, for assertion messages."""
        parts = []
        for s in self.services:
            state = "running" if s.alive else f"exit {s.running.returncode}"
            parts.append(f"----- {s.name} ({state}) {s.log_path.name} -----\n{s.tail()}")
        log = getattr(self.nats, "log_path", None)
        if isinstance(log, Path) and log.exists():
            parts.append(f"----- nats-server -----\n{log.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    async def wait_until(
        self,
        condition: Callable[[], bool],
        what: str,
        timeout: float = 15.0,
        detail: Callable[[], object] = lambda: "",
    ) -> None:
        """Poll ``condition`` every 20 ms; on timeout fail with ``detail()`` and the logs."""
        await wait_until(condition, timeout, what, detail=lambda: f"{detail()}\n{self.report()}")

    async def wait_quiescent(self, nc: Any, timeout: float = 15.0) -> None:
        """Wait until the dispatcher has nothing left: every event and delivery acked.

        Then the sink's receipts are final: anything still to come would be pending here.
        """
        js = nc.jetstream(timeout=2)
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                events = await js.consumer_info(EVENTS_STREAM, "dispatcher")
                deliveries = await js.stream_info(DELIVERIES_STREAM)
                busy = [
                    (c.name, c.num_pending, c.num_ack_pending)
                    for c in [events, *await js.consumers_info(DELIVERIES_STREAM)]
                    if c.num_pending or c.num_ack_pending
                ]
                last = {"busy consumers": busy, "deliveries": deliveries.state.messages}
                if not busy and deliveries.state.messages == 0:
                    return
            except Exception as exc:  # the broker may be reconnecting: try again
                last = exc
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"dispatcher not quiescent after {timeout}s: {last}\n{self.report()}"
                )
            await asyncio.sleep(0.05)

    # sources --------------------------------------------------------------------------------
    @staticmethod
    def syslog_line(text: str, host: str = "pve2", app: str = "proxbus-test", pri: int = 30) -> str:
        """An RFC 3164 line as rsyslog forwards it (``<30>`` = daemon.info)."""
        stamp = time.strftime("%b %e %H:%M:%S", time.gmtime())
        return f"<{pri}>{stamp} {host} {app}[4242]: {text}"

    @staticmethod
    async def send_syslog(service: Service, lines: list[str]) -> None:
        """One TCP connection, LF framing (rsyslog ``@@host:port``)."""
        _, writer = await asyncio.open_connection("127.0.0.1", service.ports["syslog"])
        try:
            writer.write(b"".join(line.encode() + b"\n" for line in lines))
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    @staticmethod
    def mail(subject: str, body: str, message_id: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = "root@pve1.lab.example"
        msg["To"] = "ops@lab.example"
        msg["Subject"] = subject
        msg["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        msg["Message-ID"] = message_id
        msg.set_content(body)
        return msg

    @staticmethod
    async def send_mail(service: Service, msg: EmailMessage) -> None:
        """Raises aiosmtplib.SMTPResponseException with the code when the server refuses."""
        await aiosmtplib.send(msg, hostname="127.0.0.1", port=service.ports["smtp"], timeout=15)

    def kill_all(self) -> None:
        for s in self.services:
            if s.alive:
                s.running.kill()
        for s in self.services:
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.running.wait(10)


@pytest.fixture
def stack(nats_server: NatsServer, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(nats_server, tmp_path)
    try:
        yield s
    finally:
        s.kill_all()
