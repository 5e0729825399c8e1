"""The official MCP clients against the real gateway: the MCP Inspector CLI and the MCP
conformance suite's server scenarios.

Both are npm packages pinned in ``tools/mcp-clients`` (``scripts/install.sh`` runs ``npm ci``
there) and run here as subprocesses against the ``proxbus-mcp-gateway`` console script, itself
a subprocess wired to the simulator over real HTTPS:

- ``@modelcontextprotocol/inspector-cli`` 1.0.3: byte for byte the ``cli/build`` folder of
  ``@modelcontextprotocol/inspector`` 1.0.3, i.e. what ``npx @modelcontextprotocol/inspector
  --cli`` runs, without the web UI's dependencies and without the Inspector 1.x package's
  ``node >= 22.7.5`` engine line (the CLI runs on the machine's Node.js 20). Inspector 2.x
  needs Node.js >= 22.19 and is not tested here.
- ``@modelcontextprotocol/conformance`` 0.1.13: the last release that loads on Node.js 20
  (0.1.14+ import ``fs.globSync``, Node 22); its server scenarios are the same 32 as 0.1.16's.

Under ``CI=true`` a missing ``node`` or npm package fails these tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from proxbus_devtools.testing import free_port, require_binary, wait_until
from proxbus_mcp_gateway.testing import OPS_SECRET, READ_SECRET, TOKENS, sim_env
from proxbus_pvesim.simulator import Simulator

REPO = Path(__file__).resolve().parents[3]
PACKAGES = REPO / "tools" / "mcp-clients" / "node_modules" / "@modelcontextprotocol"
# Generous: two cores shared with other test processes; node + the gateway start in ~1-2 s.
START_TIMEOUT = 45.0
CLIENT_TIMEOUT = 90.0


def node() -> str:
    return require_binary("node (Node.js >= 20.18)", shutil.which("node"))


def npm_entry(package: str, relative: str) -> Path:
    path = PACKAGES / package / relative
    found = str(path) if path.is_file() else None
    return Path(require_binary(f"@modelcontextprotocol/{package} (tools/mcp-clients)", found))


def gateway_script() -> str:
    found = shutil.which("proxbus-mcp-gateway", path=str(Path(sys.executable).parent))
    assert found, "console script not installed"
    return found


def base_env() -> dict[str, str]:
    """A minimal environment: nothing of the test runner's leaks into the processes."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LOG_LEVEL": "WARNING",
    }


@asynccontextmanager
async def running_gateway(sim: Simulator, **extra: str) -> AsyncIterator[str]:
    """The console script over HTTP on a free loopback port, no NATS; yields its base URL."""
    port = free_port()
    env = {
        **base_env(),
        **sim_env(sim),
        "NATS_ENABLED": "false",
        "PROXBUS_SITE": "lab",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        **extra,
    }
    proc = await asyncio.create_subprocess_exec(
        gateway_script(),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as client:

            async def healthy() -> bool:
                assert proc.returncode is None, "the gateway exited during start"
                return (await client.get("/health")).status_code == 200

            await wait_until(
                healthy, START_TIMEOUT, "gateway /health", ignore=(httpx.TransportError,)
            )
        yield url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode(errors="replace")
        # A traceback in the gateway's log is a bug even when the client saw an answer.
        assert "Traceback" not in err, err


async def run_node(args: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        node(),
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLIENT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(
            f"node {' '.join(args[:3])} did not finish in {CLIENT_TIMEOUT}s"
        ) from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# --- MCP Inspector CLI ------------------------------------------------------------------------


async def inspector(*args: str) -> tuple[int, str, str]:
    """``mcp-inspector --cli ARGS`` (the launcher, which runs the CLI proper in a child node).

    The working directory is the package's ``build`` folder: the CLI finds its own
    package.json (for its client name/version) through ``../package.json`` checked against the
    working directory, which only holds from there in the standalone CLI package.
    """
    launcher = npm_entry("inspector-cli", "build/cli.js")
    return await run_node([str(launcher), "--cli", *args], cwd=launcher.parent, env=base_env())


def inspector_json(code: int, out: str, err: str) -> dict[str, Any]:
    assert code == 0, f"inspector exited {code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    result = json.loads(out)
    assert isinstance(result, dict), out[:500]
    return result


def bearer(secret: str) -> list[str]:
    return ["--header", f"Authorization: Bearer {secret}"]


async def test_inspector_lists_and_calls_tools_over_streamable_http(sim: Simulator) -> None:
    vms = [g for g in sim.lab.guests.values() if g.kind == "qemu" and not g.template]
    running = next(g for g in vms if g.running)
    async with running_gateway(sim, GATEWAY_TOKENS=TOKENS) as url:
        listed = inspector_json(
            *await inspector(
                f"{url}/mcp", "--transport", "http", *bearer(OPS_SECRET), "--method", "tools/list"
            )
        )
        tools = {t["name"]: t for t in listed["tools"]}
        assert {"get_vms", "execute_vm_command", "proxmox_api", "get_task_log"} <= set(tools)
        assert tools["get_vms"]["annotations"]["readOnlyHint"] is True

        called = inspector_json(
            *await inspector(
                f"{url}/mcp",
                "--transport",
                "http",
                *bearer(OPS_SECRET),
                "--method",
                "tools/call",
                "--tool-name",
                "get_vms",
            )
        )
        assert called.get("isError") is not True, called
        items = called["structuredContent"]["items"]
        assert {v["vmid"] for v in items} == {g.vmid for g in vms}
        assert {v["name"] for v in items if v["vmid"] == running.vmid} == {running.name}

        # Typed arguments through --tool-arg (the CLI parses 101 as a number): a destructive
        # command without confirm is a plan, and the VM keeps running.
        plan = inspector_json(
            *await inspector(
                f"{url}/mcp",
                "--transport",
                "http",
                *bearer(OPS_SECRET),
                "--method",
                "tools/call",
                "--tool-name",
                "execute_vm_command",
                "--tool-arg",
                f"vmid={running.vmid}",
                "command=stop",
            )
        )
        assert plan.get("isError") is not True, plan
        assert plan["structuredContent"]["planned"] is True
        assert sim.lab.guests[running.vmid].running


async def test_inspector_over_sse_and_wrong_tokens(sim: Simulator) -> None:
    async with running_gateway(sim, GATEWAY_TOKENS=TOKENS) as url:
        listed = inspector_json(
            *await inspector(
                f"{url}/sse", "--transport", "sse", *bearer(READ_SECRET), "--method", "tools/list"
            )
        )
        names = {t["name"] for t in listed["tools"]}
        assert "get_vms" in names

        # The client's words for the gateway's 401: its JSON body over streamable HTTP, the
        # status over SSE (the SDK's EventSource reports only that).
        refused = {
            "http": "a valid Bearer token is required",
            "sse": "SSE error: Non-200 status code (401)",
        }
        for transport, path in (("http", "/mcp"), ("sse", "/sse")):
            for auth in (bearer("not-" + OPS_SECRET), []):
                code, out, err = await inspector(
                    f"{url}{path}", "--transport", transport, *auth, "--method", "tools/list"
                )
                assert code != 0, f"{transport} {auth}: accepted: {out[:500]}"
                assert "get_vms" not in out
                assert refused[transport] in err, err[-2000:]


async def test_inspector_starts_the_gateway_over_stdio(sim: Simulator) -> None:
    """The README's stdio command: the Inspector spawns the gateway with ``-e`` variables.

    The transport is chosen with ``-e GATEWAY_TRANSPORT=stdio``: a ``--transport stdio`` after
    the gateway's name is taken by the Inspector as its own option, and the gateway would
    then start its HTTP listener and never answer on stdin.
    """
    seed = {
        **sim_env(sim),
        "GATEWAY_TRANSPORT": "stdio",
        "NATS_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    env_args = [arg for key, value in seed.items() for arg in ("-e", f"{key}={value}")]
    vms = {g.vmid for g in sim.lab.guests.values() if g.kind == "qemu" and not g.template}
    listed = inspector_json(*await inspector(*env_args, gateway_script(), "--method", "tools/list"))
    assert {"get_vms", "get_lxcs", "proxmox_api"} <= {t["name"] for t in listed["tools"]}

    called = inspector_json(
        *await inspector(
            *env_args,
            gateway_script(),
            "--method",
            "tools/call",
            "--tool-name",
            "get_vms",
        )
    )
    assert called.get("isError") is not True, called
    assert {v["vmid"] for v in called["structuredContent"]["items"]} == vms


async def test_inspector_unknown_prompt_and_resource_are_invalid_params(sim: Simulator) -> None:
    """The gateway advertises ``prompts`` and ``resources`` (both empty lists): asking for a
    name that does not exist is the client's mistake, answered with -32602 (the spec's
    server/prompts "Invalid prompt name: -32602"; SEP-2164 for resources), and logs no
    traceback (``running_gateway`` fails on one): any client can send it.
    """
    async with running_gateway(sim, GATEWAY_TOKENS=TOKENS) as url:
        http = [f"{url}/mcp", "--transport", "http", *bearer(READ_SECRET)]
        listed = inspector_json(*await inspector(*http, "--method", "prompts/list"))
        assert listed["prompts"] == []
        code, out, err = await inspector(*http, "--method", "prompts/get", "--prompt-name", "nope")
        assert code != 0, out[:500]
        assert "MCP error -32602: Unknown prompt: nope" in err, err[-2000:]

        listed = inspector_json(*await inspector(*http, "--method", "resources/list"))
        assert listed["resources"] == []
        code, out, err = await inspector(*http, "--method", "resources/read", "--uri", "x://nope")
        assert code != 0, out[:500]
        assert "MCP error -32602: Unknown resource: x://nope" in err, err[-2000:]
