"""A hanging receiver under a steady stream: the backlog stays bounded, healthy receivers keep
their latency, the overflow is dead-lettered with its reason (issue 19).

Run: ``uv run python bench/bench_dispatcher_backlog.py [--seconds 600] [--rate 100]``. Starts its
own nats-server, two webhook targets in their own processes (one answers, one accepts the
request and never answers) and the dispatcher as its console script. First a control phase with
the healthy receiver alone, then the measured phase with both receivers on every event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
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
import nats.errors
import nats.js.errors
from bench_dispatcher import make_event, run_sink  # the same events and recording sink
from proxbus_devtools.testing import NatsServer, free_port, nats_server_binary, wait_for_port
from proxbus_events import DELIVERIES_STREAM, DLQ_STREAM, event_subject
from proxbus_runtime import ensure_streams, event_headers

SCRIPT = str(Path(sys.executable).parent / "proxbus-dispatcher")
MAX_BACKLOG = 1000


def run_hanging_sink(port: int) -> None:
    """A webhook target that accepts every request and never answers."""
    from aiohttp import web

    never = asyncio.Event()

    async def hook(_: web.Request) -> web.Response:
        await never.wait()
        return web.Response(text="never")

    app = web.Application()
    app.router.add_post("/hook", hook)
    # Stopped with SIGTERM while hundreds of requests hang: aiohttp's graceful exit then prints
    # a traceback per request ("Unhandled exception ... InvalidStateError"). A stand-in has
    # nothing to flush, so it ends at once.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                handle_signals=False)  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def steady(js: Any, start_index: int, rate: int, seconds: float, sample: Any) -> int:
    """Publish ``rate`` events/s for ``seconds``; call ``sample()`` every 10 s; events sent."""
    total = int(rate * seconds)
    start = time.perf_counter()
    next_sample = start + 10
    for i in range(total):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        e = make_event(start_index + i)
        await js.publish(event_subject(e), e.to_json(), headers=event_headers(e))
        if time.perf_counter() >= next_sample:
            next_sample += 10
            await sample()
    return total


async def healthy_latencies(client: httpx.AsyncClient, url: str, total: int) -> list[float]:
    deadline = time.monotonic() + 120
    while (await client.get(f"{url}/stats")).json()["count"] < total:
        assert time.monotonic() < deadline, "the healthy receiver did not get every event"
        await asyncio.sleep(0.2)
    records = (await client.get(f"{url}/stats?full=1")).json()["records"]
    await client.post(f"{url}/reset")
    return [(received - sent) * 1000 for _, sent, received in sorted(records, key=lambda r: r[1])]


async def main(seconds: float, rate: int, control_seconds: float) -> None:
    binary = nats_server_binary()
    assert binary, "nats-server not installed"
    tmp = Path(tempfile.mkdtemp(prefix="bench-backlog-"))
    server = NatsServer(binary, tmp)
    server.start()
    ports = {"healthy": free_port(), "hang": free_port()}
    sinks = [
        multiprocessing.Process(target=run_sink, args=(ports["healthy"],), daemon=True),
        multiprocessing.Process(target=run_hanging_sink, args=(ports["hang"],), daemon=True),
    ]
    for sink, port in zip(sinks, ports.values(), strict=True):
        sink.start()
        wait_for_port(port)
    healthy_url = f"http://127.0.0.1:{ports['healthy']}"
    receivers = (
        f"  - {{name: healthy, type: webhook, url: '{healthy_url}/hook', concurrency: 16}}\n"
        f"  - {{name: hang, type: webhook, url: 'http://127.0.0.1:{ports['hang']}/hook',"
        f" max_backlog: {MAX_BACKLOG}}}\n"
    )
    control_routes = tmp / "control.yaml"
    control_routes.write_text(
        f"receivers:\n{receivers}route: {{receiver: healthy, repeat_interval: 0s}}\n"
    )
    both_routes = tmp / "both.yaml"
    both_routes.write_text(
        f"receivers:\n{receivers}"
        "route:\n  receiver: healthy\n  repeat_interval: 0s\n  routes:\n"
        "    - {matchers: ['severity>=info'], receiver: hang, continue: true}\n"
        "    - {matchers: ['severity>=info'], receiver: healthy}\n"
    )
    nc = await nats.connect(server.url)
    js = nc.jetstream(timeout=10)
    await ensure_streams(js)
    samples: list[tuple[float, int, int, int, int]] = []
    t0 = time.monotonic()

    async def sample() -> None:
        deliveries = await js.stream_info(DELIVERIES_STREAM)
        dlq = await js.stream_info(DLQ_STREAM)
        try:
            pending = (await js.consumer_info(DELIVERIES_STREAM, "deliver-hang")).num_pending
        except nats.js.errors.NotFoundError:
            pending = 0
        samples.append(
            (
                time.monotonic() - t0,
                deliveries.state.messages,
                deliveries.state.bytes,
                int(pending),
                dlq.state.messages,
            )
        )

    def start_dispatcher(routes: Path) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "NATS_URL": server.url,
            "ROUTES_FILE": str(routes),
            "LOG_LEVEL": "ERROR",
            "HEALTH_PORT": str(free_port()),
        }
        return subprocess.Popen([SCRIPT], env=env)

    async with httpx.AsyncClient(timeout=10) as client:
        d = start_dispatcher(control_routes)
        await asyncio.sleep(2)  # start-up; the first events would wait for it otherwise
        sent = await steady(js, 0, rate, control_seconds, sample)
        control = await healthy_latencies(client, healthy_url, sent)
        d.terminate()
        d.wait(15)

        d = start_dispatcher(both_routes)
        await asyncio.sleep(2)
        samples.clear()
        t0 = time.monotonic()
        total = await steady(js, sent, rate, seconds, sample)
        await sample()
        measured = await healthy_latencies(client, healthy_url, total)
        d.terminate()
        d.wait(15)

    reasons: dict[str, int] = {}
    sub = await js.pull_subscribe("proxbus.dlq.hang", durable="bench-read", stream=DLQ_STREAM)
    try:
        for msg in await sub.fetch(200, timeout=5):
            error = json.loads(msg.data)["error"]
            key = error.split(" (")[0].split(" of ")[0]
            reasons[key] = reasons.get(key, 0) + 1
    except nats.errors.TimeoutError:
        pass
    await nc.close()
    for sink in sinks:
        sink.terminate()
    server.stop()

    minute = rate * 60
    first, last = measured[:minute], measured[-minute:]
    max_pending = max(s[3] for s in samples)
    max_msgs = max(s[1] for s in samples)
    max_bytes = max(s[2] for s in samples)
    dead = samples[-1][4]
    load = os.getloadavg()
    print(
        f"\n### dispatcher: one hanging receiver, {rate} events/s for {seconds:.0f} s"
        f" ({os.cpu_count()} cores, load {load[0]:.1f})\n"
    )
    print("| measure | result | target |")
    print("| --- | --- | --- |")
    print(
        f"| hanging receiver's backlog (max of {len(samples)} samples, every 10 s) |"
        f" {max_pending:,} | max_backlog {MAX_BACKLOG:,} plus what arrives while one check sheds |"
    )
    print(
        f"| PROXBUS_DELIVERIES at most | {max_msgs:,} messages, {max_bytes / 1e6:.1f} MB |"
        f" bounded (without the bound: {total:,} messages) |"
    )
    print(f"| dead-lettered for the hanging receiver | {dead:,} of {total:,} | the overflow |")
    print(f"| dead-letter reasons (first 200) | {reasons} | with the reason |")
    for label, values in (
        (f"healthy receiver alone ({control_seconds:.0f} s control)", control),
        ("healthy receiver, first minute beside the hanging one", first),
        ("healthy receiver, last minute beside the hanging one", last),
    ):
        print(
            f"| {label} | p50 {statistics.median(values):.1f} ms,"
            f" p99 {percentile(values, 0.99):.1f} ms | keeps its latency |"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--rate", type=int, default=100)
    p.add_argument("--control-seconds", type=float, default=60.0)
    a = p.parse_args()
    asyncio.run(main(a.seconds, a.rate, a.control_seconds))
