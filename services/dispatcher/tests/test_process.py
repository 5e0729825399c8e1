"""The console script as a subprocess: health, SIGTERM, SIGKILL + restart, admin commands."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from proxbus_devtools.testing import free_port
from proxbus_runtime import SilenceStore

from .conftest import ev, publish, wait_until

SCRIPT = str(Path(sys.executable).parent / "proxbus-dispatcher")


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    full = {**os.environ, "LOG_LEVEL": "WARNING", **env}
    return subprocess.Popen(
        [SCRIPT, *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    return subprocess.run(
        [SCRIPT, *args], env=full, capture_output=True, text=True, timeout=30, check=False
    )


async def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    async with httpx.AsyncClient() as client:
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                r = await client.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "dispatcher did not become healthy"
            await asyncio.sleep(0.05)


async def test_console_script_serves_health_and_stops_on_sigterm(
    nats_server: Any, sink: Any, tmp_path: Path
) -> None:
    hook = await sink()
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]\nroute: {{receiver: hook}}\n"
    )
    port = free_port()
    proc = spawn(
        [], {"NATS_URL": nats_server.url, "ROUTES_FILE": str(routes), "HEALTH_PORT": str(port)}
    )
    try:
        await wait_healthy(port, proc)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert "proxbus_dispatcher_events_total" in metrics
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_invalid_routes_file_fails_at_start_with_line_and_reason(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("receivers:\n  - {name: a, type: nats, subject: x}\nroute:\n  receiver: b\n")
    result = run_cli([], {"ROUTES_FILE": str(routes), "NATS_URL": "nats://127.0.0.1:1"})
    assert result.returncode == 2  # invalid configuration, like invalid settings
    assert f"{routes}:4: route.receiver: unknown receiver 'b'" in result.stderr
    checked = run_cli(["check-config", str(routes)], {})
    assert checked.returncode == 1
    assert ":4:" in checked.stderr
    example = Path(__file__).parents[1] / "routes.example.yaml"
    assert run_cli(["check-config", str(example)], {}).returncode == 0


async def test_silence_cli_adds_lists_and_expires(nats_server: Any, js: Any) -> None:
    env = {"NATS_URL": nats_server.url}
    added = await asyncio.to_thread(
        run_cli,
        ["silence", "add", "node=pve1", "kind=vm.*", "-d", "1h", "-a", "me", "-c", "maintenance"],
        env,
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    listed = await asyncio.to_thread(run_cli, ["silence", "list"], env)
    for text in (silence_id, "kind=vm.*", "maintenance"):
        assert text in listed.stdout
    expired = await asyncio.to_thread(run_cli, ["silence", "expire", silence_id], env)
    assert expired.returncode == 0
    store = await SilenceStore.open(js)
    assert await store.list() == []
    dlq = await asyncio.to_thread(run_cli, ["dlq", "list"], env)
    assert dlq.returncode == 0
    assert "0 dead letter(s)" in dlq.stderr
    bad = await asyncio.to_thread(run_cli, ["silence", "add", "colour=red"], env)
    assert bad.returncode == 2
    assert "invalid matcher 'colour=red'" in bad.stderr


@pytest.mark.slow
async def test_sigkill_mid_run_then_restart_delivers_every_event_once(
    nats_server: Any, sink: Any, js: Any, tmp_path: Path
) -> None:
    hold = asyncio.Event()
    hook = await sink(hold=hold)
    # The sink answers the first 14 requests and holds the 15th open: the dispatcher is killed
    # while that delivery is in flight (never answered → not delivered → must be retried).
    hook.hold_after = 14
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""\
receivers:
  - {{name: hook, type: webhook, url: '{hook.url}/h', concurrency: 1, timeout: 1s, backoff_base: 50ms}}
route: {{receiver: hook, repeat_interval: 0s}}
""")
    env = {
        "NATS_URL": nats_server.url,
        "ROUTES_FILE": str(routes),
        "CONSUMER_ACK_WAIT": "2",
        "DELIVERY_ACK_WAIT": "2",
        "ENRICH_ENABLED": "false",
    }
    events = [ev(title=f"event {i}", vmid=i) for i in range(60)]
    port = free_port()
    proc = spawn([], {**env, "HEALTH_PORT": str(port)})
    try:
        await wait_healthy(port, proc)
        await publish(js, *events[:30])
        await asyncio.wait_for(hook.holding.wait(), 15)
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        hold.set()
        await publish(js, *events[30:])
        port = free_port()
        proc = spawn([], {**env, "HEALTH_PORT": str(port)})
        await wait_healthy(port, proc)
        want = {e.id for e in events}
        await wait_until(lambda: want <= {r.json["event"]["id"] for r in hook.requests}, timeout=30)
        await asyncio.sleep(2.5)  # longer than ack_wait: a duplicate would have arrived by now
        counts = Counter(r.json["event"]["id"] for r in hook.requests)
        assert set(counts) == want
        assert [i for i, n in counts.items() if n > 1] == []
    finally:
        hold.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 10)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@pytest.mark.slow
async def test_events_waiting_in_a_group_survive_sigkill(
    nats_server: Any, sink: Any, js: Any, tmp_path: Path
) -> None:
    hook = await sink()
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""\
receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]
route: {{receiver: hook, group_by: [node], group_wait: 1h, repeat_interval: 0s}}
""")
    env = {"NATS_URL": nats_server.url, "ROUTES_FILE": str(routes), "CONSUMER_ACK_WAIT": "2"}
    port = free_port()
    proc = spawn([], {**env, "HEALTH_PORT": str(port)})
    events = [ev(title=f"backup {i} failed", vmid=i) for i in range(5)]
    try:
        await wait_healthy(port, proc)
        await publish(js, *events)
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{port}/metrics"
            deadline = time.monotonic() + 10
            while _metric((await client.get(url)).text, "proxbus_dispatcher_grouped_events") < 5:
                assert time.monotonic() < deadline, "events never reached the group"
                await asyncio.sleep(0.05)
        proc.kill()  # the group (group_wait 1h) holds all five, un-acked
        await asyncio.to_thread(proc.wait, 10)
        routes.write_text(routes.read_text().replace("group_wait: 1h", "group_wait: 200ms"))
        port = free_port()
        proc = spawn([], {**env, "HEALTH_PORT": str(port)})
        await wait_healthy(port, proc)
        await wait_until(lambda: len(hook.requests) >= 1, timeout=15)
        await asyncio.sleep(0.5)
        assert len(hook.requests) == 1
        assert sorted(e["id"] for e in hook.requests[0].json["events"]) == sorted(
            e.id for e in events
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 10) == 0


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
async def test_repeat_interval_and_inhibition_survive_a_restart(
    nats_server: Any, sink: Any, js: Any, tmp_path: Path, stop: str
) -> None:
    hook = await sink()
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""\
receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]
route: {{receiver: hook, repeat_interval: 1h}}
inhibit_rules:
  - {{source_matchers: [kind=node.offline], target_matchers: ["kind=vm.*"], equal: [node], duration: 1h}}
""")
    # Window 0: every event is its own incident, so only the notification log (repeat_interval)
    # and the inhibition sources can keep the repeats below from being sent.
    env = {
        "NATS_URL": nats_server.url,
        "ROUTES_FILE": str(routes),
        "INCIDENT_WINDOW": "0",
        "CONSUMER_ACK_WAIT": "2",
        "ENRICH_ENABLED": "false",
    }
    alert = ev(kind="vm.crashed", node="pve1", vmid=100, title="VM 100 crashed")
    offline = ev(kind="node.offline", node="pve2", severity="warning", title="pve2 offline")
    port = free_port()
    proc = spawn([], {**env, "HEALTH_PORT": str(port)})
    try:
        await wait_healthy(port, proc)
        await publish(js, alert, offline)
        await wait_until(lambda: len(hook.requests) == 2, timeout=15)
        if stop == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 10) == 0
        else:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)
        port = free_port()
        proc = spawn([], {**env, "HEALTH_PORT": str(port)})
        await wait_healthy(port, proc)
        repeat = ev(kind="vm.crashed", node="pve1", vmid=100, title="VM 100 crashed again")
        inhibited = ev(kind="vm.stopped", node="pve2", vmid=200, title="VM 200 stopped")
        marker = ev(kind="vm.crashed", node="pve1", vmid=101, title="VM 101 crashed")
        await publish(js, repeat, inhibited, marker)
        # The marker is published last: once it is delivered, the two before it were decided.
        await wait_until(lambda: len(hook.requests) >= 3, timeout=15)
        await asyncio.sleep(2.5)  # longer than ack_wait: a redelivered repeat would be here
        sent = [r.json["event"]["id"] for r in hook.requests]
        assert sorted(sent) == sorted([alert.id, offline.id, marker.id])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 10)
