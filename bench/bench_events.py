"""EventPublisher throughput into JetStream with acks, next to a raw nats-py floor.

Run: uv run python bench/bench_events.py [--events 100000] [--storage memory|file|both]

Floor: a raw ``js.publish_async`` loop (no model, no headers) of 200-byte payloads, then
``publish_async_completed()``; measured in the same run, on the same broker and stream type.
Candidate: ``EventPublisher.submit()`` of ``Event`` objects with ~200 bytes of text, then
``flush()`` (every event acked). Reported: events/s and the candidate/floor ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path

import nats
from nats.js.api import StorageType, StreamConfig
from proxbus_devtools.testing import NatsServer, nats_server_binary
from proxbus_events import Event, StreamLimits
from proxbus_runtime import EventPublisher, ensure_streams

PAYLOAD = b"x" * 200


async def raw_floor(js, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await js.publish_async("bench.raw.x", PAYLOAD)
    await js.publish_async_completed()
    return n / (time.perf_counter() - started)


async def publisher_rate(js, n: int) -> float:
    text = "y" * 150
    events = [
        Event(source="syslog", kind="syslog.message", title=f"bench {i}", message=text, node="pve1")
        for i in range(n)
    ]
    pub = EventPublisher(js, max_in_flight=1024, buffer_limit=n + 1)
    await pub.start()
    started = time.perf_counter()
    for event in events:
        pub.submit(event)
        if pub.buffered > 4096:
            await asyncio.sleep(0)
    assert await pub.flush(300)
    elapsed = time.perf_counter() - started
    await pub.close()
    assert pub.stats.published == n, pub.stats
    return n / elapsed


async def run(n: int, storage: StorageType, rounds: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(nats_server_binary() or "nats-server", Path(tmp))
        server.start()
        try:
            nc = await nats.connect(server.url)
            js = nc.jetstream(timeout=10, publish_async_max_pending=4000)
            await js.add_stream(
                StreamConfig(name="BENCH_RAW", subjects=["bench.raw.>"], storage=storage)
            )
            await ensure_streams(js, StreamLimits(storage=storage))
            # Warm-up (connection, stream files) outside the timings; then alternate the two
            # measurements and keep each one's best, because the machine is shared and noisy.
            await raw_floor(js, 2000)
            floors, rates = [], []
            for _ in range(rounds):
                floors.append(await raw_floor(js, n))
                rates.append(await publisher_rate(js, n))
            floor, rate = max(floors), max(rates)
            await nc.close()
        finally:
            server.stop()
    return floor, rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--storage", choices=["memory", "file", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs; best of each")
    args = parser.parse_args()
    kinds = ["memory", "file"] if args.storage == "both" else [args.storage]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"events: {args.events} per run, best of {args.rounds} alternating runs, acks awaited\n")
    print("| stream | raw publish_async (floor) | EventPublisher | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for kind in kinds:
        floor, rate = asyncio.run(run(args.events, StorageType(kind), args.rounds))
        print(f"| {kind} | {floor:,.0f} msgs/s | {rate:,.0f} events/s | {rate / floor:.0%} |")


if __name__ == "__main__":
    main()
