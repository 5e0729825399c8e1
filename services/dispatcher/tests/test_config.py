from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxbus_dispatcher.config import parse_config
from proxbus_dispatcher.durations import parse_duration
from proxbus_dispatcher.errors import ConfigError

VALID = """\
receivers:
  - name: ops
    type: webhook
    url: http://127.0.0.1:9/hook
    secret: s3cret
  - name: chat
    type: discord
    url: http://127.0.0.1:9/api/webhooks/1/x
route:
  receiver: ops
  group_wait: 30s
  routes:
    - matchers: ["severity>=error", "kind=backup.*"]
      receiver: chat
      group_by: [node]
      continue: true
    - matchers: ["node=pve1"]
inhibit_rules:
  - source_matchers: ["kind=node.offline"]
    target_matchers: ["kind=vm.*"]
    equal: [node]
"""


def test_valid_file_resolves_inherited_settings() -> None:
    cfg = parse_config(VALID)
    child = cfg.root.routes[0]
    assert child.receiver == "chat"
    assert child.group_wait == 30.0
    assert child.group_by == ("node",)
    assert cfg.root.routes[1].receiver == "ops"
    assert cfg.inhibit_rules[0].equal == ["node"]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (VALID.replace("receiver: chat", "receiver: nobody"), 14, "unknown receiver 'nobody'"),
        (VALID.replace("group_wait: 30s", "group_wait: soon"), 11, "not a duration"),
        (VALID.replace('"node=pve1"', '"nod=pve1"'), 17, "invalid matcher 'nod=pve1'"),
        (
            VALID.replace("type: discord", "type: pager"),
            6,
            "does not match any of the expected tags",
        ),
        (VALID.replace("group_by: [node]", "group_by: [colour]"), 15, "unknown label 'colour'"),
        (VALID.replace("equal: [node]", "equal: [node"), 22, "YAML syntax"),
        (
            VALID.replace("    secret: s3cret\n", "    secret: s3cret\n    extra: 1\n"),
            6,
            "Extra inputs",
        ),
        (  # JetStream would delete an older delivery with no dead letter (issue 19)
            VALID.replace("    secret: s3cret\n", "    secret: s3cret\n    max_age: 7d\n"),
            6,
            "below 7 days, the max age of PROXBUS_DELIVERIES",
        ),
    ],
)
def test_invalid_file_names_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "routes.yaml")
    assert info.value.line == line, str(info.value)
    assert reason in str(info.value)
    assert str(info.value).startswith(f"routes.yaml:{line}: ")


def test_env_reference_expands_and_missing_env_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    text = VALID.replace("secret: s3cret", "secret: ${HOOK_SECRET}")
    with pytest.raises(ConfigError, match="HOOK_SECRET is not set") as info:
        parse_config(text)
    assert info.value.line == 5
    monkeypatch.setenv("HOOK_SECRET", "abc")
    cfg = parse_config(text)
    assert cfg.receivers["ops"].secret == "abc"  # type: ignore[attr-defined]


def test_root_route_with_matchers_is_refused() -> None:
    with pytest.raises(ConfigError, match="root route must not have matchers"):
        parse_config(
            VALID.replace("  group_wait: 30s\n", "  group_wait: 30s\n  matchers: [node=a]\n")
        )


def test_example_routes_file_is_valid() -> None:
    example = Path(__file__).parents[1] / "routes.example.yaml"
    cfg = parse_config(example.read_text(), str(example))
    assert cfg.receivers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("200ms", 0.2),
        ("0", 0),
        (2.5, 2.5),
        ("1d", 86400),
    ],
)
def test_durations_parse(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@given(st.text(max_size=12))
def test_duration_parser_only_raises_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert parse_duration(text) >= 0


def test_every_receiver_type_in_the_schema_has_a_registered_notifier() -> None:
    from typing import get_args

    from proxbus_dispatcher.notifiers import NOTIFIERS, ReceiverConfig

    union = get_args(get_args(ReceiverConfig)[0])
    assert {m.model_fields["type"].annotation.__args__[0] for m in union} == set(NOTIFIERS)
    assert {NOTIFIERS[t].model for t in NOTIFIERS} == set(union)
