"""The console script: ``parse FILE.eml...`` and the service as a plain subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from proxbus_devtools.testing import free_port, wait_for_port


def script() -> list[str]:
    found = shutil.which("proxbus-ingest-email", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "proxbus_ingest_email"]


def test_parse_prints_one_json_line_per_file(tmp_path, mails):
    good = tmp_path / "vzdump.eml"
    good.write_bytes(mails.vzdump())
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    out = subprocess.run(
        [*script(), "parse", str(good), str(empty)],
        capture_output=True,
        timeout=30,
        check=True,
        env={**os.environ, "PROXBUS_SITE": "lab"},
    )
    first, second = (json.loads(line) for line in out.stdout.decode().splitlines())
    assert (first["kind"], first["vmid"], first["node"], first["site"]) == (
        "backup.failed",
        101,
        "pve1",
        "lab",
    )
    assert second["rejected"] == "empty"


def test_parse_of_a_missing_file_exits_nonzero(tmp_path):
    out = subprocess.run(
        [*script(), "parse", str(tmp_path / "nope.eml")], capture_output=True, timeout=30
    )
    assert out.returncode == 1
    assert "error" in json.loads(out.stdout)


def test_service_subprocess_serves_health_and_exits_0_on_sigterm(nats_server, mails):
    smtp_port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_server.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": str(health_port),
        "LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(script(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(health_port, timeout=20)
        wait_for_port(smtp_port, timeout=5)
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/health", timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "ok"
        assert body["checks"] == {"nats": True, "smtp": True}
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics", timeout=5) as r:
            assert b"proxbus_email_received" in r.read()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
