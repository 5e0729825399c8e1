"""The console script: exit 2 on invalid settings, --test-connection, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from proxbus_devtools.testing import free_port
from proxbus_mcp_gateway.app import Running

SCRIPT = str(Path(sys.executable).parent / "proxbus-ingest-discord")


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "NATS_"))}
    base.update(extra)
    return base


async def run(*args: str, environment: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SCRIPT, *args, env=environment, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_missing_or_malformed_public_key_exits_2_with_one_line(tmp_path: Path) -> None:
    code, _, err = await run(environment=env(), cwd=tmp_path)
    assert code == 2
    assert err.strip() == (
        "proxbus-ingest-discord: invalid settings: DISCORD_PUBLIC_KEY: Field required"
    )
    code, _, err = await run(environment=env(DISCORD_PUBLIC_KEY="not-hex"), cwd=tmp_path)
    assert code == 2
    assert err.startswith("proxbus-ingest-discord: invalid settings: DISCORD_PUBLIC_KEY:")
    assert len(err.strip().splitlines()) == 1
    code, _, err = await run(
        environment=env(DISCORD_PUBLIC_KEY="ab" * 32, DISCORD_OPERATORS="alice"), cwd=tmp_path
    )
    assert code == 2
    assert "DISCORD_OPERATORS" in err


async def test_test_connection_reports_nats_and_the_gateway(
    nats_server: Any, gateway: Running, tmp_path: Path
) -> None:
    ok_env = env(DISCORD_PUBLIC_KEY="ab" * 32, NATS_URL=nats_server.url)
    code, out, _ = await run("--test-connection", environment=ok_env, cwd=tmp_path)
    assert code == 0, out
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["nats", "jetstream", "gateway rpc"]
    assert all(": ok" in line for line in lines), lines
    await gateway.close()
    code, out, _ = await run("--test-connection", environment=ok_env, cwd=tmp_path)
    assert code == 1
    assert out.splitlines()[2].startswith("gateway rpc: FAIL")
    dead = env(DISCORD_PUBLIC_KEY="ab" * 32, NATS_URL=f"nats://127.0.0.1:{free_port()}")
    code, out, _ = await run("--test-connection", environment=dead, cwd=tmp_path)
    assert code == 1
    assert "FAIL" in out.splitlines()[0]


async def test_the_service_answers_a_ping_and_stops_on_sigterm(
    nats_server: Any, tmp_path: Path
) -> None:
    import json
    import time

    import aiohttp

    key = Ed25519PrivateKey.generate()
    port = free_port()
    environment = env(
        DISCORD_PUBLIC_KEY=key.public_key().public_bytes_raw().hex(),
        DISCORD_HOST="127.0.0.1",
        DISCORD_PORT=str(port),
        NATS_URL=nats_server.url,
    )
    proc = await asyncio.create_subprocess_exec(
        SCRIPT, env=environment, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        body = json.dumps({"id": "1", "application_id": "2", "type": 1}).encode()
        async with aiohttp.ClientSession() as http, asyncio.timeout(20):
            while True:
                ts = str(int(time.time()))
                headers = {
                    "X-Signature-Ed25519": key.sign(ts.encode() + body).hex(),
                    "X-Signature-Timestamp": ts,
                }
                try:
                    async with http.post(
                        f"http://127.0.0.1:{port}/discord/interactions", data=body, headers=headers
                    ) as resp:
                        # 503 while the runtime still waits for NATS and JetStream.
                        if resp.status != 503:
                            assert resp.status == 200
                            assert await resp.json() == {"type": 1}
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0
