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
    # a lost knet peer is about no node (every survivor logs it): its reporter named
    assert (ev.kind, ev.node, ev.severity) == ("link.down", None, "warning")
    assert ev.metadata["reporter"] == "pve2"
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
    and through ingest-syslog's pipeline: one kind, subject (the peer) and fingerprint, so a
    peer's loss is one alert whichever service saw it, and its up ends it."""
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
    # about no node (one alert whatever the survivor), the survivor named by both alike
    assert ours.node is None
    assert ours.metadata["reporter"] == theirs.metadata["reporter"] == "pve2"


# pve1 loses host 2 over its two links and host 3 over one; host 2's link 0 comes back first
PEERS_LOST_AND_BACK = [
    (0, "  [KNET  ] link: host: 2 link: 0 is down"),
    (1, "  [KNET  ] link: host: 2 link: 1 is down"),
    (5, "  [KNET  ] link: host: 3 link: 0 is down"),
    (60, "  [KNET  ] rx: host: 2 link: 0 is up"),
    (90, "  [KNET  ] rx: host: 2 link: 1 is up"),
    (95, "  [KNET  ] rx: host: 3 link: 0 is up"),
]


def test_a_peer_lost_over_two_links_is_one_alert_in_the_cluster_log_as_in_syslog() -> None:
    """The cluster log of every node carries corosync's knet lines too: with the watcher's
    memory (``KnetLinks``, shared with ingest-syslog's classifier) a peer lost over two links
    is one alert, the first link's up ends nothing (a plain line naming the link still down),
    the peer's last link's up ends it; each line is what ingest-syslog makes of it."""
    from proxbus_events.knet import KnetLinks
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings

    links = KnetLinks()
    pipeline = Pipeline(Settings(proxbus_site="lab"))
    ours, theirs = [], []
    for uid, (dt, msg) in enumerate(PEERS_LOST_AND_BACK):
        item = entry("corosync", msg, uid=uid) | {"time": 1764468010 + dt}
        parsed = parse_log_entry(item)
        assert parsed is not None
        ours.append(log_event(parsed, cluster="lab", site="lab", links=links))
        stamp = (
            f"2026-11-30T02:00:{10 + dt:02d}Z" if dt < 50 else f"2026-11-30T02:01:{dt - 50:02d}Z"
        )
        line = f"<30>1 {stamp} pve1 corosync 1180 - - {msg}".encode()
        theirs += pipeline.process([Frame(line)], "udp", "127.0.0.1")

    def facts(e: Any) -> tuple[Any, ...]:
        m = e.metadata
        return (e.kind, e.title, m["subject_id"], m.get("detail_of"), m.get("recovers"),
                m.get("links_down"))  # fmt: skip

    assert [facts(e) for e in ours] == [
        ("link.down", "Cluster link 0 to host 2 is down", "knet host 2", None, None, None),
        ("syslog.message", "Cluster link 1 to host 2 is down", "knet host 2", "link.down", None,
         None),
        ("link.down", "Cluster link 0 to host 3 is down", "knet host 3", None, None, None),
        ("syslog.message", "Cluster link 0 to host 2 is up again; link 1 still down",
         "knet host 2", None, None, [1]),
        ("syslog.message", "Cluster link 1 to host 2 is up again", "knet host 2", None,
         "link.down", None),
        ("syslog.message", "Cluster link 0 to host 3 is up again", "knet host 3", None,
         "link.down", None),
    ]  # fmt: skip
    assert [facts(e) for e in theirs] == [facts(e) for e in ours]
    assert [e.fingerprint for e in theirs] == [e.fingerprint for e in ours]
    assert ours[0].fingerprint != ours[2].fingerprint  # one alert per peer
    # without the watcher's memory each line stands alone (a down alerts, an up ends)
    alone = event(entry("corosync", PEERS_LOST_AND_BACK[3][1]))
    assert alone.metadata["recovers"] == "link.down"


async def test_the_watcher_remembers_a_peers_links_down_across_polls(
    services: Any, lab: Any, js: Any
) -> None:
    """The watcher keeps the memory between polls (the simulator's cluster log, over the
    real gateway and broker): link 1's down a poll after link 0's is a detail of host 2's
    alert, link 0's up ends nothing, link 1's up ends it."""
    from proxbus_ingest_pve_ws.testing import stored_events, wait_until

    svc = await services.start(event_ws_enabled=True, pve_ws_poll_seconds=0.2)
    [watcher] = svc.watchers

    async def cycles(n: int) -> None:
        target = watcher.cycles + n

        async def done() -> bool:
            return bool(watcher.cycles >= target)

        await wait_until(done)

    async def knet() -> list[Any]:
        return [e for e in await stored_events(js) if "peer_nodeid" in e.metadata]

    def log(msg: str) -> None:
        lab.sim.cluster_log.add("pve1", 1180, "corosync", 6, "root@pam", msg)

    await cycles(1)  # the first poll takes the log as it is (baseline)
    log("  [KNET  ] link: host: 2 link: 0 is down")
    await cycles(2)
    log("  [KNET  ] link: host: 2 link: 1 is down")
    await cycles(2)
    log("  [KNET  ] rx: host: 2 link: 0 is up")
    await cycles(2)
    log("  [KNET  ] rx: host: 2 link: 1 is up")

    async def all_four() -> bool:
        return len(await knet()) >= 4

    await wait_until(all_four)
    got = [(e.kind, e.metadata.get("detail_of"), e.metadata.get("recovers"),
            e.metadata.get("links_down")) for e in await knet()]  # fmt: skip
    assert got == [
        ("link.down", None, None, None),
        ("syslog.message", "link.down", None, None),
        ("syslog.message", None, None, [1]),
        ("syslog.message", None, "link.down", None),
    ], got
