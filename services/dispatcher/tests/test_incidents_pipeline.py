"""Incidents end to end in the dispatcher (real nats-server, recording webhook sink)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from proxbus_events import Event

from .conftest import ev, publish, wait_until

ROUTES = """\
receivers:
  - {{name: hook, type: webhook, url: '{url}/hook', backoff_base: 50ms}}
route: {{receiver: hook, group_wait: {wait}, repeat_interval: 0s}}
"""


def reports(vmid: int = 100) -> list[Event]:
    """One failed backup as syslog, the webhook target, the mail and the API watcher say it."""
    common: dict[str, Any] = {"kind": "backup.failed", "vmid": vmid, "node": "pve1"}
    return [
        ev(source="syslog", title=f"ERROR: Backup of VM {vmid} failed - err", **common),
        ev(source="pve-webhook", title="vzdump backup status: backup failed", **common),
        ev(
            source="email",
            title=f"Backup of guest {vmid} (web) failed on pve1",
            message="INFO: starting new backup job\nERROR: Backup of VM failed",
            **common,
        ),
        ev(source="pve-api", title=f"Backup of guest {vmid} on pve1 failed", **common),
    ]


async def test_four_sources_of_one_backup_give_one_notification_naming_them(
    dispatcher, sink, js
) -> None:
    hook = await sink()
    await dispatcher(ROUTES.format(url=hook.url, wait="700ms"), incident_window=600)
    await publish(js, *reports(100), *reports(101))
    await wait_until(lambda: len(hook.requests) >= 2)
    await asyncio.sleep(1.0)  # a third notification would come within group_wait
    assert len(hook.requests) == 2
    by_vmid = {r.json["incident"]["vmid"]: r.json for r in hook.requests}
    assert set(by_vmid) == {100, 101}
    body = by_vmid[100]
    assert body["incident"]["sources"] == ["syslog", "pve-webhook", "email", "pve-api"]
    assert body["count"] == 4
    assert body["title"] == "[ERROR] Backup of guest 100 (web) failed on pve1"
    assert "seen via syslog, pve-webhook, email, pve-api" in body["body"]
    assert body["body"].startswith("INFO: starting new backup job")


async def test_a_late_report_updates_the_incident_and_a_later_failure_is_new(
    dispatcher, sink, js, nc
) -> None:
    hook = await sink()
    service = await dispatcher(ROUTES.format(url=hook.url, wait="0s"), incident_window=2)
    first, *late = reports(100)
    await publish(js, first)
    await wait_until(lambda: len(hook.requests) == 1)
    assert hook.requests[0].json["incident"]["sources"] == ["syslog"]
    await publish(js, *late)
    assert service.intake is not None
    state = service.intake.state
    await wait_until(lambda: getattr(state.incident(first.fingerprint), "count", 0) == 4)
    assert len(hook.requests) == 1
    incident = state.incident(first.fingerprint)
    assert incident is not None
    assert incident.id == first.id
    assert (
        service.registry.get_sample_value(
            "proxbus_dispatcher_suppressed_total", {"reason": "incident"}
        )
        == 3
    )
    await asyncio.sleep(2.1)  # the correlation window (2 s) passes: the next failure is new
    again = ev(source="syslog", kind="backup.failed", vmid=100, node="pve1", title="failed again")
    await publish(js, again)
    await wait_until(lambda: len(hook.requests) == 2)
    assert hook.requests[1].json["incident"]["id"] == again.id


async def test_two_replicas_open_one_incident(dispatcher, sink, js) -> None:
    hook = await sink()
    routes = ROUTES.format(url=hook.url, wait="0s")
    await dispatcher(routes, incident_window=600)
    await dispatcher(routes, incident_window=600)
    many = [e for _ in range(5) for e in reports(100)]
    await publish(js, *many)
    await wait_until(lambda: len(hook.requests) >= 1)
    await asyncio.sleep(1.5)  # redelivered losers of a write race come back within ~1 s
    assert len(hook.requests) == 1


async def test_events_tail_incidents_shows_each_incident_with_its_sources(
    nats_server, dispatcher, sink, js
) -> None:
    hook = await sink()
    await dispatcher(ROUTES.format(url=hook.url, wait="0s"), incident_window=600)
    proxbus = str(Path(sys.executable).parent / "proxbus")
    tail = await asyncio.create_subprocess_exec(
        proxbus, "--nats-url", nats_server.url, "events", "tail", "--incidents", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert tail.stderr is not None
        assert tail.stdout is not None
        assert b"listening" in await asyncio.wait_for(tail.stderr.readline(), 15)
        await publish(js, *reports(100))
        seen: set[str] = set()
        while seen != {"syslog", "pve-webhook", "email", "pve-api"}:
            line = json.loads(await asyncio.wait_for(tail.stdout.readline(), 15))
            if "incident" in line:
                assert line["incident"]["vmid"] == 100
                seen = set(line["incident"]["sources"])
    finally:
        tail.terminate()
        await tail.wait()


UPID_ONE = "UPID:pve1:000A1B2C:00A1B2C3:65F0A1B2:vzdump:100:root@pam:"
UPID_TWO = "UPID:pve1:000A1B2D:00A1B2C4:65F0A1B3:vzdump::root@pam:"


def job_reports(upid: str, vmids: list[int], task_vmid: int | None) -> list[Event]:
    """A vzdump job as ingest-syslog reports it: each failed guest, the job's end line
    (no guest), the task's end (its UPID's guest: one for a one-guest job)."""
    common: dict[str, Any] = {"source": "syslog", "node": "pve1", "correlation_id": upid}
    guests = [
        ev(kind="backup.failed", vmid=v, title=f"Backup of VM {v} failed: boom", **common)
        for v in vmids
    ]
    job = ev(kind="backup.failed", title="Backup job finished with errors", **common)
    task = ev(kind="task.failed", vmid=task_vmid, title="Task vzdump failed: job errors", **common)
    return [*guests, job, task]


async def test_a_backup_jobs_own_reports_join_the_failed_guests_incident(
    dispatcher, sink, js
) -> None:
    hook = await sink()
    service = await dispatcher(ROUTES.format(url=hook.url, wait="0s"), incident_window=600)
    guest, job, task = job_reports(UPID_ONE, [100], 100)
    assert len({guest.fingerprint, job.fingerprint, task.fingerprint}) == 3
    await publish(js, guest, job, task)
    assert service.intake is not None
    state = service.intake.state
    await wait_until(lambda: getattr(state.incident(guest.fingerprint), "count", 0) == 3)
    await asyncio.sleep(1.0)  # a second notification would come by now
    assert len(hook.requests) == 1
    incident = hook.requests[0].json["incident"]
    assert (incident["vmid"], incident["upid"]) == (100, UPID_ONE)
    assert incident["title"] == "Backup of VM 100 failed: boom"  # the guest's text stays
    assert state.incident(job.fingerprint) is None  # attached, no incident of its own
    assert state.incident(task.fingerprint) is None


async def test_two_guests_failing_in_one_job_are_two_notifications(dispatcher, sink, js) -> None:
    hook = await sink()
    service = await dispatcher(ROUTES.format(url=hook.url, wait="500ms"), incident_window=600)
    events = job_reports(UPID_TWO, [100, 101], None)
    # another job's end line (another UPID) is not attached: its own incident
    other = ev(
        source="syslog", node="pve1", kind="backup.failed", title="Backup job finished with errors",
        correlation_id="UPID:pve1:000A1B2E:00A1B2C5:65F0A1B4:vzdump::root@pam:",
    )  # fmt: skip
    await publish(js, *events, other)
    await wait_until(lambda: len(hook.requests) >= 3)
    await asyncio.sleep(1.0)
    assert len(hook.requests) == 3
    by_upid_vmid = {
        (r.json["incident"]["upid"], r.json["incident"]["vmid"]): r.json for r in hook.requests
    }
    assert set(by_upid_vmid) == {(UPID_TWO, 100), (UPID_TWO, 101), (other.correlation_id, None)}
    assert service.intake is not None
    for vmid, guest in ((100, events[0]), (101, events[1])):
        incident = service.intake.state.incident(guest.fingerprint)
        assert incident is not None
        assert incident.count == 3  # the guest's line, the job's end, the task's end
        # the group notification carries the job's events with the guest's
        ids = {e["id"] for e in by_upid_vmid[(UPID_TWO, vmid)]["events"]}
        assert ids == {guest.id, events[2].id, events[3].id}
