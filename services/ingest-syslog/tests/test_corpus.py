"""The corpus of real-shaped Proxmox lines (tests/corpus.py) through the real pipeline."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from proxbus_events import Event
from proxbus_ingest_syslog.frames import Frame
from proxbus_ingest_syslog.pipeline import Pipeline
from proxbus_ingest_syslog.rules import RULES
from proxbus_ingest_syslog.settings import Settings

from .corpus import CORPUS, SECOND_PASS_START, Line

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _events() -> list[tuple[Line, Event]]:
    """Every corpus line through a fresh pipeline, in order: the classifier keeps per-host
    windows (an OOM report, a disk's burst), so a second pass through the same one would
    see each line as a repeat of itself."""
    pipeline = Pipeline(Settings())
    out = []
    for line in CORPUS:
        result = pipeline.event_or_rejection(Frame(line.raw.encode()), NOW)
        assert isinstance(result, Event), (line.raw, result)
        out.append((line, result))
    return out


def _mismatches(field: str) -> list[str]:
    out = []
    for line, event in _events():
        if not line.classified:
            continue
        got, want = getattr(event, field), getattr(line, field)
        if got != want:
            out.append(f"{line.raw}\n    {field}: got {got!r}, want {want!r} ({line.source})")
    return out


def test_corpus_is_large_and_varied_enough() -> None:
    assert len(CORPUS) >= 300
    events = [e for _, e in _events()]
    programs = {e.metadata.get("app") for e in events}
    sources = {line.source for line in CORPUS}
    assert len(programs) >= 12, programs
    assert len(sources) >= 12
    formats = Counter(e.metadata["format"] for e in events)
    assert formats["rfc3164"] >= 100
    assert formats["rfc5424"] >= 100


def test_corpus_kind_accuracy_is_at_least_95_percent() -> None:
    classified = [line for line in CORPUS if line.classified]
    wrong = _mismatches("kind")
    accuracy = 1 - len(wrong) / len(classified)
    assert accuracy >= 0.95, "\n".join(wrong)


def test_corpus_node_is_always_right() -> None:
    wrong = _mismatches("node")
    assert not wrong, "\n".join(wrong)


def test_corpus_vmid_is_always_right() -> None:
    wrong = _mismatches("vmid")
    assert not wrong, "\n".join(wrong)


def test_corpus_severity_follows_pri_and_floors() -> None:
    wrong = [f"{m}" for m in _mismatches("severity")]
    assert not wrong, "\n".join(wrong)


def test_every_rule_has_a_corpus_line() -> None:
    used = {e.metadata.get("rule") for _, e in _events()}
    missing = sorted({r.name for r in RULES} - used)
    assert not missing, missing


def test_corpus_covers_every_syslog_kind_the_rules_can_give() -> None:
    kinds = {line.kind for line in CORPUS}
    assert {
        "task.ok", "task.failed", "backup.ok", "backup.failed", "replication.failed",
        "vm.started", "vm.stopped", "vm.crashed", "node.offline", "node.fencing", "node.fenced",
        "quorum.lost", "link.down", "ha.state", "auth.failed", "storage.full", "disk.error",
        "oom.kill", "acme.failed", "gc.failed", "prune.failed", "sync.failed", "verify.failed",
        "tape.failed", "syslog.message",
    } <= kinds  # fmt: skip


def test_every_corpus_line_names_its_source() -> None:
    assert all(line.source.strip() for line in CORPUS)


def test_second_pass_lines_all_have_the_right_kind() -> None:
    """The PVE 9 / PBS 4 pass (README "Coverage"): every line's kind, not 95 % of them."""
    second = _events()[SECOND_PASS_START:]
    assert len(second) >= 100
    wrong = [
        f"{line.raw}\n    kind: got {event.kind!r}, want {line.kind!r}"
        for line, event in second
        if event.kind != line.kind
    ]
    assert not wrong, "\n".join(wrong)


def test_corpus_details_are_marked_and_only_they() -> None:
    """A line the corpus calls a detail carries ``metadata.detail_of`` (and is no event of its
    own); no other line does."""
    wrong = [
        f"{line.raw}\n    detail_of: {event.metadata.get('detail_of')!r}, want detail={line.detail}"
        for line, event in _events()
        if ("detail_of" in event.metadata) != line.detail
        or (line.detail and event.kind != "syslog.message")
    ]
    assert not wrong, "\n".join(wrong)


def test_recovery_lines_say_what_they_end_and_only_they() -> None:
    """A link up and quorum regained stay plain (the contract has no recovery kinds) and carry
    ``metadata.recovers`` (the kind they end), for the dispatcher to tell the alert's end; so
    does an HA node's return to the membership, which the contract makes ``ha.state``."""
    wrong = [
        f"{line.raw}\n    recovers: {event.metadata.get('recovers')!r}, want {line.recovers!r}"
        for line, event in _events()
        if event.metadata.get("recovers") != line.recovers
        or (line.recovers and event.kind not in ("syslog.message", "ha.state"))
        or (event.kind == "ha.state" and line.recovers not in (None, "node.offline"))
    ]
    assert not wrong, "\n".join(wrong)
    assert {line.recovers for line in CORPUS} == {None, "link.down", "quorum.lost", "node.offline"}
