"""Benchmark the MCP gateway: get_vms over streamable HTTP vs a direct proxmoxer call (floor).

Run: uv run python bench/bench_mcp_gateway.py [--seconds 3] [--rounds 3] [--client-procs 2]

Processes: pvesim (default 3-node lab, instant tasks) and the gateways (console script, NATS
off, one process per configuration, all started up front) each run as their own subprocess;
the clients run in up to ``--client-procs`` forked processes per cell (one asyncio or GIL-bound
process tops out at one core, and the official client costs as much CPU per call as the
gateway). For 1, 8 and 32 concurrent clients it measures calls/s and p50/p99 latency of
  - floor: proxmoxer ``GET /cluster/resources?type=vm`` from N threads (one session each),
  - the gateway with N official MCP clients (``streamable_http_client`` + ``ClientSession``,
    one session each), cache off (CACHE_TTL=0: every call reaches the simulator) and on
    (CACHE_TTL=2, the default),
  - the same with a progress callback on every call (the client sends a progress token, so
    the gateway answers with an SSE stream instead of one JSON body),
  - N minimal JSON-RPC-over-HTTP clients (httpx, keep-alive, same session handshake).
Every (path, clients) cell runs once per round, the rounds alternate between all paths (so a
slow minute hurts them all alike) and the round with the most calls/s is kept; the spread of
calls/s over the rounds is printed too. "gateway CPU" is the gateway process's user+system CPU
per call, "client CPU" the client processes'. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def start_gateway(sim_env: dict[str, str], cache_ttl: float) -> tuple[subprocess.Popen[bytes], int]:
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
        # 32 callers share one token here; the default cap is 20 sessions per token.
        "MAX_SESSIONS_PER_CALLER": "64",
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


# --- the clients: each load runs `clients` callers in one process --------------------------
#
# `start()` blocks until every client process is ready (a multiprocessing barrier), so the
# timed windows line up; each load returns its latencies (ms) and its own CPU seconds spent
# in the window.

Start = Callable[[], None]
Result = tuple[list[float], float]


def floor(target: dict[str, str], clients: int, seconds: float, start: Start) -> Result:
    """proxmoxer ``GET /cluster/resources?type=vm`` from ``clients`` threads."""
    host = target["PVE_PVE1_HOST"].split(":")
    lat: list[float] = []
    lock = threading.Lock()
    stop_at = [0.0]
    barrier = threading.Barrier(clients + 1)

    def worker() -> None:
        api = ProxmoxAPI(
            host[0],
            port=int(host[1]),
            user=target["PVE_PVE1_USER"],
            token_name=target["PVE_PVE1_TOKEN_NAME"],
            token_value=target["PVE_PVE1_TOKEN_VALUE"],
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
    stop_at[0] = time.perf_counter() + 3600
    for t in threads:
        t.start()
    start()
    cpu0 = time.process_time()
    stop_at[0] = time.perf_counter() + seconds
    barrier.wait()
    for t in threads:
        t.join()
    return lat, time.process_time() - cpu0


async def _run_clients(
    clients: int, seconds: float, start: Start, session: Callable[..., Awaitable[None]]
) -> Result:
    """Run ``session(ready, go, lat, seconds)`` ``clients`` times; time the common window."""
    lat: list[float] = []
    go = asyncio.Event()
    ready = [0]
    all_ready = asyncio.Event()

    def one_ready() -> None:
        ready[0] += 1
        if ready[0] == clients:
            all_ready.set()

    tasks = [asyncio.create_task(session(one_ready, go, lat, seconds)) for _ in range(clients)]
    waiter = asyncio.create_task(all_ready.wait())
    # A session that fails before it is ready (e.g. refused) ends the cell at once.
    await asyncio.wait([waiter, *tasks], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if not all_ready.is_set():
        waiter.cancel()
        for task in tasks:
            if task.done() and task.exception() is not None:
                raise RuntimeError(f"a client failed before the start: {task.exception()!r}")
        raise TimeoutError("the clients were not ready within 120 s")
    await asyncio.to_thread(start)
    cpu0 = time.process_time()
    go.set()
    await asyncio.gather(*tasks)
    return lat, time.process_time() - cpu0


def official(
    port: int, clients: int, seconds: float, start: Start, progress: bool = False
) -> Result:
    """The official MCP client: ``streamable_http_client`` + ``ClientSession``, one per caller."""

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        pass

    callback = on_progress if progress else None

    async def session(
        ready: Callable[[], None], go: asyncio.Event, lat: list[float], seconds: float
    ) -> None:
        async with (
            create_mcp_http_client(headers={"Authorization": f"Bearer {SECRET}"}) as http,
            streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http) as (r, w),
            ClientSession(r, w) as mcp,
        ):
            await mcp.initialize()
            await mcp.call_tool("get_vms", {})
            ready()
            await go.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                res = await mcp.call_tool("get_vms", {}, progress_callback=callback)
                lat.append((time.perf_counter() - t0) * 1000)
                assert not res.is_error

    return asyncio.run(_run_clients(clients, seconds, start, session))


def official_progress(port: int, clients: int, seconds: float, start: Start) -> Result:
    return official(port, clients, seconds, start, progress=True)


def light(port: int, clients: int, seconds: float, start: Start) -> Result:
    """A minimal JSON-RPC-over-HTTP client (httpx, keep-alive, the same session handshake), so
    the gateway's capacity is not hidden behind the Python SDK client's own CPU cost."""
    url = f"http://127.0.0.1:{port}/mcp"
    base = {
        "Authorization": f"Bearer {SECRET}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }

    def result_of(resp: httpx.Response) -> dict:
        text = resp.text
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            text = next(
                line[5:]
                for line in text.splitlines()
                if line.startswith("data:") and '"result"' in line
            )
        return json.loads(text)

    async def session(
        ready: Callable[[], None], go: asyncio.Event, lat: list[float], seconds: float
    ) -> None:
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
            ready()
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
            await http.delete(url, headers=headers)  # end the session, as an SDK client does

    return asyncio.run(_run_clients(clients, seconds, start, session))


Load = Callable[[Any, int, float, Start], Result]
PATHS: tuple[tuple[str, float, Load], ...] = (
    ("gateway, official client, cache off", 0.0, official),
    ("gateway, official client, cache on", 2.0, official),
    ("gateway, official client, cache on, progress token (SSE answers)", 2.0, official_progress),
    ("gateway, light client, cache on", 2.0, light),
)
FLOOR = "proxmoxer direct (floor)"


def _client_process(
    load: Load, target: Any, clients: int, seconds: float, barrier: Any, out: Any
) -> None:
    try:
        out.send(load(target, clients, seconds, barrier.wait))
    except BaseException as exc:
        barrier.abort()
        out.send(exc)
        raise


def run_clients(
    load: Load,
    target: Any,
    clients: int,
    seconds: float,
    procs: int,
    on_start: Callable[[], None] | None = None,
) -> Result:
    """``clients`` callers spread over ``min(procs, clients)`` processes, one timed window
    (``on_start`` is called as it opens, e.g. to read a server's CPU time).

    One asyncio process tops out at one core; the official client needs about as much CPU
    per call as the gateway, so a single client process would measure the client.
    """
    ctx = mp.get_context("fork")
    n = min(procs, clients)
    shares = [clients // n + (1 if i < clients % n else 0) for i in range(n)]
    barrier = ctx.Barrier(n + 1)
    pipes = [ctx.Pipe(duplex=False) for _ in shares]
    workers = [
        ctx.Process(target=_client_process, args=(load, target, k, seconds, barrier, w))
        for k, (_, w) in zip(shares, pipes, strict=True)
    ]
    for w in workers:
        w.start()
    barrier.wait(timeout=180)
    if on_start is not None:
        on_start()
    lat: list[float] = []
    cpu = 0.0
    for (r, _), w in zip(pipes, workers, strict=True):
        got = r.recv()
        if isinstance(got, BaseException):
            raise RuntimeError(f"client process failed: {got!r}")
        lat += got[0]
        cpu += got[1]
        w.join(30)
    return lat, cpu


@dataclass
class Cell:
    rate: float
    p50: float
    p99: float
    gateway_cpu: float | None
    client_cpu: float


def measure(
    sim_env: dict[str, str], gateways: dict[float, tuple[subprocess.Popen[bytes], int]],
    n: int, seconds: float, load: Load | None, ttl: float, procs: int,
) -> Cell:  # fmt: skip
    if load is None:
        lat, client_cpu = run_clients(floor, sim_env, n, seconds, procs)
        gateway_cpu = None
    else:
        gw, port = gateways[ttl]
        cpu0 = cpu_seconds(gw.pid)
        lat, client_cpu = run_clients(load, port, n, seconds, procs)
        gateway_cpu = (cpu_seconds(gw.pid) - cpu0) * 1000 / max(1, len(lat))
    return Cell(
        len(lat) / seconds,
        statistics.median(lat),
        percentile(lat, 0.99),
        gateway_cpu,
        client_cpu * 1000 / max(1, len(lat)),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--client-procs", type=int, default=2, help="client processes per cell")
    opts = ap.parse_args()
    cells: dict[tuple[str, int], list[Cell]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sim, sim_env = start_simulator(Path(tmp))
        gateways: dict[float, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            for ttl in sorted({ttl for _, ttl, _ in PATHS}):
                gateways[ttl] = start_gateway(sim_env, ttl)
            for _ in range(opts.rounds):
                for n in CLIENTS:
                    for label, ttl, load in ((FLOOR, 0.0, None), *PATHS):
                        cell = measure(
                            sim_env, gateways, n, opts.seconds, load, ttl, opts.client_procs
                        )
                        cells.setdefault((label, n), []).append(cell)
        finally:
            for gw, _ in gateways.values():
                gw.send_signal(signal.SIGTERM)
            for gw, _ in gateways.values():
                gw.wait(15)
            sim.send_signal(signal.SIGTERM)
            sim.wait(15)
    print(
        f"mcp-gateway benchmark: get_vms, {opts.seconds:g} s per cell, best of {opts.rounds} "
        f"alternating rounds, clients spread over up to {opts.client_procs} processes, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    print(
        "| path | clients | calls/s | calls/s over rounds | p50 ms | p99 ms | p50 over floor ms "
        "| gateway CPU ms/call | client CPU ms/call |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    best = {key: max(runs, key=lambda c: c.rate) for key, runs in cells.items()}
    for label in (FLOOR, *(p[0] for p in PATHS)):
        for n in CLIENTS:
            c = best[(label, n)]
            rates = [r.rate for r in cells[(label, n)]]
            over = "" if label == FLOOR else f"{c.p50 - best[(FLOOR, n)].p50:+.2f}"
            gw_cpu = "" if c.gateway_cpu is None else f"{c.gateway_cpu:.2f}"
            print(
                f"| {label} | {n} | {c.rate:.0f} | {min(rates):.0f}-{max(rates):.0f} "
                f"| {c.p50:.2f} | {c.p99:.2f} | {over} | {gw_cpu} | {c.client_cpu:.2f} |"
            )


if __name__ == "__main__":
    main()
