"""Incidents end to end in the dispatcher (real nats-server, recording webhook sink)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
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


ANN, BOB = "111111111111111111", "222222222222222222"


def acknowledge(
    fingerprint: str, outcome: str = "ok", user: str = "ann", user_id: str | None = ANN
) -> Event:
    """The event ingest-discord publishes for a click on a notification's "Acknowledge"."""
    metadata = {"outcome": outcome, "alert_fingerprint": fingerprint, "discord_user": user}
    if user_id is not None:
        metadata["discord_user_id"] = user_id
    return ev(
        source="discord", node=None, severity="notice", kind="command.ack",
        title=f"Discord ack by {user}: {outcome}", metadata=metadata,
    )  # fmt: skip


async def test_an_acknowledged_alert_is_not_repeated_until_it_resolves_or_another_task_fails(
    dispatcher, sink, js
) -> None:
    hook = await sink()
    routes = ROUTES.format(url=hook.url, wait="0s")
    # incident_window 0 and repeat_interval 0s: without an ack every report is notified.
    service = await dispatcher(routes, incident_window=0, ack_resolve_after=600)
    t0 = datetime.now(UTC) - timedelta(hours=2)
    upid = "UPID:pve1:000A1B2C:00A1B2C3:65F0A1B2:vzdump:100:root@pam:"

    def report(seconds: float, vmid: int = 100, **kw: Any) -> Event:
        return ev(kind="backup.failed", vmid=vmid, title=f"backup of {vmid} failed",
                  received_at=t0 + timedelta(seconds=seconds), **kw)  # fmt: skip

    def alerts(vmid: int = 100) -> list[dict[str, Any]]:
        return [r.json for r in hook.requests if r.json["incident"]["vmid"] == vmid]

    def suppressed(reason: str) -> float:
        value = service.registry.get_sample_value(
            "proxbus_dispatcher_suppressed_total", {"reason": reason}
        )
        return value or 0.0

    first = report(0, correlation_id=upid)
    await publish(js, first)
    await wait_until(lambda: len(alerts()) == 1)
    await publish(js, acknowledge(first.fingerprint, outcome="denied"), report(10))
    await wait_until(lambda: len(alerts()) == 2)  # a refused click acknowledges nothing
    # Who acknowledged is the member's Discord user id: a display name is anyone's to pick
    # (here the first click's "bob" is ann's id under another name). Without a usable id
    # (none, or not a Discord snowflake) nothing is acknowledged.
    await publish(
        js,
        acknowledge(first.fingerprint, user="ann", user_id=None),
        acknowledge(first.fingerprint, user="ann", user_id="ann"),
        acknowledge(first.fingerprint, user="bob"),
        acknowledge(first.fingerprint, user="ann", user_id=BOB),
    )
    assert service.intake is not None
    state = service.intake.state
    await wait_until(lambda: getattr(state.incident(first.fingerprint), "acked", None) is not None)
    acked = state.incident(first.fingerprint)
    assert acked is not None
    assert acked.acked is not None
    # The first acknowledgement with a user id stays; the name is only its label.
    assert acked.acked["by"] == f"discord:{ANN}"
    assert acked.acked["user_id"] == ANN
    assert acked.acked["label"] == "bob"
    # The console's incidents page says so.
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{service.health.port}/incidents") as page,
    ):
        html = await page.text()
    assert page.status == 200
    # (the page isolates the label and the id with <bdi>: a right-to-left name cannot
    # reorder the text around it)
    assert f"acknowledged by bob (discord:{ANN})" in re.sub(r"<[^>]+>", "", html)
    # Stored: a restarted dispatcher (or another replica) knows it.
    await service.stop()
    service = await dispatcher(routes, incident_window=0, ack_resolve_after=600)
    await publish(js, report(20), report(30, vmid=101))
    await wait_until(lambda: len(alerts(101)) == 1)  # another alert: notified
    await wait_until(lambda: suppressed("acknowledged") == 1)
    assert len(alerts()) == 2
    # Still going on (no UPID, or the acknowledged task's): held back.
    await publish(js, report(600, correlation_id=upid))
    await wait_until(lambda: suppressed("acknowledged") == 2)
    # Another run of the backup failed: a new incident, notified, and so are its repeats.
    await publish(js, report(610, correlation_id=upid.replace("vzdump:100", "vzdump:101")))
    await wait_until(lambda: len(alerts()) == 3)
    await publish(js, report(620))
    await wait_until(lambda: len(alerts()) == 4)
    # Acknowledged again, then quiet for longer than ack_resolve_after: resolved, notified.
    await publish(js, acknowledge(first.fingerprint))
    await wait_until(
        lambda: getattr(service.intake and service.intake.state.incident(first.fingerprint),
                        "acked", None) is not None
    )  # fmt: skip
    await publish(js, report(1000))
    await wait_until(lambda: suppressed("acknowledged") == 3)
    await publish(js, report(1601))
    await wait_until(lambda: len(alerts()) == 5)
    assert suppressed("acknowledged") == 3


async def test_two_replicas_both_hold_back_an_acknowledged_alert(dispatcher, sink, js) -> None:
    hook = await sink()
    routes = ROUTES.format(url=hook.url, wait="0s")
    replicas = [await dispatcher(routes, incident_window=0) for _ in range(2)]
    first = ev(kind="backup.failed", vmid=100, title="backup of 100 failed")
    await publish(js, first)
    await wait_until(lambda: len(hook.requests) == 1)
    await publish(js, acknowledge(first.fingerprint))
    kv = await js.key_value("proxbus_dispatcher_state")

    async def acked() -> bool:
        entry = await kv.get(f"inc.{first.fingerprint}")
        return bool(json.loads(entry.value or b"{}").get("acked"))

    await wait_until(acked)

    def held_back() -> float:
        return sum(
            r.registry.get_sample_value(
                "proxbus_dispatcher_suppressed_total", {"reason": "acknowledged"}
            )
            or 0.0
            for r in replicas
        )

    # Whichever replica takes a repeat, with whatever it remembered: held back (a replica
    # that did not see the ack loses its compare-and-set write and decides again).
    repeats = [ev(kind="backup.failed", vmid=100, title="backup of 100 failed") for _ in range(6)]
    await publish(js, *repeats)
    await wait_until(lambda: held_back() == 6)
    alerts = [r.json for r in hook.requests if r.json["incident"]["kind"] == "backup.failed"]
    assert [a["incident"]["id"] for a in alerts] == [first.id]
