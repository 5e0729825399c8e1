"""What a newcomer reads on `proxbus up`'s screen: notifications are not errors, the next
steps are commands they can paste, aligned."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from proxbus_devtools.status import StatusBoard
from proxbus_devtools.supervisor import Child, Supervisor, default_data_dir, footer
from proxbus_devtools.testing import free_port, wait_for_port, wait_until, wait_until_blocking

PROXBUS = str(Path(sys.executable).parent / "proxbus")

# The demo's console receiver prints notifications on the dispatcher's stdout; its log lines
# (and a crash's traceback) go to stderr.
_DISPATCHER = """
import pathlib, sys, time
print("\N{BELL} 10:43:11 ERROR    Backup of VM 109 failed (pve1, vmid 109)", flush=True)
print("    ERROR: Backup of VM 109 failed - job failed with err -5", flush=True)
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.05)
print("2026-11-30 10:43:12,000 ERROR   dispatcher proxbus.x: the state bucket is gone",
      file=sys.stderr, flush=True)
time.sleep(60)
"""


async def test_the_dispatchers_notifications_are_shown_not_taken_for_its_last_error(
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    child = Child("dispatcher", [sys.executable, "-c", _DISPATCHER, str(go)])
    board = StatusBoard(["dispatcher"])
    shown: list[str] = []
    supervisor = Supervisor([child], board, tmp_path, shown.append)
    stop = asyncio.Event()
    run = asyncio.create_task(supervisor.run(stop))
    try:
        await wait_until(lambda: len(shown) == 2, timeout=15)
        assert "Backup of VM 109 failed" in shown[0]
        assert board.get("dispatcher").last_error == ""
        go.touch()
        await wait_until(lambda: board.get("dispatcher").last_error != "", timeout=15)
        assert board.get("dispatcher").last_error.endswith("the state bucket is gone")
    finally:
        stop.set()
        assert await asyncio.wait_for(run, 20) == 0


def _args(data_dir: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(data_dir=data_dir or default_data_dir(), demo=True)


def _children() -> list[Child]:
    return [Child(name, ["x"]) for name in ("nats", "pvesim", "mcp-gateway", "dispatcher")]


def test_next_steps_are_commands_that_work_where_proxbus_up_was_started(tmp_path: Path) -> None:
    credentials = tmp_path / "demo" / "credentials.txt"
    # `uv run proxbus up --demo` (the README's): proxbus is not on PATH, `uv run proxbus` is.
    under_uv = footer(_args(), _children(), credentials, {"UV_RUN_RECURSION_DEPTH": "1"})
    assert any(line.endswith("  uv run proxbus events tail") for line in under_uv)
    assert not any(re.search(r"(?<!uv run) proxbus ", line) for line in under_uv)
    direct = footer(_args(), _children(), credentials, {})
    assert any(line.endswith("  proxbus events tail") for line in direct)
    for lines in (under_uv, direct):
        text = "\n".join(lines)
        assert "http://127.0.0.1:8091/" in text
        assert "http://127.0.0.1:8080/mcp" in text
        assert str(credentials) in text
        assert "Ctrl-C" in text


def test_next_steps_are_two_aligned_columns(tmp_path: Path) -> None:
    lines = footer(_args(str(tmp_path)), _children(), tmp_path / "credentials.txt", {})
    assert lines[1].endswith(f"  PROXBUS_DATA_DIR={tmp_path} proxbus events tail")
    assert lines[0] == "next steps:"
    steps = lines[1:]
    assert len(steps) >= 5
    # what it is, then at least two spaces, then what to type or open: one column
    starts = {len(line) - len(line.split("  ", 2)[-1].lstrip()) for line in steps}
    assert len(starts) == 1, "\n".join(lines)


def test_next_steps_fit_an_80_column_terminal() -> None:
    """The demo's, with the default data directory of a user whose home is /home/alice."""
    credentials = Path("/home/alice/.local/share/proxbus/demo/credentials.txt")
    for environ in ({}, {"UV_RUN_RECURSION_DEPTH": "1"}):
        lines = footer(_args(), _children(), credentials, environ)
        assert max(len(line) for line in lines) <= 80, "\n".join(lines)


def _stop(up: subprocess.Popen[Any]) -> None:
    """SIGTERM, so the supervisor stops its children (in their own sessions); kill if it hangs."""
    if up.poll() is None:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def _listener() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


def _up(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBUS_", "NATS_"))}
    proc = subprocess.Popen(
        [PROXBUS, "up", "--plain", "--data-dir", str(tmp_path), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**base, **(env or {})},
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # it stops its children
        out, err = proc.communicate(timeout=30)
        raise AssertionError(f"proxbus up did not give up:\n{out}{err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_busy_nats_port_is_one_clear_line_not_a_restart_loop(tmp_path: Path) -> None:
    sock, port = _listener()
    with sock:
        result = _up(tmp_path, "--services", "none", "--nats-port", str(port))
    assert result.returncode == 1
    assert f"port {port} (nats) is already in use" in result.stderr
    assert "--nats-port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs" / "nats.log").exists()  # nothing was started


def test_a_busy_service_port_names_the_variable_that_moves_it(tmp_path: Path) -> None:
    sock, busy = _listener()
    nats = free_port()
    with sock:
        result = _up(
            tmp_path, "--services", "dispatcher", "--nats-port", str(nats),
            env={"PROXBUS_DISPATCHER_HEALTH_PORT": str(busy)},
        )  # fmt: skip
    assert result.returncode == 1
    assert f"port {busy} (dispatcher) is already in use" in result.stderr
    assert "PROXBUS_DISPATCHER_HEALTH_PORT=" in result.stderr
    with pytest.raises(TimeoutError):
        wait_for_port(nats, timeout=0.5)


def test_a_bad_setting_is_shown_with_its_reason_and_not_restarted_forever(tmp_path: Path) -> None:
    """A service exits 2 with one line on invalid settings: restarting it cannot help, so it
    stays stopped and the line is what the user reads (before: restarts every 1, 2, 4... s,
    and no reason anywhere on screen)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBUS_", "NATS_"))}
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        up = subprocess.Popen(
            [PROXBUS, "up", "--plain", "--services", "dispatcher", "--nats-port", str(free_port()),
             "--data-dir", str(tmp_path / "data")],
            stdout=sink, stderr=subprocess.STDOUT,
            env={**base, "PROXBUS_DISPATCHER_MIN_SEVERITY": "loud",
                 "PROXBUS_DISPATCHER_HEALTH_PORT": str(free_port())},
        )  # fmt: skip
    try:
        wait_until_blocking(lambda: "dispatcher stopped" in out.read_text(), timeout=30)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0
    finally:
        _stop(up)
    text = out.read_text()
    assert text.count("dispatcher starting") == 1, text
    assert "restarting" not in text
    stopped = next(line for line in text.splitlines() if "dispatcher stopped" in line)
    assert "exit 2" in stopped
    assert "invalid settings: MIN_SEVERITY" in stopped, text
    assert "not restarted" in text


def _up_gateway_only(cwd: Path, extra: dict[str, str]) -> str:
    """`proxbus up --services mcp-gateway` in ``cwd`` until the gateway is healthy; its output."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PROXBUS_", "NATS_", "PVE_", "PBS_", "CLUSTER"))}  # fmt: skip
    env = {**base, "PROXBUS_MCP_GATEWAY_GATEWAY_PORT": str(free_port()), **extra}
    out = cwd / "out.txt"
    with out.open("w") as sink:
        up = subprocess.Popen(
            [PROXBUS, "up", "--plain", "--services", "mcp-gateway", "--nats-port", str(free_port()),
             "--data-dir", str(cwd / "data")],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=cwd,
        )  # fmt: skip
    try:
        wait_until_blocking(lambda: "mcp-gateway healthy" in out.read_text(), timeout=30)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0
    finally:
        _stop(up)
    return out.read_text()


def test_up_without_any_proxmox_says_where_to_configure_it(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    text = _up_gateway_only(bare, {})
    assert "no Proxmox configured" in text
    assert "deploy/.env.example" in text
    assert "--demo" in text
    # Configured in the .env the services read (their working directory): no warning.
    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / ".env").write_text(
        "PVE_NODES=pve1\nPVE_PVE1_HOST=127.0.0.1:1\nPVE_PVE1_USER=root@pam\n"
        "PVE_PVE1_TOKEN_NAME=t\nPVE_PVE1_TOKEN_VALUE=s\n"
    )
    assert "no Proxmox configured" not in _up_gateway_only(configured, {})


def test_a_second_proxbus_up_on_the_same_data_directory_is_refused_before_it_touches_it(
    tmp_path: Path,
) -> None:
    """Both would write up.json, the demo's env file and credentials in one place (the second
    deleted the first's demo/gateway.env before starting its own stack on other ports)."""
    data = tmp_path / "data"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBUS_", "NATS_"))}
    out = tmp_path / "first.txt"
    with out.open("w") as sink:
        first = subprocess.Popen(
            [PROXBUS, "up", "--plain", "--demo", "--services", "none",
             "--nats-port", str(free_port()), "--data-dir", str(data)],
            stdout=sink, stderr=subprocess.STDOUT, env=base,
        )  # fmt: skip
    try:
        env_file = data / "demo" / "gateway.env"
        wait_until_blocking(lambda: "pvesim healthy" in out.read_text() and env_file.exists(), 30)
        before = env_file.read_text()
        second = _up(
            tmp_path / "data", "--demo", "--services", "none", "--nats-port", str(free_port())
        )
        assert second.returncode == 1
        assert f"another proxbus up is running (pid {first.pid}" in second.stderr
        assert env_file.read_text() == before
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        _stop(first)


def test_no_console_url_when_the_console_is_off(tmp_path: Path) -> None:
    """deploy/.env.example sets CONSOLE_ENABLED=false: the footer must not send people to a
    page that is not there."""
    on = "\n".join(footer(_args(), _children(), None, {}))
    assert "http://127.0.0.1:8091/" in on
    for environ in ({"CONSOLE_ENABLED": "false"}, {"PROXBUS_DISPATCHER_CONSOLE_ENABLED": "0"}):
        off = "\n".join(footer(_args(), _children(), None, environ))
        assert "8091" not in off
        assert "web console off" in off


def test_on_an_80_column_terminal_errors_are_lines_under_the_table() -> None:
    """The "last error" column got what was left of 80 columns (its header wrapped to two
    lines, an error to a few characters per line); there, errors go under the table."""
    import io

    from proxbus_devtools.status import render
    from rich.console import Console

    board = StatusBoard(["nats", "dispatcher", "ingest-syslog"])
    board.get("ingest-syslog").ports = "5514 syslog, 8092"
    board.note_line("dispatcher", "2026-11-30 10:00:00,000 ERROR   dispatcher x: bucket gone")
    for width in (80, 200):
        out = io.StringIO()
        Console(file=out, width=width).print(render(board, width))
        lines = out.getvalue().splitlines()
        assert max(len(line) for line in lines) <= width
        assert any("dispatcher x: bucket gone" in line for line in lines), out.getvalue()
        header = next(line for line in lines if line.startswith("service"))
        assert ("last error" in header) == (width == 200)


def test_asking_up_for_ingest_discord_says_how_to_run_it() -> None:
    """The README's service table lists it; `proxbus up` does not run it."""
    result = subprocess.run(
        [PROXBUS, "up", "--services", "dispatcher,ingest-discord", "--no-nats"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert "ingest-discord" in result.stderr
    assert "DISCORD_PUBLIC_KEY" in result.stderr
    assert "proxbus-ingest-discord" in result.stderr


def test_ctrl_c_while_the_demo_starts_stops_it_without_an_error(tmp_path: Path) -> None:
    """Ctrl-C before the simulator had written its gateway settings logged "ERROR ... the
    simulator wrote no .../gateway.env; the gateway will have no Proxmox": the user stopped
    it, nothing went wrong."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBUS_", "NATS_"))}
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        up = subprocess.Popen(
            [PROXBUS, "up", "--plain", "--demo", "--services", "none",
             "--nats-port", str(free_port()), "--data-dir", str(tmp_path / "data")],
            stdout=sink, stderr=subprocess.STDOUT, env=base,
        )  # fmt: skip
    try:
        wait_until_blocking(lambda: "pvesim starting" in out.read_text(), timeout=30)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        _stop(up)
    text = out.read_text()
    assert "pvesim stopped" in text, text
    assert "ERROR" not in text, text
    assert "Traceback" not in text, text


def _post(port: int, path: str, form: dict[str, str], token: str | None) -> int:
    """The status of a form POST to the console on 127.0.0.1:``port`` (redirects not followed)."""
    import http.client
    from urllib.parse import urlencode

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", path, urlencode(form), headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_demo_console_takes_writes_with_the_login_in_the_credentials_file(
    tmp_path: Path,
) -> None:
    """The demo's web console answered "writes are disabled: no CONSOLE_TOKENS configured" to
    a newcomer trying a silence: the demo now makes a console login, kept (like the other demo
    secrets) in credentials.txt, never on the terminal."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBUS_", "NATS_"))}
    base.pop("CONSOLE_TOKENS", None)
    console = free_port()
    data = tmp_path / "data"
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        up = subprocess.Popen(
            [PROXBUS, "up", "--plain", "--demo", "--services", "dispatcher",
             "--nats-port", str(free_port()), "--data-dir", str(data)],
            stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**base, "PROXBUS_DISPATCHER_HEALTH_PORT": str(console)},
        )  # fmt: skip
    try:
        wait_until_blocking(lambda: "dispatcher healthy" in out.read_text(), timeout=60)
        text = (data / "demo" / "credentials.txt").read_text()
        found = re.search(r"^web console login: (\S+)$", text, re.MULTILINE)
        assert found, text
        secret = found.group(1)
        silence = {"matchers": "node=pve1", "duration": "1h", "comment": "demo"}
        assert _post(console, "/silences", silence, token="not-the-login") == 401
        assert _post(console, "/silences", silence, token=secret) == 303
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        _stop(up)
    shown = out.read_text()
    assert secret not in shown
    assert "console login" in shown  # the footer says where it is
    for log in (data / "logs").glob("*.log"):
        assert secret not in log.read_text(), log


def test_a_line_of_dot_env_no_service_can_read_is_named_with_its_file_and_number(
    tmp_path: Path,
) -> None:
    """python-dotenv's own warning, "could not parse statement starting at line 2", names no
    file, and every service then silently ignores that line: proxbus up names the file, the
    line number and what a line must look like."""
    (tmp_path / ".env").write_text(
        "# comment\nLOG_LEVEL=INFO\nthis is not a setting\nexport MIN_SEVERITY=warning\n"
        "   \nPROXBUS_SITE = lab\nDISPATCHER HEALTH_PORT=1\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBUS_", "NATS_"))}
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        up = subprocess.Popen(
            [PROXBUS, "up", "--plain", "--services", "none", "--nats-port", str(free_port()),
             "--data-dir", str(tmp_path / "data")],
            stdout=sink, stderr=subprocess.STDOUT, env=base, cwd=tmp_path,
        )  # fmt: skip
    try:
        wait_until_blocking(lambda: "nats healthy" in out.read_text(), timeout=30)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0
    finally:
        _stop(up)
    text = out.read_text()
    assert ".env line 3 is not NAME=VALUE" in text, text
    assert ".env line 7 is not NAME=VALUE" in text, text
    assert "this is not a setting" not in text  # a mistyped line may hold a secret
    for ok in (2, 4, 6):
        assert f".env line {ok} " not in text


def test_a_port_a_service_finds_taken_is_not_called_an_invalid_setting(tmp_path: Path) -> None:
    """The syslog UDP port (which the supervisor's TCP pre-check does not see) taken: the
    service exits 2 naming the port; proxbus up said "(invalid settings or arguments)"."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 0))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROXBUS_", "NATS_"))}
    out = tmp_path / "out.txt"
    with udp, out.open("w") as sink:
        up = subprocess.Popen(
            [PROXBUS, "up", "--plain", "--services", "ingest-syslog",
             "--nats-port", str(free_port()), "--data-dir", str(tmp_path / "data")],
            stdout=sink, stderr=subprocess.STDOUT,
            env={**base, "PROXBUS_INGEST_SYSLOG_SYSLOG_PORT": str(udp.getsockname()[1]),
                 "PROXBUS_INGEST_SYSLOG_HEALTH_PORT": str(free_port())},
        )  # fmt: skip
        try:
            wait_until_blocking(lambda: "not restarted" in out.read_text(), timeout=30)
            up.send_signal(signal.SIGTERM)
            assert up.wait(timeout=30) == 0
        finally:
            _stop(up)
    text = out.read_text()
    assert "address already in use" in text, text
    assert "a port in use" in text
    assert "invalid settings or arguments" not in text
