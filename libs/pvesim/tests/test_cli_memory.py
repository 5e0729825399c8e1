"""The CLI-started default lab stays small and shuts down cleanly on SIGTERM."""

import signal
import subprocess
import sys
from pathlib import Path


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_default_lab_uses_under_80_mb_and_exits_on_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxbus_pvesim",
            "--port",
            "0",
            "--pbs-port",
            "0",
            "--admin-port",
            "0",
            "--task-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(11)]
        text = "".join(lines)
        assert "PVE URL:      https://127.0.0.1:" in text
        assert "fingerprint:" in text
        assert "admin token:  Bearer " in text
        assert _rss_kib(proc.pid) < 80 * 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
