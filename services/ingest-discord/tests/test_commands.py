"""Parsing /proxbus subcommands, silence targets, durations; the registered definition."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxbus_ingest_discord.commands import (
    COMMAND_DEFINITION,
    parse_command,
    parse_duration,
    silence_matchers,
)
from proxbus_ingest_discord.errors import InteractionError, UsageError


def data(sub: str, **options: Any) -> dict[str, Any]:
    opts = [{"name": k, "type": 3, "value": v} for k, v in options.items()]
    return {"name": "proxbus", "options": [{"name": sub, "type": 1, "options": opts}]}


def test_each_subcommand_parses_to_its_arguments() -> None:
    assert parse_command(data("status")).arguments == {}
    assert parse_command(data("vms", node="pve2")).arguments == {"node": "pve2"}
    assert parse_command(data("events")).arguments == {"severity": "warning"}
    assert parse_command(data("events", severity="error")).arguments == {"severity": "error"}
    silence = parse_command(data("silence", target="node=pve2", duration="1h30m"))
    assert silence.arguments == {"matchers": ["node=pve2"], "seconds": 5400}
    assert silence.is_change
    for verb in ("start", "stop", "reboot"):
        cmd = parse_command(data(verb, vmid=100))
        assert (cmd.name, cmd.arguments, cmd.is_change) == (verb, {"vmid": 100}, True)
    assert not parse_command(data("vms")).is_change


@pytest.mark.parametrize(
    ("sub", "options", "message"),
    [
        ("vms", {"node": "a/b"}, "not a node name"),
        ("events", {"severity": "loud"}, "unknown severity"),
        ("stop", {"vmid": 99}, "vmid must be"),
        ("stop", {"vmid": "100"}, "vmid must be"),
        ("stop", {"vmid": True}, "vmid must be"),
        ("stop", {}, "vmid must be"),
        ("silence", {"target": "x"}, "needs a target and a duration"),
        ("silence", {"target": "colour=red", "duration": "1h"}, "colour"),
        ("silence", {"target": "node=pve1", "duration": "8d"}, "7 days"),
    ],
)
def test_bad_arguments_become_a_usage_error_not_an_exception(
    sub: str, options: dict[str, Any], message: str
) -> None:
    cmd = parse_command(data(sub, **options))
    assert cmd.usage_error is not None
    assert message in cmd.usage_error


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "other"},
        {"name": "proxbus"},
        {"name": "proxbus", "options": []},
        {"name": "proxbus", "options": [{"name": "rm", "type": 1}]},
        {"name": "proxbus", "options": [{"name": "status", "type": 2}]},
        {"name": "proxbus", "options": ["status"]},
    ],
)
def test_unknown_commands_are_interaction_errors(payload: dict[str, Any]) -> None:
    with pytest.raises(InteractionError) as err:
        parse_command(payload)
    assert err.value.outcome == "unknown_command"


def test_a_fingerprint_or_matchers_name_what_to_silence() -> None:
    assert [str(m) for m in silence_matchers("0123456789abcdef")] == [
        "fingerprint=0123456789abcdef"
    ]
    assert [str(m) for m in silence_matchers(" severity<=warning , kind=vm.* ")] == [
        "severity<=warning",
        "kind=vm.*",
    ]
    for bad in ("", ",", "just words", "a=1," * 11):
        with pytest.raises(UsageError):
            silence_matchers(bad)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("1H 5M", 3900),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@given(st.text(max_size=20))
def test_any_text_is_a_duration_or_a_usage_error(text: str) -> None:
    try:
        duration = parse_duration(text)
    except UsageError:
        return
    assert timedelta(0) < duration <= timedelta(days=7)


def test_the_definition_fits_discords_limits() -> None:
    name = re.compile(r"^[-_a-z0-9]{1,32}$")

    def check(option: dict[str, Any]) -> None:
        assert name.match(option["name"]), option["name"]
        assert 1 <= len(option["description"]) <= 100, option["name"]
        for child in option.get("options", []):
            check(child)
        assert len(option.get("options", [])) <= 25
        assert len(option.get("choices", [])) <= 25

    check(COMMAND_DEFINITION)
    subs = [o["name"] for o in COMMAND_DEFINITION["options"]]
    assert subs == ["status", "vms", "events", "silence", "start", "stop", "reboot"]
    # Every subcommand of the definition parses (with valid values).
    samples = {
        "node": "pve1",
        "severity": "error",
        "target": "node=pve1",
        "duration": "1h",
        "vmid": 100,
    }
    for sub in COMMAND_DEFINITION["options"]:
        values = {o["name"]: samples[o["name"]] for o in sub.get("options", [])}
        assert parse_command(data(sub["name"], **values)).usage_error is None


@pytest.mark.parametrize(
    "text",
    [
        "\u0661h",  # ARABIC-INDIC DIGIT ONE
        "\uff11h",  # FULLWIDTH DIGIT ONE
        "1\u200bh",  # a zero-width space inside
        "\u0967\u0966m",  # DEVANAGARI 10
    ],
)
def test_durations_are_ascii_digits_only(text: str) -> None:
    # Python's \d matches any Unicode digit and int() reads them: "١h" was one hour.
    with pytest.raises(UsageError):
        parse_duration(text)


def test_option_lengths_are_held_to_the_registered_limits() -> None:
    # Discord enforces the definition's max_length; the service does not rely on it: a target
    # of 10 matchers of 2 KB each was stored as a silence, audited and published in full.
    limits = {
        o["name"]: o["max_length"]
        for sub in COMMAND_DEFINITION["options"]
        if sub["name"] == "silence"
        for o in sub["options"]
    }
    long_target = ",".join(f"node=pve{n}" + "x" * 60 for n in range(9))
    assert len(long_target) > limits["target"]
    cmd = parse_command(data("silence", target=long_target, duration="1h"))
    assert cmd.usage_error is not None
    assert str(limits["target"]) in cmd.usage_error
    cmd = parse_command(data("silence", target="node=pve1", duration="1h" + " " * 20))
    assert cmd.usage_error is not None
