"""HTTP_REQUEST_TIMEOUT on the real service: its webhook/Gotify/health listener closes a
connection that sends no request headers (slowloris); aiohttp alone kept it for an hour.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from proxbus_devtools.testing import free_port

SCRIPT = Path(sys.executable).parent / "proxbus-ingest-pve-ws"


async def test_the_service_closes_a_silent_connection_and_counts_it(nats_server: Any) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PVE_", "GOTIFY_", "EVENT_"))}
    env.update(
        {
            "NATS_URL": nats_server.url,
            "PROXBUS_SITE": "lab",
            "HEALTH_HOST": "127.0.0.1",
            "HEALTH_PORT": str(port),
            "HTTP_REQUEST_TIMEOUT": "1",
            "PVE_WEBHOOK_SECRET": "s3cret",
            "LOG_FORMAT": "json",
        }
    )
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        status = 0
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                        status = resp.status
                        if status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            assert status == 200
            started = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /hooks/pve HTTP/1.1\r\nHost: x\r\n")  # and nothing more
            data = await asyncio.wait_for(reader.read(), 10)
            after = time.monotonic() - started
            writer.close()
            assert data == b""
            assert 0.9 <= after < 5, after
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert "proxbus_http_request_timeouts_total 1.0" in await resp.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
    err = (await proc.stderr.read()).decode() if proc.stderr else ""
    assert code == 0, err[-2000:]
    assert "closed HTTP connections: no whole request headers within 1s" in err, err[-2000:]
