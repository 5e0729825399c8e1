"""Real Proxmox VE / PBS syslog lines → kinds (one table row per line)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from proxbus_events import Event, Severity
from proxbus_ingest_syslog.classify import RULES, Classifier, parse_upid, rule
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.parse import SyslogMessage
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.settings import Settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
U1 = "UPID:pve1:00003039:00A1B2C3:65F0A1B2:qmstart:100:root@pam:"
GC = "UPID:pbs1:00000332:00000B6C:00000003:65F0A1B2:garbage_collection:store1:root@pam:"

# (sender host, program[pid], message, kind, node, vmid)
LINES = [
    # PVE tasks
    ("pve1", "pvedaemon[12345]", f"<root@pam> starting task {U1}", "syslog.message", "pve1", 100),
    ("pve1", "pvedaemon[12345]", f"<root@pam> end task {U1} OK", "task.ok", "pve1", 100),
    ("pve1", "pvedaemon[12345]", f"<root@pam> end task {U1} start failed: QEMU exited with code 1", "task.failed", "pve1", 100),
    ("pve1", "pvedaemon[12345]", "<root@pam> end task UPID:pve1:0000303A:00A1B2C9:65F0A1B9:qmclone:9000:root@pam: WARNINGS: 1", "task.ok", "pve1", 9000),
    ("pve1", "pveproxy[2211]", "<root@pam> end task UPID:pve1:000A1B2C:0098F2A1:65F0A2C0:vncproxy:101:root@pam: OK", "task.ok", "pve1", 101),
    ("pve1", "pvescheduler[3456]", "<root@pam> end task UPID:pve1:00002F3A:0012AB34:65F0B000:vzdump::root@pam: job errors", "backup.failed", "pve1", None),
    ("pve1", "pvedaemon[12346]", "<root@pam> end task UPID:pve1:00002F40:0012AB90:65F0B100:vzdump:100:root@pam: OK", "backup.ok", "pve1", 100),
    ("pve2", "pvedaemon[2020]", "<root@pam> end task UPID:pve2:00001F00:00033A10:65F0B200:qmshutdown:102:root@pam: VM quit/powerdown failed - got timeout", "task.failed", "pve2", 102),
    ("pve2", "pvedaemon[2020]", "<root@pam> end task UPID:pve2:00001F01:00033A20:65F0B210:vzstart:105:root@pam: startup for container '105' failed", "task.failed", "pve2", 105),
    ("pve1", "pvedaemon[12345]", "<root@pam!automation> end task UPID:pve1:00003100:00A1C000:65F0C000:qmigrate:100:root@pam!automation: OK", "task.ok", "pve1", 100),
    ("pve1", "pvedaemon[12345]", "<root@pam> end task UPID:pve1:00003101:00A1C001:65F0C001:aptupdate::root@pam: OK", "task.ok", "pve1", None),
    ("pve1", "pvescheduler[3456]", "100-0: got unexpected replication job error - command 'zfs snapshot rpool/data/vm-100-disk-0@__replicate_100-0_1710268800__' failed: exit code 1", "replication.failed", "pve1", 100),
    # PBS tasks (UPID with the extra task-id field)
    ("pbs1", "proxmox-backup-proxy[818]", f"starting task {GC}", "syslog.message", "pbs1", None),
    ("pbs1", "proxmox-backup-proxy[818]", f"end task {GC} OK", "gc.ok", "pbs1", None),
    ("pbs1", "proxmox-backup-proxy[818]", "end task UPID:pbs1:00000332:00000B6C:00000004:65F0A1B3:verificationjob:store1\\x3av\\x2d3f1a:root@pam: verification failed - please check the log for details", "verify.failed", "pbs1", None),
    ("pbs1", "proxmox-backup-proxy[818]", "end task UPID:pbs1:00000332:00000B6C:00000005:65F0A1B4:backup:store1\\x3avm\\x2f100:root@pam: OK", "backup.ok", "pbs1", 100),
    ("pbs1", "proxmox-backup-proxy[818]", "end task UPID:pbs1:00000332:00000B6C:00000006:65F0A1B5:syncjob:remote1\\x3astore1\\x3astore2\\x3as\\x2d1:root@pam: connection refused", "sync.failed", "pbs1", None),
    ("pbs1", "proxmox-backup-proxy[818]", "end task UPID:pbs1:00000332:00000B6C:00000007:65F0A1B6:prunejob:store1\\x3ap\\x2d1:root@pam: OK", "prune.ok", "pbs1", None),
    ("pbs1", "proxmox-backup-proxy[818]", "TASK ERROR: connection error: Connection reset by peer (os error 104)", "task.failed", "pbs1", None),
    ("pbs1", "proxmox-backup-proxy[818]", "TASK OK", "syslog.message", "pbs1", None),
    # guest lifecycle
    ("pve1", "qmeventd[999]", "Starting cleanup for 100", "vm.stopped", "pve1", 100),
    ("pve1", "qmeventd[999]", "Finished cleanup for 100", "syslog.message", "pve1", 100),
    # HA manager and fencing (node = the failed node)
    ("pve1", "pve-ha-crm[1500]", "node 'pve2': state changed from 'unknown' => 'fence'", "node.fencing", "pve2", None),
    ("pve1", "pve-ha-crm[1500]", "fencing: acknowledged - got agent lock for node 'pve2'", "node.fenced", "pve2", None),
    ("pve1", "pve-ha-crm[1500]", "node 'pve2': state changed from 'online' => 'unknown'", "ha.state", "pve2", None),
    ("pve1", "pve-ha-crm[1500]", "service 'vm:100': state changed from 'started' to 'fence'", "ha.state", "pve1", 100),
    ("pve1", "pve-ha-crm[1500]", "service 'ct:105': state changed from 'request_stop' to 'stopped'", "ha.state", "pve1", 105),
    ("pve3", "pve-ha-lrm[1600]", "status change wait_for_agent_lock => active", "ha.state", "pve3", None),
    ("pve1", "pve-ha-crm[1500]", "status change slave => master", "ha.state", "pve1", None),
    ("pve2", "watchdog-mux[700]", "client watchdog expired - disable watchdog updates", "node.fencing", "pve2", None),
    # corosync / pmxcfs
    ("pve1", "corosync[1200]", "  [KNET  ] link: host: 2 link: 0 is down", "link.down", "pve1", None),
    ("pve1", "corosync[1200]", "  [KNET  ] host: host: 2 has no active links", "syslog.message", "pve1", None),
    ("pve1", "pmxcfs[1100]", "[status] notice: node lost quorum", "quorum.lost", "pve1", None),
    ("pve1", "corosync[1200]", "  [QUORUM] This node is within the non-primary component and will NOT provide any services.", "syslog.message", "pve1", None),
    # kernel OOM kills
    ("pve2", "kernel", "[812345.123456] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=qemu.slice,mems_allowed=0,global_oom,task_memcg=/qemu.slice/100.scope,task=kvm,pid=4242,uid=0", "oom.kill", "pve2", 100),
    ("pve2", "kernel", "[812345.123500] Out of memory: Killed process 4242 (kvm) total-vm:8912344kB, anon-rss:8123456kB, file-rss:1234kB, shmem-rss:4kB, UID:0 pgtables:16500kB oom_score_adj:0", "oom.kill", "pve2", None),
    ("pve2", "kernel", "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=ns,mems_allowed=0,oom_memcg=/lxc/101,task_memcg=/lxc/101/ns/system.slice/mariadb.service,task=mariadbd,pid=31337,uid=100106", "oom.kill", "pve2", 101),
    ("pve2", "kernel", "Memory cgroup out of memory: Killed process 31337 (mariadbd) total-vm:1822340kB, anon-rss:510212kB, file-rss:0kB, shmem-rss:0kB, UID:100106 pgtables:1480kB oom_score_adj:0", "oom.kill", "pve2", None),
    # disks, ZFS, SMART
    ("pve1", "kernel", "blk_update_request: I/O error, dev sdb, sector 123456 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0", "disk.error", "pve1", None),
    ("pve1", "kernel", "critical medium error, dev sda, sector 9876543 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 0", "disk.error", "pve1", None),
    ("pve1", "kernel", "Buffer I/O error on dev sdb1, logical block 0, async page read", "disk.error", "pve1", None),
    ("pve1", "kernel", "EXT4-fs error (device dm-1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0", "disk.error", "pve1", None),
    ("pve1", "kernel", "nvme nvme0: I/O 512 QID 5 timeout, aborting", "disk.error", "pve1", None),
    ("pve1", "kernel", "zio pool=rpool vdev=/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456-part3 error=5 type=2 offset=1234567168 size=4096 flags=180880", "disk.error", "pve1", None),
    ("pve1", "smartd[880]", "Device: /dev/sda [SAT], 8 Currently unreadable (pending) sectors", "disk.error", "pve1", None),
    ("pve1", "smartd[880]", "Device: /dev/sdc [SAT], FAILED SMART self-check. BACK UP DATA NOW!", "disk.error", "pve1", None),
    ("pve1", "zed[2345]", "eid=42 class=checksum pool='rpool' vdev=ata-ST4000NM0035-1V4107_ZC1234AB-part3 algorithm=fletcher4 size=4096 offset=1283543040 priority=4 err=52 flags=0x180880", "disk.error", "pve1", None),
    ("pve1", "zed[2345]", "eid=77 class=statechange pool='tank' vdev=sdb1 vdev_state=FAULTED", "disk.error", "pve1", None),
    ("pve1", "zed[2345]", "eid=78 class=statechange pool='tank' vdev=sdb1 vdev_state=ONLINE", "syslog.message", "pve1", None),
    # storage full
    ("pve1", "lvm[555]", "WARNING: Thin pool pve-data-tpool data is now 96.12% full.", "storage.full", "pve1", None),
    ("pve1", "kernel", "device-mapper: thin: 252:4: switching pool to out-of-data-space (queue IO) mode", "storage.full", "pve1", None),
    ("pve1", "vzdump[4321]", "ERROR: Backup of VM 100 failed - vma_queue_write: write error - No space left on device", "storage.full", "pve1", None),
    # authentication
    ("pve1", "pvedaemon[12345]", "authentication failure; rhost=::ffff:192.0.2.50 user=root@pam msg=Authentication failure", "auth.failed", "pve1", None),
    ("pve1", "pvedaemon[12346]", "authentication failure; rhost=192.0.2.51 user=admin@pve msg=no such user ('admin@pve')", "auth.failed", "pve1", None),
    ("pbs1", "proxmox-backup-proxy[818]", "authentication failure; rhost=[::ffff:192.0.2.52]:51234 user=root@pam msg=authentication failed - invalid credentials", "auth.failed", "pbs1", None),
    ("pve1", "sshd[9999]", "Failed password for root from 192.0.2.53 port 50022 ssh2", "auth.failed", "pve1", None),
    ("pve1", "sshd[9999]", "Failed password for invalid user admin from 192.0.2.54 port 41234 ssh2", "auth.failed", "pve1", None),
    ("pve1", "sshd[9999]", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.53  user=root", "syslog.message", "pve1", None),
    # everything else
    ("pve1", "systemd[1]", "Started session-42.scope - Session 42 of User root.", "syslog.message", "pve1", None),
    ("pve1", "pveproxy[2211]", "worker 12345 finished", "syslog.message", "pve1", None),
    ("pve1.lab.example", "pvestatd[1300]", "status update time (5.123 seconds)", "syslog.message", "pve1", None),
]  # fmt: skip


def _event(line: str, **settings: object) -> Event:
    result = Pipeline(Settings(**settings)).event_or_rejection(Frame(line.encode()), NOW)
    assert isinstance(result, Event), result
    return result


@pytest.mark.parametrize(("host", "tag", "text", "kind", "node", "vmid"), LINES)
def test_real_line_gets_kind_node_and_vmid(
    host: str, tag: str, text: str, kind: str, node: str, vmid: int | None
) -> None:
    event = _event(f"<30>Nov 24 10:00:00 {host} {tag}: {text}")
    assert (event.kind, event.node, event.vmid) == (kind, node, vmid)


def test_there_are_at_least_forty_real_lines_covering_the_kinds() -> None:
    assert len(LINES) >= 40
    kinds = {row[3] for row in LINES}
    assert {
        "task.ok", "task.failed", "backup.ok", "backup.failed", "vm.stopped", "ha.state",
        "node.fencing", "node.fenced", "link.down", "quorum.lost", "oom.kill", "disk.error",
        "storage.full", "auth.failed", "replication.failed", "syslog.message",
    } <= kinds  # fmt: skip


def test_every_rule_has_a_test_line() -> None:
    used = set()
    for host, tag, text, *_ in LINES:
        event = _event(f"<30>Nov 24 10:00:00 {host} {tag}: {text}")
        used.add(event.metadata.get("rule"))
    assert {r.name for r in RULES} <= used


def test_failed_task_carries_upid_error_and_error_severity() -> None:
    event = _event(f"<30>Nov 24 10:00:00 pve1 pvedaemon[1]: <root@pam> end task {U1} boom")
    assert event.correlation_id == U1
    assert event.severity == Severity.ERROR
    assert event.title == "Task qmstart 100 failed: boom"
    assert event.metadata["task_type"] == "qmstart"
    assert event.metadata["user"] == "root@pam"
    assert event.metadata["status"] == "boom"


def test_task_with_warnings_is_ok_at_warning_severity() -> None:
    event = _event(f"<30>Nov 24 10:00:00 pve1 pvedaemon[1]: <root@pam> end task {U1} WARNINGS: 3")
    assert (event.kind, event.severity) == ("task.ok", Severity.WARNING)


def test_same_task_end_seen_twice_gets_the_same_event_id() -> None:
    line = f"<30>Nov 24 10:00:00 pve1 pvedaemon[1]: <root@pam> end task {U1} OK"
    assert _event(line).id == _event(line).id


def test_oom_lines_of_one_kill_share_one_event_id() -> None:
    cgroup, killed = (row for row in LINES if row[3] == "oom.kill" and "4242" in row[2])
    first = _event(f"<4>Nov 24 10:00:00 pve2 kernel: {cgroup[2]}")
    second = _event(f"<3>Nov 24 10:00:00 pve2 kernel: {killed[2]}")
    assert first.id == second.id
    assert first.severity == second.severity == Severity.ERROR


@pytest.mark.parametrize(
    ("kind", "text", "floor"),
    [
        ("node.fencing", "node 'pve2': state changed from 'unknown' => 'fence'", Severity.CRITICAL),
        ("link.down", "  [KNET  ] link: host: 2 link: 0 is down", Severity.WARNING),
    ],
)
def test_severity_floor_applies_on_top_of_pri(kind: str, text: str, floor: Severity) -> None:
    app = "pve-ha-crm" if kind == "node.fencing" else "corosync"
    event = _event(f"<30>Nov 24 10:00:00 pve1 {app}[1]: {text}")
    assert (event.kind, event.severity) == (kind, floor)


def test_plain_lines_keep_pri_severity() -> None:
    assert _event("<27>Nov 24 10:00:00 pve1 systemd[1]: x failed").severity == Severity.ERROR
    assert _event("<31>Nov 24 10:00:00 pve1 systemd[1]: debug").severity == Severity.DEBUG


def test_hostname_map_renames_nodes_including_fenced_ones() -> None:
    event = _event(
        "<30>Nov 24 10:00:00 pve1.lab.example pve-ha-crm[1]: node 'pve2' : x",
        hostname_map="pve1.lab.example=alpha",
    )
    assert event.node == "alpha"
    fenced = _event(
        "<30>Nov 24 10:00:00 pve1 pve-ha-crm[1]: fencing: acknowledged - got agent lock for node 'pve2'",
        hostname_map="pve2=beta",
    )
    assert fenced.node == "beta"
    assert fenced.metadata["reporter"] == "pve1"


def test_rfc5424_pve_line_is_classified_like_rfc3164() -> None:
    line = f"<30>1 2026-11-24T10:00:00.123456+01:00 pve3.lab.example pvedaemon 2222 - - <root@pam> end task {U1} OK"
    event = _event(line)
    assert (event.kind, event.node, event.vmid) == ("task.ok", "pve3", 100)
    assert event.timestamp == datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC)


def test_upid_fields_for_pve_and_pbs() -> None:
    pve = parse_upid(U1)
    assert pve is not None
    assert not pve.pbs
    assert (pve.node, pve.task_type, pve.task_id, pve.user, pve.vmid) == (
        "pve1", "qmstart", "100", "root@pam", 100,
    )  # fmt: skip
    assert pve.starttime == 0x65F0A1B2
    pbs = parse_upid(
        "UPID:pbs1:00000332:00000B6C:00000005:65F0A1B4:backup:store1\\x3act\\x2f105:root@pam!t:"
    )
    assert pbs is not None
    assert pbs.pbs
    assert (pbs.task_id, pbs.vmid, pbs.user) == ("store1:ct/105", 105, "root@pam!t")
    assert parse_upid("UPID:broken") is None


def test_adding_a_rule_is_one_entry() -> None:
    extra = rule("test", r"myapp", r"^disk (?P<dev>\w+) on fire$", "disk.error")
    classifier = Classifier([extra, *RULES])
    msg = SyslogMessage(pri=30, message="disk sda on fire", format="rfc3164", app="myapp")
    assert classifier.classify(msg).kind == "disk.error"
    assert Classifier().classify(msg).kind == "syslog.message"
