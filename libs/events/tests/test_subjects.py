import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxbus_events import Event, event_subject, events_filter, parse_event_subject, sanitize_token


@given(st.text())
def test_any_string_becomes_a_valid_subject_token(value: str) -> None:
    token = sanitize_token(value)
    assert token
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789_-" for c in token)


@given(site=st.text(), node=st.one_of(st.none(), st.text(max_size=100)))
def test_every_event_subject_parses_back(site: str, node: str | None) -> None:
    event = Event(source="syslog", kind="syslog.message", title="x", site=site or "d", node=node)
    parts = parse_event_subject(event_subject(event))
    assert parts.site == sanitize_token(event.site)
    assert parts.source == "syslog"
    assert parts.severity == "info"
    assert parts.node == sanitize_token(event.node)


def test_subject_layout_matches_the_contract() -> None:
    event = Event(
        source="pve-webhook", kind="backup.failed", title="x", site="Lab.1", node="PVE1.lab.example",
        severity="error",
    )  # fmt: skip
    assert event_subject(event) == "proxbus.events.lab_1.pve-webhook.error.pve1_lab_example"
    unknown = Event(source="email", kind="email.message", title="x")
    assert event_subject(unknown) == "proxbus.events.default.email.info._"


def test_filters_use_wildcards_for_missing_parts() -> None:
    assert events_filter(severity="error") == "proxbus.events.*.*.error.*"
    assert events_filter(site="lab", node="pve1") == "proxbus.events.lab.*.*.pve1"


@pytest.mark.parametrize(
    "bad", ["proxbus.events.a.b.c", "other.events.a.b.c.d", "proxbus.events.a..c.d", ""]
)
def test_non_event_subjects_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an event subject"):
        parse_event_subject(bad)


def test_memoised_subjects_follow_every_part() -> None:
    """event_subject is memoised: an event differing in one part still gets its own subject."""
    base = {"source": "syslog", "kind": "syslog.message", "title": "x", "site": "a", "node": "n1"}
    variants = [
        {},
        {"site": "b"},
        {"source": "email"},
        {"severity": "error"},
        {"node": "n2"},
        {"node": None},
    ]
    for _ in range(2):  # the second pass reads the memo
        subjects = [event_subject(Event(**{**base, **v})) for v in variants]
        assert subjects == [
            "proxbus.events.a.syslog.info.n1",
            "proxbus.events.b.syslog.info.n1",
            "proxbus.events.a.email.info.n1",
            "proxbus.events.a.syslog.error.n1",
            "proxbus.events.a.syslog.info.n2",
            "proxbus.events.a.syslog.info._",
        ]
