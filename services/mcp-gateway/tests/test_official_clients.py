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
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from proxbus_devtools.testing import free_port, require_binary, wait_until
from proxbus_mcp_gateway.testing import OPS_SECRET, READ_SECRET, TOKENS, sim_env
from proxbus_pvesim.simulator import Simulator

REPO = Path(__file__).resolve().parents[3]
PACKAGES = REPO / "tools" / "mcp-clients" / "node_modules" / "@modelcontextprotocol"
# Generous: two cores shared with other test processes; node + the gateway start in ~1-2 s.
START_TIMEOUT = 45.0
CLIENT_TIMEOUT = 90.0
# Each test starts node processes and the gateway several times: above the 60 s default.
pytestmark = pytest.mark.timeout(240)


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


def inspector_launcher() -> Path:
    node()
    return npm_entry("inspector-cli", "build/cli.js")


async def inspector(*args: str) -> tuple[int, str, str]:
    """``mcp-inspector --cli ARGS`` (the launcher, which runs the CLI proper in a child node).

    The working directory is the package's ``build`` folder: the CLI finds its own
    package.json (for its client name/version) through ``../package.json`` checked against the
    working directory, which only holds from there in the standalone CLI package.
    """
    launcher = inspector_launcher()
    return await run_node([str(launcher), "--cli", *args], cwd=launcher.parent, env=base_env())


def inspector_json(code: int, out: str, err: str) -> dict[str, Any]:
    assert code == 0, f"inspector exited {code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    result = json.loads(out)
    assert isinstance(result, dict), out[:500]
    return result


def bearer(secret: str) -> list[str]:
    return ["--header", f"Authorization: Bearer {secret}"]


async def test_inspector_lists_and_calls_tools_over_streamable_http(sim: Simulator) -> None:
    inspector_launcher()  # before the gateway starts: a missing client fails at once
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
    inspector_launcher()  # before the gateway starts: a missing client fails at once
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
    inspector_launcher()
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
    inspector_launcher()  # before the gateway starts: a missing client fails at once
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


# --- MCP conformance suite: server scenarios ------------------------------------------------

# The suite's 30 active server scenarios (0.1.13, default suite; "pending" ones - json-schema-
# 2020-12 and server-sse-polling - are not run by default). Most are written against the suite's
# own "everything" server: they call its fixture tools/prompts/resources by name. Each scenario
# is either MUST_PASS (generic protocol behaviour the gateway implements) or NOT_APPLICABLE with
# the reason and the error the suite must report; a new scenario in a later suite fails the
# test until it is classified here.
MUST_PASS = {
    "server-initialize": "initialize handshake",
    "ping": "ping answers {}",
    "tools-list": "tools/list with valid tool definitions (41 tools)",
    "tools-call-error": "a failing call is a result with isError (here: an unknown tool)",
    # Calls the fixture tool test_simple_text; the check accepts any text content, which the
    # gateway's isError "unknown tool" answer is. It proves text content, nothing more.
    "tools-call-simple-text": "a tool answer carries text content",
    "server-sse-multiple-streams": "several concurrent POST streams in one session",
    "dns-rebinding-protection": "a foreign Host/Origin is refused, the loopback one accepted",
    "resources-list": "resources/list (advertised, empty)",
    "prompts-list": "prompts/list (advertised, empty)",
}
FIXTURE_TOOLS = "calls the suite's fixture tool {}; the gateway's tools answer text + structured"
NOT_APPLICABLE: dict[str, tuple[str, str]] = {
    # scenario: (why, the error the suite reports)
    "logging-set-level": (
        "optional `logging` capability, not advertised (the gateway logs to its own log)",
        "MCP error -32601: Method not found",
    ),
    "completion-complete": (
        "optional `completions` capability, not advertised (no prompt/resource arguments)",
        "MCP error -32601: Method not found",
    ),
    "tools-call-with-logging": (
        "needs the `logging` capability and the fixture tool test_tool_with_logging",
        "MCP error -32601: Method not found",
    ),
    "tools-call-image": (FIXTURE_TOOLS.format("test_image_content"), "No image content found"),
    "tools-call-audio": (FIXTURE_TOOLS.format("test_audio_content"), "No audio content found"),
    "tools-call-embedded-resource": (
        FIXTURE_TOOLS.format("test_embedded_resource"),
        "No resource content found",
    ),
    "tools-call-mixed-content": (
        FIXTURE_TOOLS.format("test_multiple_content_types"),
        "Expected multiple content items",
    ),
    # The gateway DOES send progress (tools with wait=true): test_acceptance_transports checks
    # it over stdio, streamable HTTP and SSE with the official Python client.
    "tools-call-with-progress": (
        "calls the fixture tool test_tool_with_progress (the gateway's own progress is tested "
        "in test_acceptance_transports)",
        "No progress notifications received",
    ),
    "tools-call-sampling": (
        "the gateway never asks the client for sampling (optional client feature)",
        "Server did not request sampling from client",
    ),
    "tools-call-elicitation": (
        "the gateway never asks the client for elicitation: destructive tools return a plan "
        "and act on confirm=true, which works with every client",
        "Server did not request elicitation from client",
    ),
    "elicitation-sep1034-defaults": (
        "elicitation (see tools-call-elicitation)",
        "Server did not request elicitation from client",
    ),
    "elicitation-sep1330-enums": (
        "elicitation (see tools-call-elicitation)",
        "Server did not request elicitation from client",
    ),
    "resources-read-text": (
        "reads the fixture resource test://static-text; the gateway has no resources",
        "MCP error -32602: Unknown resource: test://static-text",
    ),
    "resources-read-binary": (
        "reads the fixture resource test://static-binary; the gateway has no resources",
        "MCP error -32602: Unknown resource: test://static-binary",
    ),
    "resources-templates-read": (
        "reads the fixture template test://template/{id}/data; the gateway has no resources",
        "MCP error -32602: Unknown resource: test://template/123/data",
    ),
    "resources-subscribe": (
        "resource subscriptions: advertised as subscribe=false",
        "MCP error -32601: Method not found",
    ),
    "resources-unsubscribe": (
        "resource subscriptions: advertised as subscribe=false",
        "MCP error -32601: Method not found",
    ),
    "prompts-get-simple": (
        "gets the fixture prompt test_simple_prompt; the gateway has no prompts",
        "MCP error -32602: Unknown prompt: test_simple_prompt",
    ),
    "prompts-get-with-args": (
        "gets the fixture prompt test_prompt_with_arguments; the gateway has no prompts",
        "MCP error -32602: Unknown prompt: test_prompt_with_arguments",
    ),
    "prompts-get-embedded-resource": (
        "gets the fixture prompt test_prompt_with_embedded_resource; no prompts",
        "MCP error -32602: Unknown prompt: test_prompt_with_embedded_resource",
    ),
    "prompts-get-with-image": (
        "gets the fixture prompt test_prompt_with_image; the gateway has no prompts",
        "MCP error -32602: Unknown prompt: test_prompt_with_image",
    ),
}
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$")


def scenario_checks(out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """``{scenario: checks}`` from the suite's ``-o`` folder (one sub-folder per scenario)."""
    results: dict[str, list[dict[str, Any]]] = {}
    for folder in sorted(out_dir.iterdir()):
        match = RESULT_DIR.match(folder.name)
        assert match, f"unexpected result folder {folder.name}"
        checks = json.loads((folder / "checks.json").read_text())
        assert isinstance(checks, list)
        results[match["scenario"]] = checks
    return results


async def initialize_capabilities(url: str) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "proxbus-test", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(f"{url}/mcp", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    data = resp.text
    if resp.headers["content-type"].startswith("text/event-stream"):
        data = next(line[5:] for line in data.splitlines() if line.startswith("data:"))
    capabilities = json.loads(data)["result"]["capabilities"]
    assert isinstance(capabilities, dict)
    return capabilities


async def test_conformance_server_scenarios(sim: Simulator, tmp_path: Path) -> None:
    """``conformance server --url <gateway>/mcp`` over the suite's default scenarios.

    The suite's client sends no Authorization header, so the gateway runs as on a desktop:
    loopback, no tokens (the anonymous caller has STDIO_SCOPES). Its TypeScript client opens a
    session per scenario and never DELETEs it: MAX_SESSIONS_PER_CALLER (default 20) would
    refuse the later scenarios with 503 until the idle expiry, so the cap is raised here.
    """
    assert not set(MUST_PASS) & set(NOT_APPLICABLE)
    node()
    suite = npm_entry("conformance", "dist/index.js")
    out_dir = tmp_path / "results"
    async with running_gateway(sim, MAX_SESSIONS_PER_CALLER="100") as url:
        capabilities = await initialize_capabilities(url)
        code, out, err = await run_node(
            [str(suite), "server", "--url", f"{url}/mcp", "-o", str(out_dir)],
            cwd=tmp_path,
            env=base_env(),
        )
    detail = f"exit {code}\nstdout: {out[-3000:]}\nstderr: {err[-2000:]}"
    results = scenario_checks(out_dir)
    assert set(results) == set(MUST_PASS) | set(NOT_APPLICABLE), detail

    # What the "not applicable" reasons rest on: the capabilities the gateway advertises.
    assert set(capabilities) == {"tools", "prompts", "resources"}, capabilities
    assert capabilities["resources"].get("subscribe") is False

    for scenario in MUST_PASS:
        verdicts = [c for c in results[scenario] if c["status"] != "INFO"]
        assert verdicts, f"{scenario}: no check ran\n{detail}"
        failed = [c for c in verdicts if c["status"] != "SUCCESS"]
        assert not failed, f"{scenario}: {json.dumps(failed, indent=1)[:3000]}"

    for scenario, (why, error) in NOT_APPLICABLE.items():
        failed = [c for c in results[scenario] if c["status"] == "FAILURE"]
        assert failed, f"{scenario} passes now ({why}): move it to MUST_PASS"
        messages = [c.get("errorMessage") or "" for c in failed]
        assert any(error in m for m in messages), f"{scenario}: {messages} (expected {error!r})"
    # The suite's exit code: failures (the not-applicable ones) -> 1; never a crash.
    assert code == 1, detail
