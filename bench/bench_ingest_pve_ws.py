"""Benchmark: latency from a guest crash in the simulator to the vm.crashed event on the bus.

Runs a real nats-server, the pvesim simulator, the mcp-gateway (in-process, NATS RPC, no read
cache) and ingest-pve-ws; crashes a running guest at a random phase of the poll cycle and
measures until the event arrives on ``proxbus.events.>``. Reports the latency in seconds and in
poll intervals (target: within 2 intervals), against floors measured in the same run: one
poll cycle's API reads through the gateway, and a raw JetStream publish.

    uv run python bench/bench_ingest_pve_ws.py [--trials 8] [--polls 5.0,1.0,0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import nats
from nats.js import JetStreamContext
from proxbus_devtools.testing import NatsServer, nats_server_binary
from proxbus_events import Event
from proxbus_ingest_pve_ws.app import PveWsService
from proxbus_ingest_pve_ws.testing import make_settings
from proxbus_mcp_gateway.app import start_gateway
from proxbus_mcp_gateway.testing import make_settings as gateway_settings
from proxbus_mcp_gateway.testing import sim_env
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator
from proxbus_runtime import call_tool, ensure_streams


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _floor_rpc(nc: nats.NATS, n: int = 30) -> float:
    paths = ["/cluster/resources", "/cluster/ha/status/current", "/cluster/tasks", "/cluster/log"]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        for p in paths:
            await call_tool(nc, "proxmox_api", {"cluster": "lab", "method": "GET", "path": p})
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def _floor_publish(js: JetStreamContext, n: int = 200) -> float:
    times = []
    for i in range(n):
        t = time.perf_counter()
        await js.publish(
            "proxbus.events.bench.floor.info._", b"{}", headers={"Nats-Msg-Id": f"floor-{i}"}
        )
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def _trials(
    url: str, sim: Simulator, poll: float, trials: int, vmids: list[int]
) -> list[float]:
    svc = PveWsService(
        make_settings(
            url,
            event_ws_enabled=True,
            pve_ws_poll_seconds=poll,
            pve_webhook_secret=None,
            pve_ws_replica_id=f"bench-{poll}",
        )
    )
    await svc.start()
    stop = asyncio.Event()
    serving = asyncio.create_task(svc.serve(stop))
    nc = await nats.connect(url)
    arrived: dict[int, float] = {}
    got = asyncio.Event()

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        ev = Event.from_json(msg.data)
        if ev.kind == "vm.crashed" and ev.vmid is not None and ev.vmid not in arrived:
            arrived[ev.vmid] = time.perf_counter()
            got.set()

    await nc.subscribe("proxbus.events.>", cb=on_msg)
    watcher = svc.watchers[0]
    while watcher.cycles < 1:
        await asyncio.sleep(0.02)
    out = []
    for vmid in vmids[:trials]:
        await asyncio.sleep(random.uniform(0, poll))  # random phase in the poll cycle
        got.clear()
        t0 = time.perf_counter()
        sim.crash_guest(vmid)
        await asyncio.wait_for(got.wait(), 10 * poll + 10)
        out.append(arrived[vmid] - t0)
    stop.set()
    await serving
    await nc.close()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--polls", default="5.0,1.0,0.25")
    args = ap.parse_args()
    polls = [float(p) for p in args.polls.split(",")]
    binary = nats_server_binary()
    assert binary, "nats-server is not installed"
    with tempfile.TemporaryDirectory(prefix="bench-pve-ws-") as tmp:
        server = NatsServer(binary, Path(tmp))
        server.start()
        try:
            spec = {"guests": {"qemu": 60, "lxc": 10}}
            async with run_simulator(spec, instant=True) as sim:
                gw = await start_gateway(
                    gateway_settings(nats_url=server.url, nats_enabled=True, cache_ttl=0),
                    sim_env(sim),
                )
                nc = await nats.connect(server.url)
                js = nc.jetstream()
                await ensure_streams(js)
                rpc_floor = await _floor_rpc(nc)
                pub_floor = await _floor_publish(js)
                running = [g.vmid for g in sim.lab.guests.values() if g.running and not g.template]
                random.shuffle(running)
                rows = []
                for poll in polls:
                    take = running[: args.trials]
                    running = running[args.trials :]
                    lat = await _trials(server.url, sim, poll, args.trials, take)
                    rows.append((poll, lat))
                await nc.close()
                await gw.close()
        finally:
            server.stop()
    print("## ingest-pve-ws: crash → vm.crashed on the bus\n")
    print(
        f"floors: one poll's 4 API reads via gateway RPC {rpc_floor * 1000:.1f} ms (median); "
        f"raw JetStream publish+ack {pub_floor * 1000:.2f} ms (median)\n"
    )
    print("| poll interval | trials | p50 | p95 | max | max / interval | within 2 intervals |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | :---: |")
    for poll, lat in rows:
        print(
            f"| {poll:.2f} s | {len(lat)} | {_q(lat, 0.5):.3f} s | {_q(lat, 0.95):.3f} s | "
            f"{max(lat):.3f} s | {max(lat) / poll:.2f} | {'yes' if max(lat) <= 2 * poll else 'NO'} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
