"""Proxmox classifier: a parsed syslog line → kind, node, vmid (pure, table-driven).

The rules live in ``rules.py``, bound to program names; ``Classifier`` indexes them once
(``proxbus_events.classification.RuleTable``) so a line runs only its program's rules.
Everything no rule claims is ``syslog.message``.

One piece of state: a backup job's own lines (``vzdump-*`` rules: a guest's result, the job's
end) carry no task id, but they are logged by the task's worker process, whose pid is in the
UPID (pve-common ``src/PVE/RESTEnvironment.pm`` ``fork_worker``: ``pid => $workerpuid``). The
classifier remembers ``starting task UPID`` lines by (host, worker pid) until their ``end task``
(bounded, ``MAX_WORKERS``) and gives the vzdump lines of that pid the UPID as
``correlation_id``, so the dispatcher can join the job's report to its guests' incidents.

A second: the kernel's OOM report (linux mm/oom_kill.c dump_header) opens with ``<comm>
invoked oom-killer: gfp_mask=...``, then dumps the stack (``CPU: n PID: p Comm: ...``,
``Call Trace:`` and its frames, printed at the default level, warning), the memory state
and the task list, and ends with the kill (``oom-kill:...``, ``Killed process``: the
``oom.kill`` event); the kernel serialises reports (oom_lock). While a host's report is open,
its kernel lines that no rule claims are details of that kill (``detail_of`` = ``oom.kill``,
at most info: no notification each). The window closes at the kill's line, or after
``OOM_REPORT_LINES`` kernel lines of that host (a lost summary line cannot hold it open),
for at most ``MAX_OOM_REPORTS`` hosts at once.

A third: a failing disk writes a burst (linux drivers/ata/libata-eh.c, drivers/scsi,
block/blk-core.c blk_print_req_error, fs/buffer.c; ``tests/test_disk_burst.py``). Its
error-level driver lines are details by rule (``rules._disk_detail``). The first
``disk.error`` of a disk (``sdc`` and ``sdc1`` are one disk; a pool's vdev by its base name
without ``-partN``, or the pool when no vdev is named) on a host
notifies; further ``disk.error`` lines of the same disk on that host (the next sectors, the
file system's error on its partition, the NVMe controller reset after its timeout) within
``DISK_BURST_SECONDS`` of it are details of it (``detail_of`` = ``disk.error``, info); the
same disk later, another disk or another host notify again. State changes of an array or a
pool (md's ``Disk failure``, zed's vdev ``FAULTED``, a suspended pool) always notify. Any
line of a burst also opens the host's window for the drivers' info lines (``hard resetting
link``, ``configured for``, ``Sense Key``), which are details inside it and plain lines at
boot. The time is the line's own time stamp (a line without one neither opens nor joins a
window); at most ``MAX_DISK_BURSTS`` (host, disk) windows are kept.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable

from proxbus_events.classification import Classification, Rule, RuleTable
from proxbus_events.proxmox import find_upid

from .parse import SyslogMessage
from .rules import DETAIL_OF, FALLBACK_KIND, RULES, rule

__all__ = ["FALLBACK_KIND", "RULES", "Classification", "Classifier", "classify", "rule"]

MAX_WORKERS = 4096  # running tasks remembered (host, worker pid) → UPID
MAX_OOM_REPORTS = 1024  # hosts whose kernel OOM report is being printed
OOM_REPORT_LINES = 2000  # kernel lines one report may take before its kill (task list incl.)
_OOM_KILL_RULES = ("oom-cgroup", "oom-killed")
OOM_REPORT_RULE = "kernel-oom-report"  # metadata.rule of a report line no rule claims
DISK_BURST_SECONDS = 60.0  # a disk's further errors within this of its notified one: details
MAX_DISK_BURSTS = 4096  # (host, disk) windows remembered
DISK_DETAIL_RULE = "kernel-disk-detail"
# disk.error rules whose repeats on one disk are the same happening (not md/pool state changes)
_DISK_REPEAT_RULES = frozenset(
    ("kernel-io-error", "kernel-fs-error", "nvme-failure", "btrfs-error", "zio-error", "zed-error")
)
_DISK_RULES = _DISK_REPEAT_RULES | {DISK_DETAIL_RULE}
_WHOLE_DISK = re.compile(
    r"(?:/dev/)?(sd[a-z]{1,4}|vd[a-z]{1,4}|xvd[a-z]{1,4}|nvme\d{1,4}|mmcblk\d{1,4})"
)
_PART_SUFFIX = re.compile(r"-part\d{1,3}$")  # /dev/disk/by-id/<disk>-partN
_HOST_WINDOW = (
    " "  # (no device name has a space) the key of a host's window for the drivers' info lines
)


def disk_of(device: str) -> str:
    """The disk a device name is on: ``sdc1`` → ``sdc``, ``nvme0n1p2`` → ``nvme0``; else itself."""
    m = _WHOLE_DISK.match(device)
    return m[1] if m else device


class Classifier:
    """Applies a rule table to syslog messages (program = the syslog app name)."""

    def __init__(self, rules: Iterable[Rule[SyslogMessage]] = RULES) -> None:
        self.table: RuleTable[SyslogMessage] = RuleTable(rules, FALLBACK_KIND)
        self._workers: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._oom_reports: OrderedDict[str, int] = OrderedDict()  # host → lines left
        # (host, disk) → time of its notified disk.error; (host, "") → last burst line
        self._disk_bursts: OrderedDict[tuple[str, str], float] = OrderedDict()

    @property
    def rules(self) -> tuple[Rule[SyslogMessage], ...]:
        return self.table.rules

    def classify(self, msg: SyslogMessage) -> Classification:
        """The first matching rule's classification, else ``syslog.message``."""
        cls = self.table.classify(msg.app or "", msg.message, msg)
        if cls.rule == "kernel-oom-detail" or (self._oom_reports and cls.kind == FALLBACK_KIND):
            self._oom_report_line(msg, cls)
        elif self._oom_reports and cls.rule in _OOM_KILL_RULES:
            self._oom_reports.pop(msg.hostname or "", None)
        if cls.rule in _DISK_RULES:
            self._disk_burst_line(msg, cls)
        if cls.rule.startswith("vzdump-"):
            if cls.correlation_id is None and msg.procid:
                cls.correlation_id = self._workers.get((msg.hostname or "", msg.procid))
        elif cls.rule in ("task-start", "task-end") and cls.correlation_id:
            upid = find_upid(cls.correlation_id)
            if upid is not None and not upid.pbs:
                worker = (msg.hostname or "", str(upid.pid))
                if cls.rule == "task-end":
                    self._workers.pop(worker, None)
                else:
                    self._workers[worker] = upid.text
                    if len(self._workers) > MAX_WORKERS:
                        self._workers.popitem(last=False)
        return cls

    def _disk_burst_line(self, msg: SyslogMessage, cls: Classification) -> None:
        """Mark a disk error's repeat or a driver's info line inside its window as a detail."""
        if msg.timestamp is None:
            return
        now = msg.timestamp.timestamp()
        host = msg.hostname or ""
        bursts = self._disk_bursts
        if cls.rule == DISK_DETAIL_RULE:
            if DETAIL_OF not in cls.metadata:
                opened = bursts.get((host, _HOST_WINDOW))
                if opened is None or not 0 <= now - opened < DISK_BURST_SECONDS:
                    return
                cls.metadata[DETAIL_OF] = "disk.error"
            self._remember((host, _HOST_WINDOW), now)
            return
        meta = cls.metadata
        pool = meta.get("pool")
        if pool:  # a pool's disk: zed writes the vdev path's base name, the kernel the path
            vdev = _PART_SUFFIX.sub("", str(meta.get("vdev") or "").rsplit("/", 1)[-1])
            key = (host, f"pool:{pool}:{disk_of(vdev)}")
        else:
            key = (host, disk_of(str(meta.get("device") or "")))
        opened = bursts.get(key)
        if opened is not None and 0 <= now - opened < DISK_BURST_SECONDS:
            cls.kind = FALLBACK_KIND
            meta[DETAIL_OF] = "disk.error"
        else:
            self._remember(key, now)
        self._remember((host, _HOST_WINDOW), now)

    def _remember(self, key: tuple[str, str], now: float) -> None:
        """Open or slide a window to ``now`` (a line stamped earlier does not move it back)."""
        if now < self._disk_bursts.get(key, now):
            return
        self._disk_bursts[key] = now
        self._disk_bursts.move_to_end(key)
        if len(self._disk_bursts) > MAX_DISK_BURSTS:
            self._disk_bursts.popitem(last=False)

    def _oom_report_line(self, msg: SyslogMessage, cls: Classification) -> None:
        """Open a host's OOM report window, or mark a kernel line no rule claims inside it."""
        host = msg.hostname or ""
        if cls.rule == "kernel-oom-detail":
            if "invoked oom-killer" in msg.message:
                self._oom_reports[host] = OOM_REPORT_LINES
                self._oom_reports.move_to_end(host)
                if len(self._oom_reports) > MAX_OOM_REPORTS:
                    self._oom_reports.popitem(last=False)
            return
        left = self._oom_reports.get(host)
        if left is None or cls.rule or (msg.app or "").lower() != "kernel":
            return
        cls.metadata[DETAIL_OF] = "oom.kill"
        cls.rule = OOM_REPORT_RULE
        if left <= 1:
            del self._oom_reports[host]
        else:
            self._oom_reports[host] = left - 1


DEFAULT_CLASSIFIER = Classifier()


def classify(msg: SyslogMessage) -> Classification:
    return DEFAULT_CLASSIFIER.classify(msg)
