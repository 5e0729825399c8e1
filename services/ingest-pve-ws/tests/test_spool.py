"""Issue 19: kill -9 of the webhook receiver while NATS is down loses no accepted request.

The console script as a real subprocess, a real nats-server stopped and started; every
request answered 2xx must end up in PROXBUS_EVENTS exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from proxbus_devtools.procs import stop_process
from proxbus_devtools.testing import NatsServer, free_port, wait_for_port
from proxbus_ingest_pve_ws.testing import stored_events, wait_until

SCRIPT = str(Path(sys.executable).parent / "proxbus-ingest-pve-ws")
AUTH = {"Authorization": "Bearer s3cret", "Content-Type": "application/json"}


def _body(i: int) -> bytes:
    return json.dumps(
        {
            "title": f"vzdump backup status (pve1.example.com): backup successful {i}",
            "message": f"numbered request {i}",
            "severity": "info",
            "timestamp": 1_732_400_000 + i,
            "fields": {"type": "vzdump", "hostname": "pve1.example.com"},
        }
    ).encode()


async def _post_all(port: int, numbers: range) -> list[int]:
    """POST each numbered body; the numbers answered 2xx."""
    accepted = []
    async with aiohttp.ClientSession() as http:
        for i in numbers:
            async with http.post(
                f"http://127.0.0.1:{port}/hooks/pve", data=_body(i), headers=AUTH
            ) as r:
                if 200 <= r.status < 300:
                    accepted.append(i)
    return accepted


@pytest.mark.timeout(120)
async def test_kill_9_while_nats_is_down_then_restart_then_nats_back_stores_every_accepted_request(
    nats_server: NatsServer, js, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_server.url,
        "PROXBUS_SITE": "lab",
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": str(port),
        "PVE_WEBHOOK_SECRET": "s3cret",
        "EVENT_WS_ENABLED": "false",
        "LOG_FORMAT": "json",
    }
    log = (tmp_path / "service.log").open("wb")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([SCRIPT], env=env, stdout=subprocess.DEVNULL, stderr=log)

    proc = start()
    try:
        await asyncio.to_thread(wait_for_port, port, "127.0.0.1", 30)

        async def stored(n: int) -> bool:
            return len(await stored_events(js)) >= n

        accepted = await _post_all(port, range(20))  # NATS up (or the spool until ready)
        await wait_until(lambda: stored(20), timeout=30)
        await asyncio.to_thread(nats_server.stop)
        accepted += await _post_all(port, range(20, 120))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = start()  # NATS still down: it must listen and accept
        await asyncio.to_thread(wait_for_port, port, "127.0.0.1", 30)
        accepted += await _post_all(port, range(120, 150))
        assert accepted == list(range(150))  # every request answered 2xx
        await asyncio.to_thread(nats_server.start)
        await wait_until(lambda: stored(150), timeout=60)
        numbers = sorted(int(e.message.rsplit(" ", 1)[1]) for e in await stored_events(js))
        assert numbers == list(range(150))  # each exactly once
    finally:
        stop_process(proc, 10)
        log.close()
