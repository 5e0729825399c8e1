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
"""

from __future__ import annotations

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


class Classifier:
    """Applies a rule table to syslog messages (program = the syslog app name)."""

    def __init__(self, rules: Iterable[Rule[SyslogMessage]] = RULES) -> None:
        self.table: RuleTable[SyslogMessage] = RuleTable(rules, FALLBACK_KIND)
        self._workers: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._oom_reports: OrderedDict[str, int] = OrderedDict()  # host → lines left

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
