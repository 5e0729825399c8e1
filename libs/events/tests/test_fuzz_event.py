"""Hostile wire events and fingerprint stability (hypothesis, derandomized).

``Event.from_json`` is what every consumer of ``proxbus.events.>`` runs on bytes anyone with
publish rights can put there: it must answer an event or a pydantic ``ValidationError`` (which
the consumers catch, count and ``term``), nothing else. Before, a timestamp out of the platform's
range (``1e20``, a date in year 9999 west of UTC) raised ``OverflowError``: the consumer's batch
failed and the message came back forever (a poison pill). The last test runs that through a real
nats-server and the runtime's consumer.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import anyio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from proxbus_events import EVENTS_STREAM, Event, compute_fingerprint, event_subject
from proxbus_runtime import EventConsumer, EventPublisher
from pydantic import ValidationError

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

_HOSTILE_TIMES = [
    1e20, -1e20, 1e300, 2**63, -(2**63), 0, -1, 253402300800, "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00", "2026-11-30T10:00:00", "", "now", None, [], {},
]  # fmt: skip
_TEXT = st.text(max_size=40) | st.sampled_from(["\r\n", "\x00", "a.b", "*", ">", " ", "é" * 300])
_VALUE = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_WIRE = st.fixed_dictionaries(
    {
        "schema": st.just("proxbus.event/v1") | _VALUE,
        "source": st.sampled_from(["syslog", "email", "gotify"]) | _VALUE,
        "kind": st.sampled_from(["vm.started", "syslog.message", "a.b.c", "A.b", "x"]) | _VALUE,
        "title": _TEXT | _VALUE,
    },
    optional={
        "id": _TEXT,
        "timestamp": st.sampled_from(_HOSTILE_TIMES) | _VALUE,
        "received_at": st.sampled_from(_HOSTILE_TIMES) | _VALUE,
        "site": _TEXT,
        "node": _TEXT | _VALUE,
        "severity": st.sampled_from(["info", "error", "bogus"]) | _VALUE,
        "message": _TEXT | _VALUE,
        "vmid": _VALUE,
        "fingerprint": _TEXT,
        "correlation_id": _TEXT | _VALUE,
        "metadata": st.dictionaries(st.text(max_size=8), _VALUE, max_size=3) | _VALUE,
        "extra": _VALUE,
    },
)
_BASE = {"schema": "proxbus.event/v1", "source": "syslog", "kind": "a.b", "title": "t"}


@FUZZ
@given(wire=_WIRE)
@example(wire={**_BASE, "timestamp": 1e20})  # OverflowError before the fix
@example(wire={**_BASE, "timestamp": -1e20})
@example(wire={**_BASE, "received_at": 1e300})
@example(wire={**_BASE, "timestamp": "9999-12-31T23:59:59-14:00"})  # year 10000 in UTC
@example(wire={**_BASE, "timestamp": "0001-01-01T00:00:00+14:00"})  # year 0 in UTC
def test_from_json_answers_an_event_or_a_validation_error(wire: dict[str, Any]) -> None:
    raw = json.dumps(wire).encode()
    try:
        event = Event.from_json(raw)
    except ValidationError:
        return
    again = Event.from_json(event.to_json())
    assert again == event
    assert again.fingerprint == event.fingerprint
    # Safe as a NATS subject whatever the fields hold: five tokens, no wildcard, no space.
    assert re.fullmatch(r"proxbus\.events(\.[a-z0-9_-]+){4}", event_subject(event))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_from_json_on_arbitrary_bytes_raises_only_validation_error(raw: bytes) -> None:
    with contextlib.suppress(ValidationError):
        Event.from_json(raw)


_KIND = st.sampled_from(["backup.failed", "vm.started", "syslog.message", "email.message"])


@FUZZ
@given(
    kind=_KIND,
    site=st.text(min_size=1, max_size=20),
    node=st.none() | st.text(max_size=20),
    vmid=st.none() | st.integers(min_value=0, max_value=999_999_999),
    words=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)),
    numbers=st.lists(st.integers(min_value=0, max_value=10**9), min_size=2, max_size=2),
    spaces=st.sampled_from([" ", "  ", "\t", "\n", " \r\n "]),
)
def test_fingerprint_is_stable_over_rebuilds_whitespace_and_volatile_numbers(
    kind: str,
    site: str,
    node: str | None,
    vmid: int | None,
    words: list[str],
    numbers: list[int],
    spaces: str,
) -> None:
    title = " ".join(words)
    fields = {"source": "syslog", "kind": kind, "site": site, "node": node, "vmid": vmid}
    first = Event(title=f"{title} {numbers[0]}", **fields)  # type: ignore[arg-type]
    second = Event(title=f"{spaces}{spaces.join(words)} {numbers[1]}{spaces}", **fields)  # type: ignore[arg-type]
    # Same input, same fingerprint, through the wire too; the numbers and the spacing of a
    # title are not what makes two alerts different.
    assert first.fingerprint == Event(title=f"{title} {numbers[0]}", **fields).fingerprint  # type: ignore[arg-type]
    assert Event.from_json(first.to_json()).fingerprint == first.fingerprint
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint == compute_fingerprint(kind, site, first.node, vmid, first.title)


async def test_a_consumer_terms_an_out_of_range_timestamp_and_delivers_the_next_event(
    js: Any,
) -> None:
    await js.publish(
        "proxbus.events.x.syslog.info._", json.dumps({**_BASE, "timestamp": 1e20}).encode()
    )
    async with EventPublisher(js) as pub:
        pub.submit(Event(source="syslog", kind="syslog.message", title="after"))
        assert await pub.flush(5)
    consumer = EventConsumer(js, stream=EVENTS_STREAM, durable="fuzz")
    got = []
    with anyio.fail_after(10):
        while not got:
            got = await consumer.events(batch=10, timeout=0.5)
    assert [r.event.title for r in got] == ["after"]
    assert consumer.invalid == 1
