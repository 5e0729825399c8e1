"""The MCP gateway side by side with other Proxmox MCP servers from PyPI, on the simulator.

Run: uv run python bench/bench_mcp_peers.py [--seconds 3] [--rounds 3] [--cache-dir DIR]
     [--transport stdio|http|both] [--client-procs 2]

Each other server is installed from PyPI with ``uv`` into its own venv under ``--cache-dir``
(default ``~/.cache/proxbus-bench/mcp-peers``; never inside the repository), pinned to the
version in ``PEERS``. Everything talks to one pvesim (default 3-node lab, 20 VMs + 10 CTs)
over HTTPS on loopback with certificate verification on: the gateway pins the simulator's
fingerprint (its documented setting), the others verify against the simulator's CA through
``REQUESTS_CA_BUNDLE`` (they use proxmoxer/requests, which read it).

Transport: stdio, the one transport every server here offers (proxmox-mcp-server has no
other). Client: the official MCP Python SDK (``stdio_client`` + ``ClientSession``) in this
process, one session per server; "N clients" = N callers with a call in flight at once on
that session (the SDK client and every server here handle requests of one session
concurrently). Each server gets the same cluster-wide VM listing:
  - gateway: ``get_vms`` (reads ``/cluster/resources?type=vm``), read cache on (default
    ``CACHE_TTL=2``) and off (``CACHE_TTL=0``: every call reaches the simulator),
  - proxmox-mcp-plus: ``get_vms`` (reads ``/cluster/resources?type=vm``),
  - proxmox-mcp-server: ``get_cluster_resources`` with ``type=vm`` (same request).
Client variants: the SDK's ``ClientSession`` as is (it re-validates every structured result
against the tool's output schema with jsonschema: most of its CPU for the gateway's 20-row
``get_vms``, which the others answer as plain text), and the same session with that check
skipped (``NoRevalidation``), which shows what the servers themselves sustain.
Over streamable HTTP (``--transport http``; the servers here that offer it: the gateway and
proxmox-mcp-plus, each with its documented settings: a bearer token, the port, the transport)
"N clients" = N client sessions of their own, each ``streamable_http_client`` +
``ClientSession`` with one call in flight, spread over ``--client-procs`` forked client
processes, as several agents or n8n workflows would use one server. This is the deployment
in which one server serves many clients; over stdio each client starts a server of its own.
A cell = one (server, client variant, clients) triple: start the server, initialize, one warm-up call, then
``--seconds`` of calls; calls/s, p50/p99, the server process's CPU per call and this client
process's CPU per call. Rounds alternate over every cell; the best round is kept and the
range over the rounds is shown, with the load average seen during the cell.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the same simulator start and helpers as the gateway's own benchmark
import httpx
from bench_mcp_gateway import (
    SECRET,
    Start,
    _run_clients,
    cpu_seconds,
    free_port,
    percentile,
    run_clients,
    start_simulator,
)
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

CLIENTS = (1, 8)
PEERS = {
    # package==version: (console script, VM-listing tool, its arguments). proxmox-ve-mcp
    # (2.3.0, named by issue 17) is not here: every release since 1.0.5 requires Python >= 3.14.
    # The last item: its settings for streamable HTTP (None: it has stdio only). proxmox-mcp-plus
    # (server.py ``_run_streamable_http_async``): MCP_TRANSPORT=STREAMABLE, MCP_HOST, MCP_PORT,
    # and a bearer token MCP_API_KEY (required unless explicitly opted out).
    "proxmox-mcp-plus==0.6.7": ("proxmox-mcp-plus", "get_vms", {}, {
        "MCP_TRANSPORT": "STREAMABLE", "MCP_HOST": "127.0.0.1", "MCP_API_KEY": SECRET}),
    "proxmox-mcp-server==1.4.4": (
        "proxmox-mcp-server", "get_cluster_resources", {"type": "vm"}, None),
}  # fmt: skip


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def children() -> set[int]:
    """Direct child processes of this process (the stdio server the SDK client spawned)."""
    out: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        out.update(int(p) for p in (task / "children").read_text().split())
    return out


def simulator_ca(host: str, port: int, out: Path) -> Path:
    """The simulator's CA certificate: the last certificate of the chain it serves."""
    chain = subprocess.run(
        ["openssl", "s_client", "-showcerts", "-connect", f"{host}:{port}"],
        input=b"", capture_output=True, timeout=15, check=False,
    ).stdout.decode()  # fmt: skip
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", chain, re.S)
    if len(pems) < 2:
        raise RuntimeError("could not read the simulator's certificate chain (openssl)")
    out.write_text(pems[-1] + "\n")
    return out


def ensure_peer(cache: Path, spec: str) -> Path:
    """A venv with ``spec`` installed from PyPI (by uv) under ``cache``; its bin directory."""
    venv = cache / spec.replace("==", "-")
    marker = venv / ".installed"
    if not marker.exists():
        uv = shutil.which("uv")
        if uv is None:
            raise RuntimeError("uv is needed to install the other servers")
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", spec],
            env={**os.environ, "VIRTUAL_ENV": str(venv)},
            check=True,
        )
        marker.write_text(spec + "\n")
    return venv / "bin"


@dataclass
class Server:
    label: str
    command: list[str]
    env: dict[str, str]
    tool: str
    arguments: dict[str, Any]
    # over streamable HTTP (None: stdio only): the command, its environment, and the variable
    # that takes the port; the client sends ``Authorization: Bearer SECRET`` to ``/mcp``
    http_command: list[str] | None = None
    http_env: dict[str, str] | None = None
    port_var: str = ""


def servers(sim_env: dict[str, str], ca: Path, cache: Path, tmp: Path) -> list[Server]:
    gw = shutil.which("proxbus-mcp-gateway", path=str(Path(sys.executable).parent))
    assert gw, "proxbus-mcp-gateway console script not found (uv sync --all-packages)"
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "LOG_LEVEL": "WARNING"}
    gateway_env = {**base, **sim_env, "NATS_ENABLED": "false", "STDIO_SCOPES": "read"}
    # over HTTP: one read token (its documented GATEWAY_TOKENS form), nothing else changed
    gateway_http = {**base, **sim_env, "NATS_ENABLED": "false",
                    "GATEWAY_TOKENS": f"bench:read:{SECRET}"}  # fmt: skip
    out = [
        Server("proxbus-mcp-gateway, cache on (default)", [gw, "--transport", "stdio"],
               {**gateway_env, "CACHE_TTL": "2"}, "get_vms", {},
               [gw], {**gateway_http, "CACHE_TTL": "2"}, "GATEWAY_PORT"),
        Server("proxbus-mcp-gateway, cache off (CACHE_TTL=0)", [gw, "--transport", "stdio"],
               {**gateway_env, "CACHE_TTL": "0"}, "get_vms", {},
               [gw], {**gateway_http, "CACHE_TTL": "0"}, "GATEWAY_PORT"),
    ]  # fmt: skip
    host, port = sim_env["PVE_PVE1_HOST"].rsplit(":", 1)
    peer_env = {
        **base,
        "PROXMOX_HOST": host,
        "PROXMOX_PORT": port,
        "PROXMOX_USER": sim_env["PVE_PVE1_USER"],
        "PROXMOX_TOKEN_NAME": sim_env["PVE_PVE1_TOKEN_NAME"],
        "PROXMOX_TOKEN_VALUE": sim_env["PVE_PVE1_TOKEN_VALUE"],
        "PROXMOX_VERIFY_SSL": "true",
        "REQUESTS_CA_BUNDLE": str(ca),
        "PROXMOX_JOBS_SQLITE_PATH": str(tmp / "proxmox-mcp-plus-jobs.sqlite3"),
    }
    for spec, (script, tool, arguments, http) in PEERS.items():
        bin_dir = ensure_peer(cache, spec)
        cmd = [str(bin_dir / script)]
        out.append(Server(spec.replace("==", " "), cmd, peer_env, tool, arguments,
                          cmd if http else None, {**peer_env, **http} if http else None,
                          "MCP_PORT"))  # fmt: skip
    return out


class NoRevalidation(ClientSession):
    """The official client without its client-side output-schema check (a benchmark variant)."""

    async def validate_tool_result(self, name: str, result: Any) -> None:
        return None


VARIANTS: dict[str, type[ClientSession]] = {
    "": ClientSession,
    ", client skips output-schema check": NoRevalidation,
}


@dataclass
class Cell:
    rate: float
    p50: float
    p99: float
    server_cpu: float
    client_cpu: float
    load: tuple[float, float]
    calls: int


async def _cell(
    server: Server, clients: int, seconds: float, errlog: Any, session: type[ClientSession]
) -> Cell:
    params = StdioServerParameters(command=server.command[0], args=server.command[1:],
                                   env=server.env)  # fmt: skip
    before = children()
    async with stdio_client(params, errlog=errlog) as (r, w), session(r, w) as mcp:
        await asyncio.wait_for(mcp.initialize(), 60)
        spawned = children() - before
        if len(spawned) != 1:
            raise RuntimeError(f"expected one server process, found {spawned}")
        pid = spawned.pop()
        first = await asyncio.wait_for(mcp.call_tool(server.tool, server.arguments), 30)
        if first.is_error:
            raise RuntimeError(f"{server.label}: {first.content}")
        lat: list[float] = []
        load0 = loadavg()
        end = time.perf_counter() + seconds

        async def caller() -> None:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                res = await mcp.call_tool(server.tool, server.arguments)
                lat.append((time.perf_counter() - t0) * 1000)
                if res.is_error:
                    raise RuntimeError(f"{server.label}: {res.content}")

        cpu0, srv0, t0 = time.process_time(), cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(clients)))
        wall = time.perf_counter() - t0
        client_cpu, server_cpu = time.process_time() - cpu0, cpu_seconds(pid) - srv0
        load1 = loadavg()
    n = max(1, len(lat))
    return Cell(len(lat) / wall, statistics.median(lat), percentile(lat, 0.99),
                server_cpu * 1000 / n, client_cpu * 1000 / n, (load0, load1), len(lat))  # fmt: skip


def http_load(target: tuple[str, str, dict[str, Any], type[ClientSession]], clients: int,
              seconds: float, start: Start) -> tuple[list[float], float]:  # fmt: skip
    """``clients`` official client sessions over streamable HTTP, one call in flight each (runs
    in a forked client process; ``start`` lines up the timed window of every process)."""
    url, tool, arguments, session_cls = target

    async def session(ready: Any, go: asyncio.Event, lat: list[float], seconds: float) -> None:
        async with (
            create_mcp_http_client(headers={"Authorization": f"Bearer {SECRET}"}) as http,
            streamable_http_client(url, http_client=http) as (r, w),
            session_cls(r, w) as mcp,
        ):
            await mcp.initialize()
            first = await mcp.call_tool(tool, arguments)
            if first.is_error:
                raise RuntimeError(f"{url}: {first.content}")
            ready()
            await go.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                res = await mcp.call_tool(tool, arguments)
                lat.append((time.perf_counter() - t0) * 1000)
                if res.is_error:
                    raise RuntimeError(f"{url}: {res.content}")

    return asyncio.run(_run_clients(clients, seconds, start, session))


def _http_cell(server: Server, clients: int, seconds: float, errlog: Any,
               session: type[ClientSession], procs: int) -> Cell:  # fmt: skip
    assert server.http_command is not None
    assert server.http_env is not None
    port = free_port()
    proc = subprocess.Popen(server.http_command, env={**server.http_env,
                            server.port_var: str(port)}, stdout=errlog, stderr=errlog)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:  # listening: any HTTP answer (these servers have no common health path)
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{server.label} did not listen over HTTP") from None
                time.sleep(0.1)
        target = (f"http://127.0.0.1:{port}/mcp", server.tool, server.arguments, session)
        load0 = loadavg()
        srv0 = [0.0]

        def opened() -> None:
            srv0[0] = cpu_seconds(proc.pid)

        lat, client_cpu = run_clients(http_load, target, clients, seconds, procs, opened)
        server_cpu = cpu_seconds(proc.pid) - srv0[0]
        load1 = loadavg()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    n = max(1, len(lat))
    return Cell(len(lat) / seconds, statistics.median(lat), percentile(lat, 0.99),
                server_cpu * 1000 / n, client_cpu * 1000 / n, (load0, load1), len(lat))  # fmt: skip


@dataclass
class Row:
    cells: list[Cell] = field(default_factory=list)


def report(transport: str, rows: dict[tuple[str, int], Row], opts: Any, started: Any) -> None:
    how = (
        "over stdio, one session per server, N calls in flight on it"
        if transport == "stdio"
        else f"over streamable HTTP, N client sessions in up to {opts.client_procs} processes"
    )
    print(
        f"MCP servers side by side: one cluster-wide VM listing {how}, official MCP "
        f"Python client, {opts.seconds:g} s per cell, best of {opts.rounds} alternating rounds, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{started:%Y-%m-%d %H:%M} UTC\n"
    )
    print(
        "| server | clients | calls/s | calls/s over rounds | p50 ms | p99 ms "
        "| server CPU ms/call | client CPU ms/call | load average |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    best = {key: max(row.cells, key=lambda c: c.rate) for key, row in rows.items()}
    for (label, n), row in rows.items():
        c = best[(label, n)]
        rates = [x.rate for x in row.cells]
        loads = [v for x in row.cells for v in x.load]
        print(
            f"| {label} | {n} | {c.rate:.0f} | {min(rates):.0f}-{max(rates):.0f} | {c.p50:.2f} "
            f"| {c.p99:.2f} | {c.server_cpu:.2f} | {c.client_cpu:.2f} "
            f"| {min(loads):.1f}-{max(loads):.1f} |"
        )
    print()
    labels = [label for label, n in rows if n == CLIENTS[0]]
    for variant in VARIANTS:
        mine = [x for x in labels if x.endswith(variant) and x.startswith("proxbus")]
        peers = [x for x in labels if x.endswith(variant) and not x.startswith("proxbus")]
        if variant == "":
            mine = [x for x in mine if not any(x.endswith(v) for v in VARIANTS if v)]
            peers = [x for x in peers if not any(x.endswith(v) for v in VARIANTS if v)]
        for n in CLIENTS:
            other = max(best[(p, n)].rate for p in peers)
            other_cpu = min(best[(p, n)].server_cpu for p in peers)
            for label in mine:
                c = best[(label, n)]
                print(
                    f"- {transport}, {n} clients, {label}: {c.rate / other:.2f}x the best "
                    f"other's calls/s; server CPU {c.server_cpu:.2f} ms/call, leanest other "
                    f"{other_cpu:.2f}"
                )
    print()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache-dir", type=Path,
                    default=Path.home() / ".cache" / "proxbus-bench" / "mcp-peers")  # fmt: skip
    ap.add_argument("--transport", choices=("stdio", "http", "both"), default="both")
    ap.add_argument("--client-procs", type=int, default=2,
                    help="client processes per HTTP cell")  # fmt: skip
    opts = ap.parse_args()
    opts.cache_dir.mkdir(parents=True, exist_ok=True)
    transports = ("stdio", "http") if opts.transport == "both" else (opts.transport,)
    rows: dict[str, dict[tuple[str, int], Row]] = {t: {} for t in transports}
    started = datetime.datetime.now(datetime.UTC)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sim, sim_env = start_simulator(tmp)
        try:
            host, port = sim_env["PVE_PVE1_HOST"].rsplit(":", 1)
            ca = simulator_ca(host, int(port), tmp / "pvesim-ca.pem")
            all_servers = servers(sim_env, ca, opts.cache_dir, tmp)
            with (tmp / "servers.log").open("w") as errlog:
                for _ in range(opts.rounds):
                    for transport in transports:
                        for n in CLIENTS:
                            for variant, session in VARIANTS.items():
                                for srv in all_servers:
                                    if transport == "stdio":
                                        cell = asyncio.run(
                                            _cell(srv, n, opts.seconds, errlog, session)
                                        )
                                    elif srv.http_command is not None:
                                        cell = _http_cell(srv, n, opts.seconds, errlog, session,
                                                          opts.client_procs)  # fmt: skip
                                    else:
                                        continue
                                    key = (srv.label + variant, n)
                                    rows[transport].setdefault(key, Row()).cells.append(cell)
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(15)
    for transport in transports:
        report(transport, rows[transport], opts, started)


if __name__ == "__main__":
    main()
