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
