"""Hostile pushed notifications: the PVE webhook body and Gotify messages.

The parsers are property-tested (hypothesis, derandomized): they answer an event or their own
``NotificationError``, nothing else, and the event serializes. The inputs they failed on are
kept as ``@example`` and then sent to the real service (aiohttp server, real nats-server):
the webhook answers 400 and counts it, never 500; the Gotify listener counts the message as
invalid and stays connected (before, one such message broke every reconnect: a poison pill).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from proxbus_events import Event
from proxbus_ingest_pve_ws.notification import (
    NotificationError,
    gotify_event,
    parse_webhook_body,
    webhook_event,
)
from proxbus_ingest_pve_ws.testing import stored_events, wait_until
from proxbus_ingest_pve_ws.webhook import MAX_JSON_DEPTH, json_nesting_depth

from .test_gotify import TOKEN, FakeGotify

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

_DEEP = '{"a":' * 2000 + "1" + "}" * 2000
# Found by the properties below (each raised something else than NotificationError: the
# webhook answered 500, the Gotify listener dropped its connection at every attempt).
HOSTILE_WEBHOOK_BODIES = [
    b'{"title": "\\ud800"}',  # a lone surrogate: ValidationError
    b'{"title": "t", "priority": 1e999}',  # infinity: OverflowError
    b'{"title": "t", "priority": NaN}',  # ValueError
    b'{"title": "t", "timestamp": 1' + b"0" * 5000 + b"}",  # int over 4300 digits: ValueError
    b'{"title": "t", "fields": {"hostname": ["x"]}}',
    b'{"title": "t", "fields": {"hostname": "\\udfff"}}',
]
HOSTILE_GOTIFY_FRAMES = [
    '{"id": %d, "title": "\\ud800"}',
    '{"id": %d, "title": "t", "priority": 1e999}',
    '{"id": %d, "title": "t", "date": "9999-12-31T23:59:59-14:00"}',  # year 10000 in UTC
    '{"id": %d, "title": "t", "extras": ' + _DEEP + "}",  # json.loads: RecursionError
    '{"id": %d, "title": "t", "extras": ' + '{"a":' * 400 + "1" + "}" * 400 + "}",
    '{"id": %d, "title": "t", "appid": 1' + "0" * 5000 + "}",  # ValueError in json.loads
]


def _loads_or_none(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "\ud800", ""])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "title": _SCALARS,
        "message": _SCALARS,
        "severity": st.sampled_from(["error", "info", "unknown", "bogus"]) | _SCALARS,
        "priority": _SCALARS,
        "timestamp": _SCALARS,
        "date": _SCALARS,
        "appid": _SCALARS,
        "extras": _JSON,
        "fields": st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["vzdump", "replication", "fencing", "gc"]) | _SCALARS,
                "hostname": _SCALARS | _JSON,
                "vmid": _SCALARS,
                "job-id": _SCALARS,
                "datastore": _SCALARS,
            },
        ),
    },
)


def _serializes(event: Event) -> None:
    Event.from_json(event.to_json())


@FUZZ
@given(data=_FIELDS)
@example(data={"title": "\ud800"})
@example(data={"title": "t", "priority": float("inf")})
@example(data={"title": "t", "priority": float("nan")})
@example(data={"title": "t", "fields": {"hostname": ["x"]}})
def test_webhook_event_is_an_event_or_a_notification_error(data: dict[str, Any]) -> None:
    try:
        event = webhook_event(data, site="lab")
    except NotificationError:
        return
    _serializes(event)


@FUZZ
@given(body=st.sampled_from(HOSTILE_WEBHOOK_BODIES) | st.binary(max_size=300))
def test_webhook_body_parser_raises_only_notification_error(body: bytes) -> None:
    if json_nesting_depth(body) > MAX_JSON_DEPTH:
        return
    try:
        webhook_event(parse_webhook_body(body, "application/json"), site="lab")
    except NotificationError:
        return


@FUZZ
@given(data=_FIELDS, msg_id=st.integers(min_value=-5, max_value=10**20))
@example(data={"title": "t", "date": "9999-12-31T23:59:59-14:00"}, msg_id=1)
@example(data={"title": "t", "extras": json.loads('{"a":' * 400 + "1" + "}" * 400)}, msg_id=1)
def test_gotify_event_is_an_event_or_a_notification_error(
    data: dict[str, Any], msg_id: int
) -> None:
    try:
        event = gotify_event({**data, "id": msg_id}, site="lab", server="abc")
    except NotificationError:
        return
    _serializes(event)


# --- the real service ----------------------------------------------------------------------


async def _post(port: int, body: bytes) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"http://127.0.0.1:{port}/hooks/pve",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": "Bearer s3cret"},
        ) as r,
    ):
        return r.status, await r.json()


async def test_hostile_webhook_bodies_are_400_and_counted_never_500(services: Any, js: Any) -> None:
    svc = await services.start()
    assert svc.health is not None
    accepted = 0
    for body in HOSTILE_WEBHOOK_BODIES:
        status, reply = await _post(svc.health.port, body)
        # A clear answer: refused with a reason, or (a lone surrogate read as U+FFFD) stored.
        assert (status, reply["status"]) in ((400, "invalid"), (202, "accepted")), body[:60]
        accepted += status == 202
    good = {"title": "after the garbage", "message": "ok", "severity": "info"}
    status, reply = await _post(svc.health.port, json.dumps(good).encode())
    assert status == 202
    titles = [e.title for e in await stored_events(js)]
    assert titles[-1] == "after the garbage"
    assert len(titles) == accepted + 1
    assert "\ufffd" in titles[0]  # the surrogate title is kept, not lost

    def counted(outcome: str) -> float:
        value = svc.registry.get_sample_value(
            "proxbus_pve_webhook_requests_total", {"outcome": outcome}
        )
        return value or 0.0

    assert counted("invalid") == len(HOSTILE_WEBHOOK_BODIES) - accepted
    assert counted("accepted") == accepted + 1


async def test_hostile_gotify_messages_are_counted_and_the_stream_stays_up(
    services: Any, js: Any
) -> None:
    gotify = FakeGotify()
    from proxbus_devtools.testing import serve_app

    async with serve_app(gotify.app) as gotify.port:
        svc = await services.start(gotify_listen_url=gotify.url, gotify_client_token=TOKEN)
        await wait_until(lambda: _connected(svc))
        for frame in HOSTILE_GOTIFY_FRAMES:
            text = frame % (len(gotify.messages) + 1)
            # The REST API lists it too (a reconnect backfills it): keep it parseable there
            # when Python can parse it, as a Gotify server would return it.
            gotify.messages.append(_loads_or_none(text) or {"id": len(gotify.messages) + 1})
            for ws in list(gotify.sockets):
                await ws.send_str(text)
        await gotify.push("after the garbage")

        async def stored() -> bool:
            return any(e.title == "after the garbage" for e in await stored_events(js))

        await wait_until(stored)
        assert svc.gotify.stats.connects == 1  # never dropped the stream
        # Kept: the surrogate title (as U+FFFD), priority 1e999 (info), the year-10000 date
        # (the receive time), the 400-deep extras (dropped); 4 and 6 cannot be read at all.
        ids = sorted(e.metadata["gotify_id"] for e in await stored_events(js))
        assert ids == [1, 2, 3, 5, 7]
        assert svc.gotify.stats.invalid == 2
        await gotify.drop()


async def _connected(svc: Any) -> bool:
    return svc.gotify is not None and svc.gotify.connected.is_set()
