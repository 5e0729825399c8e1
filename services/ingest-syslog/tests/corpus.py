"""A corpus of syslog lines as Proxmox VE 8/9 and PBS 3/4 hosts send them, with expectations.

Every message text follows a log statement in the named source file (cited per block); the
framing is what rsyslog forwards (RFC 3164, ``RSYSLOG_TraditionalForwardFormat``) or what a
journald/rsyslog RFC 5424 forwarder sends. Expectations follow DESIGN.md "Kind vocabulary":
kind, node (short name of the node the event is about), vmid (only when exactly one guest is
concerned) and severity (PRI severity, raised by the contract's floors).

``classified=False`` marks lines whose kind is knowingly not what the contract would want
(none today); the corpus test measures kind accuracy on the others and requires every
node and vmid to match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# PRI = facility * 8 + severity. daemon = 3, kern = 0, authpriv = 10, auth = 4, user = 1.
DAEMON_ERR, DAEMON_WARN, DAEMON_NOTICE, DAEMON_INFO, DAEMON_CRIT = 27, 28, 29, 30, 26
KERN_EMERG, KERN_ALERT, KERN_CRIT, KERN_ERR, KERN_WARN, KERN_NOTICE, KERN_INFO = 0, 1, 2, 3, 4, 5, 6
AUTHPRIV_INFO, AUTHPRIV_NOTICE, AUTH_INFO = 86, 85, 38
SEVERITY = {0: "critical", 1: "critical", 2: "critical", 3: "error", 4: "warning", 5: "notice",
            6: "info", 7: "debug"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Line:
    """One corpus line and what it must become."""

    source: str
    raw: str
    kind: str
    node: str | None
    vmid: int | None
    severity: str
    classified: bool = True
    detail: bool = False  # metadata.detail_of: a line of a happening another line is the event of
    recovers: str | None = None  # metadata.recovers: the kind whose happening the line ends


CORPUS: list[Line] = []
_clock = [3 * 3600]  # seconds since midnight, advanced per line so timestamps look like a log


def _stamp3164(advance: int = 7) -> str:
    _clock[0] += advance
    t = _clock[0] % 86400
    return f"Nov 30 {t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"


def _stamp5424(advance: int = 7) -> str:
    _clock[0] += advance
    t = _clock[0] % 86400
    return f"2026-11-30T{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}.{t % 997:06d}+01:00"


def frame(
    pri: int, host: str, app: str, pid: int | None, msg: str, rfc5424: bool, advance: int = 7
) -> str:
    """The raw line: RFC 3164 ``<PRI>Mmm dd hh:mm:ss host app[pid]: msg`` or RFC 5424;
    ``advance``: seconds after the previous line (0: printed at once, a kernel dump)."""
    if rfc5424:
        return f"<{pri}>1 {_stamp5424(advance)} {host} {app} {pid if pid else '-'} - - {msg}"
    tag = f"{app}[{pid}]" if pid else app
    return f"<{pri}>{_stamp3164(advance)} {host} {tag}: {msg}"


_FLOORS = {
    **dict.fromkeys(("task.failed", "backup.failed", "replication.failed", "quorum.lost",
                     "oom.kill", "disk.error", "vm.crashed"), "error"),
    **dict.fromkeys(("auth.failed", "node.offline", "link.down", "storage.full"), "warning"),
    "node.fencing": "critical",
    "node.fenced": "critical",
}  # fmt: skip
_RANK = ["debug", "info", "notice", "warning", "error", "critical"]


def expected_severity(pri: int, kind: str, minimum: str | None = None, detail: bool = False) -> str:
    """``detail``: a follow-on line of a happening another line is the event of (an OOM
    kill's systemd and report lines): at most info, so it does not notify a second time."""
    severity = SEVERITY[pri & 7]
    for floor in (_FLOORS.get(kind), minimum):
        if floor and _RANK.index(floor) > _RANK.index(severity):
            severity = floor
    if detail and _RANK.index(severity) > _RANK.index("info"):
        severity = "info"
    return severity


class Block:
    """Lines of one source file; ``add`` frames and records one line with its expectation."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._n = 0

    def sender(self, host: str, app: str, pid: int | None) -> Callable[..., None]:
        """``add`` with the sending process fixed: ``corosync(DAEMON_NOTICE, msg, kind, ...)``."""

        def add(pri: int, msg: str, kind: str = "syslog.message", **expect: Any) -> None:
            self.add(pri, host, app, pid, msg, kind, **expect)

        return add

    def add(
        self,
        pri: int,
        host: str,
        app: str,
        pid: int | None,
        msg: str,
        kind: str = "syslog.message",
        *,
        node: str | None = "",
        vmid: int | None = None,
        minimum: str | None = None,
        rfc5424: bool | None = None,
        detail: bool = False,
        at_once: bool = False,
        recovers: str | None = None,
    ) -> None:
        """``node`` defaults to the sender's short name; every third line is RFC 5424."""
        self._n += 1
        use_5424 = self._n % 3 == 0 if rfc5424 is None else rfc5424
        short = host.split(".", 1)[0]
        CORPUS.append(
            Line(
                source=self.source,
                raw=frame(pri, host, app, pid, msg, use_5424, 0 if at_once else 7),
                kind=kind,
                node=short if node == "" else node,
                vmid=vmid,
                severity=expected_severity(pri, kind, minimum, detail),
                detail=detail,
                recovers=recovers,
            )
        )


def upid(node: str, pid: int, start: int, ttype: str, tid: str, user: str = "root@pam") -> str:
    """A PVE UPID as pve-common ``PVE::UPID::encode`` writes it."""
    return f"UPID:{node}:{pid:08X}:{pid * 37 + 1000:08X}:{start:08X}:{ttype}:{tid}:{user}:"


# --- pve-common: task start/end lines --------------------------------------------------------
b = Block("pve-common src/PVE/RESTEnvironment.pm (fork_worker, log_task_result)")
T0 = 0x6749F000
for host, app, apid, ttype, tid, status, vmid in [
    ("pve1", "pvedaemon", 2231, "qmstart", "100", "OK", 100),
    ("pve1", "pvedaemon", 2231, "qmshutdown", "101", "OK", 101),
    ("pve1", "pvedaemon", 2232, "qmstop", "102", "OK", 102),
    ("pve2", "pvedaemon", 1877, "vzstart", "200", "OK", 200),
    ("pve2", "pvedaemon", 1877, "vzshutdown", "201", "OK", 201),
    ("pve2", "pvedaemon", 1878, "qmigrate", "103", "OK", 103),
    ("pve3.lab.example", "pvedaemon", 1502, "qmclone", "9000", "WARNINGS: 1", 9000),
    ("pve1", "pveproxy", 3310, "vncproxy", "100", "OK", 100),
    ("pve1", "pveproxy", 3311, "vncshell", "", "OK", None),
    ("pve1", "pvedaemon", 2233, "aptupdate", "", "OK", None),
    ("pve2", "pvedaemon", 1879, "qmsnapshot", "104", "OK", 104),
    ("pve2", "pvedaemon", 1879, "qmrollback", "104", "OK", 104),
    ("pve1", "pvedaemon", 2234, "qmdestroy", "105", "OK", 105),
    ("pve1", "pvedaemon", 2234, "vzcreate", "202", "OK", 202),
    ("pve3", "pvedaemon", 1503, "srvreload", "networking", "OK", None),
    ("pve1", "pvescheduler", 4101, "vzdump", "", "OK", None),
    ("pve2", "pve-ha-lrm", 1410, "qmstart", "110", "OK", 110),
    ("pve2", "pve-ha-lrm", 1410, "qmigrate", "111", "OK", 111),
    ("pve1", "pvedaemon", 2235, "imgcopy", "", "OK", None),
    ("pve1", "pvedaemon", 2235, "download", "local", "OK", None),
]:
    u = upid(host.split(".")[0], apid * 3 + 7, T0 + apid, ttype, tid)
    b.add(DAEMON_INFO, host, app, apid, f"<root@pam> starting task {u}", vmid=vmid)
    kind = "task.ok"
    b.add(
        DAEMON_INFO,
        host,
        app,
        apid,
        f"<root@pam> end task {u} {status}",
        kind,
        vmid=vmid,
        minimum="warning" if status.startswith("WARNINGS") else None,
    )
for host, app, apid, ttype, tid, status, vmid in [
    ("pve1", "pvedaemon", 2240, "qmstart", "100", "start failed: QEMU exited with code 1", 100),
    ("pve1", "pvedaemon", 2240, "qmshutdown", "106", "VM quit/powerdown failed - got timeout", 106),
    ("pve2", "pvedaemon", 1880, "vzstart", "203", "startup for container '203' failed", 203),
    ("pve2", "pvedaemon", 1880, "qmigrate", "107", "migration problems", 107),
    ("pve3", "pvescheduler", 5120, "vzdump", "", "job errors", None),
    ("pve3", "pvescheduler", 5121, "vzdump", "108", "job errors", 108),
    (
        "pve1",
        "pvedaemon",
        2241,
        "qmclone",
        "9001",
        "clone failed: can't lock file '/var/lock/qemu-server/lock-9001.conf' - got timeout",
        9001,
    ),
    (
        "pve1",
        "pvedaemon",
        2241,
        "aptupdate",
        "",
        "command 'apt-get update' failed: exit code 100",
        None,
    ),
    ("pve2", "pve-ha-lrm", 1411, "qmstart", "112", "interrupted by signal", 112),
    (
        "pve1",
        "pvedaemon",
        2242,
        "qmsnapshot",
        "109",
        "VM 109 qmp command 'savevm-start' failed - unable to connect to VM 109 qmp socket",
        109,
    ),
]:
    u = upid(host, apid * 3 + 11, T0 + apid * 2, ttype, tid)
    b.add(DAEMON_INFO, host, app, apid, f"<root@pam> starting task {u}", vmid=vmid)
    b.add(
        DAEMON_ERR, host, app, apid, f"<root@pam> end task {u} {status}", "task.failed", vmid=vmid
    )
# API tokens and other users start tasks too
u = upid("pve1", 91234, T0 + 77, "qmstart", "120", "automation@pve!n8n")
b.add(DAEMON_INFO, "pve1", "pvedaemon", 2243, f"<automation@pve!n8n> starting task {u}", vmid=120)
b.add(
    DAEMON_INFO,
    "pve1",
    "pvedaemon",
    2243,
    f"<automation@pve!n8n> end task {u} OK",
    "task.ok",
    vmid=120,
)

# --- qemu-server / pve-container: the worker's own start line --------------------------------
b = Block("qemu-server src/PVE/API2/Qemu.pm, pve-container src/PVE/API2/LXC/Status.pm")
for app, apid, text, vmid in [
    ("pvedaemon", 2231, "start VM 100", 100),
    ("pvedaemon", 2231, "shutdown VM 101", 101),
    ("pvedaemon", 2232, "stop VM 102", 102),
    ("pvedaemon", 2232, "destroy VM 105", 105),
    ("pvedaemon", 2233, "requesting reboot of VM 113", 113),
    ("pvedaemon", 2233, "suspend VM 114", 114),
    ("pvedaemon", 2233, "resume VM 114", 114),
    ("pvedaemon", 1877, "starting CT 200", 200),
    ("pvedaemon", 1877, "shutdown CT 201", 201),
    ("pvedaemon", 1877, "stopping CT 204", 204),
    ("pvedaemon", 1878, "requesting reboot of CT 205", 205),
    ("pve-ha-lrm", 1410, "start VM 110", 110),
]:
    ttype = {"start VM": "qmstart", "starting CT": "vzstart"}.get(text.rsplit(" ", 1)[0], "qmx")
    u = upid("pve1", apid * 5, T0 + vmid, ttype, str(vmid))
    b.add(DAEMON_INFO, "pve1", app, apid, f"{text}: {u}", vmid=vmid)
b.add(
    DAEMON_INFO,
    "pve1",
    "pvedaemon",
    2231,
    "VM 100 started with PID 41821 using pve-qemu-kvm 9.2.0-5.",
    "vm.started",
    vmid=100,
)
b.add(
    DAEMON_INFO,
    "pve2",
    "pve-ha-lrm",
    1410,
    "VM 110 started with PID 20113 using pve-qemu-kvm 10.0.2-4.",
    "vm.started",
    vmid=110,
)
b.add(
    DAEMON_INFO,
    "pve3",
    "qm",
    30211,
    "VM 115 started with PID 30250 using pve-qemu-kvm 9.2.0-5.",
    "vm.started",
    vmid=115,
)
b.add(
    DAEMON_INFO,
    "pve1",
    "pvescheduler",
    4101,
    "VM 116 started with PID 52110 using pve-qemu-kvm 10.0.2-4.",
    "vm.started",
    vmid=116,
)
b.add(DAEMON_INFO, "pve1", "qm", 30400, "executed 'qm unlock 100'")
b.add(DAEMON_INFO, "pve2", "pct", 30500, "executed 'pct unlock 201'")
b.add(DAEMON_ERR, "pve1", "pvedaemon", 2236, "VM 117 creating disks failed", vmid=117)
b.add(
    DAEMON_ERR,
    "pve1",
    "pvestatd",
    1310,
    "VM 100 qmp command failed - VM 100 qmp command 'query-proxmox-support' failed - unable "
    "to connect to VM 100 qmp socket - timeout after 51 retries",
    vmid=100,
)
b.add(
    DAEMON_ERR, "pve2", "pvestatd", 1290, "VM 118 qmp command failed - VM 118 not running", vmid=118
)

# --- qmeventd (qm cleanup runs under it) ------------------------------------------------------
b = Block("qemu-server src/PVE/CLI/qm.pm (cleanup), src/qmeventd/qmeventd.c")
for host, vmid in [("pve1", 100), ("pve1", 101), ("pve2", 110), ("pve3", 115), ("pve2", 203)]:
    b.add(
        DAEMON_WARN, host, "qmeventd", 998, f"Starting cleanup for {vmid}", "vm.stopped", vmid=vmid
    )
    b.add(
        DAEMON_WARN, host, "qmeventd", 998, f"Finished cleanup for {vmid}", vmid=vmid, detail=True
    )
qmeventd = b.sender("pve1", "qmeventd", 998)
qmeventd(
    DAEMON_WARN,
    "VM cleanup: QEMU process 41821 for VM 100 still running (or newly started)",
    vmid=100,
)
qmeventd(DAEMON_WARN, "skipping cleanup - 'backup' lock is present and vm is running again")
qmeventd(DAEMON_ERR, "100: received error from QMP: QMP socket closed", vmid=100)
b.add(DAEMON_ERR, "pve2", "qmeventd", 998, "could not get vmid from pid 2345")
b.add(DAEMON_ERR, "pve2", "qmeventd", 998, "rejecting non-root client (pid 4242, uid 1000)")
b.add(DAEMON_ERR, "pve1", "qmeventd", 998, "cleanup failed, terminating pid '41821' with SIGKILL")

# --- systemd: guest scopes and container units ------------------------------------------------
b = Block(
    "systemd src/core/unit.c; qemu-server qemu.slice/<vmid>.scope, "
    "pve-container src/pve-container@.service"
)
for host, vmid in [("pve1", 100), ("pve2", 110), ("pve3", 115)]:
    b.add(DAEMON_INFO, host, "systemd", 1, f"Started {vmid}.scope.", vmid=vmid)
    b.add(DAEMON_INFO, host, "systemd", 1, f"{vmid}.scope: Deactivated successfully.", vmid=vmid)
    b.add(
        DAEMON_INFO,
        host,
        "systemd",
        1,
        f"{vmid}.scope: Consumed 2h 13min 4.512s CPU time.",
        vmid=vmid,
    )
b.add(
    DAEMON_NOTICE,
    "pve2",
    "systemd",
    1,
    "121.scope: A process of this unit has been killed by the OOM killer.",
    vmid=121,
    detail=True,
)
b.add(
    DAEMON_WARN,
    "pve2",
    "systemd",
    1,
    "121.scope: Failed with result 'oom-kill'.",
    vmid=121,
    detail=True,
)
for host, vmid in [("pve2", 200), ("pve2", 201), ("pve1", 202)]:
    b.add(
        DAEMON_INFO,
        host,
        "systemd",
        1,
        f"Started pve-container@{vmid}.service - PVE LXC Container: {vmid}.",
        "vm.started",
        vmid=vmid,
    )
    b.add(
        DAEMON_INFO,
        host,
        "systemd",
        1,
        f"pve-container@{vmid}.service: Deactivated successfully.",
        "vm.stopped",
        vmid=vmid,
    )
b.add(
    DAEMON_WARN,
    "pve2",
    "systemd",
    1,
    "pve-container@203.service: Failed with result 'exit-code'.",
    "vm.stopped",
    vmid=203,
    minimum="warning",
)
systemd = b.sender("pve1", "systemd", 1)
systemd(DAEMON_INFO, "Started session-42.scope - Session 42 of User root.")
systemd(DAEMON_INFO, "session-42.scope: Deactivated successfully.")
systemd(DAEMON_INFO, "Starting pvescheduler.service - Proxmox VE scheduler...")
systemd(DAEMON_INFO, "Reloading pveproxy.service - PVE API Proxy Server...")

# --- vzdump: one scheduled job with three guests, one failing ---------------------------------
b = Block("pve-manager PVE/VZDump.pm (via pve-guest-common src/PVE/VZDump/Plugin.pm debugmsg)")
for host, app, pid, guests, job_ok in [
    (
        "pve1",
        "pvescheduler",
        88231,
        [(100, "qemu", True), (101, "qemu", True), (200, "lxc", True)],
        True,
    ),
    (
        "pve2",
        "pvescheduler",
        71002,
        [(110, "qemu", True), (111, "qemu", False), (201, "lxc", True)],
        False,
    ),
    ("pve3", "vzdump", 40411, [(115, "qemu", False)], False),
    ("pve1", "pvedaemon", 2299, [(102, "qemu", True)], True),
]:
    ids = " ".join(str(g[0]) for g in guests)
    cmd = f"vzdump {ids} --storage pbs-store1 --mode snapshot --notes-template '{{{{guestname}}}}'"
    only = guests[0][0] if len(guests) == 1 else None
    b.add(DAEMON_INFO, host, app, pid, f"INFO: starting new backup job: {cmd}", vmid=only)
    for vmid, vtype, ok in guests:
        b.add(
            DAEMON_INFO, host, app, pid, f"INFO: Starting Backup of VM {vmid} ({vtype})", vmid=vmid
        )
        if ok:
            b.add(
                DAEMON_INFO,
                host,
                app,
                pid,
                f"INFO: Finished Backup of VM {vmid} (00:02:{vmid % 60:02d})",
                "backup.ok",
                vmid=vmid,
            )
        else:
            b.add(
                DAEMON_ERR,
                host,
                app,
                pid,
                f"ERROR: Backup of VM {vmid} failed - VM {vmid} qmp command 'backup' failed - "
                "backup register image failed: command error: ENOSPC: No space left on device",
                "backup.failed",
                vmid=vmid,
            )
    if job_ok:
        b.add(DAEMON_INFO, host, app, pid, "INFO: Backup job finished successfully", "backup.ok")
    else:
        b.add(DAEMON_INFO, host, app, pid, "INFO: Backup job finished with errors", "backup.failed")
pvescheduler = b.sender("pve1", "pvescheduler", 88240)
pvescheduler(
    DAEMON_INFO,
    "INFO: starting new backup job: vzdump --all 1 --mode snapshot --storage local --quiet 1",
)
pvescheduler(
    DAEMON_INFO,
    "INFO: starting new backup job: vzdump --exclude 100,101 --mode stop --storage nfs-backup",
)
pvescheduler(
    DAEMON_ERR, "ERROR: Backup job failed - storage 'nfs-backup' is not online", "backup.failed"
)
b.add(
    DAEMON_ERR,
    "pve2",
    "vzdump",
    40420,
    "ERROR: Backup of VM 122 failed - unable to find VM '122'",
    "backup.failed",
    vmid=122,
)
b.add(
    DAEMON_ERR,
    "pve2",
    "pvescheduler",
    71010,
    "ERROR: Backup of VM 123 failed - job failed with err -5 - Input/output error",
    "backup.failed",
    vmid=123,
)
b.add(DAEMON_INFO, "pve3", "pvescheduler", 40430, "INFO: skip external VMs: 130, 131")

# --- replication ------------------------------------------------------------------------------
b = Block("pve-manager PVE/API2/Replication.pm (_handle_job_err)")
for host, app, job, err in [
    (
        "pve1",
        "pvescheduler",
        "100-0",
        "command 'set -o pipefail && pvesm export local-zfs:vm-100-disk-0 zfs - -with-snapshots 1 "
        "-snapshot __replicate_100-0_1764470700__ | /usr/bin/ssh -e none -o 'BatchMode=yes' "
        "-o 'HostKeyAlias=pve2' root@10.0.0.12 -- pvesm import local-zfs:vm-100-disk-0 zfs - "
        "-with-snapshots 1 -snapshot __replicate_100-0_1764470700__ -allow-rename 0' failed: "
        "exit code 255",
    ),
    (
        "pve1",
        "pvescheduler",
        "101-1",
        "No common base snapshot on volume(s) local-zfs:vm-101-disk-0",
    ),
    ("pve2", "pvesr", "110-0", "error with cfs lock 'file-replication_cfg': got lock timeout"),
    (
        "pve3",
        "pvescheduler",
        "115-2",
        "start time before last sync (1764470700 <= 1764470800) - abort sync",
    ),
]:
    vmid = int(job.split("-")[0])
    b.add(
        DAEMON_WARN,
        host,
        app,
        4101,
        f"{job}: got unexpected replication job error - {err}",
        "replication.failed",
        vmid=vmid,
    )

# --- HA manager: a node fails and is fenced, services recover --------------------------------
b = Block("pve-ha-manager src/PVE/HA/NodeStatus.pm, src/PVE/HA/Manager.pm")
crm = ("pve1", "pve-ha-crm", 1502)
# A service's ha.state is about no node (node=None): the CRM master logs it, naming the
# service's node only in "(node = X)" (Manager.pm change_service_state), so no node is what
# syslog, the cluster log and the API agree on (ingest-syslog rules.py _ha_service).


def ha(
    msg: str,
    kind: str = "syslog.message",
    *,
    node: str | None = "",
    vmid: int | None = None,
    minimum: str | None = None,
    pri: int = DAEMON_INFO,
    recovers: str | None = None,
) -> None:
    """A line of the CRM master on pve1 (src/PVE/HA/Env/PVE2.pm log → syslog)."""
    b.add(
        pri, crm[0], crm[1], crm[2], msg, kind, node=node, vmid=vmid, minimum=minimum,
        recovers=recovers,
    )  # fmt: skip


ha("node 'pve3': state changed from 'online' => 'unknown'", "node.offline", node="pve3")
ha("service 'vm:115': state changed from 'started' to 'fence'", "ha.state", node=None, vmid=115)
ha("service 'ct:205': state changed from 'started' to 'fence'", "ha.state", node=None, vmid=205)
ha("node 'pve3': state changed from 'unknown' => 'fence'", "node.fencing", node="pve3")
ha("successfully acquired lock 'ha_agent_pve3_lock'", node="pve3")
ha("fencing: acknowledged - got agent lock for node 'pve3'", "node.fenced", node="pve3")
ha("node 'pve3': state changed from 'fence' => 'unknown'", "ha.state", node="pve3")
ha("service 'vm:115': state changed from 'fence' to 'recovery'", "ha.state", node=None, vmid=115)
ha(
    "recover service 'vm:115' from fenced node 'pve3' to node 'pve2'",
    "ha.state",
    node=None,
    vmid=115,
)
ha(
    "service 'vm:115': state changed from 'recovery' to 'started'  (node = pve2)",
    "ha.state",
    node=None,
    vmid=115,
)
ha(
    "recovering service 'ct:205' from fenced node 'pve3' failed, no recovery node found",
    "ha.state",
    node=None,
    vmid=205,
    minimum="error",
    pri=DAEMON_ERR,
)
# the node's return to the membership ends its node.offline (NodeStatus.pm update)
ha(
    "node 'pve3': state changed from 'unknown' => 'online'",
    "ha.state",
    node="pve3",
    recovers="node.offline",
)
ha("node 'pve2': state changed from 'online' => 'maintenance'", "ha.state", node="pve2")
ha("node 'pve2': state changed from 'maintenance' => 'online'", "ha.state", node="pve2")
ha("node 'pve4': state changed from 'online' => 'gone'", "ha.state", node="pve4")
ha("node 'pve2': state changed from 'maintenance' => 'unknown'", "node.offline", node="pve2")
ha(
    "service 'vm:100': state changed from 'request_stop' to 'stopped'",
    "ha.state",
    node=None,
    vmid=100,
)
ha(
    "service 'vm:116': state changed from 'started' to 'migrate'  (node = pve1, target = pve2)",
    "ha.state",
    node=None,
    vmid=116,
)
ha(
    "service 'vm:116' - migration failed (exit code 1)",
    "ha.state",
    node=None,
    vmid=116,
    pri=DAEMON_ERR,
)
ha(
    "service 'vm:117' got unrecoverable error (exit code 1)",
    "ha.state",
    node=None,
    vmid=117,
    pri=DAEMON_ERR,
)
ha("migrate service 'vm:116' to node 'pve2' (running)", vmid=116)
ha("relocate service 'ct:206' to node 'pve1'", vmid=206)
ha("adding new service 'vm:118' on node 'pve1'", vmid=118)
ha("removed leftover lock 'backup' from recovered service 'vm:115' to allow its start.", vmid=115)
ha("got crm command: migrate vm:116 pve2", vmid=116)
ha("crm command error - no such service: migrate vm:999 pve2", vmid=999, pri=DAEMON_ERR)
ha("status change slave => master", "ha.state")
ha("status change wait_for_quorum => slave", "ha.state")
ha("using scheduler mode 'static'")
ha("deleting gone node 'pve4', not a cluster member anymore.", pri=DAEMON_NOTICE)
b = Block("pve-ha-manager src/PVE/HA/Fence.pm (hardware fencing)")
b.add(DAEMON_NOTICE, "pve1", "pve-ha-crm", 1502, "Start fencing node 'pve3'", node="pve3")
b.add(
    DAEMON_NOTICE,
    "pve1",
    "pve-ha-crm",
    1502,
    "[fence 'pve3'] execute cmd: fence_ipmilan --ip=10.0.0.103 --username=admin",
    node="pve3",
)

b = Block("pve-ha-manager src/PVE/HA/LRM.pm")
for host, vmid in [("pve2", 115), ("pve2", 110), ("pve1", 100)]:
    b.add(
        DAEMON_INFO,
        host,
        "pve-ha-lrm",
        1410,
        f"starting service vm:{vmid}",
        "ha.state",
        node=None,
        vmid=vmid,
    )
    b.add(
        DAEMON_INFO,
        host,
        "pve-ha-lrm",
        1410,
        f"service status vm:{vmid} started",
        "ha.state",
        node=None,
        vmid=vmid,
    )
pve_ha_lrm = b.sender("pve1", "pve-ha-lrm", 1411)
pve_ha_lrm(DAEMON_INFO, "stopping service ct:206 (timeout=180)", "ha.state", node=None, vmid=206)
pve_ha_lrm(DAEMON_INFO, "service status ct:206 stopped", "ha.state", node=None, vmid=206)
pve_ha_lrm(
    DAEMON_WARN, "unable to start service vm:117", "ha.state", node=None, vmid=117, minimum="error"
)
pve_ha_lrm = b.sender("pve3", "pve-ha-lrm", 1420)
pve_ha_lrm(DAEMON_INFO, "status change wait_for_agent_lock => active", "ha.state")
pve_ha_lrm(DAEMON_INFO, "status change active => lost_agent_lock", "ha.state")
pve_ha_lrm(DAEMON_ERR, "node needs to be fenced - releasing agent_lock")
pve_ha_lrm = b.sender("pve1", "pve-ha-lrm", 1411)
pve_ha_lrm(DAEMON_INFO, "watchdog active")
pve_ha_lrm(DAEMON_INFO, "got shutdown request with shutdown policy 'conditional'")
pve_ha_lrm(DAEMON_INFO, "reboot LRM, stop and freeze all services")
pve_ha_lrm(DAEMON_ERR, "resource agent vm:117 finished - failed to execute", vmid=117)

b = Block("pve-ha-manager src/watchdog-mux.c")
b.add(DAEMON_WARN, "pve3", "watchdog-mux", 701, "client (PID 1420) watchdog is about to expire")
b.add(
    DAEMON_WARN,
    "pve3",
    "watchdog-mux",
    701,
    "client (PID 1420) watchdog expired - disable watchdog updates",
    "node.fencing",
)
b.add(
    DAEMON_WARN,
    "pve2",
    "watchdog-mux",
    702,
    "client watchdog expired - disable watchdog updates",
    "node.fencing",
)
b.add(
    DAEMON_INFO,
    "pve3",
    "watchdog-mux",
    701,
    "client (PID 1420) watchdog was updated before expiring",
)
b.add(DAEMON_INFO, "pve1", "watchdog-mux", 703, "Watchdog driver 'Software Watchdog', version 0")

# --- pmxcfs --------------------------------------------------------------------------------------
b = Block("pve-cluster src/pmxcfs/status.c, dfsm.c, dcdb.c, quorum.c (qb_log '[%g] %p: %b')")
for host in ("pve1", "pve2"):
    b.add(DAEMON_NOTICE, host, "pmxcfs", 1090, "[status] notice: node lost quorum", "quorum.lost")
    b.add(
        DAEMON_NOTICE,
        host,
        "pmxcfs",
        1090,
        "[status] notice: node has quorum",
        recovers="quorum.lost",
    )  # status.c cfs_set_quorate
pmxcfs = b.sender("pve3", "pmxcfs", 1091)
pmxcfs(DAEMON_NOTICE, "[dcdb] notice: members: 1/1090, 2/1088, 3/1091")
pmxcfs(DAEMON_NOTICE, "[status] notice: members: 1/1090, 2/1088")
pmxcfs(DAEMON_NOTICE, "[dcdb] notice: starting data syncronisation")
pmxcfs(DAEMON_NOTICE, "[dcdb] notice: all data is up to date")
pmxcfs(DAEMON_NOTICE, "[dcdb] notice: received sync request (epoch 1/1090/00000004)")
pmxcfs(DAEMON_NOTICE, "[dcdb] notice: leader is 1/1090")
pmxcfs = b.sender("pve2", "pmxcfs", 1088)
pmxcfs(DAEMON_CRIT, "[quorum] crit: quorum_initialize failed: 2")
pmxcfs(DAEMON_CRIT, "[confdb] crit: cmap_initialize failed: 2")
pmxcfs(DAEMON_CRIT, "[dcdb] crit: cpg_initialize failed: 2")
pmxcfs(DAEMON_CRIT, "[status] crit: cpg_send_message failed: 9")
pmxcfs(DAEMON_NOTICE, "[status] notice: cpg_send_message retried 1 times")
b.add(DAEMON_NOTICE, "pve1", "pmxcfs", 1090, "[main] notice: teardown filesystem")

# --- corosync / kronosnet -------------------------------------------------------------------
b = Block("kronosnet libknet/threads_heartbeat.c, libknet/host.c, libknet/threads_pmtud.c")
# RFC 3164 framing: time stamps in order. After a link down on a host, knet's and corosync's
# lines are details of it until the link is up again (classify.Classifier, tests/test_bursts.py).
# knet's down and up lines are about no node (node=None: every survivor logs the peer's loss,
# one happening; the sender in metadata.reporter, proxbus_events.knet).
for host, peer, link in [("pve1", 3, 0), ("pve2", 3, 0), ("pve1", 2, 1), ("pve2", 1, 0)]:
    knet = b.sender(host, "corosync", 1180)
    knet(
        DAEMON_INFO,
        f"  [KNET  ] link: host: {peer} link: {link} is down",
        "link.down",
        node=None,
        rfc5424=False,
    )
    knet(
        DAEMON_WARN,
        f"  [KNET  ] host: host: {peer} (passive) best link: 0 (pri: 1)",
        detail=True,
        rfc5424=False,
    )
    knet(
        DAEMON_WARN,
        f"  [KNET  ] host: host: {peer} has no active links",
        detail=True,
        rfc5424=False,
    )
    knet(
        DAEMON_INFO,
        f"  [KNET  ] rx: host: {peer} link: {link} is up",
        node=None,
        rfc5424=False,
        recovers="link.down",
    )
    knet(
        DAEMON_INFO,
        f"  [KNET  ] link: Resetting MTU for link {link} because host {peer} joined",
        rfc5424=False,
    )
b.add(
    DAEMON_INFO,
    "pve1",
    "corosync",
    1180,
    "  [KNET  ] pmtud: PMTUD link change for host: 2 link: 0 from 469 to 1397",
)
b.add(DAEMON_INFO, "pve1", "corosync", 1180, "  [KNET  ] pmtud: Global data MTU changed to: 1397")
# knet logs the link up under the subsystem of the thread that sees the pong: "rx"
# (threads_rx.c, PVE 7/8's knet), "link" or "heartbeat" (threads_heartbeat.c, later ones)
for sub in ("link", "heartbeat"):
    b.add(
        DAEMON_INFO,
        "pve3",
        "corosync",
        1180,
        f"  [KNET  ] {sub}: host: 1 link: 0 is up",
        node=None,
        recovers="link.down",
    )
b = Block("corosync exec/vsf_quorum.c, exec/votequorum.c, exec/totemsrp.c, exec/main.c")
corosync = b.sender("pve1", "corosync", 1180)
corosync(
    DAEMON_NOTICE,
    "  [QUORUM] This node is within the non-primary component and will NOT provide any services.",
)
corosync(
    DAEMON_NOTICE,
    "  [QUORUM] This node is within the primary component and will provide service.",
    recovers="quorum.lost",
)
corosync(DAEMON_NOTICE, "  [QUORUM] Members[2]: 1 2")
corosync(DAEMON_NOTICE, "  [QUORUM] Sync members[2]: 1 2")
corosync(DAEMON_NOTICE, "  [QUORUM] Sync left[1]: 3")
corosync(DAEMON_NOTICE, "  [TOTEM ] A new membership (1.2d) was formed. Members left: 3")
corosync(DAEMON_NOTICE, "  [TOTEM ] Failed to receive the leave message. failed: 3")
corosync(DAEMON_INFO, "  [TOTEM ] Token has not been received in 2737 ms")
corosync(DAEMON_NOTICE, "  [TOTEM ] Retransmit List: 1a 1b")
corosync(DAEMON_NOTICE, "  [MAIN  ] Completed service synchronization, ready to provide service.")
corosync(DAEMON_INFO, "  [MAIN  ] Corosync Cluster Engine exiting normally")

# --- kernel: OOM kills ---------------------------------------------------------------------
b = Block("linux mm/oom_kill.c (dump_oom_summary, __oom_kill_process, dump_header)")
kernel = b.sender("pve2", "kernel", None)
kernel(
    KERN_WARN,
    "kvm invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, "
    "oom_score_adj=0",
    detail=True,
)
kernel(
    KERN_INFO,
    "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=qemu.slice,mems_allowed=0,"
    "global_oom,task_memcg=/qemu.slice/121.scope,task=kvm,pid=20431,uid=0",
    "oom.kill",
    vmid=121,
)
kernel(
    KERN_ERR,
    "Out of memory: Killed process 20431 (kvm) total-vm:17231144kB, anon-rss:16652032kB, "
    "file-rss:2816kB, shmem-rss:4kB, UID:0 pgtables:33364kB oom_score_adj:0",
    "oom.kill",
)
kernel = b.sender("pve1", "kernel", None)
kernel(
    KERN_INFO,
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=ns,mems_allowed=0,"
    "oom_memcg=/lxc/202,task_memcg=/lxc/202/ns/system.slice/mariadb.service,task=mariadbd,"
    "pid=77120,uid=100106",
    "oom.kill",
    vmid=202,
)
kernel(
    KERN_ERR,
    "Memory cgroup out of memory: Killed process 77120 (mariadbd) total-vm:2451236kB, "
    "anon-rss:1021412kB, file-rss:0kB, shmem-rss:0kB, UID:100106 pgtables:2412kB "
    "oom_score_adj:0",
    "oom.kill",
)
kernel(
    KERN_INFO,
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=ns,mems_allowed=0,"
    "oom_memcg=/lxc.payload.207,task_memcg=/lxc.payload.207/system.slice/nginx.service,"
    "task=nginx,pid=80331,uid=100033",
    "oom.kill",
    vmid=207,
)
b.add(
    KERN_INFO,
    "pve3",
    "kernel",
    None,
    "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
    "task_memcg=/system.slice/pveproxy.service,task=pveproxy worker,pid=3312,uid=33",
    "oom.kill",
)
b.add(
    KERN_ERR,
    "pve3",
    "kernel",
    None,
    "Out of memory: Killed process 3312 (pveproxy worker) total-vm:345212kB, anon-rss:"
    "201232kB, file-rss:0kB, shmem-rss:0kB, UID:33 pgtables:612kB oom_score_adj:0",
    "oom.kill",
)
b.add(
    KERN_INFO,
    "pve2",
    "kernel",
    None,
    "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
)
b.add(KERN_WARN, "pve2", "kernel", None, "Tasks state (memory values in pages):")

# --- kernel: QEMU crashes -------------------------------------------------------------------
b = Block("linux arch/x86/mm/fault.c show_signal_msg, arch/x86/kernel/traps.c")
b.add(
    KERN_INFO,
    "pve1",
    "kernel",
    None,
    "kvm[41821]: segfault at 8 ip 000055b1c1a3f2d4 sp 00007ffd3c1f0a80 error 4 in "
    "qemu-system-x86_64[55b1c1600000+6b3000] likely on CPU 3 (core 3, socket 0)",
    "vm.crashed",
)
b.add(
    KERN_INFO,
    "pve2",
    "kernel",
    None,
    "CPU 1/KVM[20440]: segfault at 0 ip 00007f1c2b3a1e30 sp 00007f1a197fb5c8 error 6 in "
    "libc.so.6[7f1c2b322000+155000]",
    "vm.crashed",
)
b.add(
    KERN_INFO,
    "pve3",
    "kernel",
    None,
    "traps: kvm[30250] general protection fault ip:5607a1c2d3e4 sp:7ffc1a2b3c40 error:0 in "
    "qemu-system-x86_64[5607a1a00000+6b3000]",
    "vm.crashed",
)
b.add(
    KERN_INFO,
    "pve1",
    "kernel",
    None,
    "pvestatd[1310]: segfault at 7ffd3c1f0fe8 ip 00007f2a1b2c3d4e sp 00007ffd3c1f0ff0 "
    "error 6 in libperl.so.5.36.0[7f2a1b200000+195000]",
)

# --- kernel: disks --------------------------------------------------------------------------
b = Block(
    "linux block/blk-core.c blk_print_req_error (and drivers/ata, drivers/scsi, "
    "drivers/nvme, fs/buffer.c)"
)
kernel = b.sender("pve1", "kernel", None)
kernel(KERN_ERR, "ata3.00: exception Emask 0x0 SAct 0x100000 SErr 0x0 action 0x0", detail=True)
kernel(KERN_ERR, "ata3.00: irq_stat 0x40000008", detail=True)
kernel(KERN_ERR, "ata3.00: failed command: READ FPDMA QUEUED", detail=True)
kernel(
    KERN_ERR, "ata3.00: cmd 60/08:a0:00:1c:5d/00:00:1d:00:00/40 tag 20 ncq dma 4096 in", detail=True
)
kernel(KERN_ERR, "ata3.00: status: { DRDY ERR }", detail=True)
kernel(KERN_ERR, "ata3.00: error: { UNC }", detail=True)
# info lines of the same drivers: details inside the host's burst window (RFC 3164 framing
# here, so their time stamps follow the lines above; RFC 5424's +01:00 would be an hour off)
kernel(KERN_INFO, "ata3: EH complete", detail=True, rfc5424=False)
kernel(
    KERN_INFO,
    "sd 2:0:0:0: [sdc] tag#20 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_OK cmd_age=3s",
    detail=True,
    rfc5424=False,
)
kernel(
    KERN_INFO,
    "sd 2:0:0:0: [sdc] tag#20 Sense Key : Medium Error [current]",
    detail=True,
    rfc5424=False,
)
kernel(
    KERN_INFO,
    "sd 2:0:0:0: [sdc] tag#20 Add. Sense: Unrecovered read error - auto reallocate failed",
    detail=True,
    rfc5424=False,
)
kernel(
    KERN_ERR,
    "I/O error, dev sdc, sector 492641280 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2",
    "disk.error",
)
b.add(
    KERN_ERR,
    "pve2",
    "kernel",
    None,
    "blk_update_request: I/O error, dev sdb, sector 123456 op 0x1:(WRITE) flags 0x800 "
    "phys_seg 1 prio class 0",
    "disk.error",
)
b.add(
    KERN_ERR,
    "pve2",
    "kernel",
    None,
    "critical medium error, dev sda, sector 9876543 op 0x0:(READ) flags 0x80700 phys_seg 1 "
    "prio class 0",
    "disk.error",
)
b.add(
    KERN_ERR,
    "pve3",
    "kernel",
    None,
    "critical target error, dev sdd, sector 2048 op 0x3:(DISCARD) flags 0x800 phys_seg 1 "
    "prio class 0",
    "disk.error",
)
b.add(
    KERN_ERR,
    "pve3",
    "kernel",
    None,
    "timeout error, dev sdd, sector 77824 op 0x0:(READ) flags 0x80700 phys_seg 8 prio class 2",
    "disk.error",
)
kernel = b.sender("pve1", "kernel", None)
kernel(KERN_ERR, "Buffer I/O error on dev sdc1, logical block 0, async page read", detail=True)
kernel(
    KERN_ERR,
    "Buffer I/O error on device dm-7, logical block 1536, lost async page write",
    detail=True,
)
kernel(KERN_WARN, "nvme nvme0: I/O 512 QID 5 timeout, aborting", "disk.error")
kernel(KERN_WARN, "nvme nvme0: Abort status: 0x0", detail=True)
kernel = b.sender("pve2", "kernel", None)
kernel(
    KERN_WARN,
    "nvme nvme1: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0x10",
    "disk.error",
    rfc5424=False,
)
# the same controller failing, seconds later: details of the disk.error above
kernel(
    KERN_WARN, "nvme nvme1: Device not ready; aborting reset, CSTS=0x1", detail=True, rfc5424=False
)
kernel(
    KERN_ERR,
    "nvme1n1: I/O Cmd(0x2) @ LBA 1953525, 8 blocks, I/O Error (sct 0x2 / sc 0x81) MORE",
    detail=True,
)
kernel(
    KERN_ERR,
    "critical medium error, dev nvme1n1, sector 1953525 op 0x0:(READ) flags 0x0 phys_seg 1 "
    "prio class 2",
    detail=True,
    rfc5424=False,
)
kernel = b.sender("pve3", "kernel", None)
kernel(
    KERN_CRIT,
    "EXT4-fs error (device dm-1): ext4_find_entry:1455: inode #2: comm pvestatd: reading "
    "directory lblock 0",
    "disk.error",
)
kernel(
    KERN_ALERT,
    'XFS (dm-3): metadata I/O error in "xfs_imap_to_bp+0x5d/0x90 [xfs]" at daddr 0x40 '
    "len 32 error 5",
    "disk.error",
)
kernel(
    KERN_INFO,
    "EXT4-fs (dm-1): mounted filesystem 5c1d9e0e-3b1f-4b58-9e0f-2b6e0c1a2f3d r/w with "
    "ordered data mode. Quota mode: none.",
)

# --- kernel: guest network interfaces -----------------------------------------------------
b = Block(
    "pve-common src/PVE/Network.pm (tap_plug, fwbr/fwln/fwpr), qemu-server tap<vmid>i<n>, "
    "pve-container veth<vmid>i<n>; linux net/bridge/br_stp.c"
)
for text, vmid in [
    ("vmbr0: port 3(tap100i0) entered blocking state", 100),
    ("vmbr0: port 3(tap100i0) entered disabled state", 100),
    ("tap100i0: entered promiscuous mode", 100),
    ("fwbr110i0: port 2(tap110i0) entered forwarding state", 110),
    ("fwln110i0: entered allmulticast mode", 110),
    ("vmbr0: port 4(fwpr110p0) entered forwarding state", 110),
    ("vmbr0: port 5(veth200i0) entered forwarding state", 200),
    ("veth200i0 (unregistering): left promiscuous mode", 200),
    ("eth0: renamed from veth201i0", 201),
    ("vmbr0: port 1(enp3s0) entered forwarding state", None),
]:
    b.add(KERN_INFO, "pve1", "kernel", None, text, vmid=vmid)

# --- ZFS ------------------------------------------------------------------------------------
b = Block("openzfs cmd/zed/zed.d/all-syslog.sh (zed_log_msg via logger -t zed)")
for host, eid, cls, pool, vdev, extra, kind in [
    (
        "pve1",
        12,
        "checksum",
        "rpool",
        "nvme-eui.0025388b91b2c3d4-part3",
        " algorithm=fletcher4 size=4096 offset=1283543040 priority=4 err=52 flags=0x180880 "
        "bookmark=0:73:0:1234",
        "disk.error",
    ),
    (
        "pve1",
        13,
        "io",
        "tank",
        "ata-ST4000NM0035-1V4107_ZC1234AB-part1",
        " size=131072 offset=2251799813 priority=3 err=5 flags=0x40080c80",
        "disk.error",
    ),
    (
        "pve2",
        7,
        "data",
        "tank",
        "",
        " priority=2 err=52 flags=0x808881 bookmark=515:1:0:44",
        "disk.error",
    ),
    (
        "pve2",
        8,
        "delay",
        "tank",
        "sdb1",
        " size=131072 offset=1048576 priority=3 err=0 flags=0x40080c80 delay=30012ms",
        "disk.error",
    ),
    ("pve1", 20, "scrub_start", "rpool", "", "", "syslog.message"),
    ("pve1", 21, "scrub_finish", "rpool", "", "", "syslog.message"),
    ("pve1", 22, "history_event", "rpool", "", "", "syslog.message"),
    ("pve2", 9, "config_sync", "tank", "", "", "syslog.message"),
    ("pve2", 10, "resilver_start", "tank", "", "", "syslog.message"),
    ("pve2", 11, "resilver_finish", "tank", "", "", "syslog.message"),
    ("pve3", 3, "trim_finish", "rpool", "", "", "syslog.message"),
]:
    v = f" vdev={vdev}" if vdev else ""
    # pve2's config_sync follows tank's errors (eid=7, 8) within seconds: a detail of them
    detail = (host, cls) == ("pve2", "config_sync")
    b.add(
        DAEMON_NOTICE,
        host,
        "zed",
        2210,
        f"eid={eid} class={cls} pool='{pool}'{v}{extra}",
        kind,
        detail=detail,
    )
for state, kind in [
    ("FAULTED", "disk.error"),
    ("DEGRADED", "disk.error"),
    ("REMOVED", "disk.error"),
    ("UNAVAIL", "disk.error"),
    ("ONLINE", "syslog.message"),
]:
    b.add(
        DAEMON_NOTICE,
        "pve2",
        "zed",
        2210,
        f"eid=30 class=statechange pool='tank' vdev=sdb1 vdev_state={state}",
        kind,
    )
b.add(
    DAEMON_NOTICE,
    "pve2",
    "zed",
    2210,
    "eid=31 class=statechange pool='tank' vdev=sdc1 pool_state=DEGRADED vdev_state=ONLINE",
)
b.add(DAEMON_INFO, "pve2", "zed", 2210, "Exiting")
b = Block("openzfs module/zfs/spa_misc.c, module/zfs/zfs_fm.c")
b.add(
    KERN_WARN,
    "pve2",
    "kernel",
    None,
    "WARNING: Pool 'tank' has encountered an uncorrectable I/O failure and has been suspended.",
    "disk.error",
)
b.add(
    KERN_WARN,
    "pve1",
    "kernel",
    None,
    "zio pool=rpool vdev=/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456-"
    "part3 error=5 type=2 offset=1234567168 size=4096 flags=180880",
    "disk.error",
)

# --- smartd ---------------------------------------------------------------------------------
b = Block("smartmontools smartd.cpp (PrintOut)")
b.add(
    DAEMON_CRIT,
    "pve1",
    "smartd",
    880,
    "Device: /dev/sda [SAT], 8 Currently unreadable (pending) sectors",
    "disk.error",
)
b.add(
    DAEMON_CRIT,
    "pve1",
    "smartd",
    880,
    "Device: /dev/sda [SAT], 3 Offline uncorrectable sectors",
    "disk.error",
)
b.add(
    DAEMON_CRIT,
    "pve2",
    "smartd",
    881,
    "Device: /dev/sdc [SAT], FAILED SMART self-check. BACK UP DATA NOW!",
    "disk.error",
)
b.add(
    DAEMON_CRIT,
    "pve2",
    "smartd",
    881,
    "Device: /dev/sdc [SAT], Self-Test Log error count increased from 0 to 1",
    "disk.error",
)
b.add(
    DAEMON_CRIT,
    "pve3",
    "smartd",
    882,
    "Device: /dev/sdb [SAT], ATA error count increased from 0 to 2",
    "disk.error",
)
b.add(
    DAEMON_CRIT,
    "pve3",
    "smartd",
    882,
    "Device: /dev/nvme0, Critical Warning (0x04): Reliability",
    "disk.error",
)
smartd = b.sender("pve1", "smartd", 880)
smartd(
    DAEMON_INFO,
    "Device: /dev/sda [SAT], SMART Usage Attribute: 194 Temperature_Celsius changed from 64 to 65",
)
smartd(
    DAEMON_INFO,
    "Device: /dev/sda [SAT], SMART Prefailure Attribute: 1 Raw_Read_Error_Rate changed from "
    "75 to 76",
)
smartd(
    DAEMON_INFO,
    "Device: /dev/sdb [SAT], state written to /var/lib/smartmontools/smartd.WDC-1.ata.state",
)
smartd(DAEMON_INFO, "Device: /dev/nvme0, opened")

# --- LVM thin pools, storage ----------------------------------------------------------------
b = Block("lvm2 daemons/dmeventd/plugins/thin/dmeventd_thin.c, linux drivers/md/dm-thin.c")
b.add(
    DAEMON_WARN,
    "pve1",
    "lvm",
    555,
    "WARNING: Thin pool pve-data-tpool data is now 80.02% full.",
    "storage.full",
)
b.add(
    DAEMON_WARN,
    "pve1",
    "lvm",
    555,
    "WARNING: Thin pool pve-data-tpool data is now 96.12% full.",
    "storage.full",
)
b.add(
    DAEMON_WARN,
    "pve2",
    "dmeventd",
    556,
    "WARNING: Thin pool pve-data-tpool metadata is now 81.55% full.",
    "storage.full",
)
kernel = b.sender("pve1", "kernel", None)
kernel(
    KERN_WARN, "device-mapper: thin: 252:4: reached low water mark for data device: sending event."
)
kernel(
    KERN_ERR,
    "device-mapper: thin: 252:4: switching pool to out-of-data-space (queue IO) mode",
    "storage.full",
)
kernel(
    KERN_ERR,
    "critical space allocation error, dev dm-5, sector 20971520 op 0x1:(WRITE) flags 0x8800 "
    "phys_seg 16 prio class 2",
    "storage.full",
)
b = Block(
    "pve-storage src/PVE/Storage.pm (activate_storage), pve-manager bin/pvestatd "
    "($SIG{__WARN__} → syslog)"
)
b.add(DAEMON_WARN, "pve1", "pvestatd", 1310, "storage 'nfs-backup' is not online")
b.add(DAEMON_WARN, "pve2", "pvestatd", 1290, "storage 'pbs-store1' is not online")
b.add(
    DAEMON_WARN,
    "pve3",
    "pvestatd",
    1300,
    "connection check for storage 'cephfs' failed - timeout after 2 seconds",
)
b.add(
    DAEMON_ERR,
    "pve1",
    "pvestatd",
    1310,
    "unable to activate storage 'nas' - directory '/mnt/pve/nas' does not exist or is unreachable",
)
b.add(
    DAEMON_ERR,
    "pve2",
    "pvedaemon",
    1877,
    "TASK ERROR: command 'zfs create rpool/data/subvol-208-disk-0' failed: cannot create "
    "'rpool/data/subvol-208-disk-0': out of space",
)
b.add(
    DAEMON_ERR,
    "pve1",
    "pvescheduler",
    4101,
    "unable to write '/var/log/pve/tasks/index': No space left on device",
    "storage.full",
)

# --- pve-manager daemons ---------------------------------------------------------------------
b = Block("pve-manager PVE/Service/pvestatd.pm, pvescheduler.pm, pve-common src/PVE/Daemon.pm")
b.add(
    DAEMON_ERR,
    "pve1",
    "pvestatd",
    1310,
    "storage status update error: command '/sbin/vgs --separator : --noheadings' failed: "
    "got timeout",
)
b.add(DAEMON_INFO, "pve1", "pvestatd", 1310, "status update time (5.123 seconds)")
b.add(DAEMON_INFO, "pve1.lab.example", "pvestatd", 1310, "status update time (8.951 seconds)")
pvestatd = b.sender("pve2", "pvestatd", 1290)
pvestatd(DAEMON_INFO, "modified cpu set for lxc/201: 0-3", vmid=None)
pvestatd(DAEMON_INFO, "remove stale lxc-console for CT 209", vmid=209)
pvestatd(DAEMON_ERR, "auto ballooning error: ballooning is disabled")
pvescheduler = b.sender("pve1", "pvescheduler", 4101)
pvescheduler(DAEMON_INFO, "got shutdown request, signal running jobs to stop")
pvescheduler(DAEMON_WARN, "unresponsive job-worker, killing now: 4155")
pvescheduler(DAEMON_ERR, "jobs: cfs-lock 'file-jobs_cfg' error: got lock request timeout")
pvedaemon = b.sender("pve1", "pvedaemon", 2231)
pvedaemon(DAEMON_INFO, "worker 2240 finished")
pvedaemon(DAEMON_INFO, "starting 1 worker(s)")
pvedaemon(DAEMON_INFO, "worker 2250 started")
pveproxy = b.sender("pve1", "pveproxy", 3310)
pveproxy(DAEMON_INFO, "restarting server after 92 cycles to reduce memory usage")
pveproxy(DAEMON_INFO, "received signal TERM")
pveproxy(DAEMON_INFO, "server closing")
pveproxy(DAEMON_INFO, "server stopped")
pveproxy(DAEMON_ERR, "problem with client ::ffff:192.0.2.77; Connection reset by peer")
b.add(DAEMON_WARN, "pve1", "pveproxy", 3312, "proxy detected vanished client connection")
b.add(
    DAEMON_INFO,
    "pve1",
    "pvedaemon",
    2231,
    "starting vnc proxy " + upid("pve1", 99, T0 + 1, "vncproxy", "100"),
    vmid=100,
)
b.add(
    DAEMON_INFO,
    "pve1",
    "pveproxy",
    3310,
    "starting termproxy " + upid("pve1", 98, T0 + 2, "vncshell", ""),
)

# --- authentication -----------------------------------------------------------------------------
b = Block("pve-access-control src/PVE/API2/AccessControl.pm, src/PVE/API2/OpenId.pm")
for host, rhost, user, msg in [
    ("pve1", "::ffff:192.0.2.50", "root@pam", "Authentication failure"),
    ("pve1", "::ffff:192.0.2.51", "admin@pve", "no such user ('admin@pve')"),
    ("pve2", "192.0.2.52", "root@pam", "invalid two-factor authentication"),
    ("pve3", "::ffff:198.51.100.9", "automation@pve!n8n", "invalid token value!"),
]:
    b.add(
        DAEMON_ERR,
        host,
        "pvedaemon",
        2231,
        f"authentication failure; rhost={rhost} user={user} msg={msg}",
        "auth.failed",
    )
b.add(
    DAEMON_ERR,
    "pve1",
    "pveproxy",
    3310,
    "authentication failure; rhost=::ffff:192.0.2.53 user=root@pam msg=no permission "
    "(/vms/100, VM.Console)",
    "auth.failed",
)
b.add(
    DAEMON_ERR,
    "pve1",
    "pvedaemon",
    2231,
    "openid authentication failure; rhost=::ffff:192.0.2.54 msg=Failed to contact "
    "authorization server",
    "auth.failed",
)
b.add(
    AUTHPRIV_NOTICE,
    "pve1",
    "pvedaemon",
    2231,
    "pam_unix(proxmox-ve-auth:auth): authentication failure; logname= uid=0 euid=0 tty= "
    "ruser= rhost=::ffff:192.0.2.50  user=root",
)
b = Block("proxmox-rs proxmox-rest-server/src/environment.rs (PBS log_failed_auth)")
b.add(
    DAEMON_ERR,
    "pbs1",
    "proxmox-backup-proxy",
    812,
    "authentication failure; rhost=[::ffff:192.0.2.60]:51234 user=root@pam msg=authentication "
    "failed - invalid credentials",
    "auth.failed",
)
b.add(
    DAEMON_ERR,
    "pbs1",
    "proxmox-backup-proxy",
    812,
    "authentication failure; rhost=[::ffff:192.0.2.61]:40022 msg=invalid ticket - expired",
    "auth.failed",
)
b.add(
    DAEMON_ERR,
    "pbs1.backup.example",
    "proxmox-backup-proxy",
    812,
    "authentication failure; rhost=unknown user=backup@pbs!pve1 msg=invalid API token",
    "auth.failed",
)
b = Block("openssh auth.c auth_log (sshd / sshd-session on Debian 13)")
for app, text in [
    ("sshd", "Failed password for root from 192.0.2.70 port 50022 ssh2"),
    ("sshd", "Failed password for invalid user admin from 192.0.2.71 port 41234 ssh2"),
    ("sshd", "Failed publickey for root from 192.0.2.72 port 40001 ssh2: RSA SHA256:abc"),
    ("sshd-session", "Failed password for root from 203.0.113.5 port 61022 ssh2"),
    ("sshd-session", "Failed none for invalid user oracle from 203.0.113.6 port 52110 ssh2"),
]:
    b.add(AUTHPRIV_INFO, "pve1", app, 9911, text, "auth.failed", minimum="warning")
sshd = b.sender("pve1", "sshd", 9911)
sshd(AUTHPRIV_INFO, "Invalid user admin from 192.0.2.71 port 41234")
sshd(
    AUTHPRIV_NOTICE,
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
    "rhost=192.0.2.70  user=root",
)
sshd(
    AUTHPRIV_INFO, "Accepted publickey for root from 192.0.2.10 port 50100 ssh2: ED25519 SHA256:xyz"
)
b.add(
    AUTHPRIV_INFO,
    "pve1",
    "sshd-session",
    9912,
    "Connection closed by authenticating user root 203.0.113.5 port 61022 [preauth]",
)

# --- ACME / certificates -----------------------------------------------------------------------
b = Block("pve-manager bin/pveupdate")
b.add(
    DAEMON_ERR,
    "pve1",
    "pveupdate",
    40001,
    "Renewing ACME certificate failed: Error: POST to https://acme-v02.api.letsencrypt.org/"
    'acme/new-order {"type":"urn:ietf:params:acme:error:rateLimited"}',
    "acme.failed",
)
b.add(
    DAEMON_INFO,
    "pve1",
    "pveupdate",
    40001,
    "Custom certificate does not expire soon, skipping ACME renewal.",
)
b.add(
    DAEMON_ERR,
    "pve2",
    "pveupdate",
    40002,
    "update apt database failed: command 'apt-get update' failed: exit code 100",
)
b.add(DAEMON_INFO, "pve2", "pveupdate", 40002, "cleanup removed 12 task logs")

# --- PBS journal ---------------------------------------------------------------------------------
b = Block(
    "proxmox-backup src/bin/proxmox-backup-proxy.rs (schedule_datastore_*), "
    "src/server/*_job.rs, src/server/notifications.rs"
)
for job, target, kind in [
    ("garbage collection", "on datastore store1", "gc.failed"),
    ("datastore prune", "p-store1-daily", "prune.failed"),
    ("datastore sync", "s-3f1a9c22-b0d1", "sync.failed"),
    ("datastore verification", "v-weekly", "verify.failed"),
    ("tape backup", "tape-weekly", "tape.failed"),
]:
    b.add(
        DAEMON_ERR,
        "pbs1",
        "proxmox-backup-proxy",
        812,
        f"unable to start {job} job {target} - unable to get exclusive lock - EAGAIN: Try again",
        kind,
    )
proxmox_backup_proxy = b.sender("pbs1", "proxmox-backup-proxy", 812)
proxmox_backup_proxy(DAEMON_ERR, "send gc notification failed: could not read notification config")
proxmox_backup_proxy(DAEMON_INFO, "queued notification (id=4f7c1f0e)")
proxmox_backup_proxy(
    DAEMON_ERR,
    "TASK ERROR: connection error: Connection reset by peer (os error 104)",
    "task.failed",
)
proxmox_backup_proxy(DAEMON_INFO, "TASK OK")
proxmox_backup_proxy(DAEMON_INFO, "rrd journal successfully committed (25 files in 0.021 seconds)")
proxmox_backup_proxy(DAEMON_INFO, "reloading certificate")
proxmox_backup_proxy(
    DAEMON_ERR, "[[::ffff:192.0.2.80]:41234] https handshake failed - tls handshake eof"
)
proxmox_backup_proxy(
    DAEMON_ERR, "task scheduler: compute next minute alignment failed - clock error"
)
b.add(
    DAEMON_ERR,
    "pbs1",
    "proxmox-backup-api",
    701,
    "could not refresh datastores: datastore 'store2' is in maintenance mode",
)

# --- pve-firewall ------------------------------------------------------------------------------
b = Block("pve-firewall src/PVE/Service/pve_firewall.pm")
pve_firewall = b.sender("pve1", "pve-firewall", 1250)
pve_firewall(
    DAEMON_ERR,
    "status update error: iptables_restore_cmdlist: Try `iptables-restore -h' for more "
    "information.",
)
pve_firewall(DAEMON_INFO, "firewall update time (5.321 seconds)")
pve_firewall(DAEMON_INFO, "clear PVE-generated firewall rules")
pve_firewall(DAEMON_INFO, "server shutting down")


# =================================================================================================
# Second coverage pass: what Proxmox VE 9.x (Debian 13, kernel 6.14, OpenZFS 2.3) and PBS 4.x
# hosts log, plus what the first pass missed. Every line below was measured against the
# classifier before the rules for it were added (services/ingest-syslog/README.md, "Coverage").
SECOND_PASS_START = len(CORPUS)

# --- kernel 6.x NVMe: the timeout line gained tag/cid/opcode (PVE 8.2+ and 9 kernels) -----------
b = Block("linux drivers/nvme/host/pci.c nvme_timeout, nvme_reset_work (kernel 6.x wording)")
kernel = b.sender("pve4.lab.example", "kernel", None)
kernel(
    KERN_WARN,
    "nvme nvme0: I/O tag 322 (1142) opcode 0x1 (Write) QID 8 timeout, aborting "
    "req_op:WRITE(1) size:131072",
    "disk.error",
)
kernel(
    KERN_WARN,
    "nvme nvme0: I/O tag 12 (a00c) opcode 0x6 (Identify) QID 0 timeout, reset controller",
    detail=True,  # 7 s after the same controller's timeout above: the same happening
)
kernel(
    KERN_WARN,
    "nvme nvme0: I/O tag 98 (3062) opcode 0x2 (Read) QID 3 timeout, completion polled",
)
kernel(KERN_WARN, "nvme nvme0: I/O 77 QID 2 timeout, completion polled")
kernel(KERN_WARN, "nvme nvme1: I/O 0 QID 0 timeout, disable controller", "disk.error")
kernel(KERN_WARN, "nvme nvme1: Disabling device after reset failure: -19", "disk.error")
kernel(KERN_CRIT, "EXT4-fs (nvme1n1p1): Remounting filesystem read-only")

# --- kernel md RAID (PVE does not install it, homelabs still run it under LVM) ------------------
b = Block("linux drivers/md/raid1.c raid1_error, raid10.c raid10_error, raid5.c raid5_error")
kernel = b.sender("pve5", "kernel", None)
kernel(KERN_CRIT, "md/raid1:md0: Disk failure on sdb1, disabling device.", "disk.error")
kernel(KERN_CRIT, "md/raid1:md0: Operation continuing on 1 devices.", detail=True)
kernel(KERN_CRIT, "md/raid10:md1: Disk failure on sdd2, disabling device.", "disk.error")
kernel(KERN_CRIT, "md/raid:md2: Disk failure on nvme2n1p1, disabling device.", "disk.error")
kernel(KERN_INFO, "md: recovery of RAID array md0")

# --- kernel btrfs (a PVE storage type since 7.0) -------------------------------------------------
b = Block("linux fs/btrfs/volumes.c btrfs_dev_stat_inc_and_print, fs/btrfs/inode.c, messages.c")
kernel = b.sender("pve5", "kernel", None)
kernel(
    KERN_ERR,
    "BTRFS error (device sdc1): bdev /dev/sdc1 errs: wr 0, rd 3, flush 0, corrupt 0, gen 0",
    "disk.error",
)
# the same read failing, 7 s later (RFC 3164 framing: monotonic time stamps): details
kernel(
    KERN_WARN,
    "BTRFS warning (device sdc1): csum failed root 5 ino 257 off 4096 csum 0x8941f998 "
    "expected csum 0x1c7d3a4e mirror 1",
    detail=True,
    rfc5424=False,
)
kernel(
    KERN_ERR,
    "BTRFS error (device sdc1 state EA): level verify failed on logical 30408704 mirror 1 "
    "wanted 1 found 0",
    detail=True,
    rfc5424=False,
)
kernel(
    KERN_INFO,
    "BTRFS info (device sdc1): bdev /dev/sdc1 errs: wr 0, rd 3, flush 0, corrupt 0, gen 0",
)
kernel(KERN_INFO, "BTRFS info (device sdc1): scrub: started on devid 1")

# --- zed on OpenZFS 2.3: pool_state between vdev and vdev_state, vdev gone --------------------
b = Block("openzfs cmd/zed/zed.d/all-syslog.sh (OpenZFS 2.2/2.3 field order)")
zed = b.sender("pve4.lab.example", "zed", 3301)
zed(
    DAEMON_NOTICE,
    "eid=52 class=statechange pool='tank' vdev=sdd1 pool_state=UNAVAIL vdev_state=REMOVED",
    "disk.error",
)
zed(DAEMON_NOTICE, "eid=53 class=statechange pool='tank' vdev_state=UNAVAIL", "disk.error")
zed(
    DAEMON_NOTICE,
    "eid=54 class=io_failure pool='tank' pool_state=UNAVAIL",
    "disk.error",
)
zed(
    DAEMON_NOTICE,
    "eid=55 class=probe_failure pool='tank' vdev=ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1234567-part1",
    "disk.error",
)
zed(DAEMON_NOTICE, "eid=56 class=vdev.open_failed pool='tank' vdev=sdd1", "disk.error")
# the pool's I/O failure (eid=54) said it 21 s before: the same happening
zed(DAEMON_NOTICE, "eid=57 class=vdev.no_replicas pool='tank'", detail=True)
zed(DAEMON_NOTICE, "eid=58 class=vdev_attach pool='tank' vdev=sde1 vdev_state=ONLINE")
zed(DAEMON_NOTICE, "eid=59 class=resilver_start pool='tank'")
zed(DAEMON_NOTICE, "eid=60 class=vdev.bad_ashift pool='tank' vdev=sde1")

# --- kernel OOM / crashes on kernel 6.14, cgroup v2 names of PVE 9 -----------------------------
b = Block("linux mm/oom_kill.c dump_oom_summary, __oom_kill_process (kernel 6.14)")
kernel = b.sender("pve4.lab.example", "kernel", None)
kernel(
    KERN_INFO,
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=ns,mems_allowed=0,"
    "oom_memcg=/lxc/205,task_memcg=/lxc/205/ns/system.slice/mariadb.service,task=mariadbd,"
    "pid=48211,uid=100106",
    "oom.kill",
    vmid=205,
)
kernel(
    KERN_ERR,
    "Memory cgroup out of memory: Killed process 48211 (mariadbd) total-vm:2461228kB, "
    "anon-rss:1018644kB, file-rss:0kB, shmem-rss:0kB, UID:100106 pgtables:2636kB oom_score_adj:0",
    "oom.kill",
)
kernel(
    KERN_INFO,
    "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=qemu.slice,mems_allowed=0,"
    "global_oom,task_memcg=/qemu.slice/104.scope,task=kvm,pid=39120,uid=0",
    "oom.kill",
    vmid=104,
)
kernel(
    KERN_INFO,
    "oom_reaper: reaped process 39120 (kvm), now anon-rss:0kB, file-rss:0kB",
    detail=True,
)

# --- systemd (257 on Debian 13): container units ------------------------------------------------
b = Block("pve-container src/pve-container@.service, systemd src/core/unit.c (systemd 257)")
systemd = b.sender("pve4.lab.example", "systemd", 1)
systemd(
    DAEMON_WARN,
    "pve-container@205.service: A process of this unit has been killed by the OOM killer.",
    vmid=205,
    detail=True,
)
systemd(
    DAEMON_NOTICE,
    "pve-container@206.service: Main process exited, code=exited, status=1/FAILURE",
    vmid=206,
)
systemd(
    DAEMON_ERR,
    "Failed to start pve-container@206.service - PVE LXC Container: 206.",
    vmid=206,
)
systemd(
    DAEMON_INFO,
    "pve-container@205.service: Consumed 2h 3min 4.567s CPU time, 1G memory peak.",
    vmid=205,
)
systemd(
    DAEMON_WARN,
    "104.scope: A process of this unit has been killed by the OOM killer.",
    vmid=104,
    detail=True,
)
systemd(DAEMON_INFO, "Started 104.scope.", vmid=104)
# systemd-oomd (a user-space kill, no kernel OOM report): systemd src/core/cgroup.c
# unit_check_oomd_kill
systemd(
    DAEMON_NOTICE,
    "104.scope: systemd-oomd killed 3 process(es) in this unit.",
    "oom.kill",
    vmid=104,
)
systemd(
    DAEMON_NOTICE,
    "pve-container@205.service: systemd-oomd killed some process(es) in this unit.",
    "oom.kill",
    vmid=205,
)

# --- lxc-start/lxc-stop (liblxc via pve-container) ---------------------------------------------
b = Block("lxc src/lxc/start.c, src/lxc/tools/lxc_start.c (run by pve-container)")
b.add(
    DAEMON_ERR,
    "pve4.lab.example",
    "lxc-start",
    61200,
    'lxc-start: 206: ../src/lxc/start.c: __lxc_start: 2114 Failed to spawn container "206"',
    vmid=206,
)
b.add(
    DAEMON_ERR,
    "pve4.lab.example",
    "lxc-start",
    61200,
    "lxc-start: 206: ../src/lxc/tools/lxc_start.c: lxc_start_main: 307 The container failed "
    "to start",
    vmid=206,
)

# --- pveupdate / PBS daily update: certificates --------------------------------------------------
b = Block("pve-manager bin/pveupdate (PVE 9)")
pveupdate = b.sender("pve4.lab.example", "pveupdate", 70112)
pveupdate(
    DAEMON_ERR,
    "Checking/Renewing SSL certificate failed: SSL certificate (/etc/pve/nodes/pve4/"
    "pve-ssl.pem) is not issued by root CA (/etc/pve/pve-root-ca.pem)!",
    "acme.failed",
)
pveupdate(
    DAEMON_ERR,
    "Renewing ACME certificate failed: Error: POST to https://acme-v02.api.letsencrypt.org/"
    'acme/finalize/1/2 {"type":"urn:ietf:params:acme:error:unauthorized"}',
    "acme.failed",
)
pveupdate(DAEMON_INFO, "PVE certificate expires soon, renewing...")
pveupdate(DAEMON_ERR, "update subscription info failed: connection timed out")
b = Block("proxmox-backup src/bin/proxmox-daily-update.rs")
daily = b.sender("pbs2.lab.example", "proxmox-daily-update", 9120)
daily(
    DAEMON_ERR,
    "error checking certificates: Failed to renew certificate: acme error: rate limited",
    "acme.failed",
)
daily(DAEMON_INFO, "Certificate does not expire within the next 30 days, not renewing.")
daily(DAEMON_ERR, "Error checking subscription - connection timed out")

# --- vzdump on PVE 9: the global lock, ENOSPC, a guest failing ---------------------------------
b = Block("pve-manager PVE/VZDump.pm getlock, exec_backup (PVE 9)")
vz = b.sender("pve4.lab.example", "pvescheduler", 91200)
vz(DAEMON_INFO, "INFO: trying to get global lock - waiting...")
vz(
    DAEMON_ERR,
    "ERROR: can't acquire lock '/var/run/vzdump.lock' - got timeout",
    "backup.failed",
)
b.add(
    DAEMON_ERR,
    "pve5",
    "vzdump",
    91300,
    "ERROR: can't acquire lock '/var/run/vzdump.lock' (wait = 0)",
    "backup.failed",
)
vz(
    DAEMON_ERR,
    "ERROR: Backup of VM 104 failed - vma_queue_write: write error - No space left on device",
    "backup.failed",
    vmid=104,
)
vz(DAEMON_INFO, "INFO: Finished Backup of VM 105 (00:00:41)", "backup.ok", vmid=105)
vz(DAEMON_INFO, "INFO: Backup job finished with errors", "backup.failed")

# --- HA manager (PVE 9: rules instead of groups, same node/service wording) --------------------
b = Block("pve-ha-manager src/PVE/HA/Manager.pm next_state_started, next_state_recovery (PVE 9)")
crm9 = b.sender("pve4.lab.example", "pve-ha-crm", 1402)
crm9(
    DAEMON_ERR,
    "recovery policy for service vm:104 failed, entering error state. Failed nodes: pve5, pve6",
    "ha.state",
    node=None,
    vmid=104,
    minimum="error",
)
crm9(
    DAEMON_WARN,
    "starting service vm:107 on node 'pve5' failed, relocating service.",
    "ha.state",
    node=None,
    vmid=107,
    minimum="error",
)
crm9(
    DAEMON_ERR,
    "service 'ct:206' stop failed (exit code 1)",
    "ha.state",
    node=None,
    vmid=206,
)
crm9(
    DAEMON_ERR,
    "cannot recover service 'vm:104' from fencing, wrong state 'started'",
    "ha.state",
    node=None,
    vmid=104,
)
crm9(DAEMON_INFO, "node 'pve6': state changed from 'online' => 'unknown'", "node.offline",
     node="pve6")  # fmt: skip
crm9(DAEMON_INFO, "auto rebalance - migrate vm:104 to pve5 (0.12 -> 0.08)", vmid=104)
crm9(DAEMON_INFO, "service vm:104: re-balance selected new node pve5 for startup", vmid=104)
lrm9 = b.sender("pve6", "pve-ha-lrm", 1388)
lrm9(DAEMON_ERR, "service vm:107 not moved (migration error)", "ha.state", node=None, vmid=107)
# the worker's end: the CRM's "state changed ... to 'error'" line is the event (first pass)
lrm9(DAEMON_ERR, "resource agent vm:107 finished - got signal 9", vmid=107)
lrm9(DAEMON_ERR, "node needs to be fenced - releasing agent_lock")
lrm9(DAEMON_INFO, "status change active => lost_agent_lock", "ha.state")

# --- kernel: ext4/xfs consequences that are not a second event ---------------------------------
b = Block("linux fs/ext4/super.c __ext4_error, fs/ext4/page-io.c ext4_end_bio")
kernel = b.sender("pve5", "kernel", None)
kernel(
    KERN_CRIT,
    "EXT4-fs error (device nvme1n1p1): ext4_journal_check_start:84: comm kworker/u64:2: "
    "Detected aborted journal",
    "disk.error",
)
kernel(
    KERN_WARN,
    "EXT4-fs warning (device dm-1): ext4_end_bio:343: I/O error 10 writing to inode 1311 "
    "starting block 2621440)",
)

# --- PBS 4 journal: task results go to the journal (proxmox-rest-server log_result) -------------
b = Block("proxmox-rs proxmox-rest-server/src/worker_task.rs log_result, proxmox-log builder.rs")
pbs4 = b.sender("pbs2.lab.example", "proxmox-backup-proxy", 845)
pbs4(
    DAEMON_ERR,
    "TASK ERROR: verification failed - please check the log for details",
    "verify.failed",
)
pbs4(DAEMON_ERR, "TASK ERROR: verification failed - job aborted", "verify.failed")
pbs4(DAEMON_ERR, "TASK ERROR: sync failed with some errors.", "sync.failed")
pbs4(
    DAEMON_ERR,
    'TASK ERROR: removing backup snapshot "/mnt/datastore/store1/vm/104/2026-11-30T01:00:02Z" '
    "failed - Directory not empty (os error 39)",
    "task.failed",
)
pbs4(
    DAEMON_ERR,
    "unable to start datastore sync job s-3f1a9c22-b0d1 - remote 'offsite' is not online",
    "sync.failed",
)
pbs4(
    DAEMON_ERR,
    "unable to start garbage collection job on datastore s3-store - datastore is in "
    "maintenance mode",
    "gc.failed",
)
pbs4(DAEMON_ERR, "could not refresh datastores: ENOSPC: No space left on device",
     "storage.full")  # fmt: skip

# --- replication and auth on PVE 9 (unchanged wording, new framing) -----------------------------
b = Block("pve-manager PVE/API2/Replication.pm, pve-access-control src/PVE/API2/AccessControl.pm")
b.add(
    DAEMON_ERR,
    "pve4.lab.example",
    "pvescheduler",
    91400,
    "104-1: got unexpected replication job error - command 'zfs snapshot rpool/data/"
    "vm-104-disk-0@__replicate_104-1_1764470700__' failed: out of space",
    "replication.failed",
    vmid=104,
)
b.add(
    AUTHPRIV_NOTICE,
    "pve4.lab.example",
    "pvedaemon",
    1833,
    "authentication failure; rhost=::ffff:198.51.100.7 user=admin@pve msg=no such user "
    "('admin@pve')",
    "auth.failed",
)

# --- pve-guests: boot-time start of every guest (onboot=1) and stop at shutdown -----------------
# pve-manager services/pve-guests.service sets PVE_LOG_ID=pve-guests, the ident pve-common
# src/PVE/CLIHandler.pm gives syslog: a guest failing to start at boot ends its task here.
b = Block("pve-manager services/pve-guests.service, PVE/API2/Nodes.pm startall/stopall")
guests = b.sender("pve4.lab.example", "pve-guests", 1190)
_all = upid("pve4", 1190, T0 + 5000, "startall", "")
_q104 = upid("pve4", 1201, T0 + 5001, "qmstart", "104")
_c206 = upid("pve4", 1202, T0 + 5002, "vzstart", "206")
guests(DAEMON_INFO, f"<root@pam> starting task {_all}")
guests(DAEMON_INFO, f"<root@pam> starting task {_q104}", vmid=104)
guests(DAEMON_INFO, f"start VM 104: {_q104}", vmid=104)
guests(
    DAEMON_INFO,
    f"<root@pam> end task {_q104} start failed: QEMU exited with code 1",
    "task.failed",
    vmid=104,
)
guests(DAEMON_INFO, f"<root@pam> starting task {_c206}", vmid=206)
guests(DAEMON_INFO, f"<root@pam> end task {_c206} OK", "task.ok", vmid=206)
guests(DAEMON_INFO, f"<root@pam> end task {_all} OK", "task.ok")
_stop = upid("pve4", 1190, T0 + 9000, "stopall", "")
guests(DAEMON_INFO, f"<root@pam> end task {_stop} OK", "task.ok")

# --- PVE CLI tools that run tasks: qmrestore, pvesm, pveceph (ident = the program name) -------
b = Block("pve-common src/PVE/CLIHandler.pm (ident), src/PVE/RESTEnvironment.pm fork_worker")
_restore = upid("pve5", 3301, T0 + 6000, "qmrestore", "109")
b.add(
    DAEMON_INFO,
    "pve5",
    "qmrestore",
    3301,
    f"<root@pam> end task {_restore} command 'set -o pipefail && zstd -q -d -c /mnt/pve/nfs/"
    "dump/vzdump-qemu-109-2026_11_30-02_00_02.vma.zst | vma extract -v -r /var/tmp/"
    "vzdumptmp3301.fifo - /var/tmp/vzdumptmp3301' failed: exit code 133",
    "task.failed",
    vmid=109,
)
_osd = upid("pve5", 3410, T0 + 6100, "cephcreateosd", "sdd")
b.add(
    DAEMON_INFO,
    "pve5",
    "pveceph",
    3410,
    f"<root@pam> end task {_osd} device '/dev/sdd' is already in use",
    "task.failed",
)

# --- watchdog-mux on PVE 9: a client that goes away without the magic close --------------------
b = Block("pve-ha-manager src/watchdog-mux.c (client did not stop watchdog)")
b.add(
    DAEMON_WARN,
    "pve6",
    "watchdog-mux",
    1022,
    "client (PID 1388) did not stop watchdog - disable watchdog updates",
    "node.fencing",
)
b.add(
    DAEMON_WARN,
    "pve6",
    "watchdog-mux",
    1022,
    "client (PID 1388) has disconnected cleanly. Removing it gracefully from the watch",
)

# --- kernel: the node's own network links (PVE 9 pins NIC names to nicN) ----------------------
b = Block(
    "linux drivers/net/ethernet (e1000e, igb, r8169/phylib, mlx5 link state), "
    "drivers/net/bonding/bond_main.c bond_miimon_commit; pve-manager proxmox-network-interface-"
    "pinning (nicN names)"
)
kernel = b.sender("pve4.lab.example", "kernel", None)
kernel(KERN_INFO, "e1000e 0000:00:19.0 nic0: NIC Link is Down", "link.down")
kernel(KERN_INFO, "vmbr0: port 1(nic0) entered disabled state")
kernel(
    KERN_INFO,
    "e1000e 0000:00:19.0 nic0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
    recovers="link.down",
)
kernel(KERN_INFO, "igb 0000:03:00.0 enp3s0: igb: enp3s0 NIC Link is Down", "link.down")
kernel = b.sender("pve5", "kernel", None)
kernel(KERN_INFO, "r8169 0000:03:00.0 enp3s0: Link is Down", "link.down")
kernel(
    KERN_INFO,
    "r8169 0000:03:00.0 enp3s0: Link is Up - 1Gbps/Full - flow control off",
    recovers="link.down",
)
kernel(KERN_INFO, "mlx5_core 0000:3b:00.1 enp59s0f1np1: Link down", "link.down")
kernel(
    KERN_INFO,
    "bond0: (slave enp1s0f1): link status definitely down, disabling slave",
    "link.down",
)
kernel(KERN_ERR, "bond0: now running without any active interface!", "link.down")
kernel(
    KERN_INFO,
    "bond0: (slave enp1s0f1): link status definitely up, 10000 Mbps full duplex",
    recovers="link.down",
)
kernel(KERN_INFO, "mlx5_core 0000:3b:00.1 enp59s0f1np1: Link up", recovers="link.down")
kernel(KERN_INFO, "bond0: active interface up!", recovers="link.down")
kernel(KERN_INFO, "IPv6: ADDRCONF(NETDEV_CHANGE): nic0: link becomes ready")
kernel(KERN_INFO, "ata3: SATA link down (SStatus 0 SControl 300)")
kernel(KERN_INFO, "pcieport 0000:00:1c.4: pciehp: Slot(3): Link Down")
kernel(KERN_INFO, "tap104i0: link down", vmid=104)  # a guest's port is not the node's link

# --- PBS job results in the journal: GC and tape (proxmox-backup task errors) -----------------
b = Block(
    "proxmox-backup pbs-datastore/src/datastore.rs garbage_collection, src/api2/tape/backup.rs"
)
pbs4 = b.sender("pbs2.lab.example", "proxmox-backup-proxy", 845)
pbs4(DAEMON_ERR, "TASK ERROR: Start GC failed - (already running/locked)", "gc.failed")
pbs4(
    DAEMON_ERR,
    'TASK ERROR: cannot continue garbage-collection safely, permission denied on: "/mnt/'
    'datastore/store1/vm/104"',
    "gc.failed",
)
pbs4(
    DAEMON_ERR,
    "TASK ERROR: Tape backup finished with some errors. Please check the task log.",
    "tape.failed",
)

# --- smartd temperature limits (smartmontools smartd.cpp CheckTemperature) ----------------------
# The critical limit is LOG_CRIT and mailed ("SMART error (Temperature)"): the same alert by
# syslog and mail. The plain limit and changes are LOG_INFO and not mailed.
b = Block("smartmontools smartd.cpp CheckTemperature (PrintOut, MailWarning 'Temperature')")
smartd = b.sender("pve5", "smartd", 904)
smartd(
    DAEMON_CRIT,
    "Device: /dev/sdb [SAT], Temperature 61 Celsius reached critical limit of 60 Celsius "
    "(Min/Max 24/61!)",
    "disk.error",
)
smartd(
    DAEMON_INFO,
    "Device: /dev/sdb [SAT], Temperature 56 Celsius reached limit of 55 Celsius (Min/Max 24/56)",
)
smartd(DAEMON_INFO, "Device: /dev/sdb [SAT], Temperature changed +2 Celsius to 58 Celsius")

# --- PBS 4: a verify job's ERROR lines reach the journal (proxmox-log lets ERROR out of a task);
# the job's "TASK ERROR: verification failed - ..." above is the event, these stay plain.
b = Block("proxmox-backup v4.2 src/backup/verify.rs, src/server/verify_job.rs")
pbs4 = b.sender("pbs2.lab.example", "proxmox-backup-proxy", 845)
pbs4(
    DAEMON_ERR,
    "can't verify chunk, load failed - store 'store1', unable to load chunk "
    "'3f1a9c22b0d1e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9' - No such file or "
    "directory (os error 2)",
)
pbs4(DAEMON_ERR, "Failed to verify the following snapshots/groups:")

# --- one failing SATA read: the whole burst, one disk.error (tests/test_disk_burst.py) ---------
# Its error-level driver lines come before the block layer's line: details by rule; its info
# lines are details inside the host's burst window (at boot the same drivers' lines are plain).
b = Block(
    "linux drivers/ata/libata-eh.c ata_eh_link_report, drivers/scsi/scsi_logging.c, "
    "block/blk-core.c blk_print_req_error, fs/buffer.c buffer_io_error, lib/ratelimit.c"
)
kernel = b.sender("pve6", "kernel", None)
for pri, text in [
    (KERN_ERR, "ata5.00: exception Emask 0x0 SAct 0x40 SErr 0x0 action 0x0"),
    (KERN_ERR, "ata5.00: failed command: READ FPDMA QUEUED"),
    (KERN_ERR, "ata5.00: cmd 60/00:30:00:8a:3d/01:00:0e:00:00/40 tag 6 ncq dma 131072 in"),
    (KERN_ERR, "         res 41/40:00:10:8a:3d/00:00:0e:00:00/40 Emask 0x409 (media error) <F>"),
    (KERN_ERR, "ata5.00: status: { DRDY ERR }"),
    (KERN_ERR, "ata5.00: error: { UNC }"),
    (KERN_INFO, "ata5: hard resetting link"),
    (KERN_INFO, "ata5: SATA link up 6.0 Gbps (SStatus 133 SControl 300)"),
    (KERN_INFO, "ata5.00: configured for UDMA/133"),
    (
        KERN_INFO,
        "sd 4:0:0:0: [sde] tag#6 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_OK cmd_age=2s",
    ),
    (KERN_INFO, "sd 4:0:0:0: [sde] tag#6 Sense Key : Medium Error [current]"),
    (
        KERN_INFO,
        "sd 4:0:0:0: [sde] tag#6 Add. Sense: Unrecovered read error - auto reallocate failed",
    ),
    (KERN_INFO, "sd 4:0:0:0: [sde] tag#6 CDB: Read(10) 28 00 0e 3d 8a 00 00 01 00 00"),
]:
    kernel(pri, text, detail=True, rfc5424=False)
kernel(
    KERN_ERR,
    "I/O error, dev sde, sector 238914064 op 0x0:(READ) flags 0x80700 phys_seg 32 prio class 2",
    "disk.error",
    rfc5424=False,
)
kernel(KERN_INFO, "ata5: EH complete", detail=True, rfc5424=False)
kernel(KERN_WARN, "blk_print_req_error: 3 callbacks suppressed", detail=True, rfc5424=False)
kernel(
    KERN_ERR,
    "I/O error, dev sde, sector 238914072 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2",
    detail=True,  # the next sector of the same disk, seconds later
    rfc5424=False,
)
kernel(
    KERN_ERR,
    "Buffer I/O error on dev sde1, logical block 29864001, async page read",
    detail=True,
    rfc5424=False,
)

# --- multi-line happenings, one event each (tests/test_bursts.py; RFC 3164: ordered stamps) ---
# A cluster node lost, seen by a survivor of a two-node cluster.
b = Block(
    "kronosnet libknet/threads_heartbeat.c, libknet/host.c; corosync exec/totemsrp.c, "
    "exec/vsf_quorum.c; pve-cluster src/pmxcfs/dfsm.c, dcdb.c, status.c; pve-ha-manager "
    "src/PVE/HA/Env/PVE2.pm get_pve_lock"
)
coro = b.sender("pve7", "corosync", 1180)
coro(DAEMON_INFO, "  [KNET  ] link: host: 2 link: 0 is down", "link.down", node=None, rfc5424=False)
for pri, text in [
    (DAEMON_WARN, "  [KNET  ] host: host: 2 (passive) best link: 0 (pri: 1)"),
    (DAEMON_WARN, "  [KNET  ] host: host: 2 has no active links"),
    (DAEMON_NOTICE, "  [TOTEM ] Token has not been received in 2737 ms"),
    (
        DAEMON_NOTICE,
        "  [TOTEM ] A processor failed, forming new configuration: token timed out "
        "(3650ms), waiting 4380ms for consensus.",
    ),
    (DAEMON_NOTICE, "  [QUORUM] Sync members[1]: 1"),
    (DAEMON_NOTICE, "  [QUORUM] Sync left[1]: 2"),
    (DAEMON_NOTICE, "  [TOTEM ] A new membership (1.2d) was formed. Members left: 2"),
    (DAEMON_NOTICE, "  [TOTEM ] Failed to receive the leave message. failed: 2"),
    (
        DAEMON_NOTICE,
        "  [QUORUM] This node is within the non-primary component and will NOT "
        "provide any services.",
    ),
    (DAEMON_NOTICE, "  [QUORUM] Members[1]: 1"),
    (DAEMON_NOTICE, "  [MAIN  ] Completed service synchronization, ready to provide service."),
]:
    coro(pri, text, detail=True, rfc5424=False)
cfs = b.sender("pve7", "pmxcfs", 1090)
cfs(DAEMON_NOTICE, "[status] notice: node lost quorum", "quorum.lost", rfc5424=False)
for text in [
    "[dcdb] notice: members: 1/1090",
    "[dcdb] notice: starting data syncronisation",
    "[status] notice: members: 1/1090",
    "[status] notice: starting data syncronisation",
    "[dcdb] notice: received sync request (epoch 1/1090/00000005)",
    "[dcdb] notice: received all states",
    "[dcdb] notice: leader is 1/1090",
    "[dcdb] notice: synced members: 1/1090",
    "[dcdb] notice: start sending inode updates",
    "[dcdb] notice: sent all (0) updates",
    "[dcdb] notice: all data is up to date",
]:
    cfs(DAEMON_NOTICE, text, detail=True, rfc5424=False)
b.add(DAEMON_ERR, "pve7", "pve-ha-lrm", 1300,
      "lost lock 'ha_agent_pve7_lock - cfs lock update failed - Permission denied",
      detail=True, rfc5424=False)  # fmt: skip
coro(
    DAEMON_INFO,
    "  [KNET  ] rx: host: 2 link: 0 is up",
    node=None,
    rfc5424=False,
    recovers="link.down",
)  # the recovery
coro(DAEMON_NOTICE, "  [QUORUM] Sync joined[1]: 2", rfc5424=False)
coro(DAEMON_NOTICE, "  [QUORUM] Members[2]: 1 2", rfc5424=False)
coro(DAEMON_NOTICE,
     "  [QUORUM] This node is within the primary component and will provide service.",
     rfc5424=False, recovers="quorum.lost")  # fmt: skip
cfs(DAEMON_NOTICE, "[status] notice: node has quorum", rfc5424=False, recovers="quorum.lost")

# A guest's QEMU crashing: its cleanup is a detail of the crash.
b = Block(
    "linux arch/x86/mm/fault.c show_signal_msg; qemu-server src/qmeventd/qmeventd.c, "
    "src/PVE/CLI/qm.pm cleanup; pve-common src/PVE/Network.pm; systemd src/core/unit.c"
)
b.add(KERN_INFO, "pve8", "kernel", None,
      "kvm[51821]: segfault at 8 ip 000055b1c1a3f2d4 sp 00007ffd3c1f0a80 error 4 in "
      "qemu-system-x86_64[55b1c1600000+6b3000] likely on CPU 3 (core 3, socket 0)",
      "vm.crashed", rfc5424=False)  # fmt: skip
b.add(DAEMON_WARN, "pve8", "qmeventd", 998, "Starting cleanup for 130", vmid=130, detail=True,
      rfc5424=False)  # fmt: skip
b.add(KERN_INFO, "pve8", "kernel", None, "fwbr130i0: port 2(tap130i0) entered disabled state",
      vmid=130, rfc5424=False)  # fmt: skip
b.add(DAEMON_WARN, "pve8", "qmeventd", 998, "Finished cleanup for 130", vmid=130, detail=True,
      rfc5424=False)  # fmt: skip
b.add(DAEMON_INFO, "pve8", "systemd", 1, "130.scope: Deactivated successfully.", vmid=130,
      rfc5424=False)  # fmt: skip

# A NIC of a bond going down: the bond's line for it is a detail of the NIC's.
b = Block("linux drivers/net/ethernet/intel/e1000e/netdev.c, drivers/net/bonding/bond_main.c")
nic = b.sender("pve9", "kernel", None)
nic(KERN_INFO, "e1000e 0000:01:00.0 enp1s0: NIC Link is Down", "link.down", rfc5424=False)
nic(KERN_INFO, "bond0: (slave enp1s0): link status definitely down, disabling slave",
    detail=True, rfc5424=False)  # fmt: skip
nic(KERN_INFO, "bond0: (slave enp2s0): making interface the new active one", rfc5424=False)

# A ZFS vdev failing: its errors once, its FAULTED state, the pool's config_sync a detail.
b = Block(
    "openzfs module/os/linux/zfs/vdev_disk.c, cmd/zed/zed.d/all-syslog.sh, include/sys/fm/fs/zfs.h"
)
_vdev = "ata-WDC_WD40EFRX-68N32N0_WD-WCC7K7654321-part1"
b.add(KERN_ERR, "pve10", "kernel", None,
      f"zio pool=tank vdev=/dev/disk/by-id/{_vdev} error=5 type=1 offset=270336 size=8192 "
      "flags=721601", "disk.error", rfc5424=False)  # fmt: skip
zed = b.sender("pve10", "zed", 2210)
zed(DAEMON_NOTICE, f"eid=13 class=io pool='tank' vdev={_vdev} size=8192 offset=270336 "
    "priority=0 err=5 flags=0x40080c80", detail=True, rfc5424=False)  # fmt: skip
zed(DAEMON_NOTICE, f"eid=14 class=probe_failure pool='tank' vdev={_vdev}", detail=True,
    rfc5424=False)  # fmt: skip
zed(DAEMON_NOTICE, f"eid=15 class=statechange pool='tank' vdev={_vdev} vdev_state=FAULTED",
    "disk.error", rfc5424=False)  # fmt: skip
zed(DAEMON_NOTICE, "eid=16 class=config_sync pool='tank'", detail=True, rfc5424=False)

# A kernel report (no kind in the contract): its first line notifies, its dump is detail.
b = Block("linux kernel/hung_task.c hung_task_info, kernel/panic.c __warn, kernel/watchdog.c")
kern = b.sender("pve11", "kernel", None)
kern(KERN_ERR, "INFO: task kworker/u64:2:1234 blocked for more than 122 seconds.", rfc5424=False)
for pri, text in [
    (KERN_ERR, "      Tainted: P           O       6.8.12-4-pve #1"),
    (KERN_ERR, '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.'),
    (
        KERN_INFO,
        "task:kworker/u64:2  state:D stack:0     pid:1234  tgid:1234  ppid:2      flags:0x00004000",
    ),
    (KERN_WARN, "Call Trace:"),
    (KERN_WARN, " __schedule+0x401/0x15e0"),
    (KERN_ERR, "INFO: task kvm:20431 blocked for more than 122 seconds."),  # the same stall
]:
    kern(pri, text, detail=True, rfc5424=False, at_once=True)  # the kernel prints it at once
kern = b.sender("pve12", "kernel", None)
kern(KERN_WARN, "------------[ cut here ]------------", rfc5424=False)
for text in [
    "WARNING: CPU: 5 PID: 3321 at net/core/dev.c:3287 skb_warn_bad_offload+0x7c/0x110",
    "RIP: 0010:skb_warn_bad_offload+0x7c/0x110",
    "Call Trace:",
    "---[ end trace 0000000000000000 ]---",
]:
    kern(KERN_WARN, text, detail=True, rfc5424=False, at_once=True)
kern(KERN_EMERG, "watchdog: BUG: soft lockup - CPU#7 stuck for 26s! [kvm:20431]", rfc5424=False)
