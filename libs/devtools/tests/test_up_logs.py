"""Children's log files under `proxbus up`: redaction, bounds, rotation, `proxbus logs`."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

from proxbus_devtools.childlogs import MAX_LINE, LogFile, Redactor, pump, show_logs
from proxbus_devtools.demo import DemoCredentials, secret_of
from proxbus_devtools.testing import wait_until_blocking

PROXBUS = str(Path(sys.executable).parent / "proxbus")


def test_known_secrets_never_reach_the_file(tmp_path: Path) -> None:
    redact = Redactor(["s3cret-value", "abc"])  # too short to redact safely: kept
    sink = LogFile(tmp_path / "x.log", redact)
    assert sink.write("token s3cret-value here, abc\n") == "token *** here, abc"
    redact.add(["later-secret"])
    sink.write("later-secret")
    sink.close()
    assert (tmp_path / "x.log").read_text() == "token *** here, abc\n***\n"


def test_long_lines_are_cut_and_files_rotate(tmp_path: Path) -> None:
    sink = LogFile(tmp_path / "x.log", Redactor(), max_bytes=50_000)
    written = sink.write("y" * (MAX_LINE * 3))
    assert len(written) < MAX_LINE + 100
    for n in range(20):
        sink.write(f"line {n} " + "z" * 5000)
    sink.close()
    assert (tmp_path / "x.log.1").exists()
    assert (tmp_path / "x.log").stat().st_size <= 50_000
    assert "line 19" in (tmp_path / "x.log").read_text()


async def test_pump_copies_a_child_and_hands_lines_on(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print('one'); print('two', flush=True)",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    seen: list[str] = []
    sink = LogFile(tmp_path / "c.log", Redactor())
    assert proc.stdout is not None
    await pump(proc.stdout, sink, seen.append)
    await proc.wait()
    assert seen == ["one", "two"]
    assert (tmp_path / "c.log").read_text() == "one\ntwo\n"


def test_simulator_credential_lines_are_recognised(tmp_path: Path) -> None:
    assert (
        secret_of("API token:    user=root@pam token_name=admin token_value=abc-123") == "abc-123"
    )
    assert secret_of("header:       Authorization: PVEAPIToken=root@pam!admin=tok-1") == "tok-1"
    assert secret_of("PBS token:    PBSAPIToken=root@pam!admin:tok-2") == "tok-2"
    assert secret_of("password:     root@pam / pw-3") == "pw-3"
    assert secret_of("admin token:  Bearer tok-4") == "tok-4"
    assert secret_of("PVE URL:      https://127.0.0.1:1/api2/json") is None
    redact = Redactor()
    creds = DemoCredentials(tmp_path, redact)
    assert creds.capture("password:     root@pam / pw-3456\n")
    assert not creds.capture("fingerprint:  AA:BB\n")
    assert redact("pw-3456") == "***"
    assert (tmp_path / "credentials.txt").stat().st_mode & 0o777 == 0o600
    assert "root@pam / pw-3456" in (tmp_path / "credentials.txt").read_text()


def _logs(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "dispatcher.log").write_text("".join(f"d{n}\n" for n in range(100)))
    (logs / "nats.log").write_text("n1\nn2\n")
    return logs


def test_proxbus_logs_prints_one_or_all_services(tmp_path: Path) -> None:
    _logs(tmp_path)
    one = subprocess.run(
        [PROXBUS, "logs", "dispatcher", "-n", "3", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert one.stdout == "d97\nd98\nd99\n"
    every = subprocess.run(
        [PROXBUS, "logs", "-n", "1", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert every.stdout == "dispatcher | d99\nnats       | n2\n"
    missing = subprocess.run(
        [PROXBUS, "logs", "gateway", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "no log for 'gateway'" in missing.stderr
    assert "dispatcher, nats" in missing.stderr


def test_follow_prints_new_lines_and_survives_rotation(tmp_path: Path) -> None:
    logs = _logs(tmp_path)
    out = io.StringIO()
    done = threading.Event()
    follower = threading.Thread(
        target=show_logs,
        args=(tmp_path, "nats"),
        kwargs={"lines": 1, "follow": True, "out": out, "stop": done.is_set},
    )
    follower.start()
    try:
        wait_until_blocking(
            lambda: out.getvalue() == "n2\n", 5
        )  # history printed: following from here
        with (logs / "nats.log").open("a") as fh:
            fh.write("n3\n")
        wait_until_blocking(lambda: "n3\n" in out.getvalue(), 5)
        os.replace(logs / "nats.log", logs / "nats.log.1")
        (logs / "nats.log").write_text("after rotation\n")
        wait_until_blocking(lambda: "after rotation\n" in out.getvalue(), 5)
    finally:
        done.set()
        follower.join(timeout=5)
    assert out.getvalue() == "n2\nn3\nafter rotation\n"
