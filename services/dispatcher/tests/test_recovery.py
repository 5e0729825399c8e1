"""The recovery half of the human loop: what the operator is told when things come BACK.

Sequences are Proxmox's own: pve-ha-manager ``src/PVE/HA/NodeStatus.pm`` (``node '<n>': state
changed from '<old>' => '<new>'``, fence → unknown once fencing succeeded), ``src/PVE/HA/
Manager.pm`` (``service '<sid>': state changed from '<old>' to '<new>'``, ``recover service
'<sid>' from fenced node '<n>' to node '<m>'``), ``src/PVE/HA/LRM.pm`` (``starting service``,
``service status <sid> started``). The fence's lines go through ingest-syslog's own pipeline
(``fence_and_return``; a few single node lines are built as it gives them: kind, node, title,
``metadata.old_state``/``new_state``), and a node's return as ingest-pve-ws's API diff builds
it (``diff.py``: kind ``node.offline``, ``metadata.resolved``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from proxbus_events import Event
from proxbus_ingest_syslog.rules import HA_NODE_RETURNS

from .conftest import ev, publish, wait_until


def _settled(service: Any) -> float:
    return sum(
        service.registry.get_sample_value("proxbus_dispatcher_events_total", {"outcome": o}) or 0
        for o in ("routed", "suppressed")
    )


def _crm(at: datetime, **kw: Any) -> Event:
    """A pve-ha-crm line of the CRM master pve1, as ingest-syslog gives it."""
    meta = {"app": "pve-ha-crm", "hostname": "pve1", **kw.pop("metadata", {})}
    base: dict[str, Any] = {"source": "syslog", "severity": "info", "kind": "ha.state"}
    return ev(**{**base, **kw, "metadata": meta, "timestamp": at, "received_at": at})


def _node_line(at: datetime, node: str, old: str, new: str) -> Event:
    meta: dict[str, Any] = {"rule": "ha-node-state", "reporter": "pve1", "old_state": old,
                            "new_state": new}  # fmt: skip
    if (old, new) in HA_NODE_RETURNS:  # the node's return names the alert it ends
        meta["recovers"] = "node.offline"
    return _crm(at, node=node, title=f"HA node {node}: {old} → {new}", metadata=meta)


def fence_and_return(start: datetime) -> list[Event]:
    """pve2 dies at ``start``; pve1 (CRM master) fences it, recovers vm:100 to itself; pve2
    is back online 5 min 40 s later. Timings as a real fence: 60 s to 'unknown', the
    watchdog's 60 s, then the node's reboot. The lines pve-ha-manager writes, through
    ingest-syslog's own pipeline (a service's ``ha.state`` is about no node, the service's
    node in ``metadata.service_node`` where the line names it; the node's return names the
    ``node.offline`` alert it ends in ``metadata.recovers``), each received when it happened."""
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    crm, lrm = ("pve-ha-crm", 1502), ("pve-ha-lrm", 1610)
    lines = [
        (0, "pve1", crm, "node 'pve2': state changed from 'online' => 'unknown'"),
        (60, "pve1", crm, "service 'vm:100': state changed from 'started' to 'fence'"),
        (60, "pve1", crm, "node 'pve2': state changed from 'unknown' => 'fence'"),
        (130, "pve1", crm, "fencing: acknowledged - got agent lock for node 'pve2'"),
        (130, "pve1", crm, "node 'pve2': state changed from 'fence' => 'unknown'"),
        (130, "pve1", crm, "service 'vm:100': state changed from 'fence' to 'recovery'"),
        (130, "pve1", crm, "recover service 'vm:100' from fenced node 'pve2' to node 'pve1'"),
        (130, "pve1", crm,
         "service 'vm:100': state changed from 'recovery' to 'started'  (node = pve1)"),
        (140, "pve1", lrm, "starting service vm:100"),
        (141, "pve1", lrm, "service status vm:100 started"),
        # pve2 boots: its own HA daemons' status lines (LRM.pm/CRM.pm ``status change <old>
        # => <new>``, ingest-syslog's ha.state about pve2: the node lines' fingerprint)
        (300, "pve2", lrm, "status change startup => wait_for_agent_lock"),
        (301, "pve2", crm, "status change startup => wait_for_quorum"),
        (330, "pve2", crm, "status change wait_for_quorum => slave"),
        (340, "pve1", crm, "node 'pve2': state changed from 'unknown' => 'online'"),
        (350, "pve2", lrm, "status change wait_for_agent_lock => active"),
    ]  # fmt: skip
    pipeline = Pipeline(SyslogSettings())
    events = []
    for seconds, host, (app, pid), text in lines:
        at = (start + timedelta(seconds=seconds)).isoformat()
        frame = Frame(f"<30>1 {at} {host} {app} {pid} - - {text}".encode())  # daemon.info
        (event,) = pipeline.process([frame], "udp", "127.0.0.1")
        events.append(_received(event))
    return events


async def test_a_fenced_node_back_online_and_its_recovered_guest_are_notified(
    dispatcher, sink, js
) -> None:
    # Every ha.state line about pve2 has one fingerprint (kind, site, node), so the node's
    # return ("unknown → online", 3.5 min after "fence → unknown") joined the earlier line's
    # incident and was never notified; vm:100's "fence → recovery" and "recovery → started"
    # joined its "started → fence": the operator was told the guest was fenced and never
    # that it runs again on pve1. A report of another state is a state change, notified.
    hook = await sink()
    service = await dispatcher(None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook")
    reports = fence_and_return(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))
    for n, one in enumerate(reports, start=1):  # as they come: each decided after the last
        await publish(js, one)
        await wait_until(lambda n=n: _settled(service) >= n)
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    titles = [r.json["title"] for r in hook.requests]
    assert titles == [
        "[WARNING] Node pve2 is offline (HA state online → unknown)",
        "[INFO] HA service vm:100: started → fence",
        "[CRITICAL] Fencing node pve2",
        "[CRITICAL] Node pve2 fenced",
        # NodeStatus.pm fence_node: 'fence' => 'unknown' is logged right after "fencing:
        # acknowledged" (the only place the manager sets it): the fence's success, told by
        # "Node pve2 fenced", recorded in pve2's states, not told again
        "[INFO] HA service vm:100: fence → recovery",
        "[INFO] HA service vm:100: recovery → started on pve1",
        "[INFO] HA node pve2: unknown → online",
    ], titles
    # the guest's lines are about no node (the CRM master pve1 logged them): one fingerprint
    guest = [r.json for r in hook.requests if r.json["event"]["vmid"] == 100]
    assert {(g["event"]["node"], g["event"]["fingerprint"]) for g in guest} == {
        (None, guest[0]["event"]["fingerprint"])
    }
    assert guest[-1]["event"]["metadata"]["service_node"] == "pve1"
    back = hook.requests[-1].json
    assert back["incident"]["state"] == "online"
    assert back["incident"]["previous_state"] == "unknown", back["incident"]
    # a state change is not a repeat of the earlier state: no "ongoing since"; it ends the
    # node.offline alert (metadata.recovers)
    assert "ongoing since" not in back["body"], back["body"]
    assert back["incident"]["resolves"]["kind"] == "node.offline", back["incident"]


async def test_the_return_is_told_despite_repeat_interval_and_an_acknowledgement(
    dispatcher, sink, js
) -> None:
    # A routes file with the default repeat_interval (4h) and an operator who clicked
    # "Acknowledge" on "HA node pve2: fence → unknown": the node's return is the same
    # fingerprint, so it was deduped (notified within 4h) and suppressed as acknowledged.
    # A new state is not a repeat and not what was acknowledged; the same state again is.
    from .test_incidents_pipeline import acknowledge

    hook = await sink()
    service = await dispatcher(
        f"""\
receivers: [{{name: hook, type: webhook, url: "{hook.url}/hook"}}]
route: {{receiver: hook}}
""",
        incident_window=60,
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    fenced = _node_line(start, "pve2", "fence", "unknown")
    await publish(js, fenced)
    await wait_until(lambda: len(hook.requests) == 1)
    await publish(js, acknowledge(fenced.fingerprint))
    await wait_until(lambda: _settled(service) >= 2)
    again = _node_line(start + timedelta(seconds=120), "pve2", "fence", "unknown")
    back = _node_line(start + timedelta(seconds=300), "pve2", "unknown", "online")
    back_again = _node_line(start + timedelta(seconds=900), "pve2", "unknown", "online")
    await publish(js, again, back, back_again)
    await wait_until(lambda: _settled(service) >= 5)
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    titles = [r.json["title"] for r in hook.requests if r.json["event"]["kind"] == "ha.state"]
    assert titles == [
        "[INFO] HA node pve2: fence → unknown",
        "[INFO] HA node pve2: unknown → online",
    ]


async def test_the_cluster_logs_late_copies_do_not_tell_the_recovery_twice(
    dispatcher, sink, js
) -> None:
    # ingest-pve-ws polls /cluster/log: its copies of the CRM's lines (same happening time,
    # source pve-api) arrive after syslog's. vm:100's "started → fence" copy arriving after
    # syslog's "recovery → started" is not the guest being fenced again.
    hook = await sink()
    service = await dispatcher(None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    syslog = [e for e in fence_and_return(start) if e.vmid == 100 and e.metadata.get("new_state")]
    copies = [
        Event.model_validate(
            {
                **e.model_dump(exclude={"id"}),  # a new id: another source's event
                "source": "pve-api",
                "received_at": e.received_at + timedelta(seconds=200),
            }
        )
        for e in syslog
    ]
    await publish(js, *syslog, *copies)
    await wait_until(lambda: _settled(service) >= len(syslog) + len(copies))
    await asyncio.sleep(0.5)
    assert [r.json["title"] for r in hook.requests] == [
        "[INFO] HA service vm:100: started → fence",
        "[INFO] HA service vm:100: fence → recovery",
        "[INFO] HA service vm:100: recovery → started on pve1",
    ]


def _api(at: datetime, **kw: Any) -> Event:
    """An event of ingest-pve-ws's snapshot diff (``diff.py``: /cluster/resources polled)."""
    meta = {"cluster": "lab", **kw.pop("metadata", {})}
    return ev(source="pve-api", metadata=meta, timestamp=at, received_at=at, **kw)


async def test_every_notifier_tells_the_node_and_the_storage_are_back(dispatcher, sink, js) -> None:
    # The seed with every notifier. ingest-pve-ws says a node is back online and a storage is
    # below its thresholds again with the problem's own kind (node.offline, storage.full) and
    # metadata.resolved: one fingerprint with the outage, so "back online" 4 minutes after
    # "offline" joined the outage's incident and no notifier said it; a storage going from
    # 85 % (warning) to 96 % (error) within the window was not told either.
    from .test_journey import mailbox

    sinks = {name: await sink() for name in ("discord", "gotify", "hook", "apprise")}
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def t(seconds: int) -> datetime:
        return start + timedelta(seconds=seconds)

    storage = {"storage": "local-lvm"}
    reports = [
        _crm(
            t(0),
            kind="node.offline",
            severity="warning",
            node="pve2",
            title="Node pve2 is offline (HA state online → unknown)",
            metadata={"reporter": "pve1", "old_state": "online", "new_state": "unknown"},
        ),
        _api(t(5), kind="node.offline", severity="error", node="pve2", title="Node pve2 is offline",
             metadata={"previous": "online", "status": "offline", "resolved": False}),
        _api(t(10), kind="storage.full", severity="warning", node="pve1",
             title="Storage local-lvm on pve1 is 85.0% full",
             metadata={**storage, "level": 1, "previous_level": 0, "resolved": False}),
        _api(t(70), kind="storage.full", severity="error", node="pve1",
             title="Storage local-lvm on pve1 is 96.0% full",
             metadata={**storage, "level": 2, "previous_level": 1, "resolved": False}),
        _api(t(250), kind="node.offline", severity="info", node="pve2",
             title="Node pve2 is back online",
             metadata={"previous": "offline", "status": "online", "resolved": True}),
        _api(t(400), kind="storage.full", severity="info", node="pve1",
             title="Storage local-lvm on pve1 back to 40.0%",
             metadata={**storage, "level": 0, "previous_level": 2, "resolved": True}),
    ]  # fmt: skip
    with mailbox() as (box, port):
        service = await dispatcher(
            None,
            discord_out_enabled=True,
            discord_webhook_url=f"{sinks['discord'].url}/api/webhooks/1/tok",
            gotify_out_enabled=True,
            gotify_url=sinks["gotify"].url,
            gotify_token="apptoken",
            webhook_out_enabled=True,
            webhook_url=f"{sinks['hook'].url}/hook",
            email_out_enabled=True,
            email_out_host="127.0.0.1",
            email_out_port=port,
            email_out_security="none",
            email_out_from="proxbus@example.org",
            email_out_to="ops@example.org",
            apprise_urls=f"json://127.0.0.1:{sinks['apprise'].port}/apprise",
        )
        await publish(js, *reports)
        want = [
            "[WARNING] Node pve2 is offline (HA state online → unknown)",
            "[WARNING] Storage local-lvm on pve1 is 85.0% full",
            "[ERROR] Storage local-lvm on pve1 is 96.0% full",
            "[INFO] Node pve2 is back online",
            "[INFO] Storage local-lvm on pve1 back to 40.0%",
        ]
        await wait_until(
            lambda: (
                all(len(s.requests) >= len(want) for s in sinks.values())
                and len(box.messages) >= len(want)
            ),
            detail=lambda: {n: [r.body[:80] for r in s.requests] for n, s in sinks.items()},
        )
        await wait_until(lambda: _settled(service) >= len(reports))
        await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    shown = {
        "discord": [r.json["embeds"][0]["title"] for r in sinks["discord"].requests],
        "gotify": [r.json["title"] for r in sinks["gotify"].requests],
        "hook": [r.json["title"] for r in sinks["hook"].requests],
        "apprise": [r.json["title"] for r in sinks["apprise"].requests],
        "email": [str(m["Subject"]) for m in box.messages],
    }
    for name, titles in shown.items():
        assert sorted(titles) == sorted(want), (name, titles)
    back = next(r.json for r in sinks["hook"].requests if "back online" in r.json["title"])
    assert back["incident"]["state"] == "resolved"
    # what is over is green on Discord and in the mail (a blue INFO embed read like news)
    colours = {r.json["embeds"][0]["title"]: r.json["embeds"][0]["color"]
               for r in sinks["discord"].requests}  # fmt: skip
    assert colours["[INFO] Node pve2 is back online"] == 0x2ECC71
    assert colours["[INFO] Storage local-lvm on pve1 back to 40.0%"] == 0x2ECC71
    assert colours["[ERROR] Storage local-lvm on pve1 is 96.0% full"] == 0xE74C3C
    mails = {str(m["Subject"]): m.get_body(("html",)).get_content() for m in box.messages}
    assert "#2ecc71" in mails["[INFO] Node pve2 is back online"]
    assert "ongoing since" not in back["body"]


def _at(when: datetime, events: list[Event]) -> list[Event]:
    """``events`` as received at ``when`` (a second apart, in order)."""
    return [
        Event.model_validate(
            {**e.model_dump(), "received_at": when + timedelta(seconds=i), "timestamp": when}
        )
        for i, e in enumerate(events)
    ]


def _tonights_job(upid: str) -> list[Event]:
    """The next night's job (pve-manager PVE/VZDump.pm): every guest's ``Finished Backup of
    VM N``, the job's ``Backup job finished successfully`` (ingest-syslog: backup.ok)."""
    out = [
        ev(source="syslog", node="pve1", severity="info", kind="backup.ok", vmid=vmid,
           correlation_id=upid, title=f"Backup of VM {vmid} finished (00:02:05)",
           message=f"INFO: Finished Backup of VM {vmid} (00:02:05)")
        for vmid in (100, 101, 102, 103, 104)
    ]  # fmt: skip
    out.append(
        ev(source="syslog", node="pve1", severity="info", kind="backup.ok", correlation_id=upid,
           title="Backup job finished successfully")
    )  # fmt: skip
    return out


async def test_a_backup_that_failed_last_night_and_works_tonight_is_told_as_resolved(
    dispatcher, sink, js
) -> None:
    # Last night VM 103's backup failed (one alert). Tonight it works: its success went into
    # the night's digest of successes, "[INFO] 6 events: backup.ok on pve1 (guests 100, 101,
    # 102, 103, 104)", ten minutes later, nothing saying the failure is over. A success of
    # the same guest's job after a notified failure resolves it and is told at once.
    from .test_journey import ENOSPC, vzdump_job_reports

    hook = await sink()
    service = await dispatcher(
        None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook", seed_ok_group_wait=1.0
    )
    night = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=25)
    last_night = _at(night, [e for e in vzdump_job_reports() if e.source == "syslog"])
    await publish(js, *last_night)
    await wait_until(lambda: len(hook.requests) == 2)  # the failure, the digest of four
    tonight = _at(
        night + timedelta(days=1),
        _tonights_job("UPID:pve1:0001A2B3:0041D40B:674B4180:vzdump::root@pam:"),
    )
    await publish(js, *tonight)
    await wait_until(lambda: _settled(service) >= len(last_night) + len(tonight))
    await wait_until(lambda: len(hook.requests) >= 4)
    await asyncio.sleep(1.5)  # a wrong extra notification or digest would be on its way by now
    titles = [r.json["title"] for r in hook.requests]
    assert titles == [
        f"[ERROR] pve1: Backup of VM 103 failed: {ENOSPC}",
        "[INFO] 4 events: backup.ok on pve1 (guests 100, 101, 102, 104)",
        "[INFO] pve1: Backup of VM 103 finished (00:02:05)",
        "[INFO] 5 events: backup.ok on pve1 (guests 100, 101, 102, 104)",
    ], titles
    resolved = hook.requests[2].json
    assert resolved["incident"]["resolves"]["title"] == f"Backup of VM 103 failed: {ENOSPC}"
    failed = next(e for e in last_night if e.kind == "backup.failed")
    since = failed.received_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert (
        f"resolves: Backup of VM 103 failed: {ENOSPC} (since {since})"
        in resolved["body"].splitlines()
    ), resolved["body"]


async def test_a_nights_digest_counts_the_jobs_end_once(dispatcher, sink, js) -> None:
    # The job's "Backup job finished successfully" (no guest, the job's UPID) joins each
    # guest's backup.ok incident; the digest listed it once per guest: "[INFO] 10 events"
    # for five guests and one job line.
    hook = await sink()
    await dispatcher(
        None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook", seed_ok_group_wait=1.0
    )
    await publish(js, *_tonights_job("UPID:pve1:0001A2B3:0041D40B:674B4180:vzdump::root@pam:"))
    await wait_until(lambda: len(hook.requests) >= 1)
    await asyncio.sleep(1.5)  # a second digest would be on its way by now
    assert [r.json["title"] for r in hook.requests] == [
        "[INFO] 6 events: backup.ok on pve1 (guests 100, 101, 102, 103, 104)"
    ]
    assert len(hook.requests[0].json["events"]) == 6


# What every surviving node logs when pve2 rejoins, all at notice (corosync exec/totemsrp.c
# "A new membership ... was formed", exec/vsf_quorum.c "Members[%d]:", exec/main.c "Completed
# service synchronization"; pve-cluster src/pmxcfs/dfsm.c and status.c, cfs_dom_message at
# notice): plain lines (syslog.message), as `proxbus-ingest-syslog parse` gives them.
REJOIN = (
    "corosync: [TOTEM ] A new membership (1.2a) was formed. Members joined: 2",
    "corosync: [QUORUM] Sync members[3]: 1 2 3",
    "corosync: [QUORUM] Sync joined[1]: 2",
    "corosync: [QUORUM] Members[3]: 1 2 3",
    "corosync: [MAIN ] Completed service synchronization, ready to provide service.",
    "pmxcfs: [dcdb] notice: members: 1/1100, 2/1180, 3/1090",
    "pmxcfs: [dcdb] notice: starting data syncronisation",
    "pmxcfs: [status] notice: members: 1/1100, 2/1180, 3/1090",
    "pmxcfs: [status] notice: starting data syncronisation",
    "pmxcfs: [dcdb] notice: received sync request (epoch 1/1100/00000004)",
    "pmxcfs: [dcdb] notice: received all states",
    "pmxcfs: [dcdb] notice: leader is 1/1100",
    "pmxcfs: [dcdb] notice: synced members: 1/1100, 3/1090",
    "pmxcfs: [dcdb] notice: start sending inode updates",
    "pmxcfs: [dcdb] notice: sent all (0) updates",
    "pmxcfs: [dcdb] notice: all data is up to date",
    "pmxcfs: [status] notice: received all states",
    "pmxcfs: [status] notice: all data is up to date",
    "pmxcfs: [status] notice: node has quorum",
)


async def test_a_node_rejoining_the_cluster_is_one_digest_per_node_not_forty(
    dispatcher, sink, js
) -> None:
    # The seed notifies plain lines from notice (SEED_SYSLOG_MIN_SEVERITY) so that pmxcfs's
    # "node has quorum" is told; every node logs 19 such lines within a second when a node
    # rejoins: 38 notifications from two survivors, each its own push. Plain lines now go
    # out as one digest per node after SEED_LINES_GROUP_WAIT.
    hook = await sink()
    service = await dispatcher(
        None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook", seed_lines_group_wait=1.0
    )
    lines = [
        ev(source="syslog", node=node, severity="notice", kind="syslog.message", title=title,
           metadata={"app": title.partition(":")[0]})
        for node in ("pve1", "pve3")
        for title in REJOIN
    ]  # fmt: skip
    await publish(js, *lines)
    await wait_until(lambda: _settled(service) >= len(lines))
    await wait_until(lambda: len(hook.requests) >= 2)
    await asyncio.sleep(1.5)  # a third notification would be on its way by now
    assert len(hook.requests) == 2, [r.json["title"] for r in hook.requests]
    by_node = {r.json["group_labels"]["node"]: r.json for r in hook.requests}
    assert sorted(by_node) == ["pve1", "pve3"]
    for node, body in by_node.items():
        # the title names a line (the most severe, the first of those), not just a count
        want = (
            f"[NOTICE] {node}: corosync: [TOTEM ] A new membership (1.2a) was formed. "
            "Members joined: 2 (and 18 more lines)"
        )
        assert body["title"] == want
        assert f"- [notice] {node}: pmxcfs: [status] notice: node has quorum" in body["body"]


async def test_a_failure_after_its_resolution_is_a_new_alert_despite_repeat_interval(
    dispatcher, sink, js
) -> None:
    # A routes file with the default repeat_interval (4h): VM 103's backup fails, a retry an
    # hour later works (told as resolving it), the nightly run fails again two hours later.
    # That failure is a new alert, not a repeat deduped within 4h of the first.
    hook = await sink()
    service = await dispatcher(
        f"""\
receivers: [{{name: hook, type: webhook, url: "{hook.url}/hook"}}]
route: {{receiver: hook}}
""",
        incident_window=600,
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)

    def report(hours: int, kind: str, title: str) -> Event:
        at = start + timedelta(hours=hours)
        upid = f"UPID:pve1:0001A2B{hours}:0041D40B:674B4180:vzdump:103:root@pam:"
        return ev(source="syslog", node="pve1", severity="error" if kind.endswith("failed")
                  else "info", kind=kind, vmid=103, title=title, correlation_id=upid,
                  timestamp=at, received_at=at)  # fmt: skip

    reports = [
        report(0, "backup.failed", "Backup of VM 103 failed: ENOSPC"),
        report(1, "backup.ok", "Backup of VM 103 finished (00:02:05)"),
        report(3, "backup.failed", "Backup of VM 103 failed: ENOSPC"),
    ]
    for n, one in enumerate(reports, start=1):  # one at a time: each decided after the last
        await publish(js, one)
        await wait_until(lambda n=n: _settled(service) >= n)
    await wait_until(lambda: len(hook.requests) >= 3)
    await asyncio.sleep(0.5)
    titles = [r.json["title"] for r in hook.requests]
    assert titles == [
        "[ERROR] pve1: Backup of VM 103 failed: ENOSPC",
        "[INFO] pve1: Backup of VM 103 finished (00:02:05)",
        "[ERROR] pve1: Backup of VM 103 failed: ENOSPC",
    ], titles
    again = hook.requests[2].json
    assert "ongoing since" not in again["body"]
    assert again["incident"]["resolved"] is None


async def test_the_mail_that_a_backup_works_again_is_in_the_failures_thread(
    dispatcher, sink, js
) -> None:
    # Mails about one alert share a thread (In-Reply-To/References: <alert.<fingerprint>>).
    # The success that resolves last night's failure has its own fingerprint (backup.ok):
    # it started a thread of its own, away from the failure it answers.
    from .test_journey import mailbox

    with mailbox() as (box, port):
        service = await dispatcher(
            f"""\
receivers:
  - {{name: mail, type: email, host: 127.0.0.1, port: {port}, security: none,
      from: proxbus@example.org, to: [ops@example.org]}}
route: {{receiver: mail}}
"""
        )
        night = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=25)
        failed = ev(node="pve1", kind="backup.failed", vmid=103, title="Backup of VM 103 failed",
                    received_at=night, timestamp=night)  # fmt: skip
        await publish(js, failed)
        await wait_until(lambda: len(box.messages) == 1)
        ok = ev(node="pve1", kind="backup.ok", severity="info", vmid=103,
                title="Backup of VM 103 finished (00:02:05)",
                received_at=night + timedelta(days=1), timestamp=night + timedelta(days=1))  # fmt: skip
        await publish(js, ok)
        await wait_until(lambda: len(box.messages) == 2 and _settled(service) >= 2)
    first, resolved = box.messages
    assert str(resolved["Subject"]) == "[INFO] pve1: Backup of VM 103 finished (00:02:05)"
    assert resolved["References"] == first["References"] == f"<alert.{failed.fingerprint}@proxbus>"
    assert resolved["In-Reply-To"] == first["References"]


async def test_a_route_that_told_the_problem_tells_its_end_whatever_its_severity_floor(
    dispatcher, sink, js
) -> None:
    # The phone gets warnings and worse (severity>=warning): it was told pve2 went offline and
    # VM 103's backup failed, and never that pve2 is back or the backup works again (both
    # info: they did not match its route). The routes that told a problem tell its end
    # (Alertmanager's send_resolved), whatever their matchers.
    phone, log = await sink(), await sink()
    service = await dispatcher(
        f"""\
receivers:
  - {{name: phone, type: webhook, url: "{phone.url}/phone"}}
  - {{name: log, type: webhook, url: "{log.url}/log"}}
route:
  receiver: log
  routes:
    - {{receiver: phone, matchers: ["severity>=warning"], continue: true}}
    - {{receiver: log}}
""",
        incident_window=600,
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=25)
    reports = [
        _api(start, kind="node.offline", severity="error", node="pve2", title="Node pve2 is offline",
             metadata={"previous": "online", "status": "offline", "resolved": False}),
        ev(node="pve1", kind="backup.failed", vmid=103, title="Backup of VM 103 failed",
           received_at=start, timestamp=start),
        ev(node="pve1", kind="vm.started", severity="info", vmid=104, title="VM 104 started",
           received_at=start, timestamp=start),
        _api(start + timedelta(minutes=4), kind="node.offline", severity="info", node="pve2",
             title="Node pve2 is back online",
             metadata={"previous": "offline", "status": "online", "resolved": True}),
        ev(node="pve1", kind="backup.ok", severity="info", vmid=103,
           title="Backup of VM 103 finished (00:02:05)", received_at=start + timedelta(days=1),
           timestamp=start + timedelta(days=1)),
    ]  # fmt: skip
    for n, one in enumerate(reports, start=1):  # in order: each decided after the last
        await publish(js, one)
        await wait_until(lambda n=n: _settled(service) >= n)
    await wait_until(lambda: len(log.requests) >= 5)
    await asyncio.sleep(0.5)
    assert sorted(r.json["title"] for r in phone.requests) == sorted([
        "[ERROR] Node pve2 is offline",
        "[ERROR] pve1: Backup of VM 103 failed",
        "[INFO] Node pve2 is back online",
        "[INFO] pve1: Backup of VM 103 finished (00:02:05)",
    ])  # fmt: skip
    assert len(log.requests) == 5  # the catch-all as before


async def test_a_state_change_below_the_floor_is_told_where_its_problem_was(
    dispatcher, sink, js
) -> None:
    # MIN_SEVERITY=warning (the seed's routes are severity>=MIN_SEVERITY): ingest-pve-ws's
    # "Node pve2 is back online" and "Storage local-lvm on pve1 back to 40.0%" (info, state
    # resolved) were dropped below the floor / unrouted, after their problems were told. A
    # state change of a told fingerprint goes to the routes that told it; one of a fingerprint
    # never told (pve3 back online, its loss unseen) is dropped as before.
    hook = await sink()
    service = await dispatcher(
        None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook", min_severity="warning"
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    up = {"pve1": "online", "pve2": "online", "pve3": "offline"}
    down = {"pve1": "online", "pve2": "offline", "pve3": "offline"}
    back = {"pve1": "online", "pve2": "online", "pve3": "online"}
    storage = {"storage": "local-lvm"}
    (pve2_down,) = _api_nodes((start + timedelta(seconds=5)).timestamp(), up, down)
    pve2_back, pve3_back = _api_nodes((start + timedelta(seconds=300)).timestamp(), down, back)
    assert (pve2_back.node, pve3_back.node) == ("pve2", "pve3")
    reports = [
        _received(pve2_down),
        _api(start + timedelta(seconds=10), kind="storage.full", severity="warning", node="pve1",
             title="Storage local-lvm on pve1 is 85.0% full",
             metadata={**storage, "level": 1, "previous_level": 0, "resolved": False}),
        _received(pve2_back),
        _received(pve3_back),
        _api(start + timedelta(seconds=400), kind="storage.full", severity="info", node="pve1",
             title="Storage local-lvm on pve1 back to 40.0%",
             metadata={**storage, "level": 0, "previous_level": 1, "resolved": True}),
    ]  # fmt: skip
    for n, one in enumerate(reports, start=1):  # in order: each decided after the last
        await publish(js, one)
        await wait_until(lambda n=n: _settled(service) >= n)
    await wait_until(lambda: len(hook.requests) >= 4)
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    assert [r.json["title"] for r in hook.requests] == [
        "[ERROR] Node pve2 is offline",
        "[WARNING] Storage local-lvm on pve1 is 85.0% full",
        "[INFO] Node pve2 is back online",
        "[INFO] Storage local-lvm on pve1 back to 40.0%",
    ]


def test_a_digest_of_plain_lines_is_titled_by_its_most_severe_first_line() -> None:
    from proxbus_dispatcher.templates import headline

    lines = [
        {"kind": "syslog.message", "severity": "notice", "title": "corosync: first"},
        {"kind": "syslog.message", "severity": "warning", "title": "kernel: worse"},
        {"kind": "syslog.message", "severity": "warning", "title": "kernel: worse again"},
        {"kind": "syslog.message", "severity": "bogus", "title": "hostile"},
    ]
    assert headline(lines)["title"] == "kernel: worse"
    assert headline([*lines, {"kind": "vm.started", "severity": "info", "title": "x"}]) is None
    assert headline("not a list") is None
    assert headline([]) is None


async def test_a_retry_that_works_is_told_while_the_acknowledged_failure_is_still_open(
    dispatcher, sink, js
) -> None:
    # VM 103's backup fails; the operator clicks "Acknowledge" and runs it again by hand five
    # minutes later (the failure's incident still open: INCIDENT_WINDOW 10 min) and it works.
    # The seed held that success for its digest ten minutes later, among the routine ones.
    from .test_incidents_pipeline import acknowledge

    hook = await sink()
    service = await dispatcher(None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    failed = ev(node="pve1", kind="backup.failed", vmid=103, title="Backup of VM 103 failed",
                correlation_id="UPID:pve1:0001A2B3:0041D40B:674B4180:vzdump:103:root@pam:",
                received_at=start, timestamp=start)  # fmt: skip
    await publish(js, failed)
    await wait_until(lambda: len(hook.requests) == 1)
    await publish(js, acknowledge(failed.fingerprint))
    await wait_until(lambda: _settled(service) >= 2)
    retry = start + timedelta(minutes=5)
    ok = ev(node="pve1", kind="backup.ok", severity="info", vmid=103,
            title="Backup of VM 103 finished (00:02:05)",
            correlation_id="UPID:pve1:0001C3D4:0041E50C:674B42AC:vzdump:103:root@pam:",
            received_at=retry, timestamp=retry)  # fmt: skip
    await publish(js, ok)
    await wait_until(lambda: _settled(service) >= 3)
    await wait_until(lambda: len(hook.requests) >= 2, timeout=5)  # the digest waits 600 s
    titles = [r.json["title"] for r in hook.requests if r.json["event"]["kind"] != "command.ack"]
    assert titles == [
        "[ERROR] pve1: Backup of VM 103 failed",
        "[INFO] pve1: Backup of VM 103 finished (00:02:05)",
    ], titles


def test_a_digest_of_two_lines_says_one_more_line() -> None:
    from proxbus_dispatcher.templates import DEFAULT_TITLE, render

    def title(n: int) -> str:
        events = [
            {"kind": "syslog.message", "severity": "notice", "node": "pve1",
             "title": f"pmxcfs: line {i}"}
            for i in range(n)
        ]  # fmt: skip
        context = {"incidents": [{}] * n, "count": n, "events": events, "event": events[0],
                   "incident": None, "severity": "notice", "group_labels": {"node": "pve1"}}  # fmt: skip
        return render(DEFAULT_TITLE, context, 256)

    assert title(2) == "[NOTICE] pve1: pmxcfs: line 0 (and 1 more line)"
    assert title(3) == "[NOTICE] pve1: pmxcfs: line 0 (and 2 more lines)"


def _syslog(host: str, app: str, pri: int, text: str) -> bytes:
    """A line as corosync/pmxcfs send it (RFC 5424, stamped now: the classifier's burst
    windows and the dispatcher's resolution go by the line's own time)."""
    pid = 1180 if app == "corosync" else 1090
    return f"<{pri}>1 {datetime.now(UTC).isoformat()} {host} {app} {pid} - - {text}".encode()


# A three-node cluster whose network splits: pve1 and pve3 each lose pve2 and quorum, then
# pve2 comes back (kronosnet libknet/threads_heartbeat.c and threads_rx.c, host.c; corosync
# exec/totemsrp.c, exec/vsf_quorum.c; pve-cluster src/pmxcfs/status.c): the lines as
# ingest-syslog's tests/test_bursts.py has them, through ingest-syslog's own pipeline.
LINK_LOST = [
    ("corosync", 30, "  [KNET  ] link: host: 2 link: 0 is down"),
    ("corosync", 28, "  [KNET  ] host: host: 2 (passive) best link: 0 (pri: 1)"),
    ("corosync", 28, "  [KNET  ] host: host: 2 has no active links"),
    ("corosync", 29, "  [TOTEM ] Token has not been received in 2737 ms"),
    ("corosync", 29, "  [QUORUM] Sync left[1]: 2"),
]
QUORUM_LOST = [
    ("corosync", 29, "  [QUORUM] This node is within the non-primary component and will NOT "
                     "provide any services."),
    ("pmxcfs", 29, "[status] notice: node lost quorum"),
    ("pmxcfs", 29, "[dcdb] notice: members: 1/1090"),
]  # fmt: skip
LINK_BACK = [
    ("corosync", 30, "  [KNET  ] rx: host: 2 link: 0 is up"),
    ("corosync", 28, "  [KNET  ] host: host: 2 (passive) best link: 0 (pri: 1)"),
]
QUORUM_BACK = [
    ("corosync", 29, "  [QUORUM] Sync joined[1]: 2"),
    ("corosync", 29, "  [QUORUM] This node is within the primary component and will provide "
                     "service."),
    ("corosync", 29, "  [QUORUM] Members[3]: 1 2 3"),
    ("pmxcfs", 29, "[status] notice: node has quorum"),
]  # fmt: skip


async def test_a_cluster_link_back_up_and_quorum_regained_are_told_as_their_alerts_end(
    dispatcher, sink, js
) -> None:
    # knet's "link ... is up" (info) was an unrecognised plain line below the seed's notice
    # floor for plain lines, and "node has quorum" a line in the plain-line digest: the
    # operator told "link down" and "quorum lost" was never told their end. The recovery
    # lines stay plain (no recovery kinds in the contract) with metadata.recovers; a notified
    # alert of that kind of the node is resolved by them and told at once, once.
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    hook = await sink()
    service = await dispatcher(None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook")
    pipeline = Pipeline(SyslogSettings())
    published = 0

    async def send(*lines: tuple[str, str, int, str]) -> list[Event]:
        nonlocal published
        events = pipeline.process(
            [Frame(_syslog(host, app, pri, text)) for host, app, pri, text in lines],
            "udp",
            "127.0.0.1",
        )
        assert len(events) == len(lines)
        await publish(js, *events)
        published += len(events)
        await wait_until(lambda: _settled(service) >= published)
        return events

    def on(host: str, lines: list[tuple[str, int, str]]) -> list[tuple[str, str, int, str]]:
        return [(host, app, pri, text) for app, pri, text in lines]

    def titles() -> list[str]:
        return [r.json["title"] for r in hook.requests]

    await send(*on("pve1", LINK_LOST), *on("pve3", LINK_LOST))
    await send(*on("pve1", QUORUM_LOST), *on("pve3", QUORUM_LOST))
    await wait_until(lambda: len(hook.requests) >= 3)
    # host 2's loss is one happening, reported by both survivors: one alert about no node
    problems = [
        "[WARNING] Cluster link 0 to host 2 is down",
        "[ERROR] pve1: Node lost quorum",
        "[ERROR] pve3: Node lost quorum",
    ]
    assert titles() == problems, titles()

    # remote input: a recovers value that is no classified kind, or ends nothing notified
    forged = [
        ev(node="pve1", severity="info", kind="syslog.message", title=f"forged {n}",
           metadata={"app": "corosync", "recovers": value})
        for n, value in enumerate(
            ["bogus", "syslog.message", "link.down ", ["link.down"], 2, "backup.failed",
             "backup.ok", "node.offline"]
        )
    ]  # fmt: skip
    await publish(js, *forged)
    published += len(forged)
    await wait_until(lambda: _settled(service) >= published)
    await asyncio.sleep(0.5)  # a wrong notification would be on its way by now
    assert titles() == problems, titles()

    await send(*on("pve1", LINK_BACK), *on("pve3", LINK_BACK))
    await wait_until(lambda: len(hook.requests) >= 4)
    await send(*on("pve1", QUORUM_BACK), *on("pve3", QUORUM_BACK))
    await wait_until(lambda: len(hook.requests) >= 6)
    ends = [
        "[INFO] Cluster link 0 to host 2 is up again",
        "[NOTICE] pve1: Quorum regained",
        "[NOTICE] pve3: Quorum regained",
    ]
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    assert titles() == problems + ends, titles()
    for request, problem in zip(hook.requests[3:], problems, strict=True):
        body = request.json
        resolved = problem.split("] ", 1)[1].removeprefix("pve1: ").removeprefix("pve3: ")
        assert body["incident"]["resolves"]["title"] == resolved, body["incident"]
        assert any(line.startswith(f"resolves: {resolved} (since ") for line in
                   body["body"].splitlines()), body["body"]  # fmt: skip

    # the link fails again: a new alert (not a repeat of the resolved one), its end told again
    await send(*on("pve1", LINK_LOST[:1]))
    await wait_until(lambda: len(hook.requests) >= 7)
    await send(*on("pve1", LINK_BACK[:1]))
    await wait_until(lambda: len(hook.requests) >= 8)
    await asyncio.sleep(0.5)
    assert titles()[6:] == [problems[0], ends[0]], titles()
    again = hook.requests[6].json
    assert again["incident"]["resolved"] is None
    assert "ongoing since" not in again["body"], again["body"]


def _ha_crm(at: datetime, text: str) -> bytes:
    """A pve-ha-crm line of the CRM master pve1 (pve-ha-manager src/PVE/HA/NodeStatus.pm
    ``set_node_state``: ``node 'pve2': state changed from 'X' => 'Y'``), daemon.info."""
    return f"<30>1 {at.isoformat()} pve1 pve-ha-crm 1502 - - {text}".encode()


def _received(event: Event) -> Event:
    """``event`` as received when it happened (the test's reports are an hour old)."""
    return Event.model_validate({**event.model_dump(), "received_at": event.timestamp})


def _api_nodes(taken_at: float, prev: dict[str, str], cur: dict[str, str]) -> list[Event]:
    """ingest-pve-ws's diff of two /cluster/resources polls (``diff.py``), as its watcher
    gives them (the second poll at ``taken_at``)."""
    from proxbus_ingest_pve_ws.diff import Snapshot, diff_snapshots
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    a = Snapshot(taken_at=taken_at - 10, nodes=prev)
    b = Snapshot(taken_at=taken_at, nodes=cur)
    site = SyslogSettings().proxbus_site  # one site for both ingest services
    return diff_snapshots(a, b, [], cluster="lab", site=site)


@pytest.mark.parametrize("sources", ["syslog-first", "api-first", "syslog-only", "api-only"])
async def test_a_nodes_return_is_told_once_whichever_ingest_services_report_it(
    dispatcher, sink, js, sources: str
) -> None:
    # With both ingest services (the default stack) pve2's return is two reports: the CRM's
    # "node 'pve2': state changed from 'unknown' => 'online'" (ingest-syslog: ha.state, with
    # metadata.recovers = node.offline) and the API watcher's "Node pve2 is back online"
    # (node.offline, resolved). The HA line's recovers did nothing (only plain lines' did) and
    # each was notified: the return told twice. The first report tells it (the HA line as
    # resolving the node.offline alert), the second, in either order, is a repeat of that end.
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    hook = await sink()
    service = await dispatcher(None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook")
    pipeline = Pipeline(SyslogSettings())
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    published = 0

    async def send(*events: Event) -> None:
        nonlocal published
        for one in events:  # one at a time: each decided after the last
            await publish(js, _received(one))
            published += 1
            await wait_until(lambda n=published: _settled(service) >= n)

    def syslog(seconds: int, text: str) -> Event:
        frame = Frame(_ha_crm(start + timedelta(seconds=seconds), text))
        (event,) = pipeline.process([frame], "udp", "127.0.0.1")
        return event

    def api(seconds: int, prev: dict[str, str], cur: dict[str, str]) -> list[Event]:
        return _api_nodes((start + timedelta(seconds=seconds)).timestamp(), prev, cur)

    def titles() -> list[str]:
        return [r.json["title"] for r in hook.requests]

    up, down = {"pve1": "online", "pve2": "online"}, {"pve1": "online", "pve2": "offline"}
    with_syslog, with_api = sources != "api-only", sources != "syslog-only"
    if with_syslog:
        await send(syslog(0, "node 'pve2': state changed from 'online' => 'unknown'"))
    if with_api:
        await send(*api(5, up, down))
    await wait_until(lambda: len(hook.requests) >= 1)
    offline = titles()
    assert len(offline) == 1, offline
    assert "Node pve2 is offline" in offline[0], offline

    ha_back = syslog(300, "node 'pve2': state changed from 'unknown' => 'online'")
    (api_back,) = api(305, down, up)
    assert (ha_back.kind, ha_back.node) == ("ha.state", "pve2")
    assert ha_back.metadata["recovers"] == "node.offline"
    assert (api_back.kind, api_back.metadata["resolved"]) == ("node.offline", True)

    def in_order(ha: Event, api: Event) -> list[Event]:
        return {
            "syslog-first": [ha, api],
            "api-first": [api, ha],
            "syslog-only": [ha],
            "api-only": [api],
        }[sources]

    returns = in_order(ha_back, api_back)
    await send(*returns)
    if with_api and with_syslog:
        # the cluster log's copy of the HA line (ingest-pve-ws polls /cluster/log), last: a
        # repeat too
        from proxbus_ingest_pve_ws.tasks import LogEntry, log_event

        entry = LogEntry(uid=7, time=int(ha_back.timestamp.timestamp()), node="pve1", pid=1502,
                         tag="pve-ha-crm", pri=6, user="root@pam",
                         msg="node 'pve2': state changed from 'unknown' => 'online'")  # fmt: skip
        copy = log_event(entry, cluster="lab", site=ha_back.site)
        assert (copy.fingerprint, copy.metadata["recovers"]) == (
            ha_back.fingerprint,
            "node.offline",
        )
        await send(copy)
    await wait_until(lambda: len(hook.requests) >= 2)
    await asyncio.sleep(0.5)  # a second notification of the return would be on its way by now
    told = {
        "syslog-first": "[INFO] HA node pve2: unknown → online",
        "api-first": "[INFO] Node pve2 is back online",
        "syslog-only": "[INFO] HA node pve2: unknown → online",
        "api-only": "[INFO] Node pve2 is back online",
    }[sources]
    assert titles() == [*offline, told], titles()
    back = hook.requests[1].json
    if returns[0] is ha_back:
        # told as the end of the alert, on the routes that told it
        assert back["incident"]["resolves"]["kind"] == "node.offline", back["incident"]
        assert any(line.startswith("resolves: Node pve2 is offline") for line in
                   back["body"].splitlines()), back["body"]  # fmt: skip
    else:
        assert back["incident"]["state"] == "resolved", back["incident"]

    # pve2 fails again (past the incident window): a new alert, whichever report ended the
    # last one, and its return is told again
    if with_syslog:
        await send(syslog(1000, "node 'pve2': state changed from 'online' => 'unknown'"))
    if with_api:
        await send(*api(1005, up, down))
    await wait_until(lambda: len(hook.requests) >= 3)
    (api_again,) = api(1305, down, up)
    await send(*in_order(syslog(1300, "node 'pve2': state changed from 'unknown' => 'online'"),
                         api_again))  # fmt: skip
    await wait_until(lambda: len(hook.requests) >= 4)
    await asyncio.sleep(0.5)
    assert titles()[2:] == [offline[0], told], titles()

    # and again within INCIDENT_WINDOW of that return: with ingest-pve-ws alone its "Node pve2
    # is offline" (no state of its own) joined the "back online" incident and was not told.
    # The API's report of the problem (metadata.resolved false) is the fingerprint's
    # unresolved state: offline → back online → offline are state changes; beside the HA
    # line's own state (unknown) it is the same problem, one alert; the next poll's copy of
    # the same outage (another watcher's, a new id) is a repeat
    if with_syslog:
        await send(syslog(1400, "node 'pve2': state changed from 'online' => 'unknown'"))
    if with_api:
        (api_down,) = api(1405, up, down)
        assert api_down.metadata["resolved"] is False
        copy_down = Event.model_validate(
            {**api_down.model_dump(exclude={"id"}), "timestamp": api_down.timestamp
             + timedelta(seconds=10)}
        )  # fmt: skip
        await send(api_down, copy_down)
    await wait_until(lambda: len(hook.requests) >= 5)
    (api_again,) = api(1705, down, up)
    await send(*in_order(syslog(1700, "node 'pve2': state changed from 'unknown' => 'online'"),
                         api_again))  # fmt: skip
    await wait_until(lambda: len(hook.requests) >= 6)
    await asyncio.sleep(0.5)
    assert titles()[4:] == [offline[0], told], titles()


@pytest.mark.parametrize("first", ["syslog", "api"])
async def test_a_receiver_not_told_the_nodes_return_still_gets_the_ha_line(
    dispatcher, sink, js, first: str
) -> None:
    # The phone gets warnings and worse (told "Node pve2 is offline", then its end); an "HA"
    # channel gets ha.state only (told "fence → unknown"). The HA line after the API's "back
    # online" repeats an end the phone was told, not the HA channel: it is told there.
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    phone, ha = await sink(), await sink()
    service = await dispatcher(
        f"""\
receivers:
  - {{name: phone, type: webhook, url: "{phone.url}/phone"}}
  - {{name: ha, type: webhook, url: "{ha.url}/ha"}}
route:
  receiver: phone
  routes:
    - {{receiver: phone, matchers: ["severity>=warning"], continue: true}}
    - {{receiver: ha, matchers: ["kind=ha.state"]}}
""",
        incident_window=600,
    )
    pipeline = Pipeline(SyslogSettings())
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def syslog(seconds: int, text: str) -> Event:
        frame = Frame(_ha_crm(start + timedelta(seconds=seconds), text))
        (event,) = pipeline.process([frame], "udp", "127.0.0.1")
        return _received(event)

    up, down = {"pve1": "online", "pve2": "online"}, {"pve1": "online", "pve2": "offline"}
    (api_down,) = _api_nodes((start + timedelta(seconds=5)).timestamp(), up, down)
    (api_back,) = _api_nodes((start + timedelta(seconds=305)).timestamp(), down, up)
    ha_back = syslog(300, "node 'pve2': state changed from 'unknown' => 'online'")
    reports = [
        syslog(0, "node 'pve2': state changed from 'online' => 'unknown'"),
        _received(api_down),
        # the fence's success: told to the phone (critical), not to the HA channel, which is
        # told it by the HA line (not held back from a receiver that was not told the fence)
        syslog(130, "fencing: acknowledged - got agent lock for node 'pve2'"),
        syslog(130, "node 'pve2': state changed from 'fence' => 'unknown'"),
        *([ha_back, _received(api_back)] if first == "syslog" else [_received(api_back), ha_back]),
    ]
    for n, one in enumerate(reports, start=1):
        await publish(js, one)
        await wait_until(lambda n=n: _settled(service) >= n)
    await wait_until(lambda: len(phone.requests) >= 3 and len(ha.requests) >= 2)
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    told_back = {
        "syslog": "[INFO] HA node pve2: unknown → online",
        "api": "[INFO] Node pve2 is back online",
    }[first]
    assert [r.json["title"] for r in phone.requests] == [
        "[WARNING] Node pve2 is offline (HA state online → unknown)",
        "[CRITICAL] Node pve2 fenced",
        told_back,
    ]
    assert [r.json["title"] for r in ha.requests] == [
        "[INFO] HA node pve2: fence → unknown",
        "[INFO] HA node pve2: unknown → online",
    ]


async def test_a_route_on_a_node_gets_the_ha_state_of_the_services_on_that_node(
    dispatcher, sink, js
) -> None:
    # An HA service's ha.state is about no node (one fingerprint per service whichever source
    # saw it: the service's node in metadata.service_node), so a route `node = pve2` no longer
    # got the state changes of the services on pve2: they fell to the catch-all. The node
    # matcher of a route reads the service's node when the event names no node.
    from proxbus_ingest_pve_ws.diff import Snapshot, diff_snapshots
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    pve1, pve2, rest = await sink(), await sink(), await sink()
    service = await dispatcher(
        f"""\
receivers:
  - {{name: pve1, type: webhook, url: "{pve1.url}/pve1"}}
  - {{name: pve2, type: webhook, url: "{pve2.url}/pve2"}}
  - {{name: rest, type: webhook, url: "{rest.url}/rest"}}
route:
  receiver: rest
  routes:
    - {{receiver: pve2, matchers: ["node=pve2"]}}
    - {{receiver: pve1, matchers: ["node=~pve1", "node!=pve2"]}}
""",
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    pipeline = Pipeline(SyslogSettings())

    def syslog(seconds: int, text: str) -> Event:
        frame = Frame(_ha_crm(start + timedelta(seconds=seconds), text))
        (event,) = pipeline.process([frame], "udp", "127.0.0.1")
        return _received(event)

    # the API's HA status: vm:101 on pve2 goes to error (diff.py: node None, service_node)
    site = SyslogSettings().proxbus_site
    t0 = (start + timedelta(seconds=10)).timestamp()
    ha_was = {"vm:101": {"state": "started", "node": "pve2.lab.example"}}
    ha_now = {"vm:101": {"state": "error", "node": "pve2.lab.example"}}
    (api_error,) = diff_snapshots(
        Snapshot(taken_at=t0 - 10, ha=ha_was), Snapshot(taken_at=t0, ha=ha_now), [],
        cluster="lab", site=site,
    )  # fmt: skip
    on_pve1 = syslog(
        20, "service 'vm:100': state changed from 'recovery' to 'started'  (node = pve1)"
    )
    no_node = syslog(30, "service 'vm:102': state changed from 'started' to 'fence'")
    assert (api_error.node, api_error.metadata["service_node"]) == (None, "pve2")
    assert (on_pve1.node, on_pve1.metadata["service_node"]) == (None, "pve1")
    assert no_node.node is None
    assert "service_node" not in no_node.metadata
    reports = [_received(api_error), on_pve1, no_node]
    await publish(js, *reports)
    await wait_until(lambda: _settled(service) >= len(reports))
    await wait_until(lambda: len(pve1.requests) + len(pve2.requests) + len(rest.requests) >= 3)
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    assert [r.json["event"]["vmid"] for r in pve2.requests] == [101]
    assert [r.json["event"]["vmid"] for r in pve1.requests] == [100]
    assert [r.json["event"]["vmid"] for r in rest.requests] == [102]
    # what the event says is unchanged: about no node, the service's node in its metadata
    assert pve2.requests[0].json["event"]["node"] is None
