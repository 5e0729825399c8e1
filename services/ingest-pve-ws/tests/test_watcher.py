"""The API watcher against the simulator behind the real mcp-gateway, on a real nats-server."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from proxbus_events import Event
from proxbus_ingest_pve_ws.testing import stored_events, wait_until

POLL = 0.2


async def _events(js: Any, kind: str | None = None) -> list[Event]:
    return [e for e in await stored_events(js) if kind is None or e.kind == kind]


async def _start(services: Any, **over: Any) -> Any:
    svc = await services.start(event_ws_enabled=True, pve_ws_poll_seconds=POLL, **over)
    [w] = svc.watchers

    async def polled() -> bool:
        return w.cycles >= 1

    await wait_until(polled)
    return svc


async def _cycles(watcher: Any, n: int) -> None:
    target = watcher.cycles + n

    async def done() -> bool:
        return watcher.cycles >= target

    await wait_until(done)


def _has(js: Any, kind: str, n: int = 1, vmid: int | None = None) -> Any:
    async def check() -> bool:
        return len([e for e in await _events(js, kind) if vmid is None or e.vmid == vmid]) >= n

    return check


async def test_vm_stop_and_start_give_vm_events_and_task_ok(
    services: Any, lab: Any, js: Any
) -> None:
    svc = await _start(services)
    await lab.post("/nodes/pve1/qemu/100/status/stop")
    await wait_until(_has(js, "vm.stopped", vmid=100))
    await lab.post("/nodes/pve1/qemu/100/status/start")
    await wait_until(_has(js, "vm.started", vmid=100))
    await _cycles(svc.watchers[0], 2)
    kinds = Counter(e.kind for e in await _events(js) if e.vmid == 100)
    assert kinds["task.ok"] == 2
    assert kinds["vm.started"] == 1
    assert kinds["vm.stopped"] == 1
    assert kinds["vm.crashed"] == 0
    started = (await _events(js, "vm.started"))[0]
    assert started.correlation_id
    assert started.correlation_id.startswith("UPID:pve1:")
    assert started.source == "pve-api"


async def test_simulated_crash_gives_exactly_one_vm_crashed(
    services: Any, lab: Any, js: Any
) -> None:
    svc = await _start(services)
    lab.sim.crash_guest(100)
    await wait_until(_has(js, "vm.crashed"))
    await _cycles(svc.watchers[0], 3)
    [crash] = await _events(js, "vm.crashed")
    assert (crash.vmid, crash.node, crash.severity) == (100, "pve1", "critical")


async def test_failed_backup_gives_backup_failed_with_the_error(
    services: Any, lab: Any, js: Any
) -> None:
    await _start(services)
    lab.sim.fail_next_backup(100, "job failed with err -5 - Input/output error")
    await lab.post("/nodes/pve1/vzdump", vmid="100", storage="local")
    await wait_until(_has(js, "backup.failed"))
    [ev] = await _events(js, "backup.failed")
    assert ev.vmid == 100
    assert ev.severity == "error"
    assert "Input/output error" in ev.message
    assert "Log (last lines):" in ev.message  # the tail came through the gateway
    assert "task log unavailable" not in ev.message
    assert ev.metadata["exitstatus"] != "OK"


async def test_node_offline_and_storage_fill_give_their_events(
    services: Any, lab: Any, js: Any
) -> None:
    await _start(services)
    lab.sim.set_node_offline("pve3")
    lab.sim.fill_storage("local", 90, node="pve1")
    await wait_until(_has(js, "node.offline"))
    await wait_until(_has(js, "storage.full"))
    [off] = await _events(js, "node.offline")
    assert (off.node, off.severity) == ("pve3", "error")
    [full] = await _events(js, "storage.full")
    assert (full.node, full.severity, full.metadata["storage"]) == ("pve1", "warning", "local")
    assert await _events(js, "vm.crashed") == []  # guests of the lost node are not "crashes"
    lab.sim.fill_storage("local", 20, node="pve1")
    await wait_until(_has(js, "storage.full", 2))
    back = (await _events(js, "storage.full"))[1]
    assert (back.severity, back.metadata["resolved"]) == ("info", True)


async def test_restart_mid_way_neither_duplicates_nor_misses(
    services: Any, lab: Any, js: Any
) -> None:
    first = await _start(services)
    await lab.post("/nodes/pve1/qemu/100/status/stop")
    await wait_until(_has(js, "vm.stopped", vmid=100))
    await services.stop(first)
    # While no watcher runs: one crash, one stop task.
    lab.sim.crash_guest(101)
    await lab.post("/nodes/pve3/qemu/102/status/stop")
    second = await _start(services)
    await wait_until(_has(js, "vm.crashed", vmid=101))
    await wait_until(_has(js, "vm.stopped", vmid=102))
    await _cycles(second.watchers[0], 3)
    events = await _events(js)
    facts = Counter((e.kind, e.vmid) for e in events)
    assert facts[("vm.stopped", 100)] == 1
    assert facts[("vm.stopped", 102)] == 1
    assert facts[("vm.crashed", 101)] == 1
    assert facts[("vm.crashed", 102)] == 0
    assert len({e.id for e in events}) == len(events)


async def test_two_replicas_report_each_fact_once(services: Any, lab: Any, js: Any) -> None:
    a = await _start(services, pve_ws_replica_id="a")
    b = await services.start(event_ws_enabled=True, pve_ws_poll_seconds=POLL, pve_ws_replica_id="b")
    await _cycles(a.watchers[0], 2)
    held = [w.lease.held for w in (a.watchers[0], b.watchers[0])]
    assert sorted(held) == [False, True]
    lab.sim.crash_guest(100)
    await lab.post("/nodes/pve2/qemu/101/status/stop")
    await wait_until(_has(js, "vm.crashed", vmid=100))
    await wait_until(_has(js, "vm.stopped", vmid=101))
    # The active replica goes away: the other one takes over and reports what follows.
    active = a if a.watchers[0].lease.held else b
    await services.stop(active)
    lab.sim.crash_guest(103)
    await wait_until(_has(js, "vm.crashed", vmid=103))
    events = await _events(js)
    facts = Counter((e.kind, e.vmid) for e in events)
    assert facts[("vm.crashed", 100)] == 1
    assert facts[("vm.stopped", 101)] == 1
    assert facts[("vm.crashed", 103)] == 1
    assert len({e.id for e in events}) == len(events)


async def test_broker_outage_loses_nothing(
    services: Any, lab: Any, js: Any, nats_server: Any
) -> None:
    svc = await _start(services, pve_ws_rpc_timeout=1.0)
    nats_server.stop()
    lab.sim.crash_guest(100)  # happens while the bus (and so the gateway RPC) is down
    nats_server.start()
    await wait_until(_has(js, "vm.crashed", vmid=100), timeout=30)
    await _cycles(svc.watchers[0], 3)
    assert len(await _events(js, "vm.crashed")) == 1


async def test_ha_state_change_and_quorum_loss_are_reported(
    services: Any, lab: Any, js: Any
) -> None:
    await _start(services)
    ha_guest = next(g for g in lab.sim.lab.guests.values() if g.ha and not g.running)
    await lab.post(f"/nodes/{ha_guest.node}/{ha_guest.kind}/{ha_guest.vmid}/status/start")
    await wait_until(_has(js, "ha.state", vmid=ha_guest.vmid))
    [ha] = await _events(js, "ha.state")
    assert (ha.metadata["previous_state"], ha.metadata["state"]) == ("stopped", "started")
    lab.sim.set_quorum(False)
    await wait_until(_has(js, "quorum.lost"))
    lab.sim.set_quorum(None)


async def test_stop_during_a_hung_poll_returns_promptly(services: Any, lab: Any, js: Any) -> None:
    import time

    svc = await _start(services, pve_ws_rpc_timeout=30.0)
    lab.sim.add_latency("/cluster", 20.0)
    watcher = svc.watchers[0]

    async def stuck() -> bool:  # a poll has been waiting on the slow API for a while
        since = watcher.polling_since
        return since is not None and time.monotonic() - since > 3 * POLL

    await wait_until(stuck)
    started = time.monotonic()
    await services.stop(svc)
    assert time.monotonic() - started < 8.0
    lab.sim.add_latency("/cluster", 0)


async def test_crash_and_restart_between_two_polls_is_one_vm_crashed(
    services: Any, lab: Any, js: Any
) -> None:
    # Issue 14: only the start was reported. A poll interval long enough for the crash and
    # the restart (simulator fault API, then a start through the API) to fall between polls.
    svc = await services.start(event_ws_enabled=True, pve_ws_poll_seconds=3.0)
    [w] = svc.watchers
    await _cycles(w, 1)
    polled = w.cycles
    lab.sim.crash_guest(100)
    await lab.post("/nodes/pve1/qemu/100/status/start")
    assert w.cycles == polled, "a poll ran between the crash and the restart"
    await wait_until(_has(js, "vm.crashed", vmid=100))
    await _cycles(w, 2)
    facts = Counter((e.kind, e.vmid) for e in await _events(js))
    assert facts[("vm.crashed", 100)] == 1
    assert facts[("vm.started", 100)] == 1


async def test_crash_and_restart_while_the_watcher_is_down_is_one_vm_crashed(
    services: Any, lab: Any, js: Any
) -> None:
    first = await _start(services)
    await _cycles(first.watchers[0], 1)
    await services.stop(first)
    lab.sim.crash_guest(100)
    await lab.post("/nodes/pve1/qemu/100/status/start")
    second = await _start(services)
    await wait_until(_has(js, "vm.crashed", vmid=100))
    await _cycles(second.watchers[0], 2)
    facts = Counter((e.kind, e.vmid) for e in await _events(js))
    assert facts[("vm.crashed", 100)] == 1


async def test_a_cluster_the_gateway_does_not_know_is_said_once_not_every_poll(
    services: Any, lab: Any, caplog: Any
) -> None:
    # No Proxmox configured for the cluster: every poll is refused by the gateway.
    caplog.set_level(logging.INFO, "proxbus_ingest_pve_ws")
    svc = await services.start(event_ws_enabled=True, pve_ws_poll_seconds=POLL,
                               pve_ws_clusters="nowhere")  # fmt: skip

    async def refused(n: int) -> bool:
        labels = {"cluster": "nowhere", "outcome": "api_error"}
        return (svc.registry.get_sample_value("proxbus_pve_ws_polls_total", labels) or 0) >= n

    await wait_until(lambda: refused(5))
    lines = [r.getMessage() for r in caplog.records if "poll skipped" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "nowhere" in lines[0]
    assert "unknown cluster" in lines[0]
