"""``proxbus-mcp-gateway --test-connection``: one line per check, exit 0/1 within 15 s."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
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


async def run_check(env: dict[str, str]) -> tuple[int, list[str], float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        script(),
        "--test-connection",
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LOG_LEVEL": "ERROR",
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), time.monotonic() - started


def line(lines: list[str], name: str) -> str:
    found = [x for x in lines if x.startswith(f"{name}: ")]
    assert len(found) == 1, (name, lines)
    return found[0]


async def test_every_check_passes_against_the_running_simulator(
    sim: Simulator, nats_server: Any
) -> None:
    code, lines, took = await run_check({**sim_env(sim), "NATS_URL": nats_server.url})
    assert code == 0, lines
    assert took < 15
    assert line(lines, "nats").startswith("nats: ok")
    assert line(lines, "jetstream").startswith("jetstream: ok")
    pve = line(lines, "pve default/cluster-primary")
    assert pve.startswith("pve default/cluster-primary: ok (pve ")
    assert f"127.0.0.1:{sim.pve_port}" in pve
    assert f"token {sim.tokens.admin.user}!{sim.tokens.admin.tokenid}" in pve
    assert sim.tokens.admin.secret not in "\n".join(lines)
    assert line(lines, f"pbs default/{sim.pbs_name}").startswith(f"pbs default/{sim.pbs_name}: ok")


async def test_stopped_simulator_fails_each_endpoint_line_within_15_s(
    sim: Simulator, nats_server: Any
) -> None:
    env = {**sim_env(sim), "NATS_URL": nats_server.url}
    await sim.stop_api("pve")
    await sim.stop_api("pbs")
    code, lines, took = await run_check(env)
    assert code == 1
    assert took < 15
    assert line(lines, "nats").startswith("nats: ok")
    pve = line(lines, "pve default/cluster-primary")
    assert pve.startswith("pve default/cluster-primary: FAIL ")
    assert "connection refused" in pve
    assert line(lines, f"pbs default/{sim.pbs_name}").startswith(
        f"pbs default/{sim.pbs_name}: FAIL "
    )


async def test_refused_token_and_missing_nats_are_named(sim: Simulator) -> None:
    # A bound socket that never listens: connections are refused and no other test's broker
    # can take the port meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        env = {
            **sim_env(sim),
            "PVE_CLUSTER_PRIMARY_TOKEN_VALUE": "00000000-0000-0000-0000-000000000000",
            "NATS_URL": f"nats://127.0.0.1:{closed.getsockname()[1]}",
        }
        code, lines, took = await run_check(env)
    assert code == 1
    assert took < 15
    assert line(lines, "nats").startswith("nats: FAIL")
    pve = line(lines, "pve default/cluster-primary")
    assert "FAIL 401 authentication failed" in pve
    assert "00000000-0000" not in "\n".join(lines)
    assert line(lines, f"pbs default/{sim.pbs_name}").startswith(f"pbs default/{sim.pbs_name}: ok")
