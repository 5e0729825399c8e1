"""One HA happening seen by syslog, the cluster log and the API watcher is one fingerprint.

Pure (no servers): ingest-syslog's pipeline on the lines pve-ha-manager writes, ingest-pve-ws's
cluster-log classifier and its ``/cluster/ha/status/current`` diff, on the same happening.

What the sources carry (pve-ha-manager):
- ``src/PVE/HA/Manager.pm`` ``change_service_state`` logs ``service 'vm:100': state changed
  from 'X' to 'Y'`` from the CRM *master* (whichever node holds the manager lock, often not
  the service's node, and another one after the master itself was fenced); the line names
  the service's node only when the change sets it (``  (node = pve1)``: recovery → started,
  request_start, migrate), not for started → fence or fence → recovery.
- ``src/PVE/HA/LRM.pm`` logs ``starting service vm:100`` / ``service status vm:100 started``
  on the node that runs it.
- ``src/PVE/API2/HA/Status.pm`` lists each service with ``node`` = the manager's service
  node (the fenced node until recovery, the new node after).
- ``src/PVE/HA/Env/PVE2.pm`` ``log`` writes syslog only (no ``PVE::Cluster::log_msg``): the
  HA manager's lines do not reach ``/cluster/log`` on a real cluster; the cluster-log rules
  exist for entries that do carry them and must agree.
So no node is named by every source: a service's ``ha.state`` carries no node (the service is
identified by its vmid, unique in the cluster), the service's node goes in
``metadata.service_node`` where the source knows it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from proxbus_events import Event
from proxbus_ingest_pve_ws.diff import Snapshot, Thresholds, build_snapshot, diff_snapshots
from proxbus_ingest_pve_ws.tasks import LogEntry, log_event
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.settings import Settings

WHEN = datetime(2026, 11, 30, 3, tzinfo=UTC)
SITE = "lab"


def syslog_event(line: str) -> Event:
    result = Pipeline(Settings(proxbus_site=SITE)).event_or_rejection(Frame(line.encode()), WHEN)
    assert isinstance(result, Event), result
    return result


def crm(msg: str, host: str = "pve1") -> Event:
    return syslog_event(f"<30>Nov 30 03:00:10 {host} pve-ha-crm[1502]: {msg}")


def lrm(msg: str, host: str) -> Event:
    return syslog_event(f"<30>Nov 30 03:00:10 {host} pve-ha-lrm[1610]: {msg}")


def clusterlog_event(msg: str, reporter: str = "pve1", tag: str = "pve-ha-crm") -> Event:
    entry = LogEntry(
        uid=7, time=1764471610, node=reporter, pid=1502, tag=tag, pri=6, user="root@pam", msg=msg
    )
    return log_event(entry, cluster="lab", site=SITE)


def _snap(at: float, prev: Snapshot | None, ha: list[dict[str, Any]]) -> Snapshot:
    return build_snapshot([], ha, now=at, previous=prev, thresholds=Thresholds())


def api_events(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[Event]:
    a = _snap(1000.0, None, before)
    return diff_snapshots(a, _snap(1010.0, a, after), [], cluster="lab", site=SITE)


def service(state: str, node: str, sid: str = "vm:100") -> dict[str, Any]:
    # /cluster/ha/status/current's service entry (pve-9.1.json; API2/HA/Status.pm)
    return {"type": "service", "sid": sid, "node": node, "state": state, "crm_state": state}


def api_service_event(old: tuple[str, str], new: tuple[str, str]) -> Event:
    (event,) = api_events([service(*old)], [service(*new)])
    return event


def verbose(crm_state: str, state: str, node: str, sid: str = "vm:100") -> dict[str, Any]:
    """A service entry whose verbose state is not the CRM's (Tools.pm
    get_verbose_service_state: 'started' not yet running is 'starting')."""
    return {**service(crm_state, node, sid), "state": state}


def test_a_fenced_service_is_one_fingerprint_from_syslog_cluster_log_and_api() -> None:
    # pve2 fails; pve1 is the CRM master; vm:100 ran on pve2.
    by_syslog = crm("service 'vm:100': state changed from 'started' to 'fence'")
    by_log = clusterlog_event("service 'vm:100': state changed from 'started' to 'fence'")
    by_api = api_service_event(("started", "pve2"), ("fence", "pve2"))
    for ev in (by_syslog, by_log, by_api):
        assert (ev.kind, ev.vmid, ev.node) == ("ha.state", 100, None), ev
    assert by_syslog.fingerprint == by_log.fingerprint == by_api.fingerprint
    assert by_api.metadata["service_node"] == "pve2"
    assert "service_node" not in by_syslog.metadata  # the line does not name it
    assert by_syslog.metadata["reporter"] == "pve1"


def test_a_recovered_service_is_the_same_fingerprint_whichever_node_reports_it() -> None:
    # The master may differ from the one that saw the fence (pve2 was the master and fenced).
    fenced = crm("service 'vm:100': state changed from 'started' to 'fence'", host="pve2")
    recovery = crm("service 'vm:100': state changed from 'fence' to 'recovery'", host="pve3")
    recover = crm("recover service 'vm:100' from fenced node 'pve2' to node 'pve1'", host="pve3")
    started = crm(
        "service 'vm:100': state changed from 'recovery' to 'started'  (node = pve1)", host="pve3"
    )
    lrm_start = lrm("starting service vm:100", host="pve1")
    lrm_status = lrm("service status vm:100 started", host="pve1")
    api_started = api_service_event(("recovery", "pve2"), ("started", "pve1"))
    api_recovery = api_service_event(("fence", "pve2"), ("recovery", "pve2"))
    events = (fenced, recovery, recover, started, lrm_start, lrm_status, api_started, api_recovery)
    assert {(ev.kind, ev.node, ev.vmid) for ev in events} == {("ha.state", None, 100)}
    assert len({ev.fingerprint for ev in events}) == 1
    # where a source names the service's node, it is kept
    assert started.metadata["service_node"] == "pve1"
    assert recover.metadata["service_node"] == "pve1"
    assert recover.metadata["fenced_node"] == "pve2"
    assert lrm_start.metadata["service_node"] == "pve1"
    assert api_started.metadata["service_node"] == "pve1"
    # with no node on the event, the title says where the source knows it
    assert started.title == "HA service vm:100: recovery → started on pve1"
    assert recovery.title == "HA service vm:100: fence → recovery"
    assert api_started.title == "HA vm:100 is started on pve1 (was recovery)"
    assert (started.metadata["old_state"], started.metadata["new_state"]) == (
        "recovery",
        "started",
    )
    # another service is another fingerprint
    other = crm("service 'ct:101': state changed from 'started' to 'fence'")
    assert other.fingerprint != fenced.fingerprint


def test_a_node_going_offline_is_one_fingerprint_from_syslog_cluster_log_and_api() -> None:
    by_syslog = crm("node 'pve2': state changed from 'online' => 'unknown'")
    by_log = clusterlog_event("node 'pve2': state changed from 'online' => 'unknown'")
    a = Snapshot(taken_at=1000.0, nodes={"pve1": "online", "pve2": "online"})
    b = Snapshot(taken_at=1010.0, nodes={"pve1": "online", "pve2": "offline"})
    (by_api,) = diff_snapshots(a, b, [], cluster="lab", site=SITE)
    for ev in (by_syslog, by_log, by_api):
        assert (ev.kind, ev.node) == ("node.offline", "pve2"), ev
    assert by_syslog.fingerprint == by_log.fingerprint == by_api.fingerprint
    # fencing from syslog and the cluster log: the fenced node, whoever reports it
    fencing = crm("node 'pve2': state changed from 'unknown' => 'fence'", host="pve3")
    assert (fencing.kind, fencing.node) == ("node.fencing", "pve2")
    assert (
        fencing.fingerprint
        == clusterlog_event("node 'pve2': state changed from 'unknown' => 'fence'").fingerprint
    )


def test_the_api_reports_the_crms_state_as_syslog_does() -> None:
    """The dispatcher tells a state change when an event's state differs from its
    incident's (``reported_state``): the API must report the state the CRM's line names,
    not the verbose one, or one recovery is told as recovery → started (syslog), then
    'starting' and 'started' again (the API's polls)."""
    from proxbus_dispatcher.stages.incidents import reported_state

    by_syslog = crm(
        "service 'vm:100': state changed from 'recovery' to 'started'  (node = pve1)", host="pve3"
    )
    (by_api,) = api_events([service("recovery", "pve2")], [verbose("started", "starting", "pve1")])
    assert reported_state(by_syslog) == reported_state(by_api) == "started"
    assert by_api.metadata["verbose_state"] == "starting"
    assert by_api.fingerprint == by_syslog.fingerprint
    # the verbose state moving on (now running) is no CRM state change: nothing to tell
    assert api_events([verbose("started", "starting", "pve1")], [service("started", "pve1")]) == []
    # an entry without crm_state (no manager status for it yet) keeps the verbose state
    queued = {"type": "service", "sid": "vm:100", "node": "pve1", "state": "queued"}
    (added,) = api_events([queued], [service("started", "pve1")])
    assert (added.metadata["previous_state"], added.metadata["state"]) == ("queued", "started")


def test_a_nodes_return_names_the_node_offline_it_ends() -> None:
    """A node's return is two events when both ingest services run, by the contract's kinds:
    the CRM's ``node 'pve2': state changed from 'unknown' => 'online'`` is ``ha.state``
    (DESIGN.md: HA node changes other than → unknown/fence), the API's is ``node.offline``
    with ``resolved``. Both come from the cluster membership (NodeStatus.pm ``update``:
    ``unknown``/``gone`` → ``online`` when the node is online in the membership, the source
    of ``/cluster/resources``' node status), so the syslog line says which alert it ends
    (``metadata.recovers``, as knet's link up does) and that alert's fingerprint is the API's.
    """
    from proxbus_events import compute_fingerprint

    down = crm("node 'pve2': state changed from 'online' => 'unknown'")
    back = crm("node 'pve2': state changed from 'unknown' => 'online'", host="pve3")
    a = Snapshot(taken_at=1000.0, nodes={"pve1": "online", "pve2": "offline"})
    b = Snapshot(taken_at=1010.0, nodes={"pve1": "online", "pve2": "online"})
    (api_back,) = diff_snapshots(a, b, [], cluster="lab", site=SITE)
    assert (back.kind, back.node, back.metadata["recovers"]) == ("ha.state", "pve2", "node.offline")
    assert (api_back.kind, api_back.metadata["resolved"]) == ("node.offline", True)
    ended = compute_fingerprint(back.metadata["recovers"], back.site, back.node, None, "")
    assert ended == down.fingerprint == api_back.fingerprint
    # back after being removed from the member list ('gone') ends it too
    gone = crm("node 'pve2': state changed from 'gone' => 'online'")
    assert gone.metadata["recovers"] == "node.offline"
    # a maintenance mode ending, a fence ending in unknown, are no return
    for line in (
        "node 'pve2': state changed from 'maintenance' => 'online'",
        "node 'pve2': state changed from 'fence' => 'unknown'",
        "node 'pve2': state changed from 'online' => 'maintenance'",
    ):
        assert "recovers" not in crm(line).metadata, line
    assert (
        clusterlog_event("node 'pve2': state changed from 'unknown' => 'online'").metadata[
            "recovers"
        ]
        == "node.offline"
    )


def _fencing_mail(verb: str) -> bytes:
    # pve-ha-manager src/templates/default/fencing-subject.txt.hbs, sent by the master pve1
    return (
        f"Subject: {verb} node 'pve2'\nFrom: Proxmox VE <root@pve1.lab.example>\n"
        "Message-Id: <1@pve1.lab.example>\n\nThe node 'pve2' in cluster 'lab' failed\n"
    ).encode()


def _fencing_hook(verb: str, status: str) -> Event:
    from proxbus_ingest_pve_ws.notification import webhook_event

    # NodeStatus.pm send_fence_state_email: metadata fields type => 'fencing', hostname =>
    # the failed node; the subject template above
    return webhook_event(
        {
            "title": f"{verb} node 'pve2'",
            "message": f"{status}\nThe node 'pve2' in cluster 'lab' failed",
            "severity": "error",
            "timestamp": 1764471610,
            "fields": {"type": "fencing", "hostname": "pve2"},
        },
        site=SITE,
    )


def test_a_fence_is_one_fingerprint_per_step_from_syslog_cluster_log_mail_and_webhook() -> None:
    """NodeStatus.pm ``fence_node``: the state change to 'fence' with the 'Trying to fence'
    notification, then 'fencing: acknowledged - got agent lock' with 'Successfully fenced';
    every source names the failed node, whoever the master is."""
    from proxbus_ingest_email.intake import mail_to_event

    trying = [
        crm("node 'pve2': state changed from 'unknown' => 'fence'"),
        clusterlog_event("node 'pve2': state changed from 'unknown' => 'fence'", "pve3"),
        mail_to_event(_fencing_mail("Trying to fence"), site=SITE),
        _fencing_hook("Trying to fence", "Try to fence node 'pve2'"),
    ]
    fenced = [
        crm("fencing: acknowledged - got agent lock for node 'pve2'", host="pve3"),
        clusterlog_event("fencing: acknowledged - got agent lock for node 'pve2'"),
        mail_to_event(_fencing_mail("Successfully fenced"), site=SITE),
        _fencing_hook(
            "Successfully fenced", "fencing: acknowledged - got agent lock for node 'pve2'"
        ),
    ]
    for events, kind in ((trying, "node.fencing"), (fenced, "node.fenced")):
        assert all(isinstance(ev, Event) for ev in events), events
        got = {(ev.kind, ev.node, ev.vmid) for ev in events if isinstance(ev, Event)}
        assert got == {(kind, "pve2", None)}, events
        assert len({ev.fingerprint for ev in events if isinstance(ev, Event)}) == 1
