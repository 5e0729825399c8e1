"""Proxmox classifier: maps a parsed syslog line to an event kind (pure, table-driven).

``RULES`` is an ordered list of ``Rule(app regex, message regex, kind, builder)``; the first
rule whose app pattern matches the program name and whose message pattern is found in the
text decides. Adding a rule is one entry here and one line in ``tests/test_classify.py``.
Everything no rule claims is ``syslog.message``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxbus_events import Severity

from .parse import SyslogMessage

FALLBACK_KIND = "syslog.message"


@dataclass(slots=True)
class Classification:
    """What a line means: kind plus the facts a rule extracted."""

    kind: str = FALLBACK_KIND
    title: str | None = None
    node: str | None = None  # the node the event is about, when it is not the sender
    vmid: int | None = None
    correlation_id: str | None = None
    severity: Severity | None = None  # a minimum on top of the PRI (contract floors come later)
    metadata: dict[str, Any] = field(default_factory=dict)
    dedup_key: tuple[object, ...] | None = None  # same key → same event id (one event)
    rule: str = ""


Builder = Callable[[re.Match[str], SyslogMessage], Classification | None]


@dataclass(slots=True, frozen=True)
class Rule:
    """``app`` must match the whole program name; ``message`` is searched in the text."""

    name: str
    app: re.Pattern[str]
    message: re.Pattern[str]
    kind: str
    build: Builder | None = None


def rule(name: str, app: str, message: str, kind: str, build: Builder | None = None) -> Rule:
    return Rule(name, re.compile(app, re.IGNORECASE), re.compile(message), kind, build)


# --- UPIDs ------------------------------------------------------------------------------

# PVE: UPID:node:pid:pstart:starttime:type:id:user:   PBS: one more field (task id) before
# starttime. Hex fields are upper-case in both, but accept either case.
_UPID = re.compile(
    r"UPID:(?P<node>[^:\s]+):(?P<pid>[0-9A-Fa-f]{8}):(?P<pstart>[0-9A-Fa-f]{8,16}):"
    r"(?:(?P<taskid>[0-9A-Fa-f]{8}):)?(?P<start>[0-9A-Fa-f]{8}):(?P<type>[^:\s]+):"
    r"(?P<id>[^:\s]*):(?P<user>[^:\s]+):"
)
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_PBS_GUEST = re.compile(r"(?:^|[:/])(?:vm|ct)/(\d{1,9})(?:/|$)")
_TASK_OK = re.compile(r"(?:TASK )?OK$")
_TASK_WARN = re.compile(r"(?:TASK )?WARNINGS: ?(\d+)$")

_PBS_KINDS = {
    "backup": "backup",
    "garbage_collection": "gc",
    "prune": "prune",
    "prunejob": "prune",
    "verify": "verify",
    "verificationjob": "verify",
    "verify_group": "verify",
    "verify_snapshot": "verify",
    "sync": "sync",
    "syncjob": "sync",
    "tape-backup": "tape",
    "tape-backup-job": "tape",
    "tape-restore": "tape",
}


@dataclass(slots=True, frozen=True)
class Upid:
    """A parsed PVE or PBS task id."""

    upid: str
    node: str
    task_type: str
    task_id: str
    user: str
    starttime: int
    pbs: bool

    @property
    def vmid(self) -> int | None:
        if self.pbs:
            m = _PBS_GUEST.search(self.task_id)
            return int(m[1]) if m else None
        return _as_vmid(self.task_id)


def parse_upid(text: str) -> Upid | None:
    """The first UPID in ``text``, or ``None``."""
    m = _UPID.search(text)
    if m is None:
        return None
    return Upid(
        upid=m[0],
        node=m["node"],
        task_type=m["type"],
        task_id=_ESCAPE.sub(lambda e: chr(int(e[1], 16)), m["id"]),
        user=m["user"],
        starttime=int(m["start"], 16),
        pbs=m["taskid"] is not None,
    )


def _as_vmid(text: str | None) -> int | None:
    if text and text.isdigit() and len(text) <= 9:
        return int(text)
    return None


def _task_end(m: re.Match[str], msg: SyslogMessage) -> Classification | None:
    upid = parse_upid(m["upid"])
    if upid is None:
        return None
    status = m["status"].strip()
    outcome = "ok"
    severity = None
    if _TASK_OK.fullmatch(status):
        status = "OK"
    elif w := _TASK_WARN.fullmatch(status):
        status = f"WARNINGS: {w[1]}"
        severity = Severity.WARNING
    else:
        outcome = "failed"
        status = status.removeprefix("TASK ERROR: ") or "unknown error"
    family = "task"
    if upid.pbs:
        family = _PBS_KINDS.get(upid.task_type, "task")
    elif upid.task_type == "vzdump":
        family = "backup"
    what = f"{upid.task_type} {upid.task_id}".strip()
    if outcome == "ok":
        title = f"Task {what} finished" + (f" with {status}" if severity else " OK")
    else:
        title = f"Task {what} failed: {status}"
    return Classification(
        kind=f"{family}.{outcome}",
        title=title,
        vmid=upid.vmid,
        correlation_id=upid.upid,
        severity=severity,
        metadata=_task_metadata(upid, status),
        dedup_key=(upid.upid, status),
    )


def _task_start(m: re.Match[str], msg: SyslogMessage) -> Classification | None:
    upid = parse_upid(m["upid"])
    if upid is None:
        return None
    return Classification(
        kind=FALLBACK_KIND,
        title=f"Task {upid.task_type} {upid.task_id} started by {upid.user}".replace("  ", " "),
        vmid=upid.vmid,
        correlation_id=upid.upid,
        metadata=_task_metadata(upid, None),
    )


def _pbs_task_error(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """PBS task result without a UPID in the line (the task's own log context)."""
    error = m["error"].strip()
    return Classification(
        kind="task.failed", title=f"PBS task failed: {error}", metadata={"status": error}
    )


def _task_metadata(upid: Upid, status: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "task_type": upid.task_type,
        "task_id": upid.task_id,
        "user": upid.user,
        "upid_node": upid.node,
        "task_start": upid.starttime,
    }
    if status is not None:
        meta["status"] = status
    if upid.pbs:
        meta["product"] = "pbs"
    return meta


# --- builders for the other rules --------------------------------------------------------


def _vm_stopped(m: re.Match[str], msg: SyslogMessage) -> Classification:
    vmid = int(m["vmid"])
    return Classification(kind="vm.stopped", title=f"Guest {vmid} stopped", vmid=vmid)


def _with_vmid(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(kind=FALLBACK_KIND, vmid=_as_vmid(m["vmid"]))


def _replication_failed(m: re.Match[str], msg: SyslogMessage) -> Classification:
    vmid = int(m["vmid"])
    return Classification(
        kind="replication.failed",
        title=f"Replication job {m['job']} of guest {vmid} failed: {m['error']}",
        vmid=vmid,
        metadata={"job": m["job"]},
    )


def _fencing(m: re.Match[str], msg: SyslogMessage) -> Classification:
    node = m["node"]
    return Classification(
        kind="node.fencing",
        title=f"Fencing node {node}",
        node=node,
        metadata={"reporter": msg.hostname},
    )


def _self_fencing(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(
        kind="node.fencing", title=f"Node {msg.hostname} watchdog expired (self-fencing)"
    )


def _fenced(m: re.Match[str], msg: SyslogMessage) -> Classification:
    node = m["node"]
    return Classification(
        kind="node.fenced",
        title=f"Node {node} fenced",
        node=node,
        metadata={"reporter": msg.hostname},
    )


def _ha_node_state(m: re.Match[str], msg: SyslogMessage) -> Classification:
    node = m["node"]
    return Classification(
        kind="ha.state",
        title=f"HA node {node}: {m['old']} → {m['new']}",
        node=node,
        metadata={"ha_node": node, "old_state": m["old"], "new_state": m["new"]},
    )


def _ha_service_state(m: re.Match[str], msg: SyslogMessage) -> Classification:
    sid = m["sid"]
    return Classification(
        kind="ha.state",
        title=f"HA service {sid}: {m['old']} → {m['new']}",
        vmid=_as_vmid(sid.partition(":")[2]),
        metadata={"sid": sid, "old_state": m["old"], "new_state": m["new"]},
    )


def _ha_daemon_state(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(
        kind="ha.state",
        title=f"{msg.app} {m['old']} → {m['new']}",
        metadata={"old_state": m["old"], "new_state": m["new"]},
    )


def _link_down(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(
        kind="link.down",
        title=f"Cluster link {m['link']} to host {m['host']} is down",
        metadata={"peer_nodeid": int(m["host"]), "link": int(m["link"])},
    )


_GUEST_CGROUP = re.compile(r"/qemu\.slice/(\d{1,9})\.scope|/lxc(?:\.payload)?[./](\d{1,9})\b")


def _oom_cgroup(m: re.Match[str], msg: SyslogMessage) -> Classification:
    cgroup = m["cgroup"]
    g = _GUEST_CGROUP.search(cgroup)
    vmid = int(g[1] or g[2]) if g else None
    pid = int(m["pid"])
    task = m["task"]
    guest = f" of guest {vmid}" if vmid is not None else ""
    return Classification(
        kind="oom.kill",
        title=f"OOM killer killed {task} (pid {pid}){guest}",
        vmid=vmid,
        metadata={"killed_pid": pid, "process": task, "cgroup": cgroup},
        dedup_key=("oom", pid),
    )


def _oom_killed(m: re.Match[str], msg: SyslogMessage) -> Classification:
    pid = int(m["pid"])
    task = m["task"]
    return Classification(
        kind="oom.kill",
        title=f"OOM killer killed {task} (pid {pid})",
        metadata={"killed_pid": pid, "process": task},
        dedup_key=("oom", pid),
    )


def _disk(m: re.Match[str], msg: SyslogMessage) -> Classification:
    device = m["dev"]
    return Classification(
        kind="disk.error", title=f"Disk error on {device}", metadata={"device": device}
    )


def _zfs(m: re.Match[str], msg: SyslogMessage) -> Classification:
    pool = m["pool"]
    what = m["cls"] if "cls" in m.re.groupindex else "error"
    meta: dict[str, Any] = {"pool": pool, "zfs_class": what}
    if "vdev" in m.re.groupindex and m["vdev"]:
        meta["vdev"] = m["vdev"]
    if "state" in m.re.groupindex:
        meta["vdev_state"] = m["state"]
        what = f"vdev {m['vdev']} {m['state']}"
    return Classification(kind="disk.error", title=f"ZFS pool {pool}: {what}", metadata=meta)


def _thin_pool(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(
        kind="storage.full",
        title=f"Thin pool {m['pool']} {m['part']} is {m['pct']}% full",
        metadata={"pool": m["pool"], "percent": float(m["pct"])},
    )


def _auth(m: re.Match[str], msg: SyslogMessage) -> Classification:
    user, rhost = m["user"], m["rhost"]
    return Classification(
        kind="auth.failed",
        title=f"Authentication failure for {user} from {rhost}",
        metadata={"user": user, "rhost": rhost},
    )


# --- the table ---------------------------------------------------------------------------

_PVE_TASK_APPS = r"pvedaemon|pveproxy|pvescheduler|pvesh|pve-ha-lrm|vzdump|qm|pct"
_PBS_APPS = r"proxmox-backup-proxy|proxmox-backup-api|proxmox-backup-manager"

RULES: list[Rule] = [
    # tasks (PVE UPID has 8 fields, PBS 9)
    rule("task-end", rf"{_PVE_TASK_APPS}|{_PBS_APPS}",
         r"end task (?P<upid>UPID:\S+)\s*(?P<status>.*)$", "task.ok", _task_end),
    rule("task-start", rf"{_PVE_TASK_APPS}|{_PBS_APPS}",
         r"starting task (?P<upid>UPID:\S+)", FALLBACK_KIND, _task_start),
    rule("pbs-task-error", _PBS_APPS, r"^TASK ERROR: (?P<error>.+)", "task.failed",
         _pbs_task_error),
    rule("replication-failed", r"pvescheduler|pvesr",
         r"^(?P<vmid>\d+)-(?P<job>\d+): got unexpected replication job error - (?P<error>.*)",
         "replication.failed", _replication_failed),
    # guest lifecycle
    rule("qmeventd-stop", r"qmeventd", r"^Starting cleanup for (?P<vmid>\d{1,9})\b",
         "vm.stopped", _vm_stopped),
    rule("qmeventd-finished", r"qmeventd", r"^Finished cleanup for (?P<vmid>\d{1,9})\b",
         FALLBACK_KIND, _with_vmid),
    # HA manager: fencing first, the generic state changes after
    rule("ha-fence", r"pve-ha-crm",
         r"node '(?P<node>[^']+)': state changed from '\w+' => 'fence'", "node.fencing", _fencing),
    rule("ha-fenced", r"pve-ha-crm",
         r"fencing: acknowledged - got agent lock for node '(?P<node>[^']+)'", "node.fenced",
         _fenced),
    rule("watchdog-expired", r"watchdog-mux", r"client watchdog expired", "node.fencing",
         _self_fencing),
    rule("ha-node-state", r"pve-ha-crm",
         r"node '(?P<node>[^']+)': state changed from '(?P<old>\w+)' => '(?P<new>\w+)'",
         "ha.state", _ha_node_state),
    rule("ha-service-state", r"pve-ha-crm|pve-ha-lrm",
         r"service '(?P<sid>[^']+)': state changed from '(?P<old>\w+)' to '(?P<new>\w+)'",
         "ha.state", _ha_service_state),
    rule("ha-daemon-state", r"pve-ha-crm|pve-ha-lrm",
         r"^status change (?P<old>\w+) => (?P<new>\w+)", "ha.state", _ha_daemon_state),
    # cluster
    rule("knet-link-down", r"corosync",
         r"\[KNET\s*\] link: host: (?P<host>\d+) link: (?P<link>\d+) is down", "link.down",
         _link_down),
    rule("quorum-lost", r"pmxcfs", r"\[status\] notice: node lost quorum", "quorum.lost"),
    # kernel OOM: the oom-kill line (cgroup → guest) and "Killed process" share one event id
    rule("oom-cgroup", r"kernel",
         r"oom-kill:.*?task_memcg=(?P<cgroup>[^,\s]*),task=(?P<task>[^,]*),pid=(?P<pid>\d+)",
         "oom.kill", _oom_cgroup),
    rule("oom-killed", r"kernel",
         r"[Oo]ut of memory: Kill(?:ed)? process (?P<pid>\d+) \((?P<task>[^)]*)\)", "oom.kill",
         _oom_killed),
    # storage full (before disk errors: "No space left" is not a broken disk)
    rule("no-space", r".*", r"No space left on device", "storage.full"),
    rule("thin-pool-full", r"lvm|dmeventd",
         r"Thin pool (?P<pool>\S+) (?P<part>data|metadata) is now (?P<pct>[\d.]+)% full",
         "storage.full", _thin_pool),
    rule("thin-out-of-space", r"kernel",
         r"device-mapper: thin: \S+: switching pool to out-of-(?:data|metadata)-space",
         "storage.full"),
    # disks, ZFS, SMART
    rule("kernel-io-error", r"kernel",
         r"(?:I/O|critical medium|critical target) error, dev (?P<dev>[\w-]+), sector", "disk.error", _disk),
    rule("kernel-buffer-io", r"kernel", r"Buffer I/O error on (?:dev|device) (?P<dev>[\w-]+)",
         "disk.error", _disk),
    rule("kernel-fs-error", r"kernel",
         r"(?:EXT4-fs error|XFS) \(device (?P<dev>[^)]+)\)|XFS \((?P<xdev>[^)]+)\): .*I/O error",
         "disk.error", lambda m, msg: _disk_dev(m["dev"] or m["xdev"])),
    rule("nvme-timeout", r"kernel", r"nvme (?P<dev>nvme\d+): I/O \d+ QID \d+ timeout",
         "disk.error", _disk),
    rule("zio-error", r"kernel", r"zio pool=(?P<pool>\S+) vdev=(?P<vdev>\S*) error=\d+",
         "disk.error", _zfs),
    rule("zed-error", r"zed",
         r"class=(?P<cls>checksum|io|data|deadman|probe_failure) pool='?(?P<pool>[^'\s]+)'?"
         r"(?:.*?vdev=(?P<vdev>\S+))?", "disk.error", _zfs),
    rule("zed-vdev-state", r"zed",
         r"class=statechange pool='?(?P<pool>[^'\s]+)'? vdev=(?P<vdev>\S+) "
         r"vdev_state=(?P<state>FAULTED|DEGRADED|UNAVAIL|REMOVED)", "disk.error", _zfs),
    rule("smart-sectors", r"smartd",
         r"Device: (?P<dev>\S+?),? .*?\d+ (?:Currently unreadable \(pending\) sectors|"
         r"Offline uncorrectable sectors)", "disk.error", _disk),
    rule("smart-failed", r"smartd",
         r"Device: (?P<dev>\S+?),? .*?(?:FAILED SMART self-check|SMART Failure|"
         r"Self-Test Log error count increased|ATA error count increased)", "disk.error", _disk),
    # authentication
    rule("pve-auth", rf"pvedaemon|pveproxy|{_PBS_APPS}",
         r"authentication failure; rhost=(?P<rhost>\S+) user=(?P<user>\S+)", "auth.failed",
         _auth),
    rule("sshd-auth", r"sshd",
         r"Failed (?:password|publickey|keyboard-interactive/pam|none) for (?:invalid user )?"
         r"(?P<user>\S+) from (?P<rhost>\S+) port \d+", "auth.failed", _auth),
]  # fmt: skip


def _disk_dev(device: str) -> Classification:
    return Classification(
        kind="disk.error", title=f"Disk error on {device}", metadata={"device": device}
    )


class Classifier:
    """Applies a rule table; remembers which rules apply to which program name."""

    def __init__(self, rules: Sequence[Rule] = RULES, cache_size: int = 4096) -> None:
        self.rules = tuple(rules)
        self._by_app: dict[str, tuple[Rule, ...]] = {}
        self._cache_size = cache_size

    def _rules_for(self, app: str) -> tuple[Rule, ...]:
        found = self._by_app.get(app)
        if found is None:
            found = tuple(r for r in self.rules if r.app.fullmatch(app))
            if len(self._by_app) >= self._cache_size:
                self._by_app.clear()
            self._by_app[app] = found
        return found

    def classify(self, msg: SyslogMessage) -> Classification:
        """The first matching rule's classification, else ``syslog.message``."""
        text = msg.message
        for r in self._rules_for(msg.app or ""):
            m = r.message.search(text)
            if m is None:
                continue
            if r.build is None:
                return Classification(kind=r.kind, rule=r.name)
            try:
                result = r.build(m, msg)
            except (ValueError, KeyError, IndexError):
                result = None
            if result is not None:
                result.rule = r.name
                return result
        return Classification()


DEFAULT_CLASSIFIER = Classifier()


def classify(msg: SyslogMessage) -> Classification:
    return DEFAULT_CLASSIFIER.classify(msg)
