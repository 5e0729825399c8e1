"""Syslog message parsers: RFC 5424, RFC 3164 as rsyslog/journald send it, and a fallback.

Pure functions, no I/O. ``parse_syslog`` never raises: it returns a ``SyslogMessage`` or a
``Rejection`` that says why the input is not a syslog message at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from proxbus_events.classification import Rejection as Rejection  # re-exported

DEFAULT_PRI = 13  # user.notice, RFC 3164 4.3.3 for a message without PRI
NILVALUE = "-"
_BOM = "\ufeff"

_PRI = re.compile(r"<(\d{1,3})>")
_RFC5424 = re.compile(r"1 (\S+) (\S+) (\S+) (\S+) (\S+) ?")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_RFC3164_TS = re.compile(
    r"(?:(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2})"
    r"(?: (\d{4}))? (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6})\d*)?(?: (\d{4}))?"
    r"|(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?))"
    r"(?: +|$)"
)
_TAG = re.compile(r"([^\s\[\]:]{1,64})(?:\[([^\]\s]{0,32})\])?: ?")
_TAG_WORD = re.compile(r"[^\s\[\]:]{1,64}(?:\[[^\]\s]{0,32}\])?:")
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,252}")
_SD_ELEMENT = re.compile(r'\[([^\s=\]"]{1,32})((?:\s+[^\s=\]"]{1,32}="(?:[^"\\]|\\.)*")*)\s*\]')
_SD_PARAM = re.compile(r'([^\s=\]"]{1,32})="((?:[^"\\]|\\.)*)"')
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_ISO_OFFSET_NO_COLON = re.compile(r"([+-]\d{2})(\d{2})$")


@dataclass(slots=True)
class SyslogMessage:
    """One parsed syslog message (``format`` says which grammar matched)."""

    pri: int
    message: str
    format: str  # "rfc5424" | "rfc3164" | "fallback"
    timestamp: datetime | None = None
    hostname: str | None = None
    app: str | None = None
    procid: str | None = None
    msgid: str | None = None
    structured_data: dict[str, dict[str, str]] = field(default_factory=dict)
    truncated: bool = False

    @property
    def facility(self) -> int:
        return self.pri >> 3

    @property
    def severity(self) -> int:
        return self.pri & 7


def parse_syslog(
    data: bytes,
    *,
    received_at: datetime | None = None,
    tz: tzinfo = UTC,
    truncated: bool = False,
) -> SyslogMessage | Rejection:
    """Parse one frame. ``tz`` is the senders' zone for RFC 3164 times without an offset."""
    try:
        return _parse(data, received_at or datetime.now(UTC), tz, truncated)
    except Exception:  # a parser bug must cost one line, never the connection
        return Rejection("parser_error")


def _parse(data: bytes, now: datetime, tz: tzinfo, truncated: bool) -> SyslogMessage | Rejection:
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return Rejection("empty")
    if not text.isascii() or not text.isprintable():
        bad = len(_BINARY.findall(text))
        if bad * 10 > len(text):
            return Rejection("binary")
    match = _PRI.match(text)
    if match:
        pri = int(match[1])
        if pri > 191:
            return Rejection("bad_pri")
        rest = text[match.end() :]
        if rest.startswith("1 "):
            parsed = _parse_5424(pri, rest)
            if parsed is not None:
                parsed.truncated = truncated
                return parsed
    else:
        pri = -1
        rest = text
    msg = _parse_3164(pri, rest, now, tz)
    if msg is None:
        if pri < 0:
            return Rejection("no_header")
        if not rest.strip():
            return Rejection("empty")
        msg = SyslogMessage(pri=pri, message=rest.strip(), format="fallback")
    msg.truncated = truncated
    return msg


def _parse_5424(pri: int, rest: str) -> SyslogMessage | None:
    m = _RFC5424.match(rest)
    if m is None:
        return None
    ts_text, host, app, procid, msgid = m.groups()
    timestamp = None
    if ts_text != NILVALUE:
        timestamp = _iso_timestamp(ts_text, UTC)
        if timestamp is None:
            return None
    pos = m.end()
    sd: dict[str, dict[str, str]] = {}
    if rest.startswith(NILVALUE, pos):
        pos += 1
    else:
        while pos < len(rest) and rest[pos] == "[":
            el = _SD_ELEMENT.match(rest, pos)
            if el is None:
                break  # tolerate: the rest is message text
            sd[el[1]] = {
                name: _SD_UNESCAPE.sub(r"\1", value) for name, value in _SD_PARAM.findall(el[2])
            }
            pos = el.end()
    message = rest[pos:]
    if message.startswith(" "):
        message = message[1:]
    if message.startswith(_BOM):
        message = message[1:]
    return SyslogMessage(
        pri=pri,
        message=message,
        format="rfc5424",
        timestamp=timestamp,
        hostname=None if host == NILVALUE else host,
        app=None if app == NILVALUE else app,
        procid=None if procid == NILVALUE else procid,
        msgid=None if msgid == NILVALUE else msgid,
        structured_data=sd,
    )


def _parse_3164(pri: int, rest: str, now: datetime, tz: tzinfo) -> SyslogMessage | None:
    m = _RFC3164_TS.match(rest)
    timestamp: datetime | None = None
    if m is not None:
        timestamp = _iso_timestamp(m[9], tz) if m[9] is not None else _bsd_timestamp(m, now, tz)
        if timestamp is None:
            m = None
    if m is None:
        if pri < 0:
            return None  # neither PRI nor a timestamp: not syslog
        pos = 0
    else:
        pos = m.end()
    host: str | None = None
    if m is not None:
        word_end = rest.find(" ", pos)
        word = rest[pos:] if word_end < 0 else rest[pos:word_end]
        if word and not _TAG_WORD.fullmatch(word) and _HOSTNAME.fullmatch(word):
            host = word
            pos = len(rest) if word_end < 0 else word_end + 1
    app = procid = None
    tag = _TAG.match(rest, pos)
    if tag is not None:
        app, procid = tag[1], tag[2]
        pos = tag.end()
    message = rest[pos:].strip()
    return SyslogMessage(
        pri=DEFAULT_PRI if pri < 0 else pri,
        message=message,
        format="rfc3164" if m is not None else "fallback",
        timestamp=timestamp,
        hostname=host,
        app=app,
        procid=procid or None,
    )


_TS_CACHE: dict[tuple[str, tzinfo, int, int, int], datetime | None] = {}


def _bsd_timestamp(m: re.Match[str], now: datetime, tz: tzinfo) -> datetime | None:
    """Cached: a busy sender repeats the same second many times."""
    key = (m[0], tz, now.year, now.month, now.day)
    found = _TS_CACHE.get(key, now)
    if found is not now:
        return found
    if len(_TS_CACHE) >= 4096:
        _TS_CACHE.clear()
    ts = _TS_CACHE[key] = _bsd_timestamp_uncached(m, now, tz)
    return ts


def _bsd_timestamp_uncached(m: re.Match[str], now: datetime, tz: tzinfo) -> datetime | None:
    month = _MONTHS[m[1]]
    day = int(m[2])
    year_text = m[3] or m[8]
    micro = int(m[7].ljust(6, "0")) if m[7] else 0
    try:
        if year_text:
            return datetime(
                int(year_text), month, day, int(m[4]), int(m[5]), int(m[6]), micro, tzinfo=tz
            ).astimezone(UTC)
        local_now = now.astimezone(tz)
        ts = datetime(local_now.year, month, day, int(m[4]), int(m[5]), int(m[6]), micro, tzinfo=tz)
        if ts - local_now > timedelta(days=2):  # "Dec 31" received on Jan 1
            ts = ts.replace(year=ts.year - 1)
        return ts.astimezone(UTC)
    except (ValueError, OverflowError):  # "Dec 31 9999 23:59:59" in a zone west of UTC
        return None


def _iso_timestamp(text: str, tz: tzinfo) -> datetime | None:
    try:
        ts = datetime.fromisoformat(_ISO_OFFSET_NO_COLON.sub(r"\1:\2", text))
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=tz)
        return ts.astimezone(UTC)
    except (ValueError, OverflowError):  # year 9999 west of UTC overflows in UTC
        return None
