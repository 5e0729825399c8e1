"""build_event: the unvalidated fast path gives exactly the validated model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proxbus_events import MESSAGE_LIMIT, TITLE_LIMIT, Event
from proxbus_ingest_syslog import normalize
from proxbus_ingest_syslog.classify import classify
from proxbus_ingest_syslog.normalize import NodeNamer, build_event
from proxbus_ingest_syslog.parse import SyslogMessage, parse_syslog

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _both(msg: SyslogMessage) -> tuple[Event, Event]:
    """The fast and the validated event for ``msg`` (no global switch flipped)."""
    cls = classify(msg)
    fast = build_event(msg, cls, site="lab", node_of=NodeNamer(), received_at=NOW)
    slow = build_event(msg, cls, site="lab", node_of=NodeNamer(), received_at=NOW, validate=True)
    return fast, slow


def test_the_fast_path_is_in_use() -> None:
    """Regression: once the model gained a field the fast path switched itself off, and the
    equivalence tests below compared the validated path with itself, passing silently."""
    assert normalize.FAST_PATH, (
        "Event's fields changed: update normalize._EVENT_FIELDS and the fast path with them"
    )


def _same(fast: Event, slow: Event) -> None:
    a, b = fast.model_dump(), slow.model_dump()
    if fast.metadata.get("rule") not in {"task-end", "oom-cgroup", "oom-killed"}:
        a.pop("id"), b.pop("id")  # random ids; deterministic ones must match too
    assert a == b
    assert Event.from_json(fast.to_json()) == fast
    assert len(fast.title) <= TITLE_LIMIT
    assert "\n" not in fast.title


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from(
        ["<30>Nov 24 10:00:00 pve1 pvedaemon[1]: ", "<27>1 2026-11-24T10:00:00Z h.example app - - - ",
         "<4>Nov 24 10:00:00  kernel: ", "<13>", "<30>Nov 24 10:00:00 pve1 qmeventd[1]: Starting cleanup for 1"]
    ),
    text=st.text(max_size=400),
)  # fmt: skip
def test_fast_event_equals_validated_event(prefix: str, text: str) -> None:
    msg = parse_syslog((prefix + text).encode("utf-8", "surrogatepass"), received_at=NOW)
    if isinstance(msg, SyslogMessage):
        _same(*_both(msg))


def test_fast_event_truncates_like_the_model() -> None:
    msg = SyslogMessage(
        pri=30, message="a \n b " * 20_000, format="rfc3164", app="x", hostname=" pve1 "
    )
    fast, slow = _both(msg)
    _same(fast, slow)
    assert len(fast.message) == MESSAGE_LIMIT
    assert fast.message.endswith("[truncated]")
    assert fast.node == "pve1"


def test_task_end_event_equals_validated_event() -> None:
    msg = parse_syslog(
        b"<30>Nov 24 10:00:00 pve1 pvedaemon[1]: <root@pam> end task "
        b"UPID:pve1:00003039:00A1B2C3:65F0A1B2:qmstart:100:root@pam: OK",
        received_at=NOW,
    )
    assert isinstance(msg, SyslogMessage)
    _same(*_both(msg))


def test_overlong_node_name_is_rejected_by_validation() -> None:
    msg = SyslogMessage(pri=30, message="x", format="rfc3164")
    cls = classify(msg)
    cls.node = "n" * 300
    with pytest.raises(ValueError, match="node"):
        build_event(msg, cls, site="lab", node_of=NodeNamer(), received_at=NOW)
