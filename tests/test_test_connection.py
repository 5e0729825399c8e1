"""`--test-connection` of every service console script, and `proxbus check --all`.

Against a running stack (nats-server, the simulator, the gateway on NATS, a webhook target for
the dispatcher) every script exits 0 with one `ok` line per check; with NATS down each exits 1
with a `FAIL` line naming it; with the simulated Proxmox down the gateway's endpoint checks and
the API watcher's checks fail with the endpoints named, while the three services that do not
use Proxmox still pass; all within 15 s.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from proxbus_devtools.testing import free_port, serve_app
from proxbus_mcp_gateway.app import start_gateway
from proxbus_mcp_gateway.testing import make_settings as gateway_settings
from proxbus_mcp_gateway.testing import sim_env
from proxbus_pvesim.testing import run_simulator

BIN = Path(sys.executable).parent
SERVICES = ("ingest-syslog", "ingest-email", "ingest-pve-ws", "dispatcher", "mcp-gateway")
BUDGET = 15.0


@dataclass
class Stack:
    nats_url: str
    sim: Any
    gateway: Any
    webhook_port: int
    tmp: Path

    def env(self, service: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        env |= {"NATS_URL": self.nats_url, "PROXBUS_SITE": "lab", "LOG_LEVEL": "WARNING",
                "LOG_FORMAT": "console"}  # fmt: skip
        if service == "mcp-gateway":
            env |= sim_env(self.sim) | {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": "0"}
        if service == "dispatcher":
            routes = self.tmp / "routes.yaml"
            routes.write_text(
                "receivers:\n"
                f"  - {{name: n8n, type: webhook, url: 'http://127.0.0.1:{self.webhook_port}/hook'}}\n"
                "route: {receiver: n8n}\n"
            )
            env["ROUTES_FILE"] = str(routes)
        env |= extra
        return env


async def run_check(service: str, env: dict[str, str], cwd: Path) -> tuple[int, list[str], float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(BIN / f"proxbus-{service}"), "--test-connection", env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), BUDGET + 10)
    lines = [line for line in out.decode().splitlines() if line.strip()]
    return proc.returncode or 0, lines, time.monotonic() - started


@pytest.fixture
async def stack(nats_server: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    async def hook(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with run_simulator(instant=True) as sim, serve_app(app) as port:
        gateway = await start_gateway(
            gateway_settings(nats_url=nats_server.url, nats_enabled=True), sim_env(sim)
        )
        try:
            yield Stack(nats_server.url, sim, gateway, port, tmp_path)
        finally:
            await gateway.close()


@pytest.mark.parametrize("service", SERVICES)
async def test_every_check_passes_against_a_running_stack(stack: Stack, service: str) -> None:
    code, lines, took = await run_check(service, stack.env(service), stack.tmp)
    assert code == 0, "\n".join(lines)
    assert lines, "one line per check"
    assert all(": ok" in line for line in lines), "\n".join(lines)
    assert lines[0].startswith("nats: ok")
    assert took < BUDGET
    expected = {
        "ingest-pve-ws": ["proxmox lab: ok", "proxmox lab privileges: ok"],
        "dispatcher": ["receiver n8n (webhook): ok"],
    }.get(service, [])
    for prefix in expected:
        assert any(line.startswith(prefix) for line in lines), "\n".join(lines)


@pytest.mark.parametrize("service", SERVICES)
async def test_nats_down_fails_every_service_with_a_clear_line(stack: Stack, service: str) -> None:
    down = f"nats://127.0.0.1:{free_port()}"
    code, lines, took = await run_check(service, stack.env(service, NATS_URL=down), stack.tmp)
    assert code == 1, "\n".join(lines)
    assert any(line.startswith("nats: FAIL") for line in lines), "\n".join(lines)
    assert took < BUDGET


@pytest.mark.parametrize("service", SERVICES)
async def test_proxmox_down_fails_exactly_the_services_that_use_it(
    stack: Stack, service: str
) -> None:
    """The simulated PVE and PBS stop listening (connections refused), NATS and the gateway's
    NATS side stay up: the two services that talk to Proxmox (the gateway directly, the API
    watcher through the gateway) exit 1 with a line naming what failed; the others do not
    use Proxmox and still pass."""
    await stack.sim.stop_api("pve")
    await stack.sim.stop_api("pbs")
    code, lines, took = await run_check(service, stack.env(service), stack.tmp)
    text = "\n".join(lines)
    assert took < BUDGET
    assert lines[0].startswith("nats: ok"), text
    failed = [line for line in lines if ": FAIL" in line]
    if service == "mcp-gateway":
        assert code == 1, text
        pve = [line for line in failed if line.startswith("pve ")]
        pbs = [line for line in failed if line.startswith("pbs ")]
        assert pve, text
        assert pbs, text
        assert all("connection refused" in line for line in failed), text
    elif service == "ingest-pve-ws":
        assert code == 1, text
        assert [line.split(":")[0] for line in failed] == [
            "proxmox lab",
            "proxmox lab privileges",
        ], text
        assert "2 of 2 endpoints fail" in failed[0], text
        assert f"127.0.0.1:{stack.sim.pve_port}): connection refused" in failed[0], text
    else:
        assert code == 0, text
        assert not failed, text
    for secret in (stack.sim.tokens.admin.secret, stack.sim.pbs_tokens.admin.secret):
        assert secret not in text


async def test_proxmox_down_fails_the_watcher_check_naming_the_endpoints(
    nats_server: Any, tmp_path: Path
) -> None:
    async with run_simulator(instant=True) as sim:
        gateway = await start_gateway(
            gateway_settings(nats_url=nats_server.url, nats_enabled=True), sim_env(sim)
        )
    try:  # the simulated Proxmox is gone; the gateway still serves its (now dead) endpoints
        stack = Stack(nats_server.url, sim, gateway, free_port(), tmp_path)
        code, lines, took = await run_check("ingest-pve-ws", stack.env("ingest-pve-ws"), tmp_path)
        assert code == 1, "\n".join(lines)
        assert lines[0].startswith("nats: ok")
        failed = [line for line in lines if line.startswith("proxmox lab: FAIL")]
        assert failed, "\n".join(lines)
        assert "endpoints fail" in failed[0]
        assert took < BUDGET
        # The dispatcher's webhook target is down too: its receiver check names host and port.
        code, lines, _ = await run_check("dispatcher", stack.env("dispatcher"), tmp_path)
        assert code == 1
        assert any(
            line.startswith("receiver n8n (webhook): FAIL")
            and f"127.0.0.1:{stack.webhook_port}" in line
            for line in lines
        ), "\n".join(lines)
    finally:
        await gateway.close()


async def test_check_all_runs_every_service_and_fails_when_one_fails(stack: Stack) -> None:
    env = stack.env("check") | {
        # What `proxbus up` would give each child, set here per service.
        **{f"PROXBUS_MCP_GATEWAY_{k}": v for k, v in sim_env(stack.sim).items()},
        "PROXBUS_MCP_GATEWAY_GATEWAY_PORT": "0",
        "PROXBUS_DISPATCHER_ROUTES_FILE": str(stack.tmp / "routes.yaml"),
        "PROXBUS_DATA_DIR": str(stack.tmp / "no-stack-here"),
    }
    stack.env("dispatcher")  # writes routes.yaml
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "proxbus"), "check", "--all", env=env, cwd=stack.tmp,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), BUDGET + 10)
    text = out.decode()
    assert proc.returncode == 0, text
    for service in SERVICES:
        assert f"{service:<13}  nats: ok" in text, text
    assert "ingest-pve-ws  proxmox lab: ok" in text
    env["NATS_URL"] = f"nats://127.0.0.1:{free_port()}"
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "proxbus"), "check", "--all", "--services", "ingest-syslog,dispatcher",
        env=env, cwd=stack.tmp, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    started = time.monotonic()
    out, _ = await asyncio.wait_for(proc.communicate(), BUDGET + 10)
    assert proc.returncode == 1
    assert time.monotonic() - started < BUDGET
    lines = out.decode().splitlines()
    assert [line.split()[0] for line in lines if "nats: FAIL" in line] == [
        "ingest-syslog",
        "dispatcher",
    ]
