"""Parsers: RFC 5424 (with the RFC's own examples), RFC 3164 variants, fallback, rejections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from proxbus_ingest_syslog.parse import Rejection, SyslogMessage, parse_syslog

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BOM = "\ufeff".encode()


def _ok(data: bytes, **kw: object) -> SyslogMessage:
    result = parse_syslog(data, received_at=NOW, **kw)  # type: ignore[arg-type]
    assert isinstance(result, SyslogMessage), result
    return result


# RFC 5424 section 6.5, examples 1-4.


def test_rfc5424_example_1_with_bom_and_no_structured_data() -> None:
    msg = _ok(
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
        + BOM
        + b"'su root' failed for lonvick on /dev/pts/8"
    )
    assert (msg.facility, msg.severity) == (4, 2)
    assert msg.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert (msg.hostname, msg.app, msg.procid, msg.msgid) == (
        "mymachine.example.com", "su", None, "ID47",
    )  # fmt: skip
    assert msg.structured_data == {}
    assert msg.message == "'su root' failed for lonvick on /dev/pts/8"
    assert msg.format == "rfc5424"


def test_rfc5424_example_2_with_offset_and_microseconds() -> None:
    msg = _ok(
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
        b"%% It's time to make the do-nuts."
    )
    assert (msg.facility, msg.severity) == (20, 5)
    assert msg.timestamp == datetime(
        2003, 8, 24, 5, 14, 15, 3, tzinfo=timezone(timedelta(hours=-7))
    )
    assert (msg.hostname, msg.app, msg.procid, msg.msgid) == ("192.0.2.1", "myproc", "8710", None)
    assert msg.message == "%% It's time to make the do-nuts."


def test_rfc5424_example_3_structured_data_and_bom_message() -> None:
    msg = _ok(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
        + BOM
        + b"An application event log entry..."
    )
    assert msg.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
    }
    assert msg.message == "An application event log entry..."


def test_rfc5424_example_4_two_sd_elements_and_no_message() -> None:
    msg = _ok(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        b'[examplePriority@32473 class="high"]'
    )
    assert msg.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert msg.message == ""


def test_rfc5424_sd_param_escapes_are_undone() -> None:
    msg = _ok(rb'<13>1 - - - - - [x@1 a="q\"uote" b="back\\slash" c="br\]acket"] m')
    assert msg.structured_data["x@1"] == {"a": 'q"uote', "b": "back\\slash", "c": "br]acket"}


def test_rfc5424_all_nilvalues() -> None:
    msg = _ok(b"<13>1 - - - - - -")
    assert (msg.timestamp, msg.hostname, msg.app, msg.procid, msg.msgid) == (None,) * 5
    assert msg.message == ""


def test_rfc5424_broken_sd_is_kept_as_message_text() -> None:
    msg = _ok(b"<13>1 - host app - - [ bad sd] text")
    assert msg.structured_data == {}
    assert msg.message == "[ bad sd] text"


def test_rfc3164_with_host_and_pid() -> None:
    msg = _ok(b"<30>Nov 24 10:00:01 pve1 pvedaemon[12345]: <root@pam> starting task")
    assert msg.timestamp == datetime(2026, 11, 24, 10, 0, 1, tzinfo=UTC)
    assert (msg.hostname, msg.app, msg.procid) == ("pve1", "pvedaemon", "12345")
    assert msg.message == "<root@pam> starting task"
    assert msg.format == "rfc3164"


def test_rfc3164_single_digit_day_and_no_host() -> None:
    msg = _ok(b"<30>Nov  4 10:00:01 pvedaemon[7]: hello")
    assert msg.timestamp == datetime(2026, 11, 4, 10, 0, 1, tzinfo=UTC)
    assert (msg.hostname, msg.app, msg.message) == (None, "pvedaemon", "hello")


def test_rfc3164_with_year() -> None:
    msg = _ok(b"<30>Nov 24 2025 10:00:01 pve1 kernel: x")
    assert msg.timestamp == datetime(2025, 11, 24, 10, 0, 1, tzinfo=UTC)


def test_rfc3164_without_year_from_last_december_is_last_year() -> None:
    msg = parse_syslog(
        b"<30>Dec 31 23:59:59 pve1 kernel: x", received_at=datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC)
    )
    assert isinstance(msg, SyslogMessage)
    assert msg.timestamp == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_rfc3164_local_time_uses_configured_zone() -> None:
    msg = _ok(b"<30>Nov 24 10:00:01 pve1 kernel: x", tz=ZoneInfo("Europe/Berlin"))
    assert msg.timestamp == datetime(2026, 11, 24, 9, 0, 1, tzinfo=UTC)


def test_rsyslog_iso_timestamp_forward_format() -> None:
    msg = _ok(
        b"<30>2026-11-24T10:00:01.123456+01:00 pve1.lab.example qmeventd[99]: Starting cleanup for 100"
    )
    assert msg.timestamp == datetime(2026, 11, 24, 9, 0, 1, 123456, tzinfo=UTC)
    assert (msg.hostname, msg.app, msg.procid) == ("pve1.lab.example", "qmeventd", "99")


def test_journald_style_line_without_pri_gets_default_pri() -> None:
    msg = _ok(b"Nov 24 10:00:01 pve1 systemd[1]: Started foo.")
    assert msg.pri == 13
    assert (msg.app, msg.message) == ("systemd", "Started foo.")


def test_pri_without_header_falls_back_to_tag_or_text() -> None:
    tagged = _ok(b"<12>myapp: something happened")
    assert (tagged.format, tagged.app, tagged.message) == (
        "fallback",
        "myapp",
        "something happened",
    )
    plain = _ok(b"<12>just some words")
    assert (plain.app, plain.message) == (None, "just some words")


def test_not_syslog_is_rejected_with_a_reason() -> None:
    assert parse_syslog(b"") == Rejection("empty")
    assert parse_syslog(b"  \r\n") == Rejection("empty")
    assert parse_syslog(b"hello world") == Rejection("no_header")
    assert parse_syslog(b"<999>1 - - - - - -") == Rejection("bad_pri")
    assert parse_syslog(bytes(range(0, 32)) * 4) == Rejection("binary")
    assert parse_syslog(b"\xff\xfe\xfd\xfc\xfb" * 10) == Rejection("binary")


def test_invalid_utf8_inside_a_valid_line_is_replaced_not_rejected() -> None:
    msg = _ok(b"<30>Nov 24 10:00:01 pve1 app: caf\xe9 ok")
    assert msg.message == "caf\ufffd ok"


def test_truncated_flag_is_carried() -> None:
    assert _ok(b"<30>Nov 24 10:00:01 pve1 app: x", truncated=True).truncated


@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = parse_syslog(data, received_at=NOW)
    assert isinstance(result, SyslogMessage | Rejection)
    if isinstance(result, Rejection):
        assert result.reason != "parser_error"


@given(
    st.sampled_from(["<13>1 ", "<30>Nov 24 10:00:01 ", "<0>", "<191>2026-01-01T00:00:00Z ", ""]),
    st.text(max_size=200),
)
def test_arbitrary_text_after_a_header_never_raises(prefix: str, text: str) -> None:
    result = parse_syslog((prefix + text).encode("utf-8", "surrogatepass"), received_at=NOW)
    assert isinstance(result, SyslogMessage | Rejection)
    if isinstance(result, Rejection):
        assert result.reason != "parser_error"
