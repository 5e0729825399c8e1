"""Hostile interaction bodies behind a valid signature (a test key signs them as Discord would).

The parsers are property-tested (hypothesis, derandomized): ``parse_interaction``,
``parse_command`` and ``parse_click`` answer their result or ``InteractionError``, nothing else
(anything else reached the endpoint's last resort and was answered ``503 unavailable``, which
tells Discord to try again later, for a body that will never work). The inputs they failed on
are kept as ``@example`` and posted, signed, to the real service: a clear 4xx or an answer.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from proxbus_ingest_discord.commands import parse_command
from proxbus_ingest_discord.components import parse_click
from proxbus_ingest_discord.errors import InteractionError
from proxbus_ingest_discord.interaction import parse_interaction
from proxbus_ingest_discord.testing import Signed, counter, interaction, metrics_text

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["proxbus", "status", "vms", "events", "silence", "start", "30m", "pve1"])
)
_ANY = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
_OPTION = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["node", "severity", "target", "duration", "vmid"]) | _SCALAR,
        "type": st.integers(min_value=0, max_value=12) | _SCALAR,
        "value": _ANY,
    },
)
_SUB = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["status", "vms", "events", "silence", "start", "stop"]) | _SCALAR,
        "type": st.just(1) | _SCALAR,
        "options": st.lists(_OPTION | _ANY, max_size=4) | _ANY,
    },
)
_COMMAND_DATA = st.fixed_dictionaries(
    {},
    optional={"name": st.just("proxbus") | _SCALAR, "options": st.lists(_SUB, max_size=2) | _ANY},
)

# Found by the properties below (options=5: TypeError; a 1400-million-day duration:
# OverflowError; both answered 503). The list-valued severity is a usage error already.
_HOSTILE_COMMANDS = [
    {"name": "proxbus", "options": [{"name": "events", "type": 1, "options": 5}]},
    {
        "name": "proxbus",
        "options": [{"name": "events", "type": 1, "options": [{"name": "severity", "value": [1]}]}],
    },
    {
        "name": "proxbus",
        "options": [
            {
                "name": "silence",
                "type": 1,
                "options": [
                    {"name": "target", "value": "node=pve1"},
                    {"name": "duration", "value": "999999w" * 200},
                ],
            }
        ],
    },
]


@FUZZ
@given(data=_COMMAND_DATA)
@example(data=_HOSTILE_COMMANDS[0])
@example(data=_HOSTILE_COMMANDS[1])
@example(data=_HOSTILE_COMMANDS[2])
def test_parse_command_answers_a_command_or_an_interaction_error(data: dict[str, Any]) -> None:
    try:
        command = parse_command(data)
    except InteractionError as exc:
        status = exc.status
    else:
        status = 200
        assert command.usage_error is None or isinstance(command.usage_error, str)
    assert status == 200 or 400 <= status < 500


@FUZZ
@given(
    data=st.fixed_dictionaries(
        {},
        optional={
            "custom_id": st.sampled_from(
                ["pbx:do:start:qemu:100:" + "9" * 12, "pbx:silence:" + "a" * 8 + ":9999999",
                 "pbx:ack:" + "f" * 64, "pbx:cancel", "pbx:do:stop:lxc:999999999:0"]
            ) | _SCALAR | st.text(max_size=120),
            "component_type": _SCALAR,
        },
    )
)  # fmt: skip
def test_parse_click_answers_a_click_or_an_interaction_error(data: dict[str, Any]) -> None:
    status = 200
    try:
        parse_click(data)
    except InteractionError as exc:
        status = exc.status
    assert status == 200 or 400 <= status < 500


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200),
        _ANY.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda kind, data, extra: json.dumps({**interaction(kind, data), **extra}).encode(),
            st.integers(min_value=-5, max_value=10) | st.just(2**70),
            st.dictionaries(st.text(max_size=8), _ANY, max_size=3),
            st.dictionaries(
                st.sampled_from(["id", "token", "member", "user", "message", "guild_id"]),
                _ANY,
                max_size=3,
            ),
        ),
    )
)
@example(body=b'{"a":' * 5000 + b"1" + b"}" * 5000)
@example(body=b'{"id": 1' + b"0" * 5000 + b"}")
def test_parse_interaction_answers_an_interaction_or_an_interaction_error(body: bytes) -> None:
    status = 200
    try:
        parse_interaction(body)
    except InteractionError as exc:
        status = exc.status
    assert status == 200 or 400 <= status < 500


async def test_hostile_signed_bodies_get_a_clear_answer_never_a_5xx(signed: Signed) -> None:
    bodies: list[dict[str, Any] | bytes] = [
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"id": 1' + b"0" * 5000 + b"}",
        b"\xff\xfe not utf-8",
        json.dumps(interaction(2, {"name": "proxbus", "options": "x"})).encode(),
        *(interaction(2, data) for data in _HOSTILE_COMMANDS),
        interaction(3, {"custom_id": ["pbx:cancel"]}),
        interaction(4, {}),
    ]
    statuses = []
    for body in bodies:
        status, answer = await signed.post(body)
        statuses.append(status)
        assert status < 500, (status, answer)
        if status >= 400:
            assert answer["error"], answer
    # The usage errors are answered to the user (200, visible only to them), the rest 4xx.
    assert statuses.count(200) == 2, statuses
    metrics = await metrics_text(signed)
    refused = sum(
        counter(metrics, "proxbus_discord_requests_total", outcome=o)
        for o in ("invalid", "invalid_json", "unknown_type", "unknown_command", "unknown_component")
    )
    assert refused == len(bodies) - 2
    assert counter(metrics, "proxbus_discord_requests_total", outcome="unavailable") == 0
