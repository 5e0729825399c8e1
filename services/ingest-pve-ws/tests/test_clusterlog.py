"""/cluster/log entries through the shared rule table: fencing is about the fenced node."""

from __future__ import annotations

from typing import Any

import pytest
from proxbus_ingest_pve_ws.clusterlog import RULES
from proxbus_ingest_pve_ws.tasks import log_event, parse_log_entry


def entry(tag: str, msg: str, node: str = "pve1", pri: int = 6, uid: int = 7) -> dict[str, Any]:
    """One ``GET /cluster/log`` item (pve-cluster src/pmxcfs/logger.c clog_dump_json)."""
    return {
        "uid": uid,
        "time": 1764468010,
        "pri": pri,
        "tag": tag,
        "pid": 1502,
        "node": node,
        "user": "root@pam",
        "msg": msg,
    }


def event(item: dict[str, Any]) -> Any:
    parsed = parse_log_entry(item)
    assert parsed is not None
    return log_event(parsed, cluster="lab", site="lab")


def test_fencing_acknowledged_becomes_node_fenced_about_the_fenced_node() -> None:
    ev = event(entry("pve-ha-crm", "fencing: acknowledged - got agent lock for node 'pve3'"))
    assert (ev.kind, ev.node, ev.severity) == ("node.fenced", "pve3", "critical")
    assert ev.metadata["reporter"] == "pve1"
    assert ev.title == "Node pve3 fenced"


@pytest.mark.parametrize(
    ("msg", "kind", "node", "vmid"),
    [
        ("node 'pve3': state changed from 'unknown' => 'fence'", "node.fencing", "pve3", None),
        ("node 'pve3': state changed from 'online' => 'unknown'", "node.offline", "pve3", None),
        ("node 'pve3': state changed from 'fence' => 'unknown'", "ha.state", "pve3", None),
        ("node 'pve3': state changed from 'unknown' => 'online'", "ha.state", "pve3", None),
        # a service's state is about no node (the CRM master logs it; tests/
        # test_ha_across_sources.py: the API diff and syslog agree)
        ("service 'vm:115': state changed from 'started' to 'fence'", "ha.state", None, 115),
        ("successfully acquired lock 'ha_agent_pve3_lock'", "syslog.message", "pve1", None),
    ],
)
def test_ha_manager_entries(msg: str, kind: str, node: str | None, vmid: int | None) -> None:
    ev = event(entry("pve-ha-crm", msg))
    assert (ev.kind, ev.node, ev.vmid) == (kind, node, vmid)


def test_other_entries_keep_their_reporter() -> None:
    ev = event(entry("pmxcfs", "[status] notice: node lost quorum", node="pve2", pri=5))
    assert (ev.kind, ev.node, ev.severity) == ("quorum.lost", "pve2", "error")
    ev = event(entry("corosync", "  [KNET  ] link: host: 3 link: 0 is down", node="pve2"))
    assert (ev.kind, ev.node, ev.severity) == ("link.down", "pve2", "warning")
    ev = event(
        entry("pvedaemon", "authentication failure; rhost=::ffff:192.0.2.5 user=root@pam msg=x")
    )
    assert (ev.kind, ev.node) == ("auth.failed", "pve1")
    ev = event(entry("pvedaemon", "worker 2240 finished"))
    assert (ev.kind, ev.node, ev.title) == (
        "syslog.message",
        "pve1",
        "pvedaemon: worker 2240 finished",
    )


def test_a_fencing_line_from_another_tag_is_not_trusted() -> None:
    ev = event(entry("someone", "fencing: acknowledged - got agent lock for node 'pve3'"))
    assert (ev.kind, ev.node) == ("syslog.message", "pve1")


def test_every_cluster_log_rule_is_exercised() -> None:
    lines = [
        ("pve-ha-crm", "fencing: acknowledged - got agent lock for node 'pve3'"),
        ("pve-ha-crm", "node 'pve3': state changed from 'unknown' => 'fence'"),
        ("pve-ha-crm", "node 'pve3': state changed from 'online' => 'unknown'"),
        ("pve-ha-crm", "node 'pve3': state changed from 'unknown' => 'online'"),
        ("pve-ha-lrm", "service 'vm:115': state changed from 'started' to 'fence'"),
        ("pmxcfs", "[status] notice: node lost quorum"),
        ("corosync", "  [KNET  ] link: host: 3 link: 0 is down"),
        ("corosync", "  [KNET  ] rx: host: 3 link: 0 is up"),
        ("pveproxy", "authentication failure; rhost=192.0.2.5 user=x@pve msg=y"),
    ]
    used = {event(entry(tag, msg)).metadata.get("rule") for tag, msg in lines}
    assert used == {r.name for r in RULES}


@pytest.mark.parametrize(
    ("tag", "msg", "title"),
    [
        ("pmxcfs", "[status] notice: node lost quorum", "Node lost quorum"),
        (
            "corosync",
            "  [KNET  ] link: host: 3 link: 0 is down",
            "Cluster link 0 to host 3 is down",
        ),
        (
            "pveproxy",
            "authentication failure; rhost=::ffff:192.0.2.5 user=x@pve msg=no such user",
            "Authentication failure for x@pve from ::ffff:192.0.2.5",
        ),
        (
            "pvedaemon",
            "authentication failure; rhost=192.0.2.9 msg=y",
            "Authentication failure from 192.0.2.9",
        ),
        ("pvedaemon", "authentication failure", "Authentication failure"),
    ],
)
def test_classified_entries_are_titled_as_syslog_titles_them(
    tag: str, msg: str, title: str
) -> None:
    """The same words as ingest-syslog's titles for the same lines (its rules.py: quorum-lost,
    knet-link-down, pve-auth): not the daemon's '[status] notice:' prefix, which a notification
    shows as '[ERROR] pve2: pmxcfs: [status] notice: node lost quorum'."""
    ev = event(entry(tag, msg))
    assert ev.title == title


@pytest.mark.parametrize(
    "msg",
    [
        "  [KNET  ] link: host: 3 link: 0 is down",
        "  [KNET  ] link: host: 2 link: 1 is down",
        "  [KNET  ] rx: host: 3 link: 0 is up",
        "  [KNET  ] heartbeat: host: 2 link: 1 is up",
    ],
)
def test_a_knet_line_is_one_fingerprint_through_both_ingest_services(msg: str) -> None:
    """The same corosync line (kronosnet threads_heartbeat.c, threads_rx.c) in the cluster log
    and through ingest-syslog's pipeline: one kind, subject (the peer and the link) and
    fingerprint, so a link's down is one alert whichever service saw it, and its up ends it."""
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings

    ours = event(entry("corosync", msg, node="pve2"))
    line = f"<30>1 2026-11-30T03:00:10Z pve2 corosync 1180 - - {msg}".encode()
    (theirs,) = Pipeline(Settings(proxbus_site="lab")).process([Frame(line)], "udp", "127.0.0.1")
    assert ours.metadata["subject_id"] == theirs.metadata["subject_id"]
    assert ours.metadata["subject_id"].startswith("knet host ")
    assert (ours.kind, ours.node, ours.title, ours.metadata.get("recovers")) == (
        theirs.kind, theirs.node, theirs.title, theirs.metadata.get("recovers"))  # fmt: skip
    assert ours.fingerprint == theirs.fingerprint


def test_each_knet_link_is_its_own_fingerprint_and_its_up_names_it() -> None:
    down = [event(entry("corosync", f"  [KNET  ] link: host: {h} link: {n} is down"))
            for h, n in ((2, 0), (3, 0), (2, 1))]  # fmt: skip
    assert len({e.fingerprint for e in down}) == 3
    up = event(entry("corosync", "  [KNET  ] rx: host: 3 link: 0 is up"))
    assert (up.kind, up.title, up.metadata["recovers"], up.metadata["subject_id"]) == (
        "syslog.message", "Cluster link 0 to host 3 is up again", "link.down",
        down[1].metadata["subject_id"])  # fmt: skip
