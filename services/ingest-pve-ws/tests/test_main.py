"""The console script as a plain subprocess: health, SIGTERM, and the ``--once`` dry run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
from proxbus_devtools.testing import free_port
from proxbus_ingest_pve_ws.testing import stored_events

SCRIPT = Path(sys.executable).parent / "proxbus-ingest-pve-ws"


def _env(nats_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PVE_", "GOTIFY_", "EVENT_"))}
    env.update(
        {
            "NATS_URL": nats_url,
            "PROXBUS_SITE": "lab",
            "HEALTH_HOST": "127.0.0.1",
            "LOG_FORMAT": "json",
            **extra,
        }
    )
    return env


async def test_console_script_serves_health_and_stops_on_sigterm(
    nats_server: Any, js: Any, lab: Any
) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        env=_env(
            nats_server.url,
            HEALTH_PORT=str(port),
            PVE_WEBHOOK_SECRET="s3cret",
            PVE_WS_POLL_SECONDS="0.2",
        ),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        body: dict[str, Any] = {}
        async with aiohttp.ClientSession() as s:
            for _ in range(200):
                try:
                    async with s.get(f"http://127.0.0.1:{port}/health") as r:
                        body = await r.json()
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            assert body.get("status") == "ok"
            async with s.post(
                f"http://127.0.0.1:{port}/hooks/pve",
                json={"title": "hello", "message": "m"},
                headers={"Authorization": "Bearer s3cret"},
            ) as r:
                assert r.status == 202
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
                assert 'proxbus_pve_webhook_requests_total{outcome="accepted"} 1.0' in text
                assert "proxbus_pve_ws_polls_total" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
    assert code == 0, (await proc.stderr.read()).decode()[-2000:] if proc.stderr else ""
    assert [e.title for e in await stored_events(js)] == ["hello"]


async def test_once_prints_recent_events_and_publishes_nothing(
    nats_server: Any, js: Any, lab: Any
) -> None:
    await lab.post("/nodes/pve1/qemu/100/status/stop")
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "--once",
        env=_env(nats_server.url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert {"task.ok", "vm.stopped"} <= {e["kind"] for e in events}
    assert "dry run" in err.decode()
    assert await stored_events(js) == []


async def test_once_without_gateway_fails_clearly(nats_server: Any) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "--once",
        env=_env(nats_server.url, PVE_WS_RPC_TIMEOUT="0.5"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "cannot read the Proxmox API through the gateway" in err.decode()
