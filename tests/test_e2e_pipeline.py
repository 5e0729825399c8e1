"""A failed backup reaches the on-call person once, naming every source that saw it.

The simulator plays a PVE cluster whose syslog, mail and webhook notification targets point at
ingest-syslog, ingest-email and ingest-pve-ws, and whose API the pve-ws watcher polls; the
dispatcher routes guests' failed backups to a generic webhook (a local sink that checks the
HMAC). Every service is its console script.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from proxbus_devtools.testing import free_port
from proxbus_dispatcher.state import STATE_BUCKET, incident_key
from proxbus_events import EVENTS_STREAM
from proxbus_pvesim.__main__ import gateway_env
from proxbus_pvesim.testing import api_session, run_simulator

PROXBUS = str(Path(sys.executable).parent / "proxbus")
FAILING_VMID = 100


def point_simulator_at(sim: Any, services: dict[str, Any], secret: str) -> None:
    sim.set_targets(
        smtp=("127.0.0.1", services["email"].ports["smtp"]),
        syslog=("127.0.0.1", services["syslog"].ports["syslog"]),
        syslog_protocol="tcp",
        webhook_url=f"http://127.0.0.1:{services['pve-ws'].ports['http']}/hooks/pve",
        webhook_secret=secret,
    )


async def run_backup(api: Any, node: str, vmid: int) -> str:
    """Start a vzdump of ``vmid`` through the API (admin token, CA-verified TLS)."""
    async with api.post(
        f"/api2/json/nodes/{node}/vzdump", data={"vmid": str(vmid), "storage": "local"}
    ) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["data"])


def summary(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["source"], e["kind"], e["severity"], e["node"], e["vmid"]) for e in events]


async def stream_events(nc: Any) -> list[dict[str, Any]]:
    js = nc.jetstream(timeout=5)
    state = (await js.stream_info(EVENTS_STREAM)).state
    out: list[dict[str, Any]] = []
    if not state.messages:
        return out
    for seq in range(state.first_seq, state.last_seq + 1):
        out.append(json.loads((await js.get_msg(EVENTS_STREAM, seq)).data))
    return out


async def events_stats(url: str) -> dict[str, int]:
    """``proxbus events stats``: stream name → message count."""
    proc = await asyncio.create_subprocess_exec(
        PROXBUS, "--nats-url", url, "events", "stats",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    counts = {}
    for line in out.decode().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


# Paging once per failed guest: the guest's backup.failed (vmid set). The task's end line
# (task.failed) and the job's summary line (backup.failed without a vmid) join the guest's
# incident (same task UPID) but do not match this route: they go to the rest.
ONCALL_ON_GUEST_BACKUP_FAILURES = """\
    - matchers: ["kind=backup.failed", "vmid=~[0-9]+"]
      receiver: oncall
      group_wait: 3s
"""
FOUR_SOURCES = ["syslog", "email", "pve-webhook", "pve-api"]


def _gateway_ports() -> tuple[int, dict[str, int], dict[str, str]]:
    port = free_port()
    return port, {"http": port}, {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)}


async def wait_for_stream(nc: Any, what: str, condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition(await stream_events(nc)):
        assert time.monotonic() < deadline, f"never saw {what} in PROXBUS_EVENTS"
        await asyncio.sleep(0.2)


async def test_one_failed_backup_seen_by_four_sources_is_one_notification_naming_them(
    stack: Any, sink: Any, nc: Any
) -> None:
    window = 8.0
    async with run_simulator(instant=True) as sim:
        services = {
            "syslog": stack.ingest_syslog(),
            "email": stack.ingest_email(),
            # The watcher reads the API through the gateway's NATS RPC.
            "gateway": stack.spawn(
                "mcp-gateway", "proxbus-mcp-gateway", _gateway_ports, **gateway_env(sim)
            ),
            "pve-ws": stack.ingest_pve_ws(
                EVENT_WS_ENABLED="true", PVE_WS_POLL_SECONDS="0.3", **gateway_env(sim)
            ),
            "dispatcher": stack.dispatcher(
                stack.routes(ONCALL_ON_GUEST_BACKUP_FAILURES), sink, INCIDENT_WINDOW=str(window)
            ),
        }
        await stack.healthy(*services.values())
        point_simulator_at(sim, services, stack.pve_webhook_secret)
        node = sim.lab.guests[FAILING_VMID].node
        other = next(g.vmid for g in sim.lab.guests_on(node) if g.vmid != FAILING_VMID)
        async with api_session(sim) as api:
            # The watcher reports tasks that end after its first successful poll (its cursor
            # starts there): back up the healthy guest until the API watcher has reported one.
            def api_saw_a_backup(evs: list[dict[str, Any]]) -> bool:
                return any(e["source"] == "pve-api" and e["kind"] == "backup.ok" for e in evs)

            for attempt in range(10):
                await run_backup(api, node, other)
                try:
                    await wait_for_stream(nc, "the API watcher's backup.ok", api_saw_a_backup, 3)
                    break
                except AssertionError:
                    assert attempt < 9, stack.report()
            first_at = time.monotonic()
            for vmid in (FAILING_VMID, other):  # two guests' failures: two notifications
                sim.fail_next_backup(vmid)
                await run_backup(api, node, vmid)

            def incidents() -> list[dict[str, Any]]:
                return [r.payload["incident"] for r in sink.on("/oncall")]

            await stack.wait_until(
                lambda: len(incidents()) >= 2,
                "a notification per failed guest",
                timeout=30,
                detail=lambda: [summary(r.events) for r in sink.on("/oncall")],
            )
            # The same guest failing again after the correlation window: a new happening.
            await asyncio.sleep(max(0.0, first_at + window + 1 - time.monotonic()))
            sim.fail_next_backup(FAILING_VMID)
            await run_backup(api, node, FAILING_VMID)
            await stack.wait_until(
                lambda: len(incidents()) >= 3,
                "a second notification for the second failure",
                timeout=30,
                detail=lambda: [summary(r.events) for r in sink.on("/oncall")],
            )
        await sim.emitter.drain()
        assert not sim.emitter.failed, dict(sim.emitter.failed)
    await stack.wait_quiescent(nc)

    oncall = sink.on("/oncall")
    report = f"{[(r.payload['incident'], summary(r.events)) for r in oncall]}\n{stack.report()}"
    assert len(oncall) == 3, report
    assert all(r.signature_ok for r in oncall), report
    first, second, again = (r.payload for r in oncall)
    assert {first["incident"]["vmid"], second["incident"]["vmid"]} == {FAILING_VMID, other}
    assert again["incident"]["vmid"] == FAILING_VMID, report
    assert again["incident"]["id"] != first["incident"]["id"], report
    for body in (first, second, again):
        incident = body["incident"]
        assert sorted(incident["sources"]) == sorted(FOUR_SOURCES), report
        assert incident["kind"] == "backup.failed", report
        assert incident["node"] == node, report
        assert body["title"] == f"[ERROR] {incident['title']}", report
        assert "seen via " + ", ".join(incident["sources"]) in body["body"], report
        assert {e["vmid"] for e in body["events"]} == {incident["vmid"]}, report
    # Nothing was lost on the way: every source's report is in the stream.
    stored = await stream_events(nc)
    failed = [e for e in stored if e["kind"] == "backup.failed" and e["vmid"] is not None]
    assert Counter(e["source"] for e in failed) == Counter(FOUR_SOURCES * 3), summary(failed)
    stats = await events_stats(stack.nats.url)
    assert stats[EVENTS_STREAM] == len(stored), stats


async def stored_incident(nc: Any, fingerprint: str) -> dict[str, Any]:
    """The dispatcher's current incident of ``fingerprint``, from its state bucket."""
    kv = await nc.jetstream().key_value(STATE_BUCKET)
    entry = await kv.get(incident_key(fingerprint))
    assert entry.value is not None
    return dict(json.loads(entry.value))


def failure_notifications(sink: Any) -> list[Any]:
    failures = ("backup.failed", "task.failed")
    return [r for r in sink.on("/rest") if any(e["kind"] in failures for e in r.events)]


async def test_a_failed_backup_is_one_notification_with_the_default_route(
    stack: Any, sink: Any, nc: Any
) -> None:
    """Syslog alone reports a failed vzdump three times (the guest's line, the job's end line
    without a guest, the task's end): one notification on the catch-all route, because the
    job's reports carry the task's UPID and join the guest's incident. Two guests failing in
    one job stay two notifications."""
    async with run_simulator(instant=True) as sim:
        syslog = stack.ingest_syslog()
        dispatcher = stack.dispatcher(stack.routes(), sink, INCIDENT_WINDOW="600")
        await stack.healthy(syslog, dispatcher)
        sim.set_targets(syslog=("127.0.0.1", syslog.ports["syslog"]), syslog_protocol="tcp")
        node = sim.lab.guests[FAILING_VMID].node
        other = next(g.vmid for g in sim.lab.guests_on(node) if g.vmid != FAILING_VMID)
        async with api_session(sim) as api:
            sim.fail_next_backup(FAILING_VMID)
            upid = await run_backup(api, node, FAILING_VMID)
            await wait_for_stream(
                nc, "the task's end", lambda evs: any(e["kind"] == "task.failed" for e in evs)
            )
            await sim.emitter.drain()
            await stack.wait_quiescent(nc)
            one = failure_notifications(sink)
            report = f"{[summary(r.events) for r in one]}\n{stack.report()}"
            assert len(one) == 1, report
            incident = one[0].payload["incident"]
            assert (incident["kind"], incident["vmid"], incident["upid"]) == (
                "backup.failed", FAILING_VMID, upid,
            ), report  # fmt: skip
            # The guest's line, the job's, the task's: all three joined that incident. Read from
            # the dispatcher's state once quiet: the notification's copy is taken when it is
            # built, and the three lines may reach the dispatcher in one batch or in several.
            stored = await stored_incident(nc, incident["fingerprint"])
            assert (stored["id"], stored["count"]) == (incident["id"], 3), (stored, report)

            sim.fail_next_backup(FAILING_VMID)
            sim.fail_next_backup(other)
            async with api.post(
                f"/api2/json/nodes/{node}/vzdump",
                data={"vmid": f"{FAILING_VMID},{other}", "storage": "local"},
            ) as response:
                assert response.status == 200, await response.text()
                both = str((await response.json())["data"])
            await wait_for_stream(
                nc,
                "the second task's end",
                lambda evs: any(
                    e["correlation_id"] == both and e["kind"] == "task.failed" for e in evs
                ),
            )
            await stack.wait_until(
                lambda: len(failure_notifications(sink)) >= 3,
                "a notification per failed guest",
                timeout=30,
                detail=lambda: [summary(r.events) for r in failure_notifications(sink)],
            )
        await sim.emitter.drain()
        assert not sim.emitter.failed, dict(sim.emitter.failed)
    await stack.wait_quiescent(nc)
    notes = failure_notifications(sink)[1:]
    report = f"{[summary(r.events) for r in notes]}\n{stack.report()}"
    assert len(notes) == 2, report
    assert {r.payload["incident"]["vmid"] for r in notes} == {FAILING_VMID, other}, report
    assert {r.payload["incident"]["upid"] for r in notes} == {both}, report
