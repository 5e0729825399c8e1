"""Audit of issue 17, item 5: ``--test-connection`` against endpoints that accept the
connection but never answer (a hung pveproxy, a black-holed port): each line says FAIL with
the timeout, and the whole check still ends within 15 s."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from proxbus_mcp_gateway.testing import sim_env
from proxbus_pvesim.simulator import Simulator


def script() -> str:
    found = shutil.which("proxbus-mcp-gateway", path=str(Path(sys.executable).parent))
    assert found, "console script not installed"
    return found


async def test_hanging_endpoints_fail_by_timeout_within_15_s(
    sim: Simulator, nats_server: Any
) -> None:
    sim.add_latency("/version", 60.0, service="pve")
    sim.add_latency("/version", 60.0, service="pbs")
    # A port that accepts TCP and never speaks TLS (the handshake never ends).
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LOG_LEVEL": "ERROR",
        **sim_env(sim),
        "NATS_URL": nats_server.url,
        "CLUSTERS": "mute",
        "CLUSTER_MUTE_PVE_CLUSTER_PRIMARY_HOST": f"127.0.0.1:{port}",
        "CLUSTER_MUTE_PVE_CLUSTER_PRIMARY_USER": "root@pam",
        "CLUSTER_MUTE_PVE_CLUSTER_PRIMARY_TOKEN_NAME": "t",
        "CLUSTER_MUTE_PVE_CLUSTER_PRIMARY_TOKEN_VALUE": "v",
    }
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            script(),
            "--test-connection",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        silent.close()
    took = time.monotonic() - started
    lines = out.decode().splitlines()
    assert proc.returncode == 1, (lines, err.decode()[-2000:])
    assert took < 15, took
    fails = [x for x in lines if x.startswith(("pve ", "pbs ")) and ": FAIL " in x]
    assert len(fails) == 3, lines
    for x in fails:
        assert "timeout" in x or "timed out" in x, x
