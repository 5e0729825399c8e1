"""Benchmark: the dispatcher's web console — page weight and time to first render on loopback.

Runs a real nats-server and the dispatcher as its console script (subprocess), fills the bus
with 500 events (the live page's ring is full; a NATS receiver is on, so the incidents page
lists what the intake made of them), then for each page:

- server time: ``GET`` with httpx, p50 / p95 of 50 requests (HTML rendered by the server);
- weight: every byte the browser fetched for the page (HTML + stylesheet + script, headers
  included: the Resource Timing ``transferSize``), cold cache;
- first render: Debian's chromium (Playwright), a fresh context per load (cold cache),
  ``first-contentful-paint`` and ``loadEventEnd`` from the Performance API, median of 5 loads.

Targets (issue 16): page weight < 200 KB, first page rendered < 500 ms on loopback.

    uv run python bench/bench_console.py [--events 500] [--loads 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats
from playwright.async_api import async_playwright
from proxbus_devtools.testing import NatsServer, free_port, nats_server_binary
from proxbus_events import Event, event_subject
from proxbus_runtime import event_headers

PAGES = ("/", "/incidents", "/silences", "/deadletters", "/status")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WEIGHT_LIMIT = 200 * 1024
RENDER_LIMIT_MS = 500.0


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _event(i: int) -> Event:
    kinds = ("backup.failed", "vm.started", "task.failed", "replication.failed", "node.offline")
    return Event(
        source=("syslog", "email", "pve-webhook", "pve-api")[i % 4],
        site="lab",
        node=f"pve{i % 5 + 1}",
        severity=("info", "warning", "error", "notice")[i % 4],
        kind=kinds[i % len(kinds)],
        title=f"{kinds[i % len(kinds)]} on guest {100 + i % 40} (#{i})",
        message="INFO: starting new backup job: vzdump 100 --mode snapshot\n" * 4,
        vmid=100 + i % 40,
    )


async def main(events: int, loads: int) -> None:
    binary = nats_server_binary()
    assert binary, "nats-server not installed"
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(binary, Path(tmp))
        server.start()
        port = free_port()
        env = {
            **os.environ,
            "NATS_URL": server.url,
            "HEALTH_HOST": "127.0.0.1",
            "HEALTH_PORT": str(port),
            "CONSOLE_TOKENS": "bench:operate:bench-secret",
            "NATS_OUT_SUBJECT": "bench.notifications",  # a receiver, so events make incidents
            "LOG_LEVEL": "WARNING",
        }
        script = str(Path(sys.executable).parent / "proxbus-dispatcher")
        proc = subprocess.Popen([script], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if (await client.get("/health")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, "dispatcher did not start"
                    await asyncio.sleep(0.1)
                nc = await nats.connect(server.url)
                js = nc.jetstream()
                for i in range(events):
                    ev = _event(i)
                    await js.publish(event_subject(ev), ev.to_json(), headers=event_headers(ev))
                await nc.close()
                # The first page subscribes the feed and back-fills it from the stream.
                t = time.perf_counter()
                first = await client.get("/")
                first_ms = (time.perf_counter() - t) * 1000
                assert f"(#{events - 1})" in first.text, "first page lacks the newest event"
                while f"(#{events - 1})" not in (await client.get("/")).text:
                    assert time.monotonic() < deadline + 30, "events did not reach the console"
                    await asyncio.sleep(0.1)
                server_times: dict[str, list[float]] = {}
                for path in PAGES:
                    times = []
                    for _ in range(50):
                        t = time.perf_counter()
                        r = await client.get(path)
                        times.append((time.perf_counter() - t) * 1000)
                        assert r.status_code == 200, (path, r.status_code)
                    server_times[path] = times

            rows = []
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                )
                for path in PAGES:
                    fcps, loaded, weights, html_sizes = [], [], [], []
                    for _ in range(loads):
                        context = await browser.new_context()
                        page = await context.new_page()
                        await page.goto(base + path, wait_until="load")
                        timing = await page.evaluate(
                            """() => {
                              const nav = performance.getEntriesByType('navigation')[0];
                              const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                              const res = performance.getEntriesByType('resource');
                              return {fcp: fcp ? fcp.startTime : null, load: nav.loadEventEnd,
                                      html: nav.transferSize,
                                      total: nav.transferSize + res.reduce(
                                        (n, r) => n + r.transferSize, 0)};
                            }"""
                        )
                        fcps.append(float(timing["fcp"] or timing["load"]))
                        loaded.append(float(timing["load"]))
                        weights.append(int(timing["total"]))
                        html_sizes.append(int(timing["html"]))
                        await context.close()
                    st = server_times[path]
                    rows.append(
                        (
                            path,
                            max(html_sizes) / 1024,
                            max(weights) / 1024,
                            _q(st, 0.5),
                            _q(st, 0.95),
                            statistics.median(fcps),
                            statistics.median(loaded),
                            max(weights) < WEIGHT_LIMIT
                            and statistics.median(fcps) < RENDER_LIMIT_MS,
                        )
                    )
                await browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
            server.stop()

    print(f"console pages, {events} events on the bus, {loads} cold loads per page")
    print(f"first `/` after start (subscribe + back-fill {events} events): {first_ms:.0f} ms\n")
    print(
        "| page | HTML KB | page weight KB | server p50 / p95 ms | first paint ms (median) | load ms (median) | < 200 KB and < 500 ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | :---: |")
    for path, html, weight, p50, p95, fcp, load, ok in rows:
        print(
            f"| `{path}` | {html:.1f} | {weight:.1f} | {p50:.1f} / {p95:.1f} | {fcp:.0f} | "
            f"{load:.0f} | {'yes' if ok else 'NO'} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.loads))
