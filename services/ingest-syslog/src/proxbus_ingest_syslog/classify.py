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

A third: other happenings that write several lines (DESIGN.md: one real happening gives
one event). Their first event notifies; the lines of the same happening after it are details
(``detail_of`` = its kind, at most info), within ``BURST_SECONDS`` of it on the same host,
by the line's own time stamp (a line without one neither opens nor joins a window; one
stamped earlier than the window is outside it), at most ``MAX_WINDOWS`` windows in all:

- a failing disk (``tests/test_disk_burst.py``; linux drivers/ata/libata-eh.c, drivers/scsi,
  block/blk-core.c blk_print_req_error, fs/buffer.c): its error-level driver lines are
  details by rule (``rules._disk_detail``), its info lines (``hard resetting link``,
  ``configured for``, ``Sense Key``) inside the host's burst window (plain at boot); further
  ``disk.error`` lines of the same disk (``sdc`` and ``sdc1``; ``nvme0`` and ``nvme0n1``; a
  pool's vdev by its base name without ``-partN``) are details. State changes of an array
  or pool (md's ``Disk failure``, zed's vdev ``FAULTED``, a suspended pool) always notify;
  zed's ``config_sync`` of the pool after them is a detail;
- a guest's QEMU crash (``vm.crashed``, the kernel line names no guest) or OOM kill
  (``oom.kill`` with the guest, the kernel's or systemd-oomd's): the guest's stop (qmeventd's cleanup, a container unit's)
  right after it is a detail (``tests/test_bursts.py``);
- a host NIC down: its driver's ``Link is Down`` and the bond's ``definitely down`` for it,
  until the interface's link is up again (then a down is a new event);
- a kernel report with no kind in the contract (a hung task, a WARNING, a soft lockup, an
  RCU stall, a BUG; linux kernel/hung_task.c, kernel/panic.c __warn, kernel/watchdog.c): its
  first line notifies at its PRI, the kernel lines no rule claims after it (the dump, the next
  hung task of the same stall) are details (``detail_of`` = ``syslog.message``) until
  ``---[ end trace``, a pause of ``KERNEL_REPORT_SECONDS`` or ``KERNEL_REPORT_LINES`` lines;
- a cluster link down (kronosnet): knet's, corosync's and pmxcfs's membership lines of the
  host, sliding, until a recovery line (link up, quorum back, a node joining); pmxcfs's
  ``node lost quorum`` stays ``quorum.lost`` and opens the same window, in which HA's
  ``lost lock`` lines (its cluster locks, on the now read-only /etc/pve) are its details.
  Each lost peer is its own alert (fingerprint subject ``knet host N``): libknet
  threads_heartbeat.c logs ``host: %u link: %u is down`` once per link as its pongs stop,
  threads_rx.c its ``is up``; ``proxbus_events.knet.KnetLinks`` remembers the links down per
  (host, peer), by the line's sender and host name as the windows are, with or without a
  time stamp: another link's down of a peer with a link down is a detail of the peer's alert
  (whenever it comes), another peer's down is never one; a link up recovers the peer's
  alert only when it brings the peer's last link down back (else it is a plain line naming
  the links still down, ``metadata.links_down``). A link up ends the host's burst window
  only when no other link of the host went down within ``BURST_SECONDS`` (that loss's lines
  stay details).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable

from proxbus_events.classification import Classification, Rule, RuleTable
from proxbus_events.knet import KnetLinks
from proxbus_events.proxmox import find_upid

from .parse import SyslogMessage
from .rules import DETAIL_OF, FALLBACK_KIND, RULES, rule

__all__ = ["FALLBACK_KIND", "RULES", "Classification", "Classifier", "classify", "rule"]

MAX_WORKERS = 4096  # running tasks remembered (host, worker pid) → UPID
MAX_OOM_REPORTS = 1024  # hosts whose kernel OOM report is being printed
OOM_REPORT_LINES = 2000  # kernel lines one report may take before its kill (task list incl.)
_OOM_KILL_RULES = ("oom-cgroup", "oom-killed")
OOM_REPORT_RULE = "kernel-oom-report"  # metadata.rule of a report line no rule claims
DISK_DETAIL_RULE = "kernel-disk-detail"
BURST_SECONDS = 60.0  # a happening's lines within this of its event (or of its last line)
MAX_WINDOWS = 8192  # (host, thing) windows remembered, all happenings together
MAX_LINK_HOSTS = 1024  # hosts whose knet links down are remembered
MAX_LINK_PEERS = 64  # peers with a knet link down remembered per host (8 links each at most)
_KNET_RULES = frozenset(("knet-link-down", "knet-link-up"))
# disk.error rules whose repeats on one disk are the same happening (not md/pool state changes)
_DISK_REPEAT_RULES = frozenset(
    ("kernel-io-error", "kernel-fs-error", "nvme-failure", "btrfs-error", "zio-error", "zed-error")
)
_ZFS_STATE_RULES = frozenset(("zed-vdev-state", "zfs-suspended"))
_GUEST_END_RULES = frozenset(("oom-cgroup", "guest-oomd-kill", "qemu-segfault"))
_GUEST_STOP_RULES = frozenset(("qmeventd-stop", "ct-stopped"))
_WINDOW_RULES = (
    _DISK_REPEAT_RULES
    | _ZFS_STATE_RULES
    | _GUEST_END_RULES
    | _GUEST_STOP_RULES
    | {DISK_DETAIL_RULE, "nic-link-down", "nic-link-up", "knet-link-down", "knet-link-up"}
    | {"quorum-lost"}
)
KERNEL_REPORT_RULE = "kernel-report"
KERNEL_REPORT_LINES = 500  # lines of one report's dump at most
KERNEL_REPORT_SECONDS = 5.0  # the dump is printed at once: a pause ends it
_CLUSTER_APPS = frozenset(("corosync", "pmxcfs"))
_HA_APPS = frozenset(("pve-ha-lrm", "pve-ha-crm"))
_WINDOW_APPS = _CLUSTER_APPS | _HA_APPS | {"zed"}
# a cluster's recovery (a link up, quorum back, a node joining) is no detail of its failure
_CLUSTER_RECOVERY = re.compile(
    r"link: \d{1,3} is up|has quorum|[Jj]oined|primary component and will provide"
)
_WHOLE_DISK = re.compile(
    r"(?:/dev/)?(sd[a-z]{1,4}|vd[a-z]{1,4}|xvd[a-z]{1,4}|nvme\d{1,4}|mmcblk\d{1,4})"
)
_PART_SUFFIX = re.compile(r"-part\d{1,3}$")  # /dev/disk/by-id/<disk>-partN
_DISK_DRIVERS = " disk-drivers"  # (no device name has a space) a host's driver info lines
_CRASH = " crash"  # a QEMU crash (the kernel's line names no guest)


_ZED_CONFIG_SYNC = re.compile(r"class=config_sync pool='?([^'\s]{1,256})")


def _disk_key(meta: dict[str, object]) -> str:
    """The disk a disk.error is about: ``sdc`` for ``sdc1``; a pool's vdev by its base name
    (zed writes the base name of the vdev's path, the kernel's zio line the path)."""
    pool = meta.get("pool")
    if pool:
        vdev = _PART_SUFFIX.sub("", str(meta.get("vdev") or "").rsplit("/", 1)[-1])
        return f"pool:{pool}:{disk_of(vdev)}"
    return disk_of(str(meta.get("device") or ""))


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
        # (host, thing) → (time, kind): when the event of a happening about the thing was seen,
        # or for a sliding window its last line; the kind its details are details of
        self._windows: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        # host → (time of its last line, lines left) of a kernel report being printed
        self._reports: OrderedDict[str, tuple[float, int]] = OrderedDict()
        # host → peer → its knet links down, no up since (one alert per lost peer)
        self._links = KnetLinks(MAX_LINK_HOSTS, MAX_LINK_PEERS, BURST_SECONDS)

    @property
    def rules(self) -> tuple[Rule[SyslogMessage], ...]:
        return self.table.rules

    def classify(self, msg: SyslogMessage, peer: str = "") -> Classification:
        """The first matching rule's classification, else ``syslog.message``.

        What the classifier remembers between lines (report and burst windows, running tasks)
        is keyed by the sending address (``peer``) and the host the line names together: a
        line from another address that only claims to be pve1 (forged, or a misconfigured
        relay) cannot turn pve1's own lines into details."""
        cls = self.table.classify(msg.app or "", msg.message, msg)
        host = f"{peer}\x1f{msg.hostname or ''}"
        if cls.rule == "kernel-oom-detail" or (self._oom_reports and cls.kind == FALLBACK_KIND):
            self._oom_report_line(msg, cls, host)
        elif self._oom_reports and cls.rule in _OOM_KILL_RULES:
            self._oom_reports.pop(host, None)
        if cls.rule == KERNEL_REPORT_RULE or (
            self._reports and not cls.rule and cls.kind == FALLBACK_KIND
        ):
            self._kernel_report_line(msg, cls, host)
        if cls.rule in _WINDOW_RULES or (
            cls.kind == FALLBACK_KIND and self._windows and msg.app in _WINDOW_APPS
        ):
            self._burst_line(msg, cls, host)
        if cls.rule.startswith("vzdump-"):
            if cls.correlation_id is None and msg.procid:
                cls.correlation_id = self._workers.get((host, msg.procid))
        elif cls.rule in ("task-start", "task-end") and cls.correlation_id:
            upid = find_upid(cls.correlation_id)
            if upid is not None and not upid.pbs:
                worker = (host, str(upid.pid))
                if cls.rule == "task-end":
                    self._workers.pop(worker, None)
                else:
                    self._workers[worker] = upid.text
                    if len(self._workers) > MAX_WORKERS:
                        self._workers.popitem(last=False)
        return cls

    def _burst_line(self, msg: SyslogMessage, cls: Classification, host: str) -> None:
        """A line of a multi-line happening: open its window, or mark it a detail inside one."""
        rule = cls.rule
        if rule in _KNET_RULES:  # the peer's links, with or without a time stamp
            stamp = msg.timestamp.timestamp() if msg.timestamp is not None else None
            self._links.classify(host, cls, stamp)
        if msg.timestamp is None:
            return
        now = msg.timestamp.timestamp()
        if rule in _DISK_REPEAT_RULES:
            self._repeat(host, _disk_key(cls.metadata), now, cls, slide=_DISK_DRIVERS)
            if "pool" in cls.metadata:
                self._open((host, f"zed:{cls.metadata['pool']}"), now, "disk.error")
        elif rule == DISK_DETAIL_RULE:
            key = (host, _DISK_DRIVERS)
            if DETAIL_OF in cls.metadata or self._within(key, now):
                cls.metadata[DETAIL_OF] = "disk.error"
                self._open(key, now, "disk.error")
        elif rule in _ZFS_STATE_RULES:
            self._open((host, f"zed:{cls.metadata['pool']}"), now, "disk.error")
        elif rule == "nic-link-down":
            self._repeat(host, f"if:{cls.metadata['interface']}", now, cls)
        elif rule == "nic-link-up":
            # the interface's failure is over: its next down is a new happening
            self._windows.pop((host, f"if:{cls.metadata['interface']}"), None)
        elif rule == "knet-link-down":
            self._open((host, "cluster:link.down"), now, "link.down")
        elif rule == "quorum-lost":
            self._open((host, "cluster:quorum.lost"), now, "quorum.lost")
        elif rule == "knet-link-up":
            # another link of the host lost within the window: its loss is still being logged
            if not self._links.lost_since(host, now, BURST_SECONDS):
                self._cluster_line(host, now, msg, cls)
        elif rule in _GUEST_END_RULES:
            what = f"guest:{cls.vmid}" if cls.vmid is not None else _CRASH
            self._open((host, what), now, cls.kind)
        elif rule in _GUEST_STOP_RULES:
            self._guest_stop(host, now, cls)
        elif msg.app == "zed":
            # the pool's configuration written after its fault (zed's statechange/config
            # scripts); scrubs, resilvers, a disk attached or back ONLINE are happenings of
            # their own (an operator's, a recovery)
            pool = _ZED_CONFIG_SYNC.search(msg.message)
            if pool and self._within((host, f"zed:{pool[1]}"), now):
                cls.metadata[DETAIL_OF] = "disk.error"
        elif msg.app in _HA_APPS:
            # without quorum /etc/pve is read-only: HA's cluster locks cannot be renewed
            # (pve-ha-manager src/PVE/HA/Env/PVE2.pm get_pve_lock, once per loss)
            if msg.message.startswith("lost lock '"):
                found = self._within((host, "cluster:quorum.lost"), now)
                if found:
                    cls.metadata[DETAIL_OF] = found
        else:
            self._cluster_line(host, now, msg, cls)

    def _guest_stop(self, host: str, now: float, cls: Classification) -> None:
        """A guest's stop right after its OOM kill, or the host's first one after a QEMU
        crash (which names no guest), is a detail of that event, not another."""
        for key in ((host, f"guest:{cls.vmid}"), (host, _CRASH)):
            found = self._within(key, now)
            if found:
                cls.kind = FALLBACK_KIND
                cls.metadata[DETAIL_OF] = found
                del self._windows[key]
                return

    def _cluster_line(self, host: str, now: float, msg: SyslogMessage, cls: Classification) -> None:
        """corosync's and pmxcfs's membership lines after a link down (or quorum lost) on
        the host: details of it, until the cluster's recovery begins."""
        detail_of = None
        for key in ((host, "cluster:link.down"), (host, "cluster:quorum.lost")):
            found = self._within(key, now)
            if not found:
                continue
            if _CLUSTER_RECOVERY.search(msg.message):
                self._windows.pop((host, "cluster:link.down"), None)
                self._windows.pop((host, "cluster:quorum.lost"), None)
                return
            detail_of = detail_of or found
            self._open(key, now, found)  # both windows slide with the burst's lines
        if detail_of:
            cls.metadata[DETAIL_OF] = detail_of

    def _repeat(
        self, host: str, thing: str, now: float, cls: Classification, slide: str = ""
    ) -> None:
        """The first event about ``thing`` notifies; its repeats within the window are details
        (the window is not slid by them: a thing failing for an hour notifies once a minute)."""
        key = (host, thing)
        if self._within(key, now):
            cls.metadata[DETAIL_OF] = cls.kind
            cls.kind = FALLBACK_KIND
        else:
            self._open(key, now, cls.kind)
        if slide:
            self._open((host, slide), now, cls.metadata.get(DETAIL_OF, cls.kind))

    def _within(self, key: tuple[str, str], now: float) -> str | None:
        """The kind of the window ``key`` if ``now`` is inside it."""
        found = self._windows.get(key)
        if found is None or not 0 <= now - found[0] < BURST_SECONDS:
            return None
        return found[1]

    def _open(self, key: tuple[str, str], now: float, kind: str) -> None:
        """Open or slide a window to ``now`` (a line stamped earlier does not move it back)."""
        found = self._windows.get(key)
        if found is not None and now < found[0]:
            return
        self._windows[key] = (now, kind)
        self._windows.move_to_end(key)
        if len(self._windows) > MAX_WINDOWS:
            self._windows.popitem(last=False)

    def _kernel_report_line(self, msg: SyslogMessage, cls: Classification, host: str) -> None:
        """Open a host's kernel report (hung task, WARNING, soft lockup...), or mark a kernel
        line no rule claims inside it: its dump (and the next hung task of the same stall)."""
        if msg.timestamp is None or (msg.app or "").lower() != "kernel":
            return
        now = msg.timestamp.timestamp()
        found = self._reports.get(host)
        if found is not None and 0 <= now - found[0] < KERNEL_REPORT_SECONDS and found[1] > 0:
            cls.metadata[DETAIL_OF] = FALLBACK_KIND
            if "---[ end trace" in msg.message:
                del self._reports[host]
            else:
                self._reports[host] = (now, found[1] - 1)
        elif cls.rule == KERNEL_REPORT_RULE:
            self._reports[host] = (now, KERNEL_REPORT_LINES)
            self._reports.move_to_end(host)
            if len(self._reports) > MAX_OOM_REPORTS:
                self._reports.popitem(last=False)
        elif found is not None:
            del self._reports[host]

    def _oom_report_line(self, msg: SyslogMessage, cls: Classification, host: str) -> None:
        """Open a host's OOM report window, or mark a kernel line no rule claims inside it."""
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
