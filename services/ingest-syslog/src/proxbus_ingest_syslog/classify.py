"""Proxmox classifier: a parsed syslog line → kind, node, vmid (pure, table-driven).

The rules live in ``rules.py``, bound to program names; ``Classifier`` indexes them once
(``proxbus_events.classification.RuleTable``) so a line runs only its program's rules.
Everything no rule claims is ``syslog.message``.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxbus_events.classification import Classification, Rule, RuleTable

from .parse import SyslogMessage
from .rules import FALLBACK_KIND, RULES, rule

__all__ = ["FALLBACK_KIND", "RULES", "Classification", "Classifier", "classify", "rule"]


class Classifier:
    """Applies a rule table to syslog messages (program = the syslog app name)."""

    def __init__(self, rules: Iterable[Rule[SyslogMessage]] = RULES) -> None:
        self.table: RuleTable[SyslogMessage] = RuleTable(rules, FALLBACK_KIND)

    @property
    def rules(self) -> tuple[Rule[SyslogMessage], ...]:
        return self.table.rules

    def classify(self, msg: SyslogMessage) -> Classification:
        """The first matching rule's classification, else ``syslog.message``."""
        return self.table.classify(msg.app or "", msg.message, msg)


DEFAULT_CLASSIFIER = Classifier()


def classify(msg: SyslogMessage) -> Classification:
    return DEFAULT_CLASSIFIER.classify(msg)
