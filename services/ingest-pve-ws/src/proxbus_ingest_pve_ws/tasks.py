"""``/cluster/tasks`` and ``/cluster/log`` entries → events. Pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxbus_events import (
    Event,
    Severity,
    Source,
    apply_severity_floor,
    deterministic_event_id,
    severity_from_syslog,
    short_host,
)
from proxbus_events.knet import KnetLinks

from .clusterlog import classify_log_entry
from .follow import EntryKey

_GUEST_TASK = re.compile(r"^(qm|vz)[a-z]+$")
_STARTS = {"qmstart", "vzstart"}
_STOPS = {"qmstop", "vzstop", "qmshutdown", "vzshutdown"}
# type → (ok kind, failed kind) for tasks whose outcome has its own kind.
_OUTCOME_KINDS: dict[str, tuple[str, str]] = {
    "vzdump": ("backup.ok", "backup.failed"),
    "backup": ("backup.ok", "backup.failed"),  # PBS client backup task
    "replication": ("task.ok", "replication.failed"),
    "garbage_collection": ("gc.ok", "gc.failed"),
    "verify": ("verify.ok", "verify.failed"),
    "verificationjob": ("verify.ok", "verify.failed"),
    "verify_snapshot": ("verify.ok", "verify.failed"),
    "syncjob": ("sync.ok", "sync.failed"),
    "sync": ("sync.ok", "sync.failed"),
    "prune": ("prune.ok", "prune.failed"),
    "prunejob": ("prune.ok", "prune.failed"),
    "tape-backup": ("tape.ok", "tape.failed"),
    "tape-backup-job": ("tape.ok", "tape.failed"),
}
_TASK_LINE = re.compile(r"(starting task|end task) UPID:", re.IGNORECASE)


MAX_EPOCH = 253_402_300_799  # 9999-12-31, the last second a datetime can hold


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _epoch(value: object) -> int | None:
    v = _int(value)
    return v if v is not None and 0 <= v <= MAX_EPOCH else None


@dataclass(slots=True, frozen=True)
class FinishedTask:
    """One finished entry of ``/cluster/tasks``."""

    upid: str
    node: str
    type: str
    id: str
    user: str
    starttime: int
    endtime: int
    status: str

    @property
    def outcome(self) -> str:
        """``ok``, ``warnings`` or ``failed`` (Proxmox: ``OK``, ``WARNINGS: N`` or the error)."""
        if self.status == "OK":
            return "ok"
        if self.status.startswith("WARNINGS"):
            return "warnings"
        return "failed"

    @property
    def vmid(self) -> int | None:
        """The guest id when the task concerns exactly one guest."""
        if (_GUEST_TASK.match(self.type) or self.type == "vzdump") and re.fullmatch(
            r"[0-9]{1,9}", self.id
        ):
            value = int(self.id)
            return value if 0 < value <= 999_999_999 else None
        return None

    @property
    def key(self) -> EntryKey:
        return (self.endtime, self.upid)


def parse_task(entry: Mapping[str, Any]) -> FinishedTask | None:
    """A finished task from a list entry; ``None`` for running or malformed entries."""
    upid, node, status = entry.get("upid"), entry.get("node"), entry.get("status")
    endtime = _epoch(entry.get("endtime"))
    if not (isinstance(upid, str) and upid.startswith("UPID:") and isinstance(status, str)):
        return None
    if status.lower() in ("running", "") or endtime is None:
        return None
    ttype = entry.get("type", entry.get("worker_type"))
    tid = entry.get("id", entry.get("worker_id"))
    start = _epoch(entry.get("starttime"))
    return FinishedTask(
        upid=upid,
        node=node if isinstance(node, str) else upid.split(":")[1],
        type=ttype if isinstance(ttype, str) else "unknown",
        id=str(tid) if tid is not None else "",
        user=str(entry.get("user") or ""),
        starttime=start if start is not None else endtime,
        endtime=endtime,
        status=status,
    )


def running_tasks(entries: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Entries still running (no ``endtime``)."""
    return [e for e in entries if isinstance(e, Mapping) and e.get("endtime") is None]


def _what(task: FinishedTask) -> str:
    return f"{task.type} {task.id}".strip()


def task_events(
    task: FinishedTask, *, cluster: str, site: str, log_tail: list[str] | None = None
) -> list[Event]:
    """The events of one finished task.

    One outcome event (``task.ok``/``task.failed`` or the type's own kind, e.g.
    ``backup.failed``), plus a guest state event (``vm.started``/``vm.stopped``) when a
    power task succeeded, correlated by UPID.
    """
    outcome = task.outcome
    ok_kind, failed_kind = _OUTCOME_KINDS.get(task.type, ("task.ok", "task.failed"))
    kind = failed_kind if outcome == "failed" else ok_kind
    severity = {
        "ok": Severity.INFO,
        "warnings": Severity.WARNING,
        "failed": Severity.ERROR,
    }[outcome]
    node = short_host(task.node)
    duration = max(0, task.endtime - task.starttime)
    label = {"ok": "OK", "warnings": task.status, "failed": f"failed: {task.status}"}[outcome]
    if kind.startswith("backup."):
        target = f"guest {task.vmid}" if task.vmid else "guests"
        title = f"Backup of {target} on {task.node} {label}"
    else:
        title = f"Task {_what(task)} on {task.node} {label}"
    lines = [
        f"Task: {task.upid}",
        f"Type: {task.type}  Id: {task.id or '-'}  User: {task.user}",
        f"Duration: {duration}s  Exit status: {task.status}",
    ]
    if log_tail:
        lines += ["", "Log (last lines):", *log_tail]
    metadata: dict[str, Any] = {
        "cluster": cluster,
        "upid": task.upid,
        "task_type": task.type,
        "task_id": task.id,
        "user": task.user,
        "starttime": task.starttime,
        "endtime": task.endtime,
        "duration": duration,
        "exitstatus": task.status,
        "outcome": outcome,
    }
    events = [
        Event(
            id=deterministic_event_id(task.endtime, cluster, task.upid, task.status, kind),
            source=Source.PVE_API,
            site=site,
            node=node,
            severity=apply_severity_floor(kind, severity),
            kind=kind,
            title=title,
            message="\n".join(lines),
            timestamp=task.endtime,
            vmid=task.vmid,
            correlation_id=task.upid,
            metadata=metadata,
        )
    ]
    state_kind = (
        "vm.started" if task.type in _STARTS else "vm.stopped" if task.type in _STOPS else None
    )
    if state_kind and outcome != "failed":
        guest = "VM" if task.type.startswith("qm") else "CT"
        verb = "started" if state_kind == "vm.started" else "stopped"
        events.append(
            Event(
                id=deterministic_event_id(task.endtime, cluster, task.upid, state_kind),
                source=Source.PVE_API,
                site=site,
                node=node,
                severity=Severity.INFO,
                kind=state_kind,
                title=f"{guest} {task.id} {verb} on {task.node} by {task.user}",
                message=f"{task.type} by {task.user} ({task.upid})",
                timestamp=task.endtime,
                vmid=task.vmid,
                correlation_id=task.upid,
                metadata={**metadata, "via": "task"},
            )
        )
    return events


@dataclass(slots=True, frozen=True)
class LogEntry:
    """One ``/cluster/log`` entry."""

    uid: int
    time: int
    node: str
    pid: int | None
    tag: str
    pri: int
    user: str
    msg: str

    @property
    def key(self) -> EntryKey:
        return (self.time, f"{self.uid}@{self.node}")


def parse_log_entry(entry: Mapping[str, Any]) -> LogEntry | None:
    """A cluster log entry; ``None`` when ``uid``/``time``/``msg`` are missing."""
    uid, t, msg = _int(entry.get("uid")), _epoch(entry.get("time")), entry.get("msg")
    if uid is None or t is None or not isinstance(msg, str):
        return None
    pri = _int(entry.get("pri"))
    pid = _int(entry.get("pid"))
    return LogEntry(
        uid=uid,
        time=t,
        node=str(entry.get("node") or ""),
        pid=pid,
        tag=str(entry.get("tag") or ""),
        pri=pri if pri is not None and pri >= 0 else 6,
        user=str(entry.get("user") or ""),
        msg=msg,
    )


def is_task_line(entry: LogEntry) -> bool:
    """Task start/end lines: the task list already reports these (one happening, one event)."""
    return bool(_TASK_LINE.search(entry.msg))


def log_event(entry: LogEntry, *, cluster: str, site: str, links: KnetLinks | None = None) -> Event:
    """A cluster log entry → event (``clusterlog.py`` rules); severity from ``pri``.

    ``node`` is the node the entry is about: the fenced node for fencing lines, none for an
    HA service's state (``Classification.no_node``), else the node that logged it.
    ``links``: the cluster's knet links down per (node, peer) (``classify_log_entry``).
    """
    cls = classify_log_entry(entry, links)
    severity = severity_from_syslog(entry.pri)
    if cls.severity is not None:
        severity = severity.at_least(cls.severity)
    reporter = short_host(entry.node)
    node = None if cls.no_node else short_host(cls.node) if cls.node else reporter
    title = cls.title or (f"{entry.tag}: {entry.msg}" if entry.tag else entry.msg)
    return Event(
        id=deterministic_event_id(entry.time, cluster, "log", entry.uid, entry.node),
        source=Source.PVE_API,
        site=site,
        node=node,
        severity=apply_severity_floor(cls.kind, severity),
        kind=cls.kind,
        title=title,
        message=entry.msg,
        timestamp=entry.time,
        vmid=cls.vmid,
        metadata={
            "cluster": cluster,
            "clusterlog_uid": entry.uid,
            "tag": entry.tag,
            "pid": entry.pid,
            "pri": entry.pri,
            "user": entry.user,
            **({"rule": cls.rule} if cls.rule else {}),
            **cls.metadata,
            **({"reporter": reporter} if node != reporter else {}),
        },
    )
