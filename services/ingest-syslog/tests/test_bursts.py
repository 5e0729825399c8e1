"""Multi-line happenings other than a disk's (tests/test_disk_burst.py) and an OOM kill's
(tests/test_oom_followon.py): each real burst, fed through the pipeline in order, notifies
once with the dispatcher's seed routes; its other lines stay on the bus as details.

Each burst is written from its project's own sources, cited per burst.
"""

from __future__ import annotations

from datetime import UTC, datetime

from proxbus_events import Event, Severity
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.settings import Settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _events(lines: list[str], pipeline: Pipeline | None = None) -> list[Event]:
    pipeline = pipeline or Pipeline(Settings())
    out = []
    for line in lines:
        result = pipeline.event_or_rejection(Frame(line.encode()), NOW)
        assert isinstance(result, Event), result
        out.append(result)
    return out


def _notifying(events: list[Event]) -> list[tuple[str, str]]:
    """What the dispatcher's seed routes notify (services/dispatcher seed.py seed_config):
    classified kinds from MIN_SEVERITY (info), plain lines from SEED_SYSLOG_MIN_SEVERITY
    (notice); JetStream keeps one event per id."""
    seen: dict[str, tuple[str, str]] = {}
    for e in events:
        floor = Severity.NOTICE if e.kind == "syslog.message" else Severity.INFO
        if e.severity.rank >= floor.rank:
            seen.setdefault(e.id, (e.kind, e.title))
    return list(seen.values())


def _line(pri: int, time: str, host: str, tag: str, text: str) -> str:
    return f"<{pri}>Nov 30 {time} {host} {tag}: {text}"


# --- a guest's QEMU crashing -----------------------------------------------------------------
# linux arch/x86/mm/fault.c show_signal_msg (KERN_INFO for a pid > 1); qemu-server
# src/qmeventd/qmeventd.c (EOF on the QMP socket → `qm cleanup <vmid> 0 0`), src/PVE/CLI/qm.pm
# cleanup (`warn "Starting cleanup for $vmid"`, `warn "Finished cleanup for $vmid"`, stderr of
# qmeventd's child), pve-common src/PVE/Network.pm (tap/fwbr ports leaving the bridges),
# systemd src/core/unit.c (the scope ending).
VM_100_CRASH = [
    _line(6, "11:00:00", "pve1", "kernel",
          "kvm[41821]: segfault at 8 ip 000055b1c1a3f2d4 sp 00007ffd3c1f0a80 error 4 in "
          "qemu-system-x86_64[55b1c1600000+6b3000] likely on CPU 3 (core 3, socket 0)"),
    _line(6, "11:00:00", "pve1", "kernel",
          "Code: 48 8b 47 08 48 85 c0 74 0b 48 8b 00 c3 66 0f 1f 44 00 00 31 c0 c3"),
    _line(28, "11:00:01", "pve1", "qmeventd[998]", "Starting cleanup for 100"),
    _line(6, "11:00:01", "pve1", "kernel", "fwbr100i0: port 2(tap100i0) entered disabled state"),
    _line(6, "11:00:01", "pve1", "kernel", "tap100i0 (unregistering): left allmulticast mode"),
    _line(6, "11:00:01", "pve1", "kernel", "vmbr0: port 3(fwpr100p0) entered disabled state"),
    _line(6, "11:00:01", "pve1", "kernel", "fwln100i0 (unregistering): left promiscuous mode"),
    _line(28, "11:00:02", "pve1", "qmeventd[998]", "Finished cleanup for 100"),
    _line(30, "11:00:02", "pve1", "systemd[1]", "100.scope: Deactivated successfully."),
    _line(30, "11:00:02", "pve1", "systemd[1]", "100.scope: Consumed 2h 13min 4.512s CPU time."),
]  # fmt: skip


def test_a_guest_crash_notifies_once() -> None:
    events = _events(VM_100_CRASH)
    assert [k for k, _ in _notifying(events)] == ["vm.crashed"], _notifying(events)
    stop = events[2]
    assert (stop.kind, stop.vmid, stop.severity) == ("syslog.message", 100, Severity.INFO)
    assert stop.metadata["detail_of"] == "vm.crashed"
    assert events[7].metadata["detail_of"] == "vm.stopped"  # Finished cleanup: always a detail


def test_a_guest_stop_after_a_crash_elsewhere_or_later_still_notifies() -> None:
    """The crash line names no guest (``kvm[pid]``): only the host's first cleanup within
    seconds is its detail; the next guest's stop, or one much later, is its own event."""
    pipeline = Pipeline(Settings())
    _events(VM_100_CRASH[:3], pipeline)
    other = _events([_line(28, "11:00:05", "pve1", "qmeventd[998]", "Starting cleanup for 101")],
                    pipeline)[0]  # fmt: skip
    assert (other.kind, other.vmid) == ("vm.stopped", 101)
    _events(VM_100_CRASH[:1], pipeline)
    late = _events([_line(28, "11:05:00", "pve1", "qmeventd[998]", "Starting cleanup for 100")],
                   pipeline)[0]  # fmt: skip
    assert late.kind == "vm.stopped"


def test_a_plain_stop_notifies_once() -> None:
    """A guest shut down: qmeventd's cleanup pair is one vm.stopped (DESIGN.md: ``Finished
    cleanup`` is plain), and the plain half no second notification (qm.pm ``warn``)."""
    events = _events([
        _line(28, "11:10:00", "pve2", "qmeventd[998]", "Starting cleanup for 110"),
        _line(28, "11:10:01", "pve2", "qmeventd[998]", "Finished cleanup for 110"),
    ])  # fmt: skip
    assert [k for k, _ in _notifying(events)] == ["vm.stopped"], _notifying(events)
    assert events[1].vmid == 110


def test_a_guest_oom_kill_and_its_cleanup_notify_once() -> None:
    """The kernel kills VM 121's QEMU (mm/oom_kill.c): qmeventd then cleans up the guest
    (qm.pm ``Starting cleanup for 121``): a detail of the kill, not a second event."""
    events = _events([
        _line(6, "10:00:00", "pve2", "kernel",
              "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=qemu.slice,"
              "mems_allowed=0,global_oom,task_memcg=/qemu.slice/121.scope,task=kvm,pid=20431,"
              "uid=0"),
        _line(3, "10:00:00", "pve2", "kernel",
              "Out of memory: Killed process 20431 (kvm) total-vm:17231144kB, "
              "anon-rss:16652032kB, file-rss:2816kB, shmem-rss:4kB, UID:0 pgtables:33364kB "
              "oom_score_adj:0"),
        _line(28, "10:00:01", "pve2", "qmeventd[998]", "Starting cleanup for 121"),
        _line(28, "10:00:02", "pve2", "qmeventd[998]", "Finished cleanup for 121"),
    ])  # fmt: skip
    assert [k for k, _ in _notifying(events)] == ["oom.kill"], _notifying(events)
    assert (events[2].vmid, events[2].metadata["detail_of"]) == (121, "oom.kill")


# --- a NIC of a bond going down ----------------------------------------------------------------
# linux drivers/net/ethernet/intel/e1000e/netdev.c (NIC Link is Down), drivers/net/bonding/
# bond_main.c bond_miimon_commit ("link status definitely down, disabling slave", the new
# active one), net/bridge/br_if.c (a bridge port's state).
BOND_SLAVE_DOWN = [
    _line(6, "12:00:00", "pve4", "kernel", "e1000e 0000:01:00.0 enp1s0: NIC Link is Down"),
    _line(6, "12:00:00", "pve4", "kernel",
          "bond0: (slave enp1s0): link status definitely down, disabling slave"),
    _line(6, "12:00:00", "pve4", "kernel",
          "bond0: (slave enp2s0): making interface the new active one"),
]  # fmt: skip


def test_a_bond_slave_going_down_notifies_once() -> None:
    events = _events(BOND_SLAVE_DOWN)
    assert _notifying(events) == [("link.down", "Network link enp1s0 is down")]
    slave = events[1]
    assert (slave.kind, slave.severity) == ("syslog.message", Severity.INFO)
    assert (slave.metadata["detail_of"], slave.metadata["interface"]) == ("link.down", "enp1s0")


def test_a_nic_in_a_bridge_going_down_notifies_once() -> None:
    events = _events([
        _line(6, "12:00:00", "pve5", "kernel",
              "r8169 0000:03:00.0 enp3s0: Link is Down"),
        _line(6, "12:00:00", "pve5", "kernel", "vmbr0: port 1(enp3s0) entered disabled state"),
    ])  # fmt: skip
    assert [k for k, _ in _notifying(events)] == ["link.down"]


def test_another_nic_or_the_same_nic_later_notifies_again() -> None:
    pipeline = Pipeline(Settings())
    _events(BOND_SLAVE_DOWN, pipeline)
    other = _events([_line(6, "12:00:01", "pve4", "kernel",
                           "bond0: (slave enp2s0): link status definitely down, disabling slave")],
                    pipeline)  # fmt: skip
    later = _events([BOND_SLAVE_DOWN[0].replace("12:00:00", "12:30:00")], pipeline)
    assert [k for k, _ in _notifying(other + later)] == ["link.down", "link.down"]


# --- a cluster node lost -------------------------------------------------------------------------
# kronosnet libknet/threads_heartbeat.c (link down), libknet/host.c (best link, no active
# links); corosync exec/totemsrp.c (token, processor failed, new membership), exec/vsf_quorum.c,
# exec/votequorum.c (members, quorum); pve-cluster src/pmxcfs/dfsm.c (members, data
# syncronisation), dcdb.c (leader, synced members, updates), status.c (quorum).
def _coro(pri: int, time: str, text: str, host: str = "pve1") -> str:
    return _line(pri, time, host, "corosync[1180]", text)


def _cfs(time: str, text: str, host: str = "pve1") -> str:
    return _line(29, time, host, "pmxcfs[1090]", text)


NODE_2_LOST = [
    _coro(30, "13:00:00", "  [KNET  ] link: host: 2 link: 0 is down"),
    _coro(28, "13:00:00", "  [KNET  ] host: host: 2 (passive) best link: 0 (pri: 1)"),
    _coro(28, "13:00:00", "  [KNET  ] host: host: 2 has no active links"),
    _coro(29, "13:00:01", "  [TOTEM ] Token has not been received in 2737 ms"),
    _coro(29, "13:00:02", "  [TOTEM ] A processor failed, forming new configuration: token "
                          "timed out (3650ms), waiting 4380ms for consensus."),
    _coro(29, "13:00:06", "  [QUORUM] Sync members[2]: 1 3"),
    _coro(29, "13:00:06", "  [QUORUM] Sync left[1]: 2"),
    _coro(29, "13:00:06", "  [TOTEM ] A new membership (1.2d) was formed. Members left: 2"),
    _coro(29, "13:00:06", "  [TOTEM ] Failed to receive the leave message. failed: 2"),
    _coro(29, "13:00:06", "  [QUORUM] Members[2]: 1 3"),
    _coro(29, "13:00:06", "  [MAIN  ] Completed service synchronization, ready to provide "
                          "service."),
    _cfs("13:00:06", "[dcdb] notice: members: 1/1090, 3/1091"),
    _cfs("13:00:06", "[dcdb] notice: starting data syncronisation"),
    _cfs("13:00:06", "[status] notice: members: 1/1090, 3/1091"),
    _cfs("13:00:06", "[status] notice: starting data syncronisation"),
    _cfs("13:00:06", "[dcdb] notice: received sync request (epoch 1/1090/00000004)"),
    _cfs("13:00:06", "[dcdb] notice: received all states"),
    _cfs("13:00:06", "[dcdb] notice: leader is 1/1090"),
    _cfs("13:00:06", "[dcdb] notice: synced members: 1/1090, 3/1091"),
    _cfs("13:00:06", "[dcdb] notice: start sending inode updates"),
    _cfs("13:00:06", "[dcdb] notice: sent all (0) updates"),
    _cfs("13:00:06", "[dcdb] notice: all data is up to date"),
    _cfs("13:00:06", "[status] notice: received all states"),
    _cfs("13:00:06", "[status] notice: all data is up to date"),
]  # fmt: skip


def test_a_lost_cluster_node_notifies_once_per_surviving_node() -> None:
    events = _events(NODE_2_LOST)
    assert _notifying(events) == [("link.down", "Cluster link 0 to host 2 is down")]
    for e in events[1:]:
        assert (e.kind, e.severity) == ("syslog.message", Severity.INFO), e.message
        assert e.metadata["detail_of"] == "link.down", e.message


def test_a_lost_node_is_one_fingerprint_whatever_the_survivor_that_logged_it() -> None:
    """Every survivor logs the lost peer's links (kronosnet libknet threads_heartbeat.c): the
    lines are about no node, one fingerprint per lost peer (the dispatcher's one alert), the
    survivor in ``metadata.reporter``; a NIC's link stays its node's."""
    events = _events([
        _coro(30, "13:00:00", "  [KNET  ] link: host: 2 link: 0 is down"),
        _coro(30, "13:00:00", "  [KNET  ] link: host: 2 link: 0 is down", host="pve3"),
        _coro(30, "13:00:30", "  [KNET  ] rx: host: 2 link: 0 is up", host="pve3"),
        _coro(30, "13:00:31", "  [KNET  ] rx: host: 2 link: 0 is up"),
    ])  # fmt: skip
    got = [(e.node, e.metadata.get("reporter"), e.kind, e.metadata.get("recovers"))
           for e in events]  # fmt: skip
    assert got == [
        (None, "pve1", "link.down", None),
        (None, "pve3", "link.down", None),
        (None, "pve3", "syslog.message", "link.down"),
        (None, "pve1", "syslog.message", "link.down"),
    ], got
    assert events[0].fingerprint == events[1].fingerprint
    assert events[2].fingerprint == events[3].fingerprint
    nic = _events([_kern(6, "13:00:00", "e1000e 0000:00:19.0 nic0: NIC Link is Down", "pve1")])
    assert (nic[0].kind, nic[0].node, nic[0].metadata.get("reporter")) == (
        "link.down",
        "pve1",
        None,
    )


def test_quorum_lost_with_the_node_is_its_own_event() -> None:
    """In a two-node cluster the survivor also loses quorum: ``quorum.lost`` (pmxcfs
    status.c) is a state of its own (the node's /etc/pve read-only, no guest starts) and
    notifies beside the link; corosync's own quorum line is its detail."""
    lines = [
        *NODE_2_LOST[:5],
        _coro(29, "13:00:06", "  [QUORUM] This node is within the non-primary component and "
                              "will NOT provide any services."),
        _coro(29, "13:00:06", "  [QUORUM] Members[1]: 1"),
        _cfs("13:00:06", "[status] notice: node lost quorum"),
        _cfs("13:00:06", "[dcdb] notice: members: 1/1090"),
        # /etc/pve is read-only without quorum: HA's cluster locks cannot be renewed
        # (pve-ha-manager src/PVE/HA/Env/PVE2.pm get_pve_lock, logged once per loss, err)
        _line(27, "13:00:10", "pve1", "pve-ha-lrm[1300]",
              "lost lock 'ha_agent_pve1_lock - cfs lock update failed - Permission denied"),
        _line(27, "13:00:12", "pve1", "pve-ha-crm[1290]",
              "lost lock 'ha_manager_lock - cfs lock update failed - Permission denied"),
    ]  # fmt: skip
    events = _events(lines)
    assert [k for k, _ in _notifying(events)] == ["link.down", "quorum.lost"], _notifying(events)
    assert [e.metadata.get("detail_of") for e in events[-2:]] == ["quorum.lost"] * 2


def test_a_lost_ha_lock_without_quorum_loss_still_notifies() -> None:
    events = _events([
        _line(27, "13:00:10", "pve1", "pve-ha-lrm[1300]",
              "lost lock 'ha_agent_pve1_lock - cfs lock update failed - Permission denied"),
    ])  # fmt: skip
    assert (events[0].severity, events[0].metadata.get("detail_of")) == (Severity.ERROR, None)


def test_cluster_lines_outside_a_link_failure_are_untouched() -> None:
    """A node joining (no link down before it) or another host's lines: no window."""
    events = _events([
        _coro(29, "14:00:00", "  [QUORUM] Members[3]: 1 2 3", host="pve3"),
        *NODE_2_LOST[:1],
        _cfs("13:00:06", "[dcdb] notice: members: 1/1090, 3/1091", host="pve3"),
        _cfs("13:05:00", "[dcdb] notice: members: 1/1090, 2/1088, 3/1091"),
    ])  # fmt: skip
    assert [e.metadata.get("detail_of") for e in events] == [None, None, None, None]


# The end of it (kronosnet libknet/threads_heartbeat.c or threads_rx.c: ``host: %u link: %u
# is up`` at info, under the subsystem the version logs it from: ``rx``, ``link`` or
# ``heartbeat``; corosync exec/vsf_quorum.c: the primary component line; pve-cluster
# src/pmxcfs/status.c cfs_set_quorate: ``node has quorum``). The contract has no recovery
# kinds: the lines stay plain at their PRI and say what they end (``metadata.recovers``), so
# the dispatcher tells the end of the notified alert.
NODE_2_BACK = [
    _coro(30, "13:04:00", "  [KNET  ] rx: host: 2 link: 0 is up"),
    _coro(28, "13:04:00", "  [KNET  ] host: host: 2 (passive) best link: 0 (pri: 1)"),
    _coro(29, "13:04:01", "  [QUORUM] Sync joined[1]: 2"),
    _coro(29, "13:04:01", "  [QUORUM] This node is within the primary component and will "
                          "provide service."),
    _coro(29, "13:04:01", "  [QUORUM] Members[2]: 1 2"),
    _cfs("13:04:01", "[status] notice: node has quorum"),
]  # fmt: skip


def test_the_links_and_quorums_return_say_what_they_end() -> None:
    lines = [*NODE_2_LOST[:5], _cfs("13:00:06", "[status] notice: node lost quorum"),
             *NODE_2_BACK]  # fmt: skip
    events = _events(lines)
    back = events[6:]
    got = [(e.kind, e.severity, e.title, e.metadata.get("recovers")) for e in back]
    assert got == [
        ("syslog.message", Severity.INFO, "Cluster link 0 to host 2 is up again", "link.down"),
        (
            "syslog.message",
            Severity.WARNING,
            "corosync: [KNET ] host: host: 2 (passive) best link: 0 (pri: 1)",
            None,
        ),
        ("syslog.message", Severity.NOTICE, "corosync: [QUORUM] Sync joined[1]: 2", None),
        ("syslog.message", Severity.NOTICE, "Quorum regained", "quorum.lost"),
        ("syslog.message", Severity.NOTICE, "corosync: [QUORUM] Members[2]: 1 2", None),
        ("syslog.message", Severity.NOTICE, "Quorum regained", "quorum.lost"),
    ], got
    # the link up names the peer and the link as the down line does, and the same
    # fingerprint subject, the peer: it ends that peer's alert only (the dispatcher's recovers)
    assert (back[0].metadata["peer_nodeid"], back[0].metadata["link"]) == (2, 0)
    assert back[0].metadata["subject_id"] == events[0].metadata["subject_id"]
    assert events[0].metadata["subject_id"] == "knet host 2"
    # the recovery is no detail of the failure, and ends its window: what follows is plain
    assert all("detail_of" not in e.metadata for e in back), [e.metadata for e in back]


def test_every_knet_version_s_link_up_line_is_recognised() -> None:
    for sub in ("rx", "link", "heartbeat"):
        (event,) = _events([_coro(30, "13:04:00", f"  [KNET  ] {sub}: host: 3 link: 1 is up")])
        assert (event.title, event.metadata.get("recovers")) == (
            "Cluster link 1 to host 3 is up again", "link.down"), sub  # fmt: skip


def test_a_recovery_line_without_a_failure_before_it_is_still_tagged() -> None:
    """A node booting logs the same lines: the tag says what they would end; the dispatcher
    tells them as an end only when it told the failure."""
    events = _events(NODE_2_BACK)
    assert [e.metadata.get("recovers") for e in events] == [
        "link.down", None, None, "quorum.lost", None, "quorum.lost"]  # fmt: skip


def test_a_link_down_again_after_it_came_back_is_a_new_event() -> None:
    """A flapping link (down, up, down within the burst window): the second down is a new
    happening, not a detail of the first, which its link up ended."""
    events = _events([
        _coro(30, "13:00:00", "  [KNET  ] link: host: 2 link: 0 is down"),
        _coro(30, "13:00:10", "  [KNET  ] rx: host: 2 link: 0 is up"),
        _coro(30, "13:00:20", "  [KNET  ] link: host: 2 link: 0 is down"),
    ])  # fmt: skip
    assert [(e.kind, e.metadata.get("detail_of")) for e in events] == [
        ("link.down", None), ("syslog.message", None), ("link.down", None)]  # fmt: skip


def test_links_to_two_peers_down_are_two_alerts_each_ended_by_its_own_up() -> None:
    """pve1 loses host 2, then host 3 within the first's burst window (kronosnet
    threads_heartbeat.c: one ``is down`` line per link as its pongs stop; host.c the host's
    ``has no active links``), then host 2 comes back while host 3's loss is still being
    logged. Each peer is its own alert (fingerprint subject: the peer); host 2's up ends
    neither host 3's alert nor the burst window its lines are details of."""
    events = _events([
        *NODE_2_LOST[:3],
        _coro(30, "13:00:05", "  [KNET  ] link: host: 3 link: 0 is down"),
        _coro(28, "13:00:05", "  [KNET  ] host: host: 3 has no active links"),
        _coro(30, "13:00:10", "  [KNET  ] rx: host: 2 link: 0 is up"),
        _coro(29, "13:00:11", "  [TOTEM ] Token has not been received in 2737 ms"),
        _coro(29, "13:00:16", "  [QUORUM] Sync left[1]: 3"),
        _coro(30, "13:05:00", "  [KNET  ] rx: host: 3 link: 0 is up"),
    ])  # fmt: skip
    assert _notifying(events) == [
        ("link.down", "Cluster link 0 to host 2 is down"),
        ("link.down", "Cluster link 0 to host 3 is down"),
    ], _notifying(events)
    down2, down3, up2, up3 = events[0], events[3], events[5], events[8]
    assert down2.fingerprint != down3.fingerprint
    subjects = [e.metadata["subject_id"] for e in (down2, down3, up2, up3)]
    assert subjects == ["knet host 2", "knet host 3"] * 2, subjects
    assert [e.metadata.get("recovers") for e in (up2, up3)] == ["link.down", "link.down"]
    # host 3's loss is still logged after host 2's up: its lines stay details of link.down
    assert [e.metadata.get("detail_of") for e in events] == [
        None, "link.down", "link.down", None, "link.down", None, "link.down", "link.down",
        None]  # fmt: skip


def test_a_peer_lost_over_two_links_is_one_alert_ended_by_its_last_link_up() -> None:
    """A peer reached over two links (corosync link 0 and link 1, the recommended set-up)
    dies: knet logs each link's down (threads_heartbeat.c, once per link as its pongs stop).
    One happening: the peer's alert (subject ``knet host 2``); link 1's down is a detail of
    it. Link 0 back alone ends nothing (a plain line naming link 1 still down); link 1 back,
    the peer's last link, ends the peer's alert. The host's own lines stay details, and so
    does the same line twice (a relay's resend)."""
    link1 = _coro(30, "13:00:01", "  [KNET  ] link: host: 2 link: 1 is down")
    events = _events([
        *NODE_2_LOST[:3], link1, link1, NODE_2_LOST[3],
        _coro(30, "13:04:00", "  [KNET  ] rx: host: 2 link: 0 is up"),
        _coro(30, "13:04:30", "  [KNET  ] rx: host: 2 link: 1 is up"),
    ])  # fmt: skip
    assert _notifying(events) == [("link.down", "Cluster link 0 to host 2 is down")], (
        _notifying(events))  # fmt: skip
    assert [e.metadata.get("detail_of") for e in events] == [
        None, "link.down", "link.down", "link.down", "link.down", "link.down", None, None,
    ]  # fmt: skip
    down1 = events[3]
    assert (down1.kind, down1.title, down1.metadata["subject_id"]) == (
        "syslog.message", "Cluster link 1 to host 2 is down", "knet host 2")  # fmt: skip
    up0, up1 = events[6], events[7]
    got = [(e.kind, e.title, e.metadata.get("recovers"), e.metadata.get("links_down"))
           for e in (up0, up1)]  # fmt: skip
    assert got == [
        ("syslog.message", "Cluster link 0 to host 2 is up again; link 1 still down", None, [1]),
        ("syslog.message", "Cluster link 1 to host 2 is up again", "link.down", None),
    ], got
    assert up1.metadata["subject_id"] == events[0].metadata["subject_id"] == "knet host 2"


def test_another_links_loss_of_a_peer_down_is_a_detail_however_late() -> None:
    """The peer's second link may fail long after the first (no up between): still the same
    peer's alert, not a second one; a peer's links are remembered per host, and the peer's
    return ends it; its next loss is a new alert."""
    events = _events([
        _coro(30, "13:00:00", "  [KNET  ] link: host: 2 link: 1 is down"),
        _coro(30, "15:00:00", "  [KNET  ] link: host: 2 link: 0 is down"),
        _coro(30, "15:00:00", "  [KNET  ] link: host: 2 link: 0 is down", host="pve3"),
        _coro(30, "15:10:00", "  [KNET  ] rx: host: 2 link: 1 is up"),
        _coro(30, "15:10:01", "  [KNET  ] rx: host: 2 link: 0 is up"),
        _coro(30, "15:20:00", "  [KNET  ] link: host: 2 link: 0 is down"),
    ])  # fmt: skip
    assert {e.node for e in events} == {None}  # knet lines are about no node
    got = [(e.metadata["reporter"], e.kind, e.metadata.get("detail_of"),
            e.metadata.get("recovers"), e.metadata.get("links_down")) for e in events]  # fmt: skip
    assert got == [
        ("pve1", "link.down", None, None, None),
        ("pve1", "syslog.message", "link.down", None, None),
        ("pve3", "link.down", None, None, None),
        ("pve1", "syslog.message", None, None, [0]),
        ("pve1", "syslog.message", None, "link.down", None),
        ("pve1", "link.down", None, None, None),
    ], got


def test_a_links_down_repeated_alone_is_a_detail_within_the_window_then_an_alert() -> None:
    """The same link's down again with no up between (its up lost on the way): a detail
    within ``BURST_SECONDS``, the peer's alert again after (as a link down with its up
    never seen)."""
    events = _events([
        _coro(30, "13:00:00", "  [KNET  ] link: host: 2 link: 0 is down"),
        _coro(30, "13:00:30", "  [KNET  ] link: host: 2 link: 0 is down"),
        _coro(30, "13:05:00", "  [KNET  ] link: host: 2 link: 0 is down"),
    ])  # fmt: skip
    assert [(e.kind, e.metadata.get("detail_of")) for e in events] == [
        ("link.down", None), ("syslog.message", "link.down"), ("link.down", None)]  # fmt: skip


def test_a_nic_back_up_ends_its_own_link_down_only() -> None:
    """The driver's ``NIC Link is Up`` and the bond's ``definitely up`` (linux e1000e
    netdev.c e1000_print_link_info, bonding bond_main.c bond_miimon_commit) carry the
    interface's subject and ``recovers``; the interface's next down is a new event."""
    lines = [
        *BOND_SLAVE_DOWN[:2],
        _line(6, "12:00:02", "pve4", "kernel", "e1000e 0000:01:00.0 enp2s0: NIC Link is Down"),
        _line(6, "12:00:05", "pve4", "kernel",
              "e1000e 0000:01:00.0 enp1s0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: "
              "Rx/Tx"),
        _line(6, "12:00:05", "pve4", "kernel",
              "bond0: (slave enp1s0): link status definitely up, 1000 Mbps full duplex"),
        _line(6, "12:00:09", "pve4", "kernel", "e1000e 0000:01:00.0 enp1s0: NIC Link is Down"),
    ]  # fmt: skip
    events = _events(lines)
    got = [(e.kind, e.metadata.get("subject_id"), e.metadata.get("recovers")) for e in events]
    assert got == [
        ("link.down", "enp1s0", None),
        ("syslog.message", "enp1s0", None),  # the bond's line for it: a detail
        ("link.down", "enp2s0", None),
        ("syslog.message", "enp1s0", "link.down"),
        ("syslog.message", "enp1s0", "link.down"),
        ("link.down", "enp1s0", None),  # down again after its up: a new event
    ], got
    assert events[3].title == "Network link enp1s0 is up again"
    assert events[0].fingerprint == events[5].fingerprint != events[2].fingerprint


def test_a_bond_with_an_active_interface_again_ends_its_own_alert() -> None:
    """bond_main.c bond_select_active_slave: ``now running without any active interface!``
    and its end, ``active interface up!`` (``first active interface up!`` before 5.3)."""
    events = _events([
        _line(3, "12:00:00", "pve4", "kernel", "bond0: now running without any active interface!"),
        _line(6, "12:01:00", "pve4", "kernel", "bond0: active interface up!"),
        _line(6, "12:02:00", "pve4", "kernel", "bond1: first active interface up!"),
    ])  # fmt: skip
    got = [(e.kind, e.title, e.metadata.get("subject_id"), e.metadata.get("recovers"))
           for e in events]  # fmt: skip
    assert got == [
        ("link.down", "Network link bond bond0 has no active interface", "bond0", None),
        ("syslog.message", "Network link bond bond0 has an active interface again", "bond0",
         "link.down"),
        ("syslog.message", "Network link bond bond1 has an active interface again", "bond1",
         "link.down"),
    ], got  # fmt: skip


def test_link_up_lines_of_other_devices_are_not_a_nics_return() -> None:
    """A SATA link, a PCIe slot and a guest's tap port print ``link up`` too."""
    events = _events([
        _line(6, "12:00:00", "pve4", "kernel", "ata5: SATA link up 6.0 Gbps (SStatus 133 SControl 300)"),
        _line(6, "12:00:00", "pve4", "kernel", "pcieport 0000:00:1c.4: pciehp: Slot(3): Link Up"),
        _line(6, "12:00:00", "pve4", "kernel", "tap104i0: link up"),
    ])  # fmt: skip
    assert [e.metadata.get("recovers") for e in events] == [None, None, None]
    assert [e.metadata.get("subject_id") for e in events] == [None, None, None]


# --- a ZFS pool's disk failing -------------------------------------------------------------------
# openzfs module/os/linux/zfs/vdev_disk.c (zio line), cmd/zed/zed.d/all-syslog.sh (one line
# per zevent: eid, class, pool, vdev base name), include/sys/fm/fs/zfs.h (classes).
_VDEV = "ata-ST4000NM0035-1V4107_ZC1234AB-part1"
ZFS_VDEV_FAULT = [
    _line(3, "15:00:00", "pve2", "kernel",
          f"zio pool=tank vdev=/dev/disk/by-id/{_VDEV} error=5 type=1 offset=270336 "
          "size=8192 flags=721601"),
    _line(29, "15:00:00", "pve2", "zed[2210]",
          f"eid=13 class=io pool='tank' vdev={_VDEV} size=8192 offset=270336 priority=0 err=5 "
          "flags=0x40080c80"),
    _line(29, "15:00:01", "pve2", "zed[2210]",
          f"eid=14 class=io pool='tank' vdev={_VDEV} size=8192 offset=3998639460352 "
          "priority=0 err=5 flags=0x40080c80"),
    _line(29, "15:00:01", "pve2", "zed[2210]", f"eid=15 class=probe_failure pool='tank' vdev={_VDEV}"),
    _line(29, "15:00:01", "pve2", "zed[2210]",
          f"eid=16 class=statechange pool='tank' vdev={_VDEV} vdev_state=FAULTED"),
    _line(29, "15:00:01", "pve2", "zed[2210]", "eid=17 class=config_sync pool='tank'"),
]  # fmt: skip


def test_a_zfs_vdev_failing_notifies_its_errors_once_and_its_fault() -> None:
    """The I/O errors of one vdev are one event; the vdev's state change (FAULTED) is the
    pool's state and notifies too (as md's ``Disk failure``); zed's other lines of the pool
    in the burst (config_sync, at notice) are details."""
    events = _events(ZFS_VDEV_FAULT)
    assert [t for _, t in _notifying(events)] == [
        f"ZFS pool tank: I/O error on vdev /dev/disk/by-id/{_VDEV}",
        f"ZFS pool tank: vdev {_VDEV} FAULTED",
    ], _notifying(events)
    assert events[5].metadata["detail_of"] == "disk.error"


# --- a kernel report: hung tasks, a WARNING, a soft lockup ----------------------------------------
# The contract has no kind for these (they stay syslog.message), but each is one happening: its
# first line notifies at its PRI, the stack dump after it is detail. linux kernel/hung_task.c
# hung_task_info (pr_err head, tainted and "echo 0" lines; sched_show_task's "task:" line at
# info and the trace at the default level, warning), kernel/panic.c __warn ("cut here",
# "WARNING: CPU: ...", modules, registers, trace, "---[ end trace ... ]---"),
# kernel/watchdog.c watchdog_timer_fn (pr_emerg "BUG: soft lockup").
def _kern(pri: int, time: str, text: str, host: str = "pve3") -> str:
    return _line(pri, time, host, "kernel", text)


HUNG_TASKS = [
    _kern(3, "16:00:00", "INFO: task kworker/u64:2:1234 blocked for more than 122 seconds."),
    _kern(3, "16:00:00", "      Tainted: P           O       6.8.12-4-pve #1"),
    _kern(3, "16:00:00", '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this '
                         "message."),
    _kern(6, "16:00:00", "task:kworker/u64:2  state:D stack:0     pid:1234  tgid:1234  ppid:2 "
                         "     flags:0x00004000"),
    _kern(4, "16:00:00", "Call Trace:"),
    _kern(4, "16:00:00", " <TASK>"),
    _kern(4, "16:00:00", " __schedule+0x401/0x15e0"),
    _kern(4, "16:00:00", " io_schedule+0x46/0x80"),
    _kern(4, "16:00:00", " </TASK>"),
    _kern(3, "16:00:00", "INFO: task kvm:20431 blocked for more than 122 seconds."),
    _kern(3, "16:00:00", "      Tainted: P           O       6.8.12-4-pve #1"),
    _kern(4, "16:00:00", "Call Trace:"),
    _kern(4, "16:00:00", " </TASK>"),
]  # fmt: skip

KERNEL_WARNING = [
    _kern(4, "16:10:00", "------------[ cut here ]------------"),
    _kern(4, "16:10:00", "WARNING: CPU: 5 PID: 3321 at net/core/dev.c:3287 "
                         "skb_warn_bad_offload+0x7c/0x110"),
    _kern(4, "16:10:00", "Modules linked in: veth ebtable_filter ebtables ip_set zfs(PO) "
                         "spl(O) vhost_net vhost kvm_intel kvm"),
    _kern(4, "16:10:00", "CPU: 5 PID: 3321 Comm: vhost-3300 Tainted: P           O       "
                         "6.8.12-4-pve #1"),
    _kern(4, "16:10:00", "RIP: 0010:skb_warn_bad_offload+0x7c/0x110"),
    _kern(4, "16:10:00", "RSP: 0018:ffffb1e0c7b4f9c8 EFLAGS: 00010282"),
    _kern(4, "16:10:00", "Call Trace:"),
    _kern(4, "16:10:00", " </TASK>"),
    _kern(4, "16:10:00", "---[ end trace 0000000000000000 ]---"),
]  # fmt: skip

SOFT_LOCKUP = [
    _kern(0, "16:20:00", "watchdog: BUG: soft lockup - CPU#7 stuck for 26s! [kvm:20431]"),
    _kern(4, "16:20:00", "Modules linked in: veth ebtable_filter zfs(PO) spl(O) kvm_intel kvm"),
    _kern(4, "16:20:00", "CPU: 7 PID: 20431 Comm: kvm Tainted: P           O L     "
                         "6.8.12-4-pve #1"),
    _kern(4, "16:20:00", "RIP: 0010:native_queued_spin_lock_slowpath+0x7f/0x2d0"),
    _kern(4, "16:20:00", "Call Trace:"),
]  # fmt: skip


def test_a_kernel_report_notifies_once() -> None:
    for burst in (HUNG_TASKS, KERNEL_WARNING, SOFT_LOCKUP):
        events = _events(burst)
        assert _notifying(events) == [("syslog.message", f"kernel: {burst[0].split(': ', 1)[1]}")]
        for e in events[1:]:
            assert (e.severity.rank, e.metadata.get("detail_of")) == (
                Severity.INFO.rank,
                "syslog.message",
            ), e.message


def test_a_kernel_report_ends_and_the_next_one_notifies() -> None:
    pipeline = Pipeline(Settings())
    _events(KERNEL_WARNING, pipeline)
    after = _events([_kern(4, "16:10:00", "Call Trace:")], pipeline)[0]  # end trace closed it
    assert (after.severity, after.metadata.get("detail_of")) == (Severity.WARNING, None)
    _events(HUNG_TASKS, pipeline)
    later = _events([_kern(4, "16:00:20", "Call Trace:")], pipeline)[0]  # seconds later: closed
    assert later.metadata.get("detail_of") is None
    again = _events(HUNG_TASKS[:1], pipeline)[0]
    assert (again.severity, again.metadata.get("detail_of")) == (Severity.ERROR, None)


def test_a_kernel_report_without_its_end_is_bounded() -> None:
    from proxbus_ingest_syslog.classify import KERNEL_REPORT_LINES

    pipeline = Pipeline(Settings())
    _events(HUNG_TASKS[:1], pipeline)
    marked = sum(
        "detail_of" in e.metadata
        for e in _events([_kern(4, "16:00:01", " __schedule+0x401/0x15e0")] *
                         (KERNEL_REPORT_LINES + 5), pipeline)
    )  # fmt: skip
    assert marked == KERNEL_REPORT_LINES


def test_a_systemd_oomd_kill_of_a_container_and_its_unit_stop_notify_once() -> None:
    """systemd-oomd kills CT 205 (systemd src/core/cgroup.c unit_check_oomd_kill: the event),
    then the unit fails with result 'oom-kill' (src/core/service.c, OOMPolicy=stop): the
    container's stop is a detail of the kill."""
    events = _events([
        _line(29, "10:30:00", "pve4", "systemd[1]",
              "pve-container@205.service: systemd-oomd killed 3 process(es) in this unit."),
        _line(28, "10:30:00", "pve4", "systemd[1]",
              "pve-container@205.service: Failed with result 'oom-kill'."),
    ])  # fmt: skip
    assert [k for k, _ in _notifying(events)] == ["oom.kill"], _notifying(events)
    assert (events[1].vmid, events[1].metadata["detail_of"]) == (205, "oom.kill")
