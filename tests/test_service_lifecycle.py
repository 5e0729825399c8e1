"""Start-up and shutdown of every service console script, as a supervisor sees them.

Each service runs as a real process (its console script) against a real nats-server. A SIGTERM
while NATS has no JetStream (the service still waiting for it) is a clean exit within two
seconds; a listening port that is taken is one line on stderr naming the address and the
setting that moves it, exit 2, no traceback; `--test-connection` with NATS down names the URL
(never its credentials) and prints nothing but the check lines on stdout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from proxbus_devtools.testing import free_port, wait_until_blocking

BIN = Path(sys.executable).parent
SERVICES = ("dispatcher", "ingest-email", "ingest-syslog", "ingest-pve-ws", "ingest-discord")


def service_env(tmp_path: Path, nats_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env |= {
        "NATS_URL": nats_url,
        "LOG_FORMAT": "console",
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": "0",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "0",
        "SYSLOG_HOST": "127.0.0.1",
        "SYSLOG_PORT": "0",
        "DISCORD_HOST": "127.0.0.1",
        "DISCORD_PORT": "0",
        "DISCORD_PUBLIC_KEY": "ab" * 32,
        "SPOOL_DIR": str(tmp_path / "spool"),
    }
    return env | extra


class Running:
    """A console script whose combined output goes to a file (read while it runs)."""

    def __init__(self, service: str, env: dict[str, str], tmp_path: Path, *args: str) -> None:
        self.log = tmp_path / f"{service}.log"
        self.err = tmp_path / f"{service}.err"
        with self.log.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [str(BIN / f"proxbus-{service}"), *args], env=env, cwd=tmp_path,
                stdout=out, stderr=err,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 20.0) -> None:
        """Until ``text`` is in the output or the process ended (then the assertion shows why)."""
        wait_until_blocking(
            lambda: text in self.output() or self.proc.poll() is not None, timeout=timeout
        )
        assert text in self.output(), self.output()[-3000:]


@pytest.fixture
def running() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(service: str, env: dict[str, str], tmp_path: Path, *args: str) -> Running:
        proc = Running(service, env, tmp_path, *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)


@pytest.mark.parametrize("service", SERVICES)
def test_sigterm_while_jetstream_is_missing_exits_0_at_once(
    service: str, make_nats_server: Any, running: Callable[..., Running], tmp_path: Path
) -> None:
    server = make_nats_server(jetstream=False)
    proc = running(service, service_env(tmp_path, server.url), tmp_path)
    proc.wait_for_output("JetStream is not enabled")
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    code = proc.proc.wait(15)
    took = time.monotonic() - started
    out = proc.output()
    assert code == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert took < 2.5, f"{took:.1f}s (load {os.getloadavg()[0]:.1f})\n{out[-3000:]}"


@pytest.mark.parametrize("service", SERVICES)
def test_jetstream_missing_is_one_clear_line(
    service: str, make_nats_server: Any, running: Callable[..., Running], tmp_path: Path
) -> None:
    server = make_nats_server(jetstream=False)
    proc = running(service, service_env(tmp_path, server.url), tmp_path)
    proc.wait_for_output("JetStream is not enabled")
    proc.proc.send_signal(signal.SIGTERM)
    proc.proc.wait(15)
    out = proc.output()
    lines = [line for line in out.splitlines() if "JetStream" in line]
    assert len(lines) == 1, out[-3000:]
    assert f"JetStream is not enabled on {server.url}" in lines[0]
    assert "nats-server -js" in lines[0]
    assert "ServiceUnavailableError" not in out
    assert "description='None'" not in out


# (service, the setting of the port taken (and that moves it), socket type)
PORTS = [
    ("dispatcher", "HEALTH_PORT", socket.SOCK_STREAM),
    ("ingest-pve-ws", "HEALTH_PORT", socket.SOCK_STREAM),
    ("ingest-email", "SMTP_PORT", socket.SOCK_STREAM),
    ("ingest-email", "HEALTH_PORT", socket.SOCK_STREAM),
    ("ingest-syslog", "SYSLOG_PORT", socket.SOCK_DGRAM),
    ("ingest-syslog", "HEALTH_PORT", socket.SOCK_STREAM),
    ("ingest-discord", "DISCORD_PORT", socket.SOCK_STREAM),
]


@pytest.mark.parametrize(("service", "setting", "kind"), PORTS)
def test_a_taken_port_is_one_line_naming_it_and_exit_2(
    service: str,
    setting: str,
    kind: int,
    nats_server: Any,
    running: Callable[..., Running],
    tmp_path: Path,
) -> None:
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        env = service_env(tmp_path, nats_server.url, **{setting: str(port)})
        proc = running(service, env, tmp_path)
        code = proc.proc.wait(30)
    err = proc.err.read_text()
    assert code == 2, proc.output()[-3000:]
    assert "Traceback" not in proc.output(), proc.output()[-3000:]
    # The log lines of the start-up (stderr too) precede it; the reason is the last line, alone.
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"proxbus-{service}: cannot listen on 127.0.0.1:{port}:"), err
    assert lines[-1].endswith(f"address already in use (set {setting} to move it)"), err
    assert not any(f"proxbus-{service}:" in line for line in lines[:-1]), err
    assert not any(" ERROR " in line for line in lines), err


@pytest.mark.parametrize("service", SERVICES)
def test_test_connection_without_nats_names_the_url_not_its_password(
    service: str, running: Callable[..., Running], tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(tmp_path, f"nats://bob:s3cret@127.0.0.1:{port}")
    proc = running(service, env, tmp_path, "--test-connection")
    assert proc.proc.wait(30) == 1
    stdout = proc.log.read_text()
    assert "s3cret" not in proc.output()
    lines = stdout.splitlines()
    assert lines[0].startswith("nats: FAIL "), stdout
    assert f"nats://127.0.0.1:{port}" in lines[0], stdout
    assert all(": FAIL " in line or ": ok" in line for line in lines), stdout
    assert "WARNING" not in proc.output(), proc.output()
