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
