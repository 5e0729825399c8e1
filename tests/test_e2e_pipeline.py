"""A failed backup reaches the on-call person from every source, and nothing is lost.

The simulator plays a PVE cluster whose syslog, mail and webhook notification targets point at
ingest-syslog, ingest-email and ingest-pve-ws; the dispatcher routes ``severity>=error`` to a
generic webhook (a local sink that checks the HMAC). Every service is its console script.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from proxbus_events import EVENTS_STREAM, Severity
from proxbus_pvesim.testing import api_session, run_simulator

PROXBUS = str(Path(sys.executable).parent / "proxbus")
FAILING_VMID = 100
SOURCES = {"syslog", "email", "pve-webhook"}
ONCALL_ON_ERRORS = """\
    - matchers: ["severity>=error"]
      receiver: oncall
"""


async def start_stack(stack: Any, sink: Any, child: str) -> dict[str, Any]:
    services = {
        "syslog": stack.ingest_syslog(),
        "email": stack.ingest_email(),
        "pve-ws": stack.ingest_pve_ws(),
        "dispatcher": stack.dispatcher(stack.routes(child), sink),
    }
    await stack.healthy(*services.values())
    return services


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


def by_source(events: list[dict[str, Any]], kind: str) -> Counter[str]:
    return Counter(e["source"] for e in events if e["kind"] == kind)


def summary(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["source"], e["kind"], e["severity"], e["node"], e["vmid"]) for e in events]


async def stream_events(nc: Any) -> list[dict[str, Any]]:
    js = nc.jetstream(timeout=5)
    state = (await js.stream_info(EVENTS_STREAM)).state
    out = []
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


async def test_failed_backup_reaches_oncall_from_every_source_and_info_does_not(
    stack: Any, sink: Any, nc: Any
) -> None:
    services = await start_stack(stack, sink, ONCALL_ON_ERRORS)
    async with run_simulator(instant=True) as sim:
        point_simulator_at(sim, services, stack.pve_webhook_secret)
        node = sim.lab.guests[FAILING_VMID].node
        ok_vmid = next(g.vmid for g in sim.lab.guests_on(node) if g.vmid != FAILING_VMID)
        async with api_session(sim) as api:
            await run_backup(api, node, ok_vmid)
            sim.fail_next_backup(FAILING_VMID)
            failed_upid = await run_backup(api, node, FAILING_VMID)
            await stack.wait_until(
                lambda: sim.emitter.sent["smtp"] >= 2 and sim.emitter.sent["webhook"] >= 2,
                "the simulator's mails and webhook posts were accepted",
                detail=lambda: (dict(sim.emitter.sent), dict(sim.emitter.failed)),
            )
        await sim.emitter.drain()
        assert not sim.emitter.failed, dict(sim.emitter.failed)
        emitted = sim.emitter.sent  # syslog: the task and vzdump job lines of both backups

    def syslog_delivered() -> int:
        return sum(e["source"] == "syslog" for r in sink.receipts for e in r.events)

    await stack.wait_until(
        lambda: (
            set(by_source(sink.events("/oncall"), "backup.failed")) == SOURCES
            and set(by_source(sink.events("/rest"), "backup.ok")) == SOURCES
            and syslog_delivered() >= emitted["syslog"]
        ),
        "backup.failed from every source on-call, backup.ok from every source elsewhere, "
        "every syslog line delivered",
        detail=lambda: {p: summary(sink.events(p)) for p in ("/oncall", "/rest")},
    )
    await stack.wait_quiescent(nc)  # from here on, nothing more can reach the sink

    oncall = sink.on("/oncall")
    events = [e for r in oncall for e in r.events]
    report = f"{[summary(r.events) for r in oncall]}\n{stack.report()}"
    assert all(r.signature_ok for r in sink.receipts), report
    # DESIGN.md "Kind vocabulary": mail and webhook report the job once, naming the failed
    # guest; syslog reports what the job's own lines and the task's end line say.
    assert sorted((e["source"], e["kind"], e["vmid"] or 0) for e in events) == sorted(
        [
            ("email", "backup.failed", FAILING_VMID),
            ("pve-webhook", "backup.failed", FAILING_VMID),
            ("syslog", "backup.failed", FAILING_VMID),  # ERROR: Backup of VM 100 failed - ...
            ("syslog", "backup.failed", 0),  # INFO: Backup job finished with errors
            ("syslog", "task.failed", FAILING_VMID),  # end task UPID:...:vzdump:100:... job errors
        ]
    ), report
    for e in events:
        assert e["node"] == node, report
        assert Severity(e["severity"]).rank >= Severity.ERROR.rank, report
        assert e["site"] == "lab", report
    task_event = next(e for e in events if e["kind"] == "task.failed")
    assert task_event["correlation_id"] == failed_upid, report

    rest = sink.events("/rest")
    assert all(Severity(e["severity"]).rank < Severity.ERROR.rank for e in rest), summary(rest)
    assert by_source(rest, "backup.ok") == Counter({"email": 1, "pve-webhook": 1, "syslog": 2})
    assert {
        (e["source"], e["vmid"])
        for e in rest
        if e["kind"] == "backup.ok" and e["source"] != "pve-webhook"
    } == {("email", ok_vmid), ("syslog", ok_vmid), ("syslog", None)}

    stored = await stream_events(nc)
    assert {e["id"] for e in events} <= {e["id"] for e in stored}
    # every stored event was delivered exactly once, to one of the two receivers
    assert Counter(e["id"] for r in sink.receipts for e in r.events) == Counter(
        e["id"] for e in stored
    )
    assert sum(e["source"] == "syslog" for e in stored) == emitted["syslog"]
    stats = await events_stats(stack.nats.url)
    assert stats[EVENTS_STREAM] == len(stored), stats


@pytest.mark.parametrize(
    "group_by",
    [
        "[kind, node]",
        "[kind, node, vmid]",
    ],
)
async def test_three_reports_of_one_failure_arrive_as_one_grouped_notification(
    stack: Any, sink: Any, nc: Any, group_by: str
) -> None:
    child = f"""\
    - matchers: ["severity>=error"]
      receiver: oncall
      group_by: {group_by}
      group_wait: 1s
"""
    services = await start_stack(stack, sink, child)
    async with run_simulator(instant=True) as sim:
        point_simulator_at(sim, services, stack.pve_webhook_secret)
        node = sim.lab.guests[FAILING_VMID].node
        sim.fail_next_backup(FAILING_VMID)
        async with api_session(sim) as api:
            await run_backup(api, node, FAILING_VMID)
            await stack.wait_until(
                lambda: sim.emitter.sent["smtp"] >= 1 and sim.emitter.sent["webhook"] >= 1,
                "the simulator's mail and webhook post were accepted",
                detail=lambda: (dict(sim.emitter.sent), dict(sim.emitter.failed)),
            )

    await stack.wait_until(
        lambda: set(by_source(sink.events("/oncall"), "backup.failed")) == SOURCES,
        "backup.failed from every source on-call",
        timeout=20,
        detail=lambda: [summary(r.events) for r in sink.on("/oncall")],
    )
    await stack.wait_quiescent(nc)
    oncall = sink.on("/oncall")
    report = f"{[summary(r.events) for r in oncall]}\n{stack.report()}"
    assert all(r.signature_ok for r in oncall), report
    # The guest's failure, reported by all three sources, is one notification. Grouped by
    # vmid too, the job's own "finished with errors" line (no vmid) is a group of its own.
    guest = [
        r
        for r in oncall
        if r.payload["group_labels"]["kind"] == "backup.failed"
        and r.payload["group_labels"].get("vmid", str(FAILING_VMID)) == str(FAILING_VMID)
    ]
    assert len(guest) == 1, report
    payload = guest[0].payload
    by_vmid = "vmid" in group_by
    sources = sorted(SOURCES) if by_vmid else sorted([*SOURCES, "syslog"])
    assert payload["count"] == len(sources), report
    assert sorted(e["source"] for e in payload["events"]) == sources, report
    vmids = {FAILING_VMID} if by_vmid else {FAILING_VMID, None}
    assert {e["vmid"] for e in payload["events"]} == vmids, report
    assert payload["group_labels"]["node"] == node, payload["group_labels"]
    assert payload["severity"] == "error", report
    # the task's own end line is its own happening: a task.failed notification
    assert any(r.payload["group_labels"]["kind"] == "task.failed" for r in oncall), report
