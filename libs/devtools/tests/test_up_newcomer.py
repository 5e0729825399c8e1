"""What a newcomer reads on `proxbus up`'s screen: notifications are not errors, the next
steps are commands they can paste, aligned."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from proxbus_devtools.status import StatusBoard
from proxbus_devtools.supervisor import Child, Supervisor, default_data_dir, footer
from proxbus_devtools.testing import wait_until

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
    assert any(line.split()[:4] == ["uv", "run", "proxbus", "events"] for line in under_uv)
    assert not any(line.strip().startswith("proxbus ") for line in under_uv)
    direct = footer(_args(), _children(), credentials, {})
    assert any(line.strip().startswith("proxbus events tail") for line in direct)
    for lines in (under_uv, direct):
        text = "\n".join(lines)
        assert "http://127.0.0.1:8091/" in text
        assert "http://127.0.0.1:8080/mcp" in text
        assert str(credentials) in text
        assert "Ctrl-C" in text


def test_next_steps_are_two_aligned_columns(tmp_path: Path) -> None:
    lines = footer(_args(str(tmp_path)), _children(), tmp_path / "credentials.txt", {})
    assert lines[1].startswith(f"  PROXBUS_DATA_DIR={tmp_path} proxbus events tail  ")
    assert lines[0] == "next steps:"
    steps = lines[1:]
    assert len(steps) >= 5
    # what to type (or where to look), then at least two spaces, then what it is: one column
    starts = {len(line) - len(line.split("  ", 2)[-1].lstrip()) for line in steps}
    assert len(starts) == 1, "\n".join(lines)
