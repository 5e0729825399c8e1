"""The syslog rule table: what Proxmox VE / PBS hosts log, by program, mined from the sources.

Each rule names the program(s) whose lines it applies to (the syslog app name), a regex
searched in the message, the kind, an optional builder that extracts node/vmid/title, and
the source file the message comes from. Order matters only among the rules of one program:
the first match decides. ``tests/corpus.py`` holds at least one real line per rule.

Contract (DESIGN.md "Kind vocabulary"): one happening gives one event, so of the lines one
happening produces, one carries the kind and the others stay ``syslog.message`` (with the
vmid where exactly one guest is concerned). ``node`` is set only when the event is about
another node than the sender (fencing); the sender's host name is the default; an HA
service's state is about no node (``no_node``, see ``_ha_service``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from proxbus_events import FINGERPRINT_SUBJECT_KEY, Severity, short_host
from proxbus_events.classification import ANY_PROGRAM, Builder, Classification, Rule
from proxbus_events.classification import rule as _rule
from proxbus_events.knet import knet_link_down, knet_link_up
from proxbus_events.proxmox import Upid, find_upid, guest_id

from .parse import SyslogMessage

FALLBACK_KIND = "syslog.message"
# metadata key of a follow-on line: the kind of the event another line of the same happening
# is (``oom.kill``). Such a line stays plain and at most ``info`` (normalize.line_severity),
# so it is on the bus for the record without notifying a second time.
DETAIL_OF = "detail_of"

Build = Builder[SyslogMessage]


def rule(
    name: str,
    programs: str | Iterable[str],
    pattern: str,
    kind: str,
    build: Build | None = None,
    source: str = "",
    *,
    needles: tuple[str, ...] = (),
) -> Rule[SyslogMessage]:
    """A syslog rule (``programs``: space-separated app names, ``*`` for any).

    ``needles``: literals one of which every match contains, for patterns without a literal
    prefix (the table skips the regex when none is in the line).
    """
    return _rule(name, programs, pattern, kind, build, source=source, needles=needles)


# --- shared extraction --------------------------------------------------------------------

_GUEST_REF = re.compile(
    r"\b(?:VM|CT) (\d{1,9})\b|\b(?:vm|ct):(\d{1,9})\b|(?<![\w./-])(\d{1,9})\.scope\b"
)


def single_guest(text: str) -> int | None:
    """The guest id when ``text`` names exactly one guest (``VM 100``, ``vm:100``, ``100.scope``)."""
    found = {a or b or c for a, b, c in _GUEST_REF.findall(text)}
    return guest_id(found.pop()) if len(found) == 1 else None


def _plain(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """A recognised line that is not an event of its own: plain, with its guest if one.

    The guest comes from a group whose name ends in ``vmid``, else from the whole line.
    """
    found = next((v for k, v in m.groupdict().items() if k.endswith("vmid") and v), None)
    vmid = guest_id(found) if found else single_guest(msg.message)
    return Classification(kind=FALLBACK_KIND, vmid=vmid)


# The level words daemons write into their own messages: pmxcfs's qb_log format "[%g] %p: %b"
# (pve-cluster src/pmxcfs/pmxcfs.c update_qb_log_settings: "[status] notice: "), vzdump's
# "INFO: "/"ERROR: " (pve-manager PVE/VZDump.pm debugmsg). A classified event's title says
# the happening; its severity is the event's own field, so the words do not belong there.
_LEVEL_PREFIX = re.compile(
    r"^\s*(?:\[[\w ]{1,16}\]\s*)?"
    r"(?:(?:emerg|alert|crit|err|error|warn|warning|notice|info|debug)\s*:\s+)?",
    re.IGNORECASE,
)


def said(text: str) -> str:
    """``text`` without the daemon's own ``[group] level:`` prefix (for titles)."""
    return _LEVEL_PREFIX.sub("", text, count=1)


def _titled(kind: str, title: str) -> Build:
    """A builder: ``kind`` with a fixed title, or one formatted from the match's groups."""

    def build(m: re.Match[str], msg: SyslogMessage) -> Classification:
        groups = {k: (v or "").strip() for k, v in m.groupdict().items()}
        return Classification(kind=kind, title=title.format(**groups))

    return build


def _detail_of(kind: str) -> Build:
    """A builder for a follow-on line of a happening whose event another line is: plain,
    with its guest (as ``_plain``), ``metadata.detail_of = kind`` and at most ``info``."""

    def build(m: re.Match[str], msg: SyslogMessage) -> Classification:
        cls = _plain(m, msg)
        cls.metadata[DETAIL_OF] = kind
        pid = m.groupdict().get("pid")
        if pid:
            cls.metadata["killed_pid"] = int(pid)
        return cls

    return build


def _kind_with_guest(kind: str, title: str) -> Build:
    """A builder: ``kind`` with the vmid from the ``vmid`` group; ``title`` may use groups."""

    def build(m: re.Match[str], msg: SyslogMessage) -> Classification:
        vmid = guest_id(m["vmid"])
        return Classification(kind=kind, title=title.format(**m.groupdict()), vmid=vmid)

    return build


# --- tasks (pve-common src/PVE/RESTEnvironment.pm) ------------------------------------------

# PBS worker ids are systemd-escaped (proxmox-rs proxmox-sys systemd escape_unit): "/" → "-",
# other specials → \xNN, so a backup of vm/100 in store1 reads "store1\x3avm-100".
_PBS_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_PBS_GROUP = re.compile(r"(?:^|[:/-])(?:vm|ct)[-/](\d{1,9})(?:[-/]|$)")


def task_vmid(upid: Upid) -> int | None:
    """The guest a task is about: the PVE task id, or the ``vm/<N>`` group of a PBS task."""
    if not upid.pbs:
        return upid.vmid
    text = _PBS_ESCAPE.sub(lambda e: chr(int(e[1], 16)), upid.id)
    groups = set(_PBS_GROUP.findall(text))
    return guest_id(groups.pop()) if len(groups) == 1 else None


_TASK_OK = re.compile(r"(?:TASK )?OK")
_TASK_WARN = re.compile(r"(?:TASK )?WARNINGS: ?(\d+)")


def _task_metadata(upid: Upid, status: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "task_type": upid.type,
        "task_id": upid.id,
        "user": upid.user,
        "upid_node": upid.node,
        "task_start": upid.starttime,
    }
    if status is not None:
        meta["status"] = status
    if upid.pbs:
        meta["product"] = "pbs"
    return meta


def _task_end(m: re.Match[str], msg: SyslogMessage) -> Classification | None:
    """``end task UPID... <status>``: ``task.ok``/``task.failed`` for every task type.

    vzdump included: the backup job's own lines say what happened to the guests.
    """
    upid = find_upid(m["upid"])
    if upid is None:
        return None
    status = m["status"].strip()
    severity = None
    if _TASK_OK.fullmatch(status):
        kind, status = "task.ok", "OK"
    elif w := _TASK_WARN.fullmatch(status):
        kind, status, severity = "task.ok", f"WARNINGS: {w[1]}", Severity.WARNING
    else:
        kind, status = "task.failed", status.removeprefix("TASK ERROR: ") or "unknown error"
    what = f"{upid.type} {upid.id}".strip()
    if kind == "task.failed":
        title = f"Task {what} failed: {status}"
    else:
        title = f"Task {what} finished" + (f" with {status}" if severity else " OK")
    return Classification(
        kind=kind,
        title=title,
        vmid=task_vmid(upid),
        correlation_id=upid.text,
        severity=severity,
        metadata=_task_metadata(upid, status),
        dedup_key=(upid.text, status),
    )


def _task_start(m: re.Match[str], msg: SyslogMessage) -> Classification | None:
    upid = find_upid(m["upid"])
    if upid is None:
        return None
    return Classification(
        kind=FALLBACK_KIND,
        title=" ".join(f"Task {upid.type} {upid.id} started by {upid.user}".split()),
        vmid=task_vmid(upid),
        correlation_id=upid.text,
        metadata=_task_metadata(upid, None),
    )


def _worker_start(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """A worker's own line with its UPID (``start VM 100: UPID...``): plain, correlated."""
    upid = find_upid(m["upid"])
    named = m.groupdict().get("vmid")
    vmid = guest_id(named) if named else (task_vmid(upid) if upid else None)
    return Classification(kind=FALLBACK_KIND, vmid=vmid, correlation_id=upid.text if upid else None)


# The final errors of PBS job tasks that say which job failed (the task line has no UPID):
# proxmox-backup src/server/verify_job.rs, src/api2/admin/datastore.rs and
# src/api2/backup/environment.rs ("verification failed - ..."), src/server/pull.rs ("sync failed
# with some errors."), pbs-datastore/src/datastore.rs garbage_collection, src/api2/tape/backup.rs.
_PBS_JOB_ERRORS = (
    ("verification failed - ", "verify.failed", "Verification"),
    ("sync failed with some errors", "sync.failed", "Sync"),
    ("Start GC failed - ", "gc.failed", "Garbage collection"),
    ("cannot continue garbage-collection safely", "gc.failed", "Garbage collection"),
    ("Tape backup finished with some errors", "tape.failed", "Tape backup"),
)


def _pbs_task_error(m: re.Match[str], msg: SyslogMessage) -> Classification:
    error = m["error"].strip()
    for prefix, kind, what in _PBS_JOB_ERRORS:
        if error.startswith(prefix):
            return Classification(
                kind=kind,
                title=f"PBS {what.lower()} job failed: {error}",
                metadata={"status": error},
            )
    return Classification(
        kind="task.failed", title=f"PBS task failed: {error}", metadata={"status": error}
    )


# --- vzdump (pve-manager PVE/VZDump.pm, logged through PVE/VZDump/Plugin.pm debugmsg) ------


def _backup_job_start(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """``starting new backup job: vzdump 100 --mode snapshot``: vmid when one guest is named."""
    args = m["cmdline"].split()
    ids = [a for a in args[1:] if not a.startswith("-")]
    ids = ids[: next((i for i, a in enumerate(ids) if not a.isdigit()), len(ids))]
    vmid = guest_id(ids[0]) if len(ids) == 1 and "--all" not in args else None
    return Classification(kind=FALLBACK_KIND, vmid=vmid)


def _backup_failed(m: re.Match[str], msg: SyslogMessage) -> Classification:
    vmid = guest_id(m["vmid"])
    error = m["error"].strip()
    return Classification(
        kind="backup.failed",
        title=f"Backup of VM {vmid} failed: {error}",
        vmid=vmid,
        metadata={"error": error},
    )


def _backup_job_failed(m: re.Match[str], msg: SyslogMessage) -> Classification:
    error = m["error"].strip() if "error" in m.re.groupindex and m["error"] else ""
    title = f"Backup job failed: {error}" if error else "Backup job finished with errors"
    return Classification(
        kind="backup.failed", title=title, metadata={"error": error} if error else {}
    )


# --- replication (pve-manager PVE/API2/Replication.pm _handle_job_err) ---------------------


def _replication_failed(m: re.Match[str], msg: SyslogMessage) -> Classification:
    vmid = guest_id(m["vmid"])
    job = f"{m['vmid']}-{m['job']}"
    return Classification(
        kind="replication.failed",
        title=f"Replication job {job} failed: {m['error'].strip()}",
        vmid=vmid,
        metadata={"job_id": job, "error": m["error"].strip(), FINGERPRINT_SUBJECT_KEY: job},
    )


# --- HA manager (pve-ha-manager src/PVE/HA/{NodeStatus,Manager,LRM}.pm) --------------------


def _ha_node(
    m: re.Match[str], msg: SyslogMessage, kind: str, title: str, new_state: str | None
) -> Classification:
    """One HA node line: the node it is about, who reported it, and its state change if any."""
    metadata = {"reporter": msg.hostname}
    if new_state is not None:
        metadata |= {"old_state": m["old"], "new_state": new_state}
    return Classification(kind=kind, title=title, node=m["node"], metadata=metadata)


def _fencing(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return _ha_node(m, msg, "node.fencing", f"Fencing node {m['node']}", "fence")


def _fenced(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return _ha_node(m, msg, "node.fenced", f"Node {m['node']} fenced", None)


def _node_offline(m: re.Match[str], msg: SyslogMessage) -> Classification:
    title = f"Node {m['node']} is offline (HA state {m['old']} → unknown)"
    return _ha_node(m, msg, "node.offline", title, "unknown")


# A node's return to the cluster membership (NodeStatus.pm update: 'unknown' or 'gone' →
# 'online') ends the node.offline its '→ unknown' was; the contract makes it ha.state, so it
# says so in metadata.recovers, as knet's link up does (RECOVERS below): the API watcher's
# "back online" (node.offline, resolved) is that alert's fingerprint.
HA_NODE_RETURNS = frozenset({("unknown", "online"), ("gone", "online")})


def _ha_node_state(m: re.Match[str], msg: SyslogMessage) -> Classification:
    title = f"HA node {m['node']}: {m['old']} → {m['new']}"
    cls = _ha_node(m, msg, "ha.state", title, m["new"])
    if (m["old"], m["new"]) in HA_NODE_RETURNS:
        cls.metadata[RECOVERS] = "node.offline"
    return cls


# An HA service's ``ha.state`` is about no node (``Classification.no_node``): the CRM master
# logs the service lines (Manager.pm ``change_service_state``), often from another node than
# the service's, and another master after the first was fenced; the line names the service's
# node only when the change sets it (``  (node = pve1)``: recovery → started, request_start,
# migrate), not for started → fence or fence → recovery. ingest-pve-ws's API diff
# (API2/HA/Status.pm: the service's node) and cluster log agree on no node, so the same
# happening is one fingerprint (kind, site, vmid: a vmid is unique in the cluster), whichever
# source and master told it (tests/test_ha_across_sources.py). The service's node goes in
# ``metadata.service_node`` where the line names it.
_HA_PARAM_NODE = re.compile(r"\(node = (?P<node>[^,)\s]{1,64})")
_HA_RECOVER = re.compile(
    r"^recover service '[^']+' (?:from fenced node '(?P<fenced>[^']+)' to node '(?P<to>[^']+)'"
    r"|to previous failed and fenced node '(?P<again>[^']+)' again)"
)


def _ha_service(
    sid: str, title: str, msg: SyslogMessage, metadata: dict[str, Any], severity: Severity | None
) -> Classification:
    return Classification(
        kind="ha.state",
        title=title,
        vmid=guest_id(sid.partition(":")[2]),
        severity=severity,
        metadata={"sid": sid, "reporter": msg.hostname, **metadata},
        no_node=True,
    )


def _ha_service_state(m: re.Match[str], msg: SyslogMessage) -> Classification:
    sid = m["sid"]
    meta: dict[str, Any] = {"old_state": m["old"], "new_state": m["new"]}
    title = f"HA service {sid}: {m['old']} → {m['new']}"
    if param := _HA_PARAM_NODE.search(msg.message, m.end()):
        meta["service_node"] = param["node"]
        title += f" on {param['node']}"  # the event has no node: the title says where
    return _ha_service(sid, title, msg, meta, None)


def _ha_service_line(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """Other HA service lines (recovery, LRM start/stop): ``ha.state`` about that guest.

    The LRM logs them on the node that runs the service (LRM.pm ``exec_resource_agent``).
    """
    sid = m["sid"] or m["qsid"] or m["usid"]
    severity = (
        Severity.ERROR if re.search(r"failed|unable|unrecoverable|cannot", msg.message) else None
    )
    meta: dict[str, Any] = {}
    if msg.app == "pve-ha-lrm" and msg.hostname:
        meta["service_node"] = short_host(msg.hostname)
    elif recover := _HA_RECOVER.match(msg.message):
        meta["service_node"] = recover["to"] or recover["again"]
        meta["fenced_node"] = recover["fenced"] or recover["again"]
    return _ha_service(sid, f"HA service {sid}: {msg.message}", msg, meta, severity)


def _ha_daemon_state(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(
        kind="ha.state",
        title=f"{msg.app} {m['old']} → {m['new']}",
        metadata={"old_state": m["old"], "new_state": m["new"]},
    )


def _self_fencing(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(
        kind="node.fencing",
        title=f"Node {msg.hostname}: watchdog updates disabled, the node will reset (self-fencing)",
    )


# --- cluster (kronosnet libknet/threads_heartbeat.c, pve-cluster src/pmxcfs/status.c) -------


def _no_space(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """ENOSPC from any program: what the program could not do, without its level word."""
    where = f" ({msg.app})" if msg.app else ""
    return Classification(kind="storage.full", title=f"Out of space: {said(msg.message)}{where}")


def _thin_out_of_space(m: re.Match[str], msg: SyslogMessage) -> Classification:
    if m["pool"]:
        title = f"Thin pool {m['pool']} is out of {m['part']} space"
        meta = {"pool": m["pool"]}
    else:
        title = f"Critical space allocation error on {m['dev']} (thin pool out of space)"
        meta = {"device": m["dev"]}
    return Classification(kind="storage.full", title=title, metadata=meta)


def _link_down(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """knet's link down: ``link.down`` of the peer (subject ``knet host N``, shared with
    ingest-pve-ws's cluster log: ``proxbus_events.knet``); the classifier makes another
    link's down of a peer already down a detail of the peer's alert."""
    return knet_link_down(int(m["host"]), int(m["link"]))


# metadata key of a plain line that says a classified kind's happening is over (the contract
# has no recovery kinds): the dispatcher resolves the notified alert of that kind of the node
# with the same fingerprint subject
RECOVERS = "recovers"


def _link_up(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """knet's link up: plain at its PRI, with the peer's subject and ``recovers``; the
    classifier takes ``recovers`` away while another link of the peer is still down."""
    return knet_link_up(int(m["host"]), int(m["link"]))


def _quorum_regained(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(
        kind=FALLBACK_KIND, title="Quorum regained", metadata={RECOVERS: "quorum.lost"}
    )


# --- kernel / systemd: OOM, crashes ---------------------------------------------------------

_GUEST_CGROUP = re.compile(r"/qemu\.slice/(\d{1,9})\.scope|/lxc(?:\.payload)?[./](\d{1,9})\b")


def _oom_cgroup(m: re.Match[str], msg: SyslogMessage) -> Classification:
    cgroup = m["cgroup"]
    g = _GUEST_CGROUP.search(cgroup)
    vmid = guest_id(g[1] or g[2]) if g else None
    pid = int(m["pid"])
    task = m["task"]
    guest = f" of guest {vmid}" if vmid is not None else ""
    return Classification(
        kind="oom.kill",
        title=f"OOM killer killed {task} (pid {pid}){guest}",
        vmid=vmid,
        metadata={"killed_pid": pid, "process": task, "cgroup": cgroup},
        dedup_key=("oom", pid),  # the "Killed process" line of the same kill: same event
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


def _oomd_kill(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """systemd-oomd's kill of a guest's unit: the only line of it (no kernel OOM report)."""
    vmid = guest_id(m["vmid"] or m["cvmid"])
    count = m["count"]
    what = f"{count} process(es)" if count else "some process(es)"
    meta: dict[str, Any] = {"killer": "systemd-oomd"}
    if count:
        meta["killed_processes"] = int(count)
    return Classification(
        kind="oom.kill",
        title=f"systemd-oomd killed {what} of guest {vmid}",
        vmid=vmid,
        metadata=meta,
    )


def _qemu_crash(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(
        kind="vm.crashed",
        title=f"QEMU process {m['comm']} (pid {m['pid']}) crashed: {m['what']}",
        metadata={"process": m["comm"], "pid": int(m["pid"])},
    )


def _ct_state(kind: str) -> Build:
    def build(m: re.Match[str], msg: SyslogMessage) -> Classification:
        vmid = guest_id(m["vmid"])
        verb = "started" if kind == "vm.started" else "stopped"
        result = m["result"] if "result" in m.re.groupindex else None
        title = f"CT {vmid} {verb}" + (f" ({result})" if result else "")
        return Classification(
            kind=kind,
            title=title,
            vmid=vmid,
            severity=Severity.WARNING if result else None,
            metadata={"result": result} if result else {},
        )

    return build


# --- disks, storage ----------------------------------------------------------------------


def _io_error(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """The block layer's ``<what> error, dev X``: ``I/O error on sdc``, ``Critical medium ...``."""
    device, what = m["dev"], m["what"]
    return Classification(
        kind="disk.error",
        title=f"{what[:1].upper()}{what[1:]} error on {device}",
        metadata={"device": device, "error": what},
    )


def _nvme(m: re.Match[str], msg: SyslogMessage) -> Classification:
    device = m["dev"]
    if m["what"]:
        title, error = f"I/O timeout on {device}", "I/O timeout"
    else:
        error = m["state"]
        title = f"NVMe controller {device} failed: {error}"
    return Classification(
        kind="disk.error", title=title, metadata={"device": device, "error": error}
    )


# smartd's wording (smartmontools smartd.cpp) → what the title says.
_SMART_TITLES = (
    ("FAILED SMART self-check", "SMART self-check failed"),
    ("SMART Failure", "SMART failure"),
    ("Self-Test Log error count increased", "SMART self-test log error count increased"),
    ("ATA error count increased", "ATA error count increased"),
    ("Critical Warning", "NVMe critical warning"),
)


def _smart(m: re.Match[str], msg: SyslogMessage) -> Classification:
    device, what = m["dev"], m["what"]
    groups = m.groupdict()
    if groups.get("count"):
        title = f"{groups['count']} {what[:1].lower()}{what[1:]} on {device}"
    else:
        said_ = next((t + what[len(p) :] for p, t in _SMART_TITLES if what.startswith(p)), what)
        title = f"{said_} on {device}"
    return Classification(
        kind="disk.error", title=title, metadata={"device": device, "error": what}
    )


def _fs_error(m: re.Match[str], msg: SyslogMessage) -> Classification:
    device = m["dev"] or m["xdev"]
    return Classification(
        kind="disk.error", title=f"File system error on {device}", metadata={"device": device}
    )


# zed's event classes (OpenZFS include/sys/fm/fs/zfs.h FM_EREPORT_ZFS_*) → what the title says.
_ZFS_CLASSES = {
    "checksum": "checksum error",
    "io": "I/O error",
    "data": "data error",
    "delay": "slow I/O (delay)",
    "deadman": "hung I/O (deadman)",
    "probe_failure": "probe failure",
    "io_failure": "I/O failure",
    "vdev.open_failed": "open failed",
    "vdev.no_replicas": "insufficient replicas",
    "vdev.corrupt_data": "corrupt data",
    "vdev.bad_label": "bad label",
    "vdev.unknown": "unknown device",
}


def _zfs(m: re.Match[str], msg: SyslogMessage) -> Classification:
    groups = m.groupdict()
    pool = groups["pool"]
    meta: dict[str, Any] = {"pool": pool}
    cls = groups.get("cls") or "error"
    meta["zfs_class"] = cls
    vdev = groups.get("vdev")
    if vdev:
        meta["vdev"] = vdev
    if groups.get("state"):
        meta["vdev_state"] = groups["state"]
        what = f"vdev {vdev or '(no path)'} {groups['state']}"
    else:  # zio-error (vdev_disk.c) has no class: a failed I/O
        what = _ZFS_CLASSES.get(cls, f"{cls} error") if cls != "error" else "I/O error"
        what += f" on vdev {vdev}" if vdev else ""
    return Classification(kind="disk.error", title=f"ZFS pool {pool}: {what}", metadata=meta)


def _md_failure(m: re.Match[str], msg: SyslogMessage) -> Classification:
    device, array = m["dev"], m["md"]
    return Classification(
        kind="disk.error",
        title=f"RAID array {array}: disk {device} failed and was disabled",
        metadata={"device": device, "array": array, "error": "disk failure"},
    )


def _btrfs(m: re.Match[str], msg: SyslogMessage) -> Classification:
    device = m["dev"] or m["wdev"]
    what = "checksum error" if m["csum"] else "error"
    return Classification(
        kind="disk.error",
        title=f"Btrfs {what} on {device}",
        metadata={"device": device, "error": what},
    )


def _zfs_suspended(m: re.Match[str], msg: SyslogMessage) -> Classification:
    pool = m["pool"]
    return Classification(
        kind="disk.error",
        title=f"ZFS pool {pool} suspended after an uncorrectable I/O failure",
        metadata={"pool": pool, "zfs_class": "io_failure"},
    )


def _thin_pool(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(
        kind="storage.full",
        title=f"Thin pool {m['pool']} {m['part']} is {m['pct']}% full",
        metadata={"pool": m["pool"], "percent": float(m["pct"])},
    )


def _storage_offline(m: re.Match[str], msg: SyslogMessage) -> Classification:
    return Classification(kind=FALLBACK_KIND, metadata={"storage": m["storage"]})


# --- authentication, certificates ---------------------------------------------------------


def _auth(m: re.Match[str], msg: SyslogMessage) -> Classification:
    groups = m.groupdict()
    user, rhost = groups.get("user") or "", groups["rhost"]
    who = f" for {user}" if user else ""
    meta = {"rhost": rhost, **({"user": user} if user else {})}
    return Classification(
        kind="auth.failed", title=f"Authentication failure{who} from {rhost}", metadata=meta
    )


def _pbs_job_failed(m: re.Match[str], msg: SyslogMessage) -> Classification:
    job = m["job"]
    kind = {
        "garbage collection": "gc.failed",
        "datastore prune": "prune.failed",
        "datastore sync": "sync.failed",
        "datastore verification": "verify.failed",
        "tape backup": "tape.failed",
    }[job]
    target = m["target"]
    error = m["error"].strip()
    meta: dict[str, Any] = {"job": target, "error": error}
    if kind == "gc.failed":  # "on datastore <store>": the datastore, as the GC mail names it
        meta[FINGERPRINT_SUBJECT_KEY] = target
    return Classification(
        kind=kind, title=f"Could not start {job} job {target}: {error}", metadata=meta
    )


def _host_link(m: re.Match[str]) -> tuple[str, dict[str, Any]]:
    """The interface a host link line is about (a NIC, a bond's slave, or the bond itself) and
    its metadata; the interface is the fingerprint subject (only syslog reports these)."""
    ifname = m["ifname"] or m["slave"] or m["bond"]
    meta = {"interface": ifname, FINGERPRINT_SUBJECT_KEY: ifname}
    if m["bond"]:
        meta["bond"] = m["bond"]
    return ifname, meta


def _host_link_down(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """A host network link down: a NIC's carrier, a bond's slave, or a bond with no slave left."""
    ifname, meta = _host_link(m)
    what = f"bond {m['bond']} has no active interface" if m["noactive"] else f"{ifname} is down"
    return Classification(kind="link.down", title=f"Network link {what}", metadata=meta)


def _host_link_up(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """A host network link back: plain at its PRI, ending its interface's ``link.down``."""
    ifname, meta = _host_link(m)
    what = (
        f"bond {m['bond']} has an active interface again"
        if m["active"]
        else f"{ifname} is up again"
    )
    meta[RECOVERS] = "link.down"
    return Classification(kind=FALLBACK_KIND, title=f"Network link {what}", metadata=meta)


_GUEST_NIC = re.compile(r"\b(?:tap|veth|fwbr|fwln|fwpr)(\d{1,9})[ipo]\d+\b")


def _guest_nic(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """Bridge/port lines of a guest's NIC (``tap100i0``, ``veth200i0``, ``fwbr100i0``)."""
    found = set(_GUEST_NIC.findall(msg.message))
    vmid = guest_id(found.pop()) if len(found) == 1 else None
    return Classification(kind=FALLBACK_KIND, vmid=vmid)


def _fence_detail(m: re.Match[str], msg: SyslogMessage) -> Classification:
    node = m["node"] or m["lnode"]
    return Classification(kind=FALLBACK_KIND, node=node, metadata={"reporter": msg.hostname})


_KERNEL_REPORTS = (
    ("blocked for more than", "hung task"),
    ("cut here", "kernel warning"),
    ("soft lockup", "soft lockup"),
    ("detected stalls", "RCU stall"),
)


def _kernel_report(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """The first line of a kernel report: plain, ``metadata.report`` says which."""
    what = next((r for needle, r in _KERNEL_REPORTS if needle in m[0]), "kernel BUG")
    return Classification(kind=FALLBACK_KIND, metadata={"report": what})


def _disk_detail(m: re.Match[str], msg: SyslogMessage) -> Classification:
    """A kernel line of a disk error's burst (libata, SCSI, NVMe, page cache, md, ratelimit).

    The error reports (``_DISK_ERROR_REPORT``: ``failed command``, ``status: { DRDY ERR }``,
    a command's ``tag#N`` result and sense, ``Buffer I/O error``, ``N callbacks suppressed``)
    are details of the ``disk.error`` the block layer's line is (``DETAIL_OF``, at most info),
    whether it follows or not (a command libata retried successfully has no I/O error line; a
    failing disk has). The drivers' other lines (``hard resetting link``, ``configured for
    UDMA/133``) are details only inside a host's burst window (``classify.Classifier``): at
    boot they, and sd's notices (``Attached SCSI disk``), are the disks being found.
    """
    groups = m.groupdict()
    device = next((v for k in _DISK_DETAIL_DEVICE if (v := groups.get(k))), None)
    meta: dict[str, Any] = {"device": device} if device else {}
    if _DISK_ERROR_REPORT.search(msg.message):
        meta[DETAIL_OF] = "disk.error"
    return Classification(kind=FALLBACK_KIND, metadata=meta)


# linux drivers/ata/libata-eh.c ata_eh_link_report (and ata_eh_speed_down's NCQ line),
# drivers/scsi/scsi_logging.c (a command's "tag#N" result, sense, CDB), scsi_lib.c (offline
# device), fs/buffer.c, drivers/nvme/host/core.c nvme_log_error and pci.c nvme_timeout,
# drivers/md raid1/raid5 error, lib/ratelimit.c
_DISK_ERROR_REPORT = re.compile(
    r"exception Emask|irq_stat 0x|failed command: |: cmd [0-9a-f]{2}/|^\s*res [0-9a-f]{2}/|"
    r"(?:status|error|SError): \{|NCQ disabled due to excessive errors|tag#\d{1,5} |"
    r"rejecting I/O to |Buffer I/O error|I/O Cmd\(|Abort status|faulty power saving|"
    r"nvme_core\.default_ps|Operation continuing on|Cannot continue|callbacks suppressed"
)
_DISK_DETAIL_DEVICE = ("dev", "ata", "sd", "nvme", "nctrl", "md")


# --- the table -----------------------------------------------------------------------------

_PBS = "proxmox-backup-proxy proxmox-backup-api proxmox-backup-manager"
# pve-guests: the boot-time start / shutdown stop of all guests (pve-manager
# services/pve-guests.service sets PVE_LOG_ID, the ident pve-common CLIHandler.pm uses);
# qmrestore, pvesm, pveceph, pvecm, pveam: CLI tools whose tasks log under their own name.
_CLI_TASKS = "pve-guests qmrestore pvesm pveceph pvecm pveam"
_TASKS = (
    "pvedaemon pveproxy pvescheduler pvesh pvestatd pve-ha-lrm pve-ha-crm vzdump qm pct pvesr "
    f"pvenode pveupdate spiceproxy {_CLI_TASKS} {_PBS}"
)
_VZDUMP = "vzdump pvescheduler pvedaemon pveproxy pvesh"
_GUEST_DAEMONS = (
    "pvedaemon pveproxy pvescheduler pvesh pvestatd qm pct vzdump pve-ha-lrm pve-guests qmrestore"
)
_HA = "pve-ha-crm pve-ha-lrm"
_SSHD = "sshd sshd-session"
_THIN = "lvm dmeventd"

_RESTENV = "pve-common src/PVE/RESTEnvironment.pm"
_VZDUMP_PM = "pve-manager PVE/VZDump.pm"
_HA_MANAGER = "pve-ha-manager src/PVE/HA/Manager.pm"
_HA_NODES = "pve-ha-manager src/PVE/HA/NodeStatus.pm"
_HA_LRM = "pve-ha-manager src/PVE/HA/LRM.pm"
_BLK = "linux block/blk-core.c blk_print_req_error"
_ZED = "openzfs cmd/zed/zed.d/all-syslog.sh"
_SMARTD = "smartmontools smartd.cpp"
# A remote sender fills up to syslog_max_line bytes of message, and the table runs every
# matching rule's regex over it, so no rule may backtrack quadratically: a pattern searched
# anywhere must not scan unboundedly from every place its start literal occurs. Kernel lines
# that the kernel prints at the start of a message (``XFS (dev):``, ``oom-kill:``) are matched
# there, after at most a short prefix (a printk time stamp such as ``[ 12.345678] ``), which
# keeps the search linear; ``tests/test_fuzz_syslog.py`` feeds every rule its own lines pumped
# to the line limit.
_LINE_START = r"^.{0,32}?"

RULES: list[Rule[SyslogMessage]] = [
    # tasks: every task type's end line is task.ok / task.failed (PBS UPIDs have 9 fields)
    rule("task-end", _TASKS, r"end task (?P<upid>UPID:\S+)\s*(?P<status>.*)$", "task.ok",
         _task_end, _RESTENV),
    rule("task-start", _TASKS, r"starting task (?P<upid>UPID:\S+)", FALLBACK_KIND, _task_start,
         _RESTENV),
    rule("worker-start", _GUEST_DAEMONS,
         r"^(?:start|starting|stop|stopping|shutdown|destroy|suspend|resume|"
         r"requesting reboot of) (?:VM|CT) (?P<vmid>\d{1,9}): (?P<upid>UPID:\S+)",
         FALLBACK_KIND, _worker_start,
         "qemu-server src/PVE/API2/Qemu.pm, pve-container src/PVE/API2/LXC/Status.pm",
         needles=(" VM ", " CT ")),
    rule("pbs-task-error", _PBS, r"^TASK ERROR: (?P<error>.+)", "task.failed", _pbs_task_error,
         "proxmox-rs proxmox-rest-server/src/worker_task.rs log_result"),
    # vzdump: the job's own lines say what happened to the guests
    rule("vzdump-guest-start", _VZDUMP, r"^INFO: Starting Backup of VM (?P<vmid>\d{1,9}) ",
         FALLBACK_KIND, _plain, _VZDUMP_PM),
    rule("vzdump-guest-ok", _VZDUMP,
         r"^INFO: Finished Backup of VM (?P<vmid>\d{1,9}) \((?P<duration>[^)]*)\)", "backup.ok",
         _kind_with_guest("backup.ok", "Backup of VM {vmid} finished ({duration})"),
         _VZDUMP_PM),
    rule("vzdump-guest-failed", _VZDUMP,
         r"^ERROR: Backup of VM (?P<vmid>\d{1,9}) failed - (?P<error>.*)", "backup.failed",
         _backup_failed, _VZDUMP_PM),
    rule("vzdump-job-ok", _VZDUMP, r"^INFO: Backup job finished successfully", "backup.ok",
         _titled("backup.ok", "Backup job finished successfully"), _VZDUMP_PM),
    rule("vzdump-job-errors", _VZDUMP,
         r"^INFO: Backup job finished with errors|^ERROR: Backup job failed - (?P<error>.*)",
         "backup.failed", _backup_job_failed, _VZDUMP_PM,
         needles=("Backup job",)),
    rule("vzdump-lock-failed", _VZDUMP,
         r"^ERROR: (?P<error>can't (?:acquire lock|open lock on file) '[^']{1,4096}'.*)",
         "backup.failed", _backup_job_failed, f"{_VZDUMP_PM} getlock"),
    rule("vzdump-job-start", _VZDUMP, r"^INFO: starting new backup job: (?P<cmdline>.*)",
         FALLBACK_KIND, _backup_job_start, _VZDUMP_PM),
    # replication
    rule("replication-failed", "pvescheduler pvesr",
         r"^(?P<vmid>\d{1,9})-(?P<job>\d+): got unexpected replication job error - (?P<error>.*)",
         "replication.failed", _replication_failed, "pve-manager PVE/API2/Replication.pm",
         needles=("got unexpected replication job error",)),
    # guest lifecycle
    rule("vm-started", _GUEST_DAEMONS,
         r"^VM (?P<vmid>\d{1,9}) started with PID (?P<pid>\d+)", "vm.started",
         _kind_with_guest("vm.started", "VM {vmid} started (pid {pid})"),
         "qemu-server src/PVE/QemuServer.pm vm_start_nolock"),
    rule("qmeventd-stop", "qmeventd", r"^Starting cleanup for (?P<vmid>\d{1,9})\b", "vm.stopped",
         _kind_with_guest("vm.stopped", "VM {vmid} stopped"),
         "qemu-server src/PVE/CLI/qm.pm cleanup (run by qmeventd)"),
    # the second half of the stop's cleanup (qm.pm warns both: stderr, at warning or err
    # depending on the forwarder): a detail of the vm.stopped above, not a notification
    rule("qmeventd-finished", "qmeventd", r"^Finished cleanup for (?P<vmid>\d{1,9})\b",
         FALLBACK_KIND, _detail_of("vm.stopped"), "qemu-server src/PVE/CLI/qm.pm cleanup",
         needles=("Finished cleanup",)),
    rule("qmeventd-line", "qmeventd",
         r"^(?:(?P<qvmid>\d{1,9}): |"
         r"VM cleanup: |skipping cleanup|aborting cleanup)",
         FALLBACK_KIND, _plain, "qemu-server src/qmeventd/qmeventd.c, src/PVE/CLI/qm.pm",
         needles=("cleanup", ": ")),
    rule("ct-started", "systemd",
         r"^Started pve-container@(?P<vmid>\d{1,9})\.service\b", "vm.started",
         _ct_state("vm.started"), "pve-container src/pve-container@.service (systemd unit)"),
    rule("ct-stopped", "systemd",
         r"^pve-container@(?P<vmid>\d{1,9})\.service: (?:Deactivated successfully|"
         r"Failed with result '(?P<result>[^']+)')", "vm.stopped", _ct_state("vm.stopped"),
         "pve-container src/pve-container@.service (systemd unit)"),
    # OOM kills of a guest's unit. The kernel's OOM kill (mm/oom_kill.c __oom_kill_process)
    # prints its own "oom-kill:"/"Killed process" lines (the oom.kill event) and counts the
    # kill in the victim's memory cgroup (memory.events oom_kill); systemd reports that
    # counter as "A process of this unit has been killed by the OOM killer." and, with the
    # default OOMPolicy=stop, the unit's "Failed with result 'oom-kill'": follow-on lines of
    # the same kill. systemd-oomd kills from user space (cgroup.kill / SIGKILL): the kernel
    # prints nothing, so its line is the event.
    rule("guest-oomd-kill", "systemd",
         r"^(?:(?P<vmid>\d{1,9})\.scope|pve-container@(?P<cvmid>\d{1,9})\.service): "
         r"systemd-oomd killed (?:(?P<count>\d{1,9})|some) process\(es\) in this unit",
         "oom.kill", _oomd_kill, "systemd src/core/cgroup.c unit_check_oomd_kill",
         needles=("systemd-oomd killed",)),
    rule("guest-oom-detail", "systemd",
         r"^(?:(?P<vmid>\d{1,9})\.scope|pve-container@(?P<cvmid>\d{1,9})\.service): "
         r"(?:A process of this unit has been killed by the OOM killer|"
         r"Failed with result 'oom-kill')",
         FALLBACK_KIND, _detail_of("oom.kill"),
         "systemd src/core/cgroup.c unit_check_oom, src/core/scope.c and service.c "
         "(OOMPolicy=stop result)",
         needles=("OOM killer", "'oom-kill'")),
    rule("ct-unit-line", "systemd", r"pve-container@(?P<vmid>\d{1,9})\.service\b", FALLBACK_KIND,
         _plain, "pve-container src/pve-container@.service (systemd unit)"),
    rule("lxc-line", "lxc-start lxc-stop lxc-attach",
         r"^lxc-[a-z]{1,16}: (?P<vmid>\d{1,9}): ", FALLBACK_KIND, _plain,
         "lxc src/lxc/log.c (lxc-start -F -n <vmid>, run by pve-container@.service)"),
    rule("guest-scope", "systemd", r"(?<![\w./-])(?P<vmid>\d{1,9})\.scope\b", FALLBACK_KIND, _plain,
         "qemu-server src/PVE/QemuServer.pm (systemd scope qemu.slice/<vmid>.scope)",
         needles=(".scope",)),
    # HA manager: fencing and node state first, service lines after
    rule("ha-fenced", "pve-ha-crm",
         r"fencing: acknowledged - got agent lock for node '(?P<node>[^']+)'", "node.fenced",
         _fenced, _HA_NODES),
    rule("ha-fence", "pve-ha-crm",
         r"node '(?P<node>[^']+)': state changed from '(?P<old>\w+)' => 'fence'", "node.fencing",
         _fencing, _HA_NODES),
    rule("ha-node-offline", "pve-ha-crm",
         r"node '(?P<node>[^']+)': state changed from '(?P<old>(?!fence')\w+)' => 'unknown'",
         "node.offline", _node_offline, _HA_NODES),
    rule("ha-node-state", "pve-ha-crm",
         r"node '(?P<node>[^']+)': state changed from '(?P<old>\w+)' => '(?P<new>\w+)'",
         "ha.state", _ha_node_state, _HA_NODES),
    rule("ha-fence-detail", "pve-ha-crm",
         r"^(?:Start fencing node|\[fence) '(?P<node>[^']+)'|"
         r"^successfully acquired lock 'ha_agent_(?P<lnode>.+)_lock'",
         FALLBACK_KIND, _fence_detail,
         "pve-ha-manager src/PVE/HA/Fence.pm, src/PVE/HA/Env/PVE2.pm",
         needles=("fenc", "ha_agent_")),
    rule("ha-service-state", _HA,
         r"service '(?P<sid>[^']+)': state changed from '(?P<old>\w+)' to '(?P<new>\w+)'",
         "ha.state", _ha_service_state, _HA_MANAGER),
    rule("ha-service-line", _HA,
         r"^(?:recover(?:ing)? service|cannot recover service|recovery policy for service|"
         r"(?:starting|stopping|unable to start|unable to stop) service|service status) "
         r"'?(?P<sid>(?:vm|ct):\d{1,9})'?|"
         r"^service (?:'(?P<qsid>(?:vm|ct):\d{1,9})'|(?P<usid>(?:vm|ct):\d{1,9})(?![:\d]))",
         "ha.state", _ha_service_line, f"{_HA_MANAGER}, {_HA_LRM}",
         needles=("service",)),
    rule("ha-daemon-state", _HA, r"^status change (?P<old>\w+) => (?P<new>\w+)", "ha.state",
         _ha_daemon_state, "pve-ha-manager src/PVE/HA/CRM.pm, src/PVE/HA/LRM.pm"),
    rule("watchdog-expired", "watchdog-mux",
         r"client (?:\(PID \d+\) )?(?:watchdog expired|did not stop watchdog) - "
         r"disable watchdog updates",
         "node.fencing", _self_fencing, "pve-ha-manager src/watchdog-mux.c"),
    # cluster: knet link state, pmxcfs quorum
    rule("knet-link-down", "corosync",
         r"\[KNET\s*\] link: host: (?P<host>\d{1,5}) link: (?P<link>\d{1,3}) is down", "link.down",
         _link_down, "kronosnet libknet/threads_heartbeat.c"),
    rule("quorum-lost", "pmxcfs", r"\[status\] notice: node lost quorum", "quorum.lost",
         _titled("quorum.lost", "Node lost quorum"),
         "pve-cluster src/pmxcfs/status.c (qb_log format '[%g] %p: %b' of pmxcfs.c)"),
    # their ends: plain lines (no recovery kinds in the contract) with metadata.recovers; knet
    # logs the link up under "rx" (threads_rx.c), "link" or "heartbeat" (threads_heartbeat.c)
    # by version
    rule("knet-link-up", "corosync",
         r"\[KNET\s*\] (?:rx|link|heartbeat): host: (?P<host>\d{1,5}) link: (?P<link>\d{1,3}) "
         r"is up$",
         FALLBACK_KIND, _link_up, "kronosnet libknet/threads_heartbeat.c, threads_rx.c"),
    rule("corosync-quorate", "corosync",
         r"\[QUORUM\] This node is within the primary component and will provide service",
         FALLBACK_KIND, _quorum_regained, "corosync exec/vsf_quorum.c quorum_api_set_quorum"),
    rule("quorum-regained", "pmxcfs", r"\[status\] notice: node has quorum", FALLBACK_KIND,
         _quorum_regained, "pve-cluster src/pmxcfs/status.c cfs_set_quorate"),
    # kernel: OOM kills (the oom-kill summary and "Killed process" share one event id)
    rule("oom-cgroup", "kernel",
         rf"{_LINE_START}oom-kill:(?:[^,]*,)*?task_memcg=(?P<cgroup>[^,\s]*),task=(?P<task>[^,]*),"
         r"pid=(?P<pid>\d+)",
         "oom.kill", _oom_cgroup, "linux mm/oom_kill.c dump_oom_summary",
         needles=("oom-kill:",)),
    rule("oom-killed", "kernel",
         r"[Oo]ut of memory: Kill(?:ed)? process (?P<pid>\d+) \((?P<task>[^)]{0,64})\)", "oom.kill",
         _oom_killed, "linux mm/oom_kill.c __oom_kill_process",
         needles=("ut of memory: Kill",)),
    # the OOM report's opening line (the allocating task, not the victim) and the reaper's
    # line after the kill: details of the oom.kill event above
    rule("kernel-oom-detail", "kernel",
         r"invoked oom-killer: gfp_mask=|oom_reaper: reaped process (?P<pid>\d{1,9})",
         FALLBACK_KIND, _detail_of("oom.kill"),
         "linux mm/oom_kill.c dump_header (pr_warn), oom_reap_task_mm (pr_info)",
         needles=("invoked oom-killer", "oom_reaper: reaped")),
    # the first line of a kernel report (no kind in the contract): it notifies at its PRI, the
    # dump after it is detail (classify.Classifier, like the OOM report)
    rule("kernel-report", "kernel",
         rf"{_LINE_START}(?:INFO: task \S{{1,64}}:\d{{1,9}} blocked for more than|"
         r"-{12}\[ cut here \]-{12}|watchdog: BUG: soft lockup - CPU#|"
         r"rcu: INFO: rcu_\w{1,16} detected stalls|"
         r"BUG: (?:kernel NULL pointer dereference|unable to handle page fault))",
         FALLBACK_KIND, _kernel_report,
         "linux kernel/hung_task.c hung_task_info, kernel/panic.c __warn, kernel/watchdog.c "
         "watchdog_timer_fn, kernel/rcu/tree_stall.h, arch/x86/mm/fault.c show_fault_oops",
         needles=("blocked for more than", "cut here", "soft lockup", "detected stalls",
                  "BUG: ")),
    rule("qemu-segfault", "kernel",
         r"^(?:traps: )?(?P<comm>kvm|CPU \d+/KVM|qemu-system-\w+)\[(?P<pid>\d+)\]:? "
         r"(?P<what>segfault|general protection fault|trap invalid opcode)",
         "vm.crashed", _qemu_crash, "linux arch/x86/mm/fault.c show_signal_msg",
         needles=("segfault", "general protection", "invalid opcode")),
    # storage full (before disk errors: out of space is not a broken disk)
    rule("thin-pool-full", _THIN,
         r"Thin pool (?P<pool>\S+) (?P<part>data|metadata) is now (?P<pct>[\d.]+)% full",
         "storage.full", _thin_pool, "lvm2 daemons/dmeventd/plugins/thin/dmeventd_thin.c"),
    rule("thin-out-of-space", "kernel",
         r"device-mapper: thin: (?P<pool>\S+): switching pool to out-of-(?P<part>data|metadata)"
         r"-space|critical space allocation error, dev (?P<dev>[\w-]{1,64})", "storage.full",
         _thin_out_of_space, f"linux drivers/md/dm-thin.c, {_BLK}",
         needles=("device-mapper: thin:", "critical space allocation")),
    # disks: the block layer's line is the event, controller details stay plain
    rule("kernel-io-error", "kernel",
         r"(?P<what>I/O|critical medium|critical target|critical nexus|recoverable transport|"
         r"protection|timeout) error, dev (?P<dev>[\w-]+), sector", "disk.error", _io_error, _BLK,
         needles=(" error, dev ",)),
    rule("kernel-fs-error", "kernel",
         r"EXT4-fs error \(device (?P<dev>[^)]{1,64})\)|"
         rf"{_LINE_START}XFS \((?P<xdev>[^)]{{1,64}})\): .*(?:I/O error|[Cc]orruption)", "disk.error", _fs_error, "linux fs/ext4/super.c, fs/xfs/xfs_message.c",
         needles=("EXT4-fs error", "XFS (")),
    rule("nvme-failure", "kernel",
         r"nvme (?P<dev>nvme\d+): (?:(?P<what>I/O) (?:tag )?\d+ (?:\([0-9a-f]{1,8}\) opcode "
         r"0x[0-9a-f]{1,4} \([^)]{0,40}\) )?QID \d+ timeout(?!, completion polled)|"
         r"(?P<state>controller is down|Device not ready|Removing after probe failure|"
         r"Disabling device after reset failure))",
         "disk.error", _nvme,
         "linux drivers/nvme/host/pci.c nvme_timeout (5.x and 6.x wording), nvme_reset_work"),
    rule("md-disk-failure", "kernel",
         r"md/raid\d*:(?P<md>[\w-]{1,32}): Disk failure on (?P<dev>[\w-]{1,64}), disabling device",
         "disk.error", _md_failure,
         "linux drivers/md/raid1.c raid1_error, raid10.c raid10_error, raid5.c raid5_error",
         needles=("Disk failure on",)),
    rule("btrfs-error", "kernel",
         rf"{_LINE_START}BTRFS (?:(?:error|critical) \(device (?P<dev>[\w.-]{{1,64}})[^)]{{0,32}}\): "
         r"|warning \(device (?P<wdev>[\w.-]{1,64})[^)]{0,32}\): (?P<csum>csum failed ))",
         "disk.error", _btrfs,
         "linux fs/btrfs/messages.c, volumes.c btrfs_dev_stat_inc_and_print, inode.c csum",
         needles=("BTRFS ",)),
    rule("zfs-suspended", "kernel",
         r"WARNING: Pool '(?P<pool>[^']+)' has encountered an uncorrectable I/O failure",
         "disk.error", _zfs_suspended, "openzfs module/zfs/zio.c (cmn_err CE_WARN)"),
    rule("zio-error", "kernel", r"zio pool=(?P<pool>\S+) vdev=(?P<vdev>\S*) error=\d+",
         "disk.error", _zfs, "openzfs module/os/linux/zfs/vdev_disk.c"),
    # the rest of a disk error's burst: details of its disk.error (_disk_detail)
    rule("kernel-disk-detail", "kernel",
         r"^(?:Buffer I/O error on dev(?:ice)? (?P<dev>[\w-]{1,64})|"
         r"(?P<ata>ata\d{1,4}(?:\.\d{1,3})?): |\s*res [0-9a-f]{2}/[0-9a-f]{2}:|"
         r"(?:sd|scsi) \d{1,4}:\d{1,4}:\d{1,5}:\d{1,20}: (?:\[(?P<sd>sd[a-z]{1,4})\] )?|"
         r"(?P<nvme>nvme\d{1,4}n\d{1,4}): I/O Cmd|"
         r"nvme (?P<nctrl>nvme\d{1,4}): (?:Abort status|Does your device have a faulty power "
         r"saving mode|Try \"nvme_core)|"
         r"md/raid\d{0,2}:(?P<md>[\w-]{1,32}): (?:Operation continuing on|Cannot continue)|"
         r"(?:blk_print_req_error|print_req_error|blk_update_request|buffer_io_error|"
         r"scsi_io_completion_action|scsi_io_completion): "
         r"\d{1,10} callbacks suppressed)",
         FALLBACK_KIND, _disk_detail,
         "linux fs/buffer.c buffer_io_error, drivers/ata/libata-eh.c ata_eh_link_report "
         "(its cmd line's ' res ' continuation), drivers/scsi/scsi_logging.c, "
         "drivers/nvme/host/core.c nvme_log_error, pci.c nvme_timeout/nvme_warn_reset, "
         "drivers/md/raid1.c raid1_error, raid5.c raid5_error, lib/ratelimit.c ___ratelimit",
         needles=("Buffer I/O error", "ata", "res ", "sd ", "scsi ", "nvme", "md/raid",
                  "callbacks suppressed")),
    # the node's own links (a guest's tap/veth/fw* ports never print these lines)
    rule("nic-link-down", "kernel",
         rf"{_LINE_START}(?:(?:[\w-]{{1,32}} [0-9a-f]{{4}}:[0-9a-f]{{2}}:[0-9a-f]{{2}}\.[0-7] )?"
         r"(?<![\w.-])(?!(?:tap|veth|fwbr|fwln|fwpr)\d)(?P<ifname>[\w.-]{1,32}): "
         r"(?:[\w-]{1,16}: (?:[\w.-]{1,32} )?)?(?:NIC )?[Ll]ink (?:is )?[Dd]own\b|"
         r"(?<![\w.-])(?P<bond>[\w.-]{1,32}): (?:\(slave (?P<slave>[\w.-]{1,32})\): link status definitely "
         r"down|(?P<noactive>now running without any active interface)))",
         "link.down", _host_link_down,
         "linux drivers/net/ethernet/* (NIC Link is Down, phylib Link is Down, mlx5 Link down), "
         "drivers/net/bonding/bond_main.c",
         needles=("ink is Down", "ink is down", "ink down", "definitely down",
                  "without any active interface")),
    # their return (plain at its PRI, metadata.recovers with the interface's subject): the
    # drivers' netdev_info "NIC Link is Up ..." (e1000e netdev.c e1000_print_link_info, igb
    # igb_main.c igb_watchdog_task, ixgbe, i40e), phylib's "Link is Up - ..." (drivers/net/phy/
    # phy.c phy_print_status), mlx5's "Link up" (mlx5/core/en_main.c mlx5e_update_carrier),
    # bonding's "link status definitely up" (bond_main.c bond_miimon_commit) and "active
    # interface up!" (bond_select_active_slave, "first active interface up!" before 5.3)
    rule("nic-link-up", "kernel",
         rf"{_LINE_START}(?:(?:[\w-]{{1,32}} [0-9a-f]{{4}}:[0-9a-f]{{2}}:[0-9a-f]{{2}}\.[0-7] )?"
         r"(?<![\w.-])(?!(?:tap|veth|fwbr|fwln|fwpr)\d)(?P<ifname>[\w.-]{1,32}): "
         r"(?:[\w-]{1,16}: (?:[\w.-]{1,32} )?)?(?:NIC )?[Ll]ink (?:is )?[Uu]p\b|"
         r"(?<![\w.-])(?P<bond>[\w.-]{1,32}): (?:\(slave (?P<slave>[\w.-]{1,32})\): link status definitely "
         r"up\b|(?P<active>(?:first )?active interface up!)))",
         FALLBACK_KIND, _host_link_up,
         "linux drivers/net/ethernet/intel/e1000e/netdev.c, igb/igb_main.c, drivers/net/phy/"
         "phy.c phy_print_status, mellanox/mlx5/core/en_main.c, drivers/net/bonding/bond_main.c",
         needles=("ink is Up", "ink up", "definitely up", "active interface up")),
    rule("guest-nic", "kernel", r"\b(?:tap|veth|fwbr|fwln|fwpr)\d{1,9}[ipo]\d+\b",
         FALLBACK_KIND, _guest_nic,
         "pve-common src/PVE/Network.pm, qemu-server tap<vmid>i<n>, pve-container veth<vmid>i<n>",
         needles=("tap", "veth", "fw")),
    rule("zed-error", "zed",
         r"class=(?P<cls>checksum|io|data|deadman|probe_failure|io_failure|delay|"
         r"vdev\.(?:open_failed|no_replicas|corrupt_data|bad_label|unknown)) "
         r"pool='?(?P<pool>[^'\s]+)'?(?:.*?vdev=(?P<vdev>\S+))?", "disk.error", _zfs, _ZED),
    rule("zed-vdev-state", "zed",
         r"class=statechange pool='?(?P<pool>[^'\s]+)'?(?: vdev=(?P<vdev>\S+))?"
         r"(?: pool_state=\S+)? vdev_state=(?P<state>FAULTED|DEGRADED|UNAVAIL|REMOVED)",
         "disk.error", _zfs, _ZED),
    rule("smart-sectors", "smartd",
         r"^Device: (?P<dev>\S+?),? .*?(?<!\S)(?P<count>\d+) (?P<what>Currently unreadable "
         r"\(pending\) sectors|Offline uncorrectable sectors)", "disk.error", _smart, _SMARTD),
    rule("smart-failed", "smartd",
         r"^Device: (?P<dev>\S+?),? .*?(?P<what>FAILED SMART self-check|SMART Failure|"
         r"Self-Test Log error count increased|ATA error count increased|"
         r"Critical Warning \(0x[0-9a-fA-F]+\)|"
         r"Temperature \d+ Celsius reached critical limit)", "disk.error", _smart, _SMARTD),
    rule("storage-offline", "pvestatd pvedaemon pvescheduler",
         r"storage '(?P<storage>[^']+)' is not online", FALLBACK_KIND, _storage_offline,
         "pve-storage src/PVE/Storage.pm activate_storage"),
    # authentication
    rule("pve-auth", f"pvedaemon pveproxy {_PBS}",
         r"(?:openid )?authentication failure; rhost=(?P<rhost>\S+)(?: user=(?P<user>\S+))?",
         "auth.failed", _auth,
         "pve-access-control src/PVE/API2/AccessControl.pm, proxmox-rs "
         "proxmox-rest-server/src/environment.rs",
         needles=("authentication failure",)),
    rule("sshd-auth", _SSHD,
         r"Failed (?:password|publickey|keyboard-interactive/pam|none) for (?:invalid user )?"
         r"(?P<user>\S+) from (?P<rhost>\S+) port \d+", "auth.failed", _auth,
         "openssh auth.c auth_log"),
    rule("acme-failed", "pveupdate", r"^Renewing ACME certificate failed: (?P<error>.*)",
         "acme.failed", _titled("acme.failed", "ACME certificate renewal failed: {error}"),
         "pve-manager bin/pveupdate"),
    # no cert.* kind in the contract: a failed renewal of the node's own certificate is the
    # certificate alert too (an expired pve-ssl.pem locks the web UI out)
    rule("pve-cert-failed", "pveupdate", r"^Checking/Renewing SSL certificate failed: (?P<error>.*)",
         "acme.failed", _titled("acme.failed", "Node certificate check/renewal failed: {error}"),
         "pve-manager bin/pveupdate"),
    rule("pbs-acme-failed", "proxmox-daily-update", r"^error checking certificates: (?P<error>.*)",
         "acme.failed", _titled("acme.failed", "Certificate check/renewal failed: {error}"),
         "proxmox-backup src/bin/proxmox-daily-update.rs"),
    # PBS scheduler: a job that could not even start
    rule("pbs-job-start-failed", _PBS,
         r"^unable to start (?P<job>garbage collection|datastore prune|datastore sync|"
         r"datastore verification|tape backup) job (?:on datastore )?(?P<target>\S+) - "
         r"(?P<error>.*)", "gc.failed", _pbs_job_failed,
         "proxmox-backup src/bin/proxmox-backup-proxy.rs schedule_*"),
    # any program
    rule("no-space", ANY_PROGRAM, r"No space left on device", "storage.full", _no_space,
         "errno ENOSPC (strerror)"),
    # other lines naming a task (vnc proxy, service reload): plain, with the UPID's guest
    rule("task-line", _TASKS, r"(?P<upid>UPID:\S+)", FALLBACK_KIND, _worker_start,
         "pve-manager PVE/API2/Nodes.pm, PVE/API2/Services.pm, PVE/API2Tools.pm",
         needles=("UPID:",)),
    # lines about one guest from the PVE daemons: plain, but with the guest id
    rule("guest-line", f"{_GUEST_DAEMONS} {_HA}", r"\b(?:VM|CT) \d{1,9}\b|\b(?:vm|ct):\d{1,9}\b",
         FALLBACK_KIND, _plain, "qemu-server, pve-container, pve-manager PVE/Service/pvestatd.pm",
         needles=("VM ", "CT ", "vm:", "ct:")),
]  # fmt: skip
