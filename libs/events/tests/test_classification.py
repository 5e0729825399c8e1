"""The shared classifier shape: rule table indexed by program, first match wins, fallback."""

from __future__ import annotations

import re

import pytest
from proxbus_events.classification import ANY_PROGRAM, Classification, RuleTable, rule


def _vmid(m: re.Match[str], item: str) -> Classification:
    return Classification(kind="vm.stopped", vmid=int(m["vmid"]))


def _none(m: re.Match[str], item: str) -> Classification | None:
    return None


def _broken(m: re.Match[str], item: str) -> Classification:
    raise ValueError("builder bug")


RULES = [
    rule("stop", "qmeventd", r"^Starting cleanup for (?P<vmid>\d+)", "vm.stopped", _vmid),
    rule("declines", "kernel", r"I/O error", "disk.error", _none),
    rule("bug", "kernel", r"I/O error", "disk.error", _broken),
    rule("io", "kernel", r"I/O error, dev (?P<dev>\w+)", "disk.error"),
    rule("space", ANY_PROGRAM, r"No space left on device", "storage.full"),
]


def test_first_matching_rule_of_the_program_decides() -> None:
    table: RuleTable[str] = RuleTable(RULES, "syslog.message")
    result = table.classify("qmeventd", "Starting cleanup for 100", "")
    assert (result.kind, result.vmid, result.rule) == ("vm.stopped", 100, "stop")


def test_builder_returning_none_or_raising_lets_the_next_rule_try() -> None:
    table: RuleTable[str] = RuleTable(RULES, "syslog.message")
    result = table.classify("kernel", "I/O error, dev sdb, sector 1", "")
    assert (result.kind, result.rule) == ("disk.error", "io")


def test_rules_of_other_programs_never_run() -> None:
    table: RuleTable[str] = RuleTable(RULES, "syslog.message")
    assert table.classify("pvedaemon", "Starting cleanup for 100", "").kind == "syslog.message"
    assert [r.name for r in table.rules_for("kernel")] == ["declines", "bug", "io", "space"]
    assert [r.name for r in table.rules_for("unknown")] == ["space"]
    assert table.programs == ["kernel", "qmeventd"]


def test_program_lookup_ignores_case_and_stays_bounded() -> None:
    table: RuleTable[str] = RuleTable(RULES, "syslog.message", cache_size=4)
    assert table.rules_for("KERNEL") == table.rules_for("kernel")
    for n in range(50):
        table.rules_for(f"app{n}")
    assert len(table._seen) <= 4


def test_any_program_rule_applies_to_every_program() -> None:
    table: RuleTable[str] = RuleTable(RULES, "syslog.message")
    for program in ("kernel", "qmeventd", "vzdump", ""):
        assert table.classify(program, "write: No space left on device", "").kind == "storage.full"


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate rule names: io"):
        RuleTable([*RULES, rule("io", "zed", "x", "disk.error")], "syslog.message")


def test_literal_prefix_is_conservative() -> None:
    from proxbus_events.classification import literal_prefix

    assert literal_prefix(r"^end task (?P<upid>UPID:\S+)") == "end task "
    assert literal_prefix(r"\[KNET\s*\] link") == "[KNET"
    assert literal_prefix(r"ab*c") == "a"
    assert literal_prefix(r"a|b") == ""
    assert literal_prefix(r"x(a|b)") == "x"
    assert literal_prefix(r"\bVM \d") == ""
    assert literal_prefix(r"[Oo]ut of memory") == ""


def test_needles_gate_the_regex_and_never_hide_a_match() -> None:
    gated = rule("gated", "app", r"(?P<what>disk|nvme) failed", "disk.error", needles=("failed",))
    table: RuleTable[str] = RuleTable([gated], "syslog.message")
    assert table.classify("app", "nvme failed", "").kind == "disk.error"
    assert table.classify("app", "nvme ok", "").kind == "syslog.message"
    # a case-insensitive rule gets no derived needle (it would be case-sensitive)
    loose = rule("loose", "app", r"^disk failed", "disk.error", flags=re.IGNORECASE)
    assert loose.needles == ()
    assert RuleTable([loose], "x").classify("app", "DISK FAILED", "").kind == "disk.error"
