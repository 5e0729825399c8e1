"""Dispatcher benchmark: intake (consume + route + enqueue), deliveries/s, end-to-end latency.

Run: ``uv run python bench/bench_dispatcher.py [--events 10000]``. Starts its own nats-server,
a webhook sink in a separate process and the dispatcher as its console script (subprocess),
like production. Floor: raw nats-py pull-consume (fetch 256 + ack each) of the same stream.
Also prints the CPU time the dispatcher and nats-server processes spent per event during the
intake run (``/proc/<pid>/stat``): on a shared machine that moves far less than events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig
from proxbus_devtools.testing import (
    NatsServer,
    free_port,
    nats_server_binary,
    small_stream_limits,
    wait_for_port,
)
from proxbus_events import EVENTS_STREAM, Event, event_subject
from proxbus_runtime import ensure_streams, event_headers

SCRIPT = str(Path(sys.executable).parent / "proxbus-dispatcher")


def run_sink(port: int) -> None:
    """A webhook target in its own process: records (event id, sent_at, received_at)."""
    from aiohttp import web

    records: list[tuple[str, float, float]] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        now = time.time()
        for e in body["events"]:
            records.append((e["id"], float(e["metadata"].get("sent_at", 0)), now))
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        if request.query.get("full"):
            return web.json_response({"count": len(records), "records": records})
        return web.json_response({"count": len(records)})

    async def reset(_: web.Request) -> web.Response:
        records.clear()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def make_event(i: int) -> Event:
    return Event(
        source="syslog",
        site="bench",
        node=f"pve{i % 4}",
        severity="error",
        kind="task.failed",
        title=f"task {i} failed",
        message="ERROR: something went wrong" * 4,
        vmid=100 + i,
        metadata={"sent_at": time.time()},
    )


async def preload(js: Any, n: int) -> None:
    futures = []
    for i in range(n):
        e = make_event(i)
        futures.append(
            await js.publish_async(event_subject(e), e.to_json(), headers=event_headers(e))
        )
        if len(futures) >= 2000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)


async def raw_floor(js: Any, n: int) -> float:
    sub = await js.pull_subscribe(
        "proxbus.events.>",
        durable="raw-floor",
        stream=EVENTS_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=20_000),
    )
    got = 0
    t0 = time.perf_counter()
    while got < n:
        msgs = await sub.fetch(256, timeout=2)
        for m in msgs:
            Event.from_json(m.data)
            await m.ack()
        got += len(msgs)
    elapsed = time.perf_counter() - t0
    await sub.unsubscribe()
    return n / elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(text: str, name: str) -> float:
    return sum(
        float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    )


class Dispatcher:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        full = {**os.environ, "LOG_LEVEL": "WARNING", "HEALTH_PORT": str(self.port), **env}
        self.proc = subprocess.Popen([SCRIPT], env=full)

    async def healthy(self, client: httpx.AsyncClient) -> float:
        while True:
            try:
                if (await client.get(f"http://127.0.0.1:{self.port}/health")).status_code == 200:
                    return time.perf_counter()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.02)

    async def metrics(self, client: httpx.AsyncClient) -> str:
        return (await client.get(f"http://127.0.0.1:{self.port}/metrics")).text

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)


async def main(n: int, latency_seconds: float, rate: int) -> None:
    binary = nats_server_binary()
    assert binary, "nats-server not installed"
    tmp = Path(tempfile.mkdtemp(prefix="bench-dispatcher-"))
    server = NatsServer(binary, tmp)
    server.start()
    sink_port = free_port()
    sink = multiprocessing.Process(target=run_sink, args=(sink_port,), daemon=True)
    sink.start()
    wait_for_port(sink_port)
    routes = tmp / "routes.yaml"
    routes.write_text(
        f"receivers: [{{name: hook, type: webhook, url: 'http://127.0.0.1:{sink_port}/hook', concurrency: 64}}]\n"
        "route: {receiver: hook, repeat_interval: 0s}\n"
    )
    base_env = {"NATS_URL": server.url, "ROUTES_FILE": str(routes), "ENRICH_ENABLED": "true"}
    nc = await nats.connect(server.url)
    js = nc.jetstream(timeout=10)
    await ensure_streams(js, small_stream_limits())
    rows: list[tuple[str, str, str]] = []
    async with httpx.AsyncClient(timeout=5) as client:
        await preload(js, n)
        floor = await raw_floor(js, n)
        rows.append(("floor: raw nats-py pull consume + parse + ack", f"{floor:,.0f} events/s", ""))

        # A: intake only (consume → filter/silence/inhibit → route → enqueue delivery → ack)
        # Done when the durable's ack floor reaches the last event: asked of the broker, so
        # the measurement costs the dispatcher nothing (scraping its /metrics every 50 ms did).
        last_seq = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        d = Dispatcher({**base_env, "DELIVERY_ENABLED": "false"})
        t0 = await d.healthy(client)
        cpu0 = cpu_seconds(d.proc.pid), cpu_seconds(server.proc.pid)
        while True:
            try:
                info = await js.consumer_info(EVENTS_STREAM, "dispatcher")
                if info.ack_floor and info.ack_floor.stream_seq >= last_seq:
                    break
            except nats.js.errors.NotFoundError:
                pass
            await asyncio.sleep(0.02)
        intake = n / (time.perf_counter() - t0)
        cpu_dispatcher = (cpu_seconds(d.proc.pid) - cpu0[0]) / n * 1e6
        cpu_server = (cpu_seconds(server.proc.pid) - cpu0[1]) / n * 1e6
        assert metric(await d.metrics(client), "proxbus_dispatcher_events_total") >= n
        d.stop()
        rows.append(
            (
                "dispatcher intake: consumed, routed, delivery enqueued, acked",
                f"{intake:,.0f} events/s",
                ">= 5,000/s",
            )
        )

        # B: delivery only: drain the n enqueued deliveries to the webhook sink
        d = Dispatcher({**base_env, "INTAKE_ENABLED": "false"})
        t0 = await d.healthy(client)
        while (await client.get(f"http://127.0.0.1:{sink_port}/stats")).json()["count"] < n:
            await asyncio.sleep(0.05)
        deliveries = n / (time.perf_counter() - t0)
        d.stop()
        rows.append(
            (
                "deliveries to local webhook sink (concurrency 64)",
                f"{deliveries:,.0f} deliveries/s",
                ">= 1,000/s",
            )
        )

        # C: end-to-end latency at a steady rate, full service
        await client.post(f"http://127.0.0.1:{sink_port}/reset")
        d = Dispatcher(base_env)
        await d.healthy(client)
        total = int(rate * latency_seconds)
        start = time.perf_counter()
        for i in range(total):
            target = start + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            e = make_event(n + i)
            await js.publish(event_subject(e), e.to_json(), headers=event_headers(e))
        while (await client.get(f"http://127.0.0.1:{sink_port}/stats")).json()["count"] < total:
            await asyncio.sleep(0.05)
        records = (await client.get(f"http://127.0.0.1:{sink_port}/stats?full=1")).json()["records"]
        d.stop()
        ordered = sorted(records, key=lambda r: r[1])
        raw = [(r[2] - r[1]) * 1000 for r in ordered]
        slow = [(i, round(v)) for i, v in enumerate(raw) if v > 50]
        print(
            f"latency > 50 ms at (index, ms): {slow[:20]} ({len(slow)} of {len(raw)})",
            file=sys.stderr,
        )
        lat = sorted(raw)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        rows.append(
            (
                f"end-to-end publish → webhook receipt at {rate}/s ({total} events)",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                "p99 < 100 ms",
            )
        )
    await nc.close()
    sink.terminate()
    server.stop()
    print(f"\n### dispatcher ({n} events, {os.cpu_count()} cores)\n")
    print("| measure | result | target |")
    print("| --- | --- | --- |")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    print(f"\nintake / floor = {intake / floor:.2f}")
    print(
        f"intake CPU per event: dispatcher {cpu_dispatcher:.0f} µs, nats-server"
        f" {cpu_server:.0f} µs; load average {os.getloadavg()[0]:.2f} at the end"
    )
    json.dump(
        {
            "floor": floor,
            "intake": intake,
            "deliveries": deliveries,
            "p50": p50,
            "p99": p99,
            "cpu_us_dispatcher": cpu_dispatcher,
            "cpu_us_server": cpu_server,
        },
        sys.stderr,
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--latency-seconds", type=float, default=5.0)
    p.add_argument("--rate", type=int, default=200)
    a = p.parse_args()
    asyncio.run(main(a.events, a.latency_seconds, a.rate))
