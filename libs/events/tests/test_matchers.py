from datetime import UTC, datetime, timedelta

import pytest
from proxbus_events import Event, Matcher, Silence, match_all
from pydantic import ValidationError


def ev(**kw: object) -> Event:
    base: dict[str, object] = {"source": "syslog", "kind": "vm.crashed", "title": "VM 100 died"}
    base.update(kw)
    return Event.model_validate(base)


@pytest.mark.parametrize(
    ("text", "event", "hit"),
    [
        ("severity>=warning", ev(severity="error"), True),
        ("severity>=warning", ev(severity="notice"), False),
        ("severity<error", ev(severity="warning"), True),
        ("kind=vm.*", ev(kind="vm.crashed"), True),
        ("kind=vm.*", ev(kind="task.failed"), False),
        ("kind!=vm.*", ev(kind="task.failed"), True),
        ("node=pve1", ev(node="pve1"), True),
        ("node!=pve1", ev(node=None), True),
        ("title=~.*died", ev(), True),
        ("title!~.*died", ev(), False),
        ("vmid=100", ev(vmid=100), True),
        ("site='lab'", ev(site="lab"), True),
    ],
)
def test_matchers_follow_alertmanager_semantics(text: str, event: Event, hit: bool) -> None:
    assert Matcher.parse(text).matches(event) is hit


@pytest.mark.parametrize("bad", ["colour=red", "node>=pve1", "title=~(", "severity>=loud", "=x"])
def test_bad_matchers_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises((ValueError, ValidationError)):
        Matcher.parse(bad)


def test_silence_mutes_only_while_active_and_matching() -> None:
    now = datetime.now(UTC)
    silence = Silence(matchers=[Matcher.parse("node=pve1")], ends_at=now + timedelta(minutes=5))
    assert silence.mutes(ev(node="pve1"))
    assert not silence.mutes(ev(node="pve2"))
    assert not silence.mutes(ev(node="pve1"), now + timedelta(minutes=6))
    assert match_all([], ev())


def test_a_backtracking_regex_cannot_stall_matching() -> None:
    """``(.*a){20}`` is exponential for Python's ``re`` (each character more nearly doubles the
    time: already 0.1 s at 22 characters with ``{12}``); RE2 answers in linear time. With
    ``re`` this test would run into pytest's timeout on the first title."""
    matcher = Matcher.parse("title=~(.*a){20}")
    assert not matcher.matches(ev(title="a" * 200 + "b"))
    assert matcher.matches(ev(title="a" * 200))
    message = Matcher.parse("message=~(x+x+)+y")
    assert not message.matches(ev(message="x" * 60_000))


@pytest.mark.parametrize("pattern", [r"(?<=VM )100", r"(a)\1", r"(?!x)y"])
def test_regexes_outside_re2_syntax_are_refused_naming_it(pattern: str) -> None:
    with pytest.raises(ValidationError, match="RE2 syntax"):
        Matcher.parse(f"title=~{pattern}")


@pytest.mark.parametrize(
    ("text", "event", "hit"),
    [
        ("message=~.*disk full.*", ev(message="backup of 100\nERROR: disk full\nend"), True),
        ("title=~(?i)vm 100 DIED", ev(), True),
        ("title=~VM \\d+ died", ev(), True),
        ("title=~VM \\d+", ev(), False),  # a full match, as in Alertmanager
        ("node=~pve[12]", ev(node="pve2"), True),
        ("node=~pve[12]", ev(node=None), False),
        ("node!~pve[12]", ev(node=None), True),
        ("title=~caf.*", ev(title="café ok"), True),
        ("title=~café.k", ev(title="café ok"), False),
        ("title=~café .k", ev(title="café ok"), True),
    ],
)
def test_regex_matchers_are_full_matches_across_lines_and_unicode(
    text: str, event: Event, hit: bool
) -> None:
    assert Matcher.parse(text).matches(event) is hit


def test_odd_text_and_long_matchers_give_an_answer_or_a_clear_error() -> None:
    # a lone surrogate is a valid Python str (JSON "\ud800" decodes to one) but not UTF-8
    assert not Matcher.parse("title=~x").matches(ev(title="\ud800 x"))
    assert Matcher.parse("title!~x").matches(ev(title="\ud800 x"))
    with pytest.raises(ValueError, match="too long"):
        Matcher.parse("title=~" + " " * 5000 + "x")
