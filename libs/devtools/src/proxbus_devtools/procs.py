"""Stopping a subprocess the two ways the tools and tests need (no pytest import here)."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; nothing if it already exited."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL, as a crash; nothing if it already exited."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
