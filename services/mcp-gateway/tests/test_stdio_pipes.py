"""The stdio transport on asyncio pipes (``stdio.py``) and its fallback, byte for byte.

The console script runs as a subprocess; JSON-RPC lines are written to its stdin and every line
of its stdout must be a JSON-RPC message (nothing else may reach the wire).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from proxbus_mcp_gateway.testing import sim_env
from proxbus_pvesim.simulator import Simulator

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def call(n: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": n,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def env_for(sim: Simulator) -> dict[str, str]:
    return {
        **sim_env(sim),
        "NATS_ENABLED": "false",
        "PROXBUS_SITE": "lab",
        "LOG_LEVEL": "WARNING",
        "PATH": os.environ.get("PATH", ""),
        "STDIO_SCOPES": "read",
    }


def script() -> str:
    found = shutil.which("proxbus-mcp-gateway", path=str(Path(sys.executable).parent))
    assert found, "console script missing (uv sync --all-packages)"
    return found


async def test_pipes_carry_calls_and_a_bad_line_does_not_stop_the_session(
    sim: Simulator,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        script(),
        "--transport",
        "stdio",
        env=env_for(sim),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None

    async def send(message: dict[str, Any] | bytes) -> None:
        assert proc.stdin is not None
        raw = message if isinstance(message, bytes) else (json.dumps(message) + "\n").encode()
        proc.stdin.write(raw)
        await proc.stdin.drain()

    async def answer(expected_id: int) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.endswith(b"\n"), line  # a whole line, never a fragment
            message = json.loads(line)  # anything but JSON-RPC on stdout fails here
            if message.get("id") == expected_id:
                return dict(message)

    try:
        await send(INIT)
        assert (await answer(1))["result"]["serverInfo"]["name"] == "proxbus-mcp-gateway"
        await send(INITIALIZED)
        await send(b"this is not json\n")
        await send(call(2, "get_vms", {}))
        listed = await answer(2)
        items = listed["result"]["structuredContent"]["items"]
        assert len(items) == sum(1 for g in sim.lab.guests.values() if g.kind == "qemu")
        # Several calls in flight at once, answered each on its own line.
        for n in range(3, 13):
            await send(call(n, "get_vms", {"status": "running"}))
        for n in range(3, 13):
            assert not (await answer(n))["result"].get("isError")
        # The last line may lack its newline: it is still read (and, stdin having ended,
        # answered at once as the SDK answers calls cut off by EOF).
        proc.stdin.write(json.dumps(call(13, "list_clusters", {})).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        last = await answer(13)
        assert last.get("result") or "Connection closed" in last["error"]["message"]
        assert await asyncio.wait_for(proc.wait(), 30) == 0  # EOF ends the session
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_stdin_from_a_regular_file_uses_the_sdk_streams(
    sim: Simulator, tmp_path: Path
) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        "".join(json.dumps(m) + "\n" for m in (INIT, INITIALIZED, call(2, "get_vms", {})))
    )
    with requests.open("rb") as stdin:
        proc = await asyncio.create_subprocess_exec(
            script(),
            "--transport",
            "stdio",
            env=env_for(sim),
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    answers = {m.get("id"): m for m in map(json.loads, out.splitlines())}
    assert answers[1]["result"]["serverInfo"]["name"] == "proxbus-mcp-gateway"
    # EOF follows at once: like any stdio session (the SDK's rule), what is still in flight
    # when stdin ends is answered "Connection closed" rather than left unanswered.
    assert answers[2].get("result") or "Connection closed" in answers[2]["error"]["message"]
    assert proc.returncode == 0
