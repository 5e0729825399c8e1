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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from proxbus_events.classification import Classification, Rule, RuleTable
from proxbus_events.proxmox import find_upid

from .parse import SyslogMessage
from .rules import FALLBACK_KIND, RULES, rule

__all__ = ["FALLBACK_KIND", "RULES", "Classification", "Classifier", "classify", "rule"]

MAX_WORKERS = 4096  # running tasks remembered (host, worker pid) → UPID


class Classifier:
    """Applies a rule table to syslog messages (program = the syslog app name)."""

    def __init__(self, rules: Iterable[Rule[SyslogMessage]] = RULES) -> None:
        self.table: RuleTable[SyslogMessage] = RuleTable(rules, FALLBACK_KIND)
        self._workers: OrderedDict[tuple[str, str], str] = OrderedDict()

    @property
    def rules(self) -> tuple[Rule[SyslogMessage], ...]:
        return self.table.rules

    def classify(self, msg: SyslogMessage) -> Classification:
        """The first matching rule's classification, else ``syslog.message``."""
        cls = self.table.classify(msg.app or "", msg.message, msg)
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


DEFAULT_CLASSIFIER = Classifier()


def classify(msg: SyslogMessage) -> Classification:
    return DEFAULT_CLASSIFIER.classify(msg)
