"""Audit of issue 17, item 1: the README's desktop configuration works as written, and
joining a NATS is never silent.

The Claude Desktop entry of the README is parsed and run as a desktop client would run it
(its command, its args with the checkout's path, its env pointed at the simulator) through
the official client: ``initialize`` and ``tools/list`` within 5 s. A gateway that finds a
broker logs, at the default LOG_LEVEL, one line naming the server, and gains the event tools.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from proxbus_devtools.testing import NatsServer, free_port
from proxbus_mcp_gateway.testing import sim_env
from proxbus_pvesim.simulator import Simulator

ROOT = Path(__file__).resolve().parents[3]
README = Path(__file__).resolve().parents[1] / "README.md"


def script() -> str:
    found = shutil.which("proxbus-mcp-gateway", path=str(Path(sys.executable).parent))
    assert found, "console script not installed"
    return found


def desktop_entry() -> dict[str, Any]:
    """The ``mcpServers.proxmox`` entry of the README's Claude Desktop block."""
    text = README.read_text()
    section = text[text.index("### Claude Desktop") :]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block, "no JSON block under ### Claude Desktop"
    entry: dict[str, Any] = json.loads(block.group(1))["mcpServers"]["proxmox"]
    return entry


def inherited() -> dict[str, str]:
    """What a desktop app passes on besides the entry's env: PATH, HOME (uv's cache)."""
    keep = ("HOME", "UV_CACHE_DIR", "UV_PYTHON_INSTALL_DIR", "XDG_CACHE_HOME")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    # Not the test's own virtual environment (pytest runs under ``uv run``): a desktop app's
    # PATH has uv, not the checkout's .venv/bin.
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if p and p != venv_bin)
    return env


async def test_the_readme_claude_desktop_entry_answers_within_5_s(
    sim: Simulator, tmp_path: Path
) -> None:
    """Run as written on a checkout nobody has run ``uv sync --all-packages`` in: uv builds a
    fresh environment (``UV_PROJECT_ENVIRONMENT``, offline from uv's cache) on the first
    launch; the second launch answers within 5 s."""
    entry = desktop_entry()
    args = [a.replace("/path/to/proxbus", str(ROOT)) for a in entry["args"]]
    env = dict(entry["env"])
    # The README's placeholders, pointed at the simulator (a standalone pve1, pinned).
    tok = sim.tokens.admin
    env |= {
        "PVE_PVE1_HOST": f"127.0.0.1:{sim.pve_port}",
        "PVE_PVE1_USER": tok.user,
        "PVE_PVE1_TOKEN_NAME": tok.tokenid,
        "PVE_PVE1_TOKEN_VALUE": tok.secret,
        "PVE1_FINGERPRINT": sim.fingerprint,
        # A free port instead of the default 127.0.0.1:4222, which may be another test's broker.
        "NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
        "UV_OFFLINE": "1",
    }
    params = StdioServerParameters(command=entry["command"], args=args, env=inherited() | env)
    for launch, budget in (("first", 120.0), ("second", 5.0)):
        with anyio.fail_after(120), tempfile.NamedTemporaryFile("w+") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                started = time.monotonic()
                try:
                    with anyio.fail_after(budget):
                        await session.initialize()
                        names = {t.name for t in (await session.list_tools()).tools}
                except BaseException as exc:
                    stderr = Path(errlog.name).read_text()[-2000:]
                    raise AssertionError(f"{launch} launch: {exc!r}; stderr: {stderr}") from None
                assert time.monotonic() - started < budget
                # STDIO_SCOPES=read in the entry: no action tool is listed.
                assert "get_vms" in names
                assert "execute_vm_command" not in names
                vms = await session.call_tool("get_vms", {})
                assert not vms.is_error, vms.content


async def test_joining_a_broker_is_logged_at_the_default_level(
    sim: Simulator, nats_server: NatsServer
) -> None:
    env = inherited() | sim_env(sim) | {"NATS_URL": nats_server.url}
    params = StdioServerParameters(command=script(), args=["--transport", "stdio"], env=env)
    port = nats_server.url.rsplit(":", 1)[1]
    expected = (
        f"NATS connected (127.0.0.1:{port}): audit to JetStream, RPC service proxbus-gateway "
        "registered, event tools on"
    )
    with anyio.fail_after(60), tempfile.NamedTemporaryFile("w+") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            while expected not in Path(errlog.name).read_text():
                await anyio.sleep(0.05)
            events = await session.call_tool("get_recent_events", {})
            assert not events.is_error, events.content
