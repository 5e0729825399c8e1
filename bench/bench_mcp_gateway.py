"""Benchmark the MCP gateway: get_vms over streamable HTTP vs a direct proxmoxer call (floor).

Run: uv run python bench/bench_mcp_gateway.py [--seconds 4]

Processes: pvesim (default 3-node lab, instant tasks) and the gateway (console script, NATS
off) each run as their own subprocess; the clients run here. For 1, 8 and 32 concurrent
clients it measures calls/s and p50/p99 latency of
  - floor: proxmoxer ``GET /cluster/resources?type=vm`` from N threads (one session each),
  - gateway, cache off (CACHE_TTL=0): every call reaches the simulator,
  - gateway, cache on (CACHE_TTL=2, default): repeated reads are served from the cache,
  - the same with MCP_JSON_RESPONSE=true (plain JSON answers instead of an SSE stream),
with N official MCP clients (``streamable_http_client`` + ``ClientSession``), one session each,
and (rows "raw HTTP client") with N minimal JSON-RPC-over-HTTP clients (httpx, keep-alive).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from proxmoxer import ProxmoxAPI

SECRET = "bench-secret-0123456789"
CLIENTS = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def start_simulator(tmp: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env_file = tmp / "pvesim.env"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxbus_pvesim",
            "--port",
            "0",
            "--pbs-port",
            "0",
            "--task-seconds",
            "0",
            "--write-env",
            str(env_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not env_file.exists() or "PBS_NODES" not in env_file.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("pvesim did not start")
        time.sleep(0.05)
    return proc, read_env(env_file)


def start_gateway(
    sim_env: dict[str, str], cache_ttl: float, json_response: bool = False
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        **sim_env,
        "NATS_ENABLED": "false",
        "GATEWAY_PORT": str(port),
        "GATEWAY_TOKENS": f"bench:read:{SECRET}",
        "CACHE_TTL": str(cache_ttl),
        "LOG_LEVEL": "WARNING",
        "POOL_WORKERS": "32",
        "MCP_JSON_RESPONSE": "true" if json_response else "false",
    }
    script = shutil.which("proxbus-mcp-gateway", path=str(Path(sys.executable).parent))
    assert script
    proc = subprocess.Popen([script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("gateway did not start")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor(sim_env: dict[str, str], clients: int, seconds: float) -> tuple[float, list[float]]:
    host = sim_env["PVE_PVE1_HOST"].split(":")
    lat: list[float] = []
    lock = threading.Lock()
    stop_at = [0.0]
    barrier = threading.Barrier(clients + 1)

    def worker() -> None:
        api = ProxmoxAPI(
            host[0],
            port=int(host[1]),
            user=sim_env["PVE_PVE1_USER"],
            token_name=sim_env["PVE_PVE1_TOKEN_NAME"],
            token_value=sim_env["PVE_PVE1_TOKEN_VALUE"],
            verify_ssl=False,
            timeout=10,
        )
        api.cluster.resources.get(type="vm")
        barrier.wait()
        mine = []
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            api.cluster.resources.get(type="vm")
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + 3600
    barrier.wait()
    stop_at[0] = time.perf_counter() + seconds
    for t in threads:
        t.join()
    return len(lat) / seconds, lat


async def gateway_load(port: int, clients: int, seconds: float) -> tuple[float, list[float]]:
    lat: list[float] = []
    ready = asyncio.Event()
    go = asyncio.Event()
    started = [0]

    async def client() -> None:
        async with (
            create_mcp_http_client(headers={"Authorization": f"Bearer {SECRET}"}) as http,
            streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            await session.call_tool("get_vms", {})
            started[0] += 1
            if started[0] == clients:
                ready.set()
            await go.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                res = await session.call_tool("get_vms", {})
                lat.append((time.perf_counter() - t0) * 1000)
                assert not res.is_error

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.wait_for(ready.wait(), 60)
    go.set()
    await asyncio.gather(*tasks)
    return len(lat) / seconds, lat


async def gateway_load_raw(port: int, clients: int, seconds: float) -> tuple[float, list[float]]:
    """The same calls from a minimal JSON-RPC-over-HTTP client (httpx, keep-alive), so the
    gateway's capacity is not hidden behind the Python SDK client's own CPU cost."""
    url = f"http://127.0.0.1:{port}/mcp"
    base = {
        "Authorization": f"Bearer {SECRET}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    lat: list[float] = []
    go = asyncio.Event()
    ready = [0]
    all_ready = asyncio.Event()

    def result_of(resp: httpx.Response) -> dict:
        text = resp.text
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            text = next(
                line[5:]
                for line in text.splitlines()
                if line.startswith("data:") and '"result"' in line
            )
        return json.loads(text)

    async def client() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            init = {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"},
                },
            }
            resp = await http.post(url, json=init, headers=base)
            headers = {
                **base,
                "Mcp-Session-Id": resp.headers["mcp-session-id"],
                "Mcp-Protocol-Version": "2025-06-18",
            }
            await http.post(
                url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
            )
            ready[0] += 1
            if ready[0] == clients:
                all_ready.set()
            await go.wait()
            end = time.perf_counter() + seconds
            i = 0
            while time.perf_counter() < end:
                i += 1
                body = {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "tools/call",
                    "params": {"name": "get_vms", "arguments": {}},
                }
                t0 = time.perf_counter()
                resp = await http.post(url, json=body, headers=headers)
                data = result_of(resp)
                lat.append((time.perf_counter() - t0) * 1000)
                assert not data["result"].get("isError"), data

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.wait_for(all_ready.wait(), 60)
    go.set()
    await asyncio.gather(*tasks)
    return len(lat) / seconds, lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    seconds = ap.parse_args().seconds
    rows: list[tuple[str, int, float, float, float, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sim, sim_env = start_simulator(Path(tmp))
        try:
            for n in CLIENTS:
                rate, lat = floor(sim_env, n, seconds)
                rows.append(
                    (
                        "proxmoxer direct (floor)",
                        n,
                        rate,
                        statistics.median(lat),
                        percentile(lat, 0.99),
                        None,
                    )
                )
            for label, ttl, js, load in (
                ("gateway, cache off", 0.0, False, gateway_load),
                ("gateway, cache on (2 s)", 2.0, False, gateway_load),
                ("gateway, cache on, JSON responses", 2.0, True, gateway_load),
                ("gateway, cache off, raw HTTP client", 0.0, False, gateway_load_raw),
                ("gateway, cache on, raw HTTP client", 2.0, False, gateway_load_raw),
            ):
                gw, port = start_gateway(sim_env, ttl, js)
                try:
                    for n in CLIENTS:
                        cpu0 = cpu_seconds(gw.pid)
                        rate, lat = asyncio.run(load(port, n, seconds))
                        cpu_ms = (cpu_seconds(gw.pid) - cpu0) * 1000 / max(1, len(lat) + 2 * n)
                        rows.append(
                            (label, n, rate, statistics.median(lat), percentile(lat, 0.99), cpu_ms)
                        )
                finally:
                    gw.send_signal(signal.SIGTERM)
                    gw.wait(15)
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(15)
    print(
        f"mcp-gateway benchmark: get_vms, {seconds:.0f} s per row, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n"
    )
    print(
        "| path | clients | calls/s | p50 ms | p99 ms | p50 over floor ms | gateway CPU ms/call |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    floor_p50 = {n: p50 for label, n, _, p50, _, _ in rows if label.startswith("proxmoxer")}
    for label, n, rate, p50, p99, cpu in rows:
        over = "" if label.startswith("proxmoxer") else f"{p50 - floor_p50[n]:+.2f}"
        cpu_text = "" if cpu is None else f"{cpu:.2f}"
        print(f"| {label} | {n} | {rate:.0f} | {p50:.2f} | {p99:.2f} | {over} | {cpu_text} |")


if __name__ == "__main__":
    main()
