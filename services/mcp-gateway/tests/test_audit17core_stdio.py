"""Audit of issue 17, item 7 over stdio: a line that is not a JSON-RPC message gets a JSON-RPC
error answer (-32700 parse error, -32600 invalid request with the id when one can be read),
as over HTTP and as JSON-RPC 2.0 section 5 requires, instead of silence; the session goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from proxbus_mcp_gateway.stdio import MAX_LINE
from proxbus_mcp_gateway.testing import INITIALIZE, sim_env
from proxbus_pvesim.simulator import Simulator

INIT = INITIALIZE


def script() -> str:
    found = shutil.which("proxbus-mcp-gateway", path=str(Path(sys.executable).parent))
    assert found, "console script not installed"
    return found


async def test_unreadable_lines_are_answered_and_the_session_goes_on(sim: Simulator) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        **sim_env(sim),
        "NATS_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        script(),
        "--transport",
        "stdio",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        limit=1 << 20,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None

    async def send(raw: bytes) -> None:
        assert proc.stdin is not None
        proc.stdin.write(raw + b"\n")
        await proc.stdin.drain()

    async def answer() -> dict[str, Any]:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.endswith(b"\n"), line
        message: dict[str, Any] = json.loads(line)
        return message

    try:
        await send(json.dumps(INIT).encode())
        assert (await answer())["id"] == 1
        await send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        cases: list[tuple[bytes, Any, int]] = [
            (b"{", None, -32700),
            (b"this is not json", None, -32700),
            (b"\xff\xfe", None, -32700),
            (b'{"a":' + b"[" * 20000 + b"]" * 20000 + b"}", None, -32700),
            (b"[]", None, -32600),
            (b'{"jsonrpc":"2.0","id":42,"method":5}', 42, -32600),
            (b'{"jsonrpc":"2.0","id":"x-7","params":{}}', "x-7", -32600),
            (
                b'{"jsonrpc":"2.0","id":43,"method":"ping","params":{"x":"'
                + b"a" * MAX_LINE
                + b'"}}',
                None,
                -32700,
            ),
        ]
        for raw, rid, code in cases:
            await send(raw)
            got = await answer()
            assert got.get("id") == rid, (raw[:40], got)
            assert got["error"]["code"] == code, (raw[:40], got)
            # The session still answers a real request after each bad line.
            await send(b'{"jsonrpc":"2.0","id":99,"method":"ping"}')
            assert await answer() == {"jsonrpc": "2.0", "id": 99, "result": {}}
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
