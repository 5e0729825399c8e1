"""Benchmark the pvesim API: /cluster/resources on a 50-node / 2,000-guest lab.

Run: uv run python bench/bench_pvesim.py [--requests 200]
Prints a markdown table (median and p99 over N requests on one reused HTTPS connection),
with /version on the same connection as the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import requests
from proxbus_pvesim.pve_cluster import _resources
from proxbus_pvesim.scenario import build_lab
from proxbus_pvesim.server import Call
from proxbus_pvesim.testing import run_simulator_in_thread

BIG = {"cluster": {"name": "big", "nodes": 50}, "guests": {"qemu": 1400, "lxc": 600}}


def _measure(session: requests.Session, url: str, n: int) -> tuple[float, float, int]:
    times = []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        r = session.get(url, timeout=10, verify=session.verify)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        size = len(r.content)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return statistics.median(times), p99, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    n = ap.parse_args().requests
    scenario = build_lab(BIG)
    rows = []
    with run_simulator_in_thread(scenario) as sim:
        s = requests.Session()
        s.verify = str(sim.ca_path)
        s.headers["Authorization"] = sim.tokens.admin.header
        base = f"{sim.pve_url}/api2/json"
        for _ in range(50):  # warm up the connection and the interpreter
            s.get(f"{base}/version", timeout=10, verify=s.verify).raise_for_status()
        for label, path in [
            ("/version (floor)", "/version"),
            ("/cluster/resources", "/cluster/resources"),
            ("/cluster/resources?type=vm", "/cluster/resources?type=vm"),
            ("/nodes/pve1/qemu", "/nodes/pve1/qemu"),
            ("/cluster/tasks", "/cluster/tasks"),
        ]:
            med, p99, size = _measure(s, base + path, n)
            rows.append((label, med, p99, size))

        def cold(sim_: object) -> tuple[float, int]:
            call = Call(
                sim.simulator,
                sim.simulator.pve_auth.from_header(sim.tokens.admin.header),
                {},
                "GET",
                "/cluster/resources",
            )  # type: ignore[arg-type]
            t0 = time.perf_counter()
            body = json.dumps(_resources(call, None), separators=(",", ":")).encode()
            return (time.perf_counter() - t0) * 1000, len(body)

        cold_ms = sorted(sim.call(cold)[0] for _ in range(20))
    print(
        f"pvesim benchmark: 50 nodes, {len(scenario.lab.guests)} guests, {n} requests per row, "
        f"one reused HTTPS connection (requests.Session), {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n"
    )
    print("| endpoint | median ms | p99 ms | body bytes |")
    print("| --- | ---: | ---: | ---: |")
    for label, med, p99, size in rows:
        print(f"| {label} | {med:.2f} | {p99:.2f} | {size} |")
    print(
        f"\nUncached build+encode of /cluster/resources (no HTTP, median of 20): "
        f"{statistics.median(cold_ms):.1f} ms"
    )


if __name__ == "__main__":
    main()
