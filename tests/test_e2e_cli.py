"""``proxbus events tail --json`` shows what the running ingest services publish, live."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

PROXBUS = str(Path(sys.executable).parent / "proxbus")


async def read_line(stream: asyncio.StreamReader, timeout: float) -> str:
    line = await asyncio.wait_for(stream.readline(), timeout)
    if not line:
        raise EOFError("stream closed")
    return line.decode()


async def test_events_tail_sees_a_syslog_line_from_the_running_service_within_2s(
    stack: Any,
) -> None:
    syslog = stack.ingest_syslog()
    await stack.healthy(syslog)
    tail = await asyncio.create_subprocess_exec(
        PROXBUS, "--nats-url", stack.nats.url, "events", "tail", "--json", "--source", "syslog",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=stack.env(), cwd=stack.dir,
    )  # fmt: skip
    assert tail.stdout is not None
    assert tail.stderr is not None
    try:
        banner = await read_line(tail.stderr, 15)  # printed once the subscription is in place
        assert "listening on proxbus.events." in banner, banner

        upid = (
            f"UPID:pve1:0000{secrets.token_hex(2).upper()}:0001C2A4:6924A0B1:vzdump:104:root@pam:"
        )
        marker = f"tail-{secrets.token_hex(4)}"
        lines = [
            stack.syslog_line(f"<root@pam> end task {upid} job errors", "pve1", "pvedaemon", 27),
            stack.syslog_line(f"plain line {marker}", "pve2.lab.example"),
        ]
        sent = time.monotonic()
        await stack.send_syslog(syslog, lines)

        seen: list[dict[str, Any]] = []
        while len(seen) < 2:
            left = 2.0 - (time.monotonic() - sent)
            try:
                seen.append(json.loads(await read_line(tail.stdout, max(left, 0.01))))
            except TimeoutError:
                raise AssertionError(
                    f"tail printed {len(seen)} of 2 events within 2 s: {seen}\n{stack.report()}"
                ) from None
        elapsed = time.monotonic() - sent
    finally:
        if tail.returncode is None:
            tail.terminate()
        await asyncio.wait_for(tail.wait(), 10)

    failed, plain = seen
    assert elapsed < 2.0
    # DESIGN.md "Kind vocabulary": a task's end line is task.failed for every type, vzdump too.
    assert (failed["source"], failed["kind"], failed["severity"]) == (
        "syslog",
        "task.failed",
        "error",
    ), failed
    assert (failed["node"], failed["vmid"], failed["correlation_id"]) == ("pve1", 104, upid)
    assert failed["site"] == "lab"
    assert (plain["kind"], plain["node"]) == ("syslog.message", "pve2"), plain
    assert marker in plain["message"] or marker in plain["title"], plain
    assert tail.returncode == 0, "tail exits 0 on SIGTERM"
