"""Hostile-input suite (issue 19): property-based fuzzing of every parser a remote party feeds.

Bounded in time for CI: each property runs a fixed number of examples with a per-example
deadline, derandomized so a CI run is reproducible (a failure prints its example).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxbus_events import MESSAGE_LIMIT, Event
from proxbus_ingest_email.classify import Rejection as MailRejection
from proxbus_ingest_email.intake import mail_to_event
from proxbus_ingest_email.mime import parse_mail
from proxbus_ingest_pve_ws.notification import (
    NotificationError,
    parse_webhook_body,
    webhook_event,
)
from proxbus_ingest_pve_ws.webhook import MAX_JSON_DEPTH, json_nesting_depth
from proxbus_ingest_syslog.frames import SyslogFramer
from proxbus_ingest_syslog.parse import Rejection as SyslogRejection
from proxbus_ingest_syslog.parse import SyslogMessage, parse_syslog

FUZZ = settings(
    max_examples=300,
    deadline=500,  # ms per example: a parser that goes quadratic fails here
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

# Bytes that matter to the framers and parsers, plus anything else.
_SYSLOG_BYTES = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.sampled_from(
            [
                b"<",
                b">",
                b"13",
                b"<34>",
                b"1 ",
                b"2026-11-24T10:00:00Z ",
                b"Nov 24 10:00:00 ",
                b"pve1 ",
                b"pvedaemon[42]: ",
                b"- ",
                b'[x a="b"] ',
                b"\n",
                b"\r\n",
                b"\x00",
                b"\xef\xbb\xbf",
                b"\xff",
                b"9999999999 ",
                b"0 ",
                b"5 ",
                b"end task UPID:",
            ]
        ),
        max_size=40,
    ).map(b"".join),
)


def _frames_of(framer: SyslogFramer, chunks: list[bytes]) -> list[tuple[bytes, bool]]:
    out = []
    for chunk in chunks:
        out.extend((f.data, f.truncated) for f in framer.feed(chunk))
    out.extend((f.data, f.truncated) for f in framer.finish())
    return out


@FUZZ
@given(stream=_SYSLOG_BYTES, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_syslog_framer_is_bounded_and_independent_of_how_tcp_splits_the_stream(
    stream: bytes, cuts: list[int]
) -> None:
    limit = 64
    whole = _frames_of(SyslogFramer(limit), [stream])
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    split = _frames_of(SyslogFramer(limit), [c for c in chunks if c])
    assert split == whole
    assert all(len(data) <= limit for data, _ in whole)


@FUZZ
@given(data=_SYSLOG_BYTES)
def test_syslog_parser_answers_a_message_or_a_rejection_never_raises(data: bytes) -> None:
    result = parse_syslog(data, received_at=NOW, tz=UTC, truncated=False)
    assert isinstance(result, SyslogMessage | SyslogRejection)


_MAIL_PIECES = st.sampled_from(
    [b"Subject: ", b"=?utf-8?b?w6k=?=", b"=?x-unknown?q?caf=E9?=", b"From: root@pve1\r\n",
     b"Message-ID: <a@b>\r\n", b"Date: Mon, 24 Nov 2026 01:02:03 +0000\r\n",
     b"MIME-Version: 1.0\r\n", b'Content-Type: multipart/mixed; boundary="b"\r\n',
     b"Content-Type: text/html; charset=x-bogus\r\n", b"Content-Transfer-Encoding: base64\r\n",
     b"Content-Transfer-Encoding: quoted-printable\r\n", b"\r\n", b"--b\r\n", b"--b--\r\n",
     b"<table><tr><td>", b"<script>", b"=E9=\r\n", b"\xff\xfe", b"vzdump backup status",
     b"VMID 100 ok\r\n", b" folded\r\n"]
)  # fmt: skip


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=2000),
        st.lists(st.one_of(_MAIL_PIECES, st.binary(max_size=20)), max_size=60).map(b"".join),
    )
)
def test_mime_parser_and_mail_classifier_never_raise_and_stay_within_the_contract(
    raw: bytes,
) -> None:
    parse_mail(raw)
    result = mail_to_event(raw, site="lab", via="smtp")
    assert isinstance(result, Event | MailRejection)
    if isinstance(result, Event):
        assert len(result.message.encode()) <= MESSAGE_LIMIT + 64


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@FUZZ
@given(
    value=_JSON,
    nest=st.integers(min_value=0, max_value=3000),
    limit=st.integers(min_value=0, max_value=12),
)
def test_webhook_depth_check_matches_json_and_bounds_the_parser(
    value: object, nest: int, limit: int
) -> None:
    text = json.dumps(value).encode()
    real = _depth(value)
    assert (json_nesting_depth(text, limit=limit) > limit) == (real > limit)
    deep = b"[" * nest + text + b"]" * nest
    depth = json_nesting_depth(deep)
    assert (depth > MAX_JSON_DEPTH) == (nest + real > MAX_JSON_DEPTH)


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=600),
        _JSON.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"title": st.text(max_size=300), "message": st.text(max_size=300)},
            optional={"severity": _JSON, "timestamp": _JSON, "fields": _JSON, "priority": _JSON},
        ).map(lambda v: json.dumps(v).encode()),
    ),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_webhook_body_parser_raises_only_its_own_error(body: bytes, content_type: str) -> None:
    if json_nesting_depth(body) > MAX_JSON_DEPTH:
        return  # answered 400 before parsing (covered above)
    try:
        event = webhook_event(parse_webhook_body(body, content_type), site="lab")
    except NotificationError:
        return
    assert isinstance(event, Event)
    assert event.source == "pve-webhook"
