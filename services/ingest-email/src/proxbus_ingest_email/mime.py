"""Mail parsing: raw RFC 5322 bytes to a ``ParsedMail`` with one text body, never raising.

Pure (no I/O). Parsed with the stdlib ``email`` package under the ``compat32`` policy:
``policy.default`` builds a header object per access and measured ~10 ms per vzdump mail
against ~1 ms here, so encoded-words are decoded explicitly instead. Reads ``text/plain`` where present, else ``text/html`` turned into text;
decodes RFC 2047 encoded-words and body charsets; an unknown charset is decoded as UTF-8
with replacement characters and flagged; broken MIME is read best-effort and flagged.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

# Anomalies a parsed mail can be flagged with (also the metric label values).
BROKEN_MIME = "broken_mime"
UNKNOWN_CHARSET = "unknown_charset"
NO_TEXT_PART = "no_text_part"
HTML_ONLY = "html_only"
UNDECODABLE_HEADER = "undecodable_header"

# Headers that make bytes look like a mail at all.
_MAIL_HEADERS = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "received",
        "mime-version",
        "content-type",
        "return-path",
        "reply-to",
        "sender",
    }
)
_TEXT_LIMIT = 1024 * 1024  # characters of body text kept for classification
# The stdlib parser checks every body line against the boundary of every open multipart:
# 900 nested multiparts made a 172 KB mail take 8 s (a 10 MiB one, minutes). A Proxmox mail
# has one or two, a forward or a gateway adds a few; past this count only the top-level
# headers are parsed and the body is read as plain text (flagged broken_mime).
MAX_MULTIPARTS = 8
_MULTIPART_HEADER = re.compile(
    rb"^content-type:[ \t]*(?:\r?\n[ \t]+)?multipart/", re.IGNORECASE | re.MULTILINE
)
_MAX_HOPS = 50  # Received headers kept, the oldest (the origin is the last one)


@dataclass(slots=True)
class ParsedMail:
    """The parts of a mail the classifier needs, decoded to text."""

    subject: str = ""
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    date: datetime | None = None
    message_id: str | None = None
    text: str = ""
    text_source: str = "none"  # plain | html | none
    headers: dict[str, str] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)  # Received headers, newest first
    attachments: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    has_mail_headers: bool = False
    size: int = 0

    def flag(self, anomaly: str) -> None:
        if anomaly not in self.anomalies:
            self.anomalies.append(anomaly)


class _TextExtractor(HTMLParser):
    """Collects visible text from HTML: block elements and table rows become line breaks."""

    _BLOCK = frozenset(
        [
            "p",
            "div",
            "br",
            "tr",
            "li",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "pre",
            "table",
            "ul",
            "ol",
            "hr",
            "blockquote",
            "section",
            "article",
        ]
    )
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag == "pre":
            self._pre += 1
            self.parts.append("\n")
        elif tag in self._BLOCK or tag == "tr":
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("  ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self.parts.append("\n")
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.parts.append(data if self._pre else re.sub(r"[ \t\r\n]+", " ", data))


# A tag as the extractor needs it: its name (attributes carry no visible text). Bounded, so
# finding one costs at most the distance to the next "<" or ">" (linear over a document).
_MARKUP = re.compile(
    r"<(?:(/?)([A-Za-z][A-Za-z0-9:-]{0,31})(?=[\s/>])[^<>]{0,1000}>|[!?][^<>]{0,1000}>)?"
)


def _markup(m: re.Match[str]) -> str:
    if m[2] is not None:
        return f"<{m[1]}{m[2]}>"
    return "" if len(m[0]) > 1 else "&lt;"  # a declaration dropped; a stray "<" is text


def _plain_markup(html: str) -> str:
    """``html`` rewritten so that ``html.parser`` reads it in linear time.

    ``html.parser`` rescans to the end of its input for every unfinished tag, comment or
    quoted attribute value (``"<a " * 13_000``, 40 KB, took 66 s; ``'<a b="'`` repeated 9.5 s:
    one hostile HTML-only mail could hold a worker for hours). Here comments are removed (an
    unterminated one runs to the end, as in a browser), declarations and processing
    instructions dropped, every tag reduced to its name, and a ``<`` that starts no tag becomes
    ``&lt;`` — the visible text is the same. ``tests/test_fuzz_email.py`` keeps the inputs.
    Still about 3 s per MB of markup on a loaded machine, so only ``_TEXT_LIMIT`` is read.
    """
    pieces: list[str] = []
    pos = 0
    while (start := html.find("<!--", pos)) >= 0:
        pieces.append(html[pos:start])
        end = html.find("-->", start + 4)
        if end < 0:
            pos = len(html)
            break
        pos = end + 3
    pieces.append(html[pos:])
    return _MARKUP.sub(_markup, "".join(pieces))


def html_to_text(html: str) -> str:
    """Visible text of an HTML document (tags dropped, entities decoded, rows on lines)."""
    parser = _TextExtractor()
    try:
        # The text is cut at _TEXT_LIMIT anyway, and no markup is shorter than its text.
        parser.feed(_plain_markup(html[:_TEXT_LIMIT]))
        parser.close()
    except Exception:  # html.parser is lenient; this is a last line of defence
        return re.sub(r"<[^<>]*>", " ", html[:_TEXT_LIMIT])
    lines = (line.strip() for line in "".join(parser.parts).splitlines())
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _decode_header_value(value: object, mail: ParsedMail) -> str:
    """A header as text: encoded-words decoded, never raising."""
    raw = str(value) if value is not None else ""
    if "=?" in raw:
        try:
            raw = str(make_header(decode_header(raw)))
        except Exception:
            mail.flag(UNDECODABLE_HEADER)
    return " ".join(raw.split())


def _charset_known(charset: str | None) -> bool:
    if not charset:
        return True
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    return True


def _part_text(part: Message, mail: ParsedMail) -> str:
    """Decoded text of a leaf part; unknown charsets become UTF-8 with replacement."""
    charset = part.get_content_charset()
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
        mail.flag(BROKEN_MIME)
    if payload is None:
        raw = part.get_payload()
        payload = raw.encode("utf-8", "replace") if isinstance(raw, str) else b""
    if not isinstance(payload, bytes):
        payload = str(payload).encode("utf-8", "replace")
    if not _charset_known(charset):
        mail.flag(UNKNOWN_CHARSET)
        charset = "utf-8"
    try:
        return payload.decode(charset or "utf-8", errors="replace")
    except (LookupError, UnicodeError):
        mail.flag(UNKNOWN_CHARSET)
        return payload.decode("utf-8", errors="replace")


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    return disposition == "attachment"


def _clean(text: str) -> str:
    """``text`` without lone surrogates (8-bit header bytes kept by the parser)."""
    if any("\udc80" <= c <= "\udcff" for c in text):
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


_BOUNDARY_LINE_RE = re.compile(r"^--(\S{1,200}?)(?:--)?\s*$", re.MULTILINE)


def _salvage_parts(part: Message, plain: list[str], html: list[str], mail: ParsedMail) -> None:
    """Split a multipart body whose declared boundary is wrong on the boundary it really uses."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return
    match = _BOUNDARY_LINE_RE.search(payload)
    if match is None:
        if payload.strip():
            plain.append(payload)
        return
    marker = re.compile(rf"^--{re.escape(match.group(1))}(?:--)?[ \t]*\r?$", re.MULTILINE)
    for chunk in marker.split(payload)[1:]:
        if not chunk.strip():
            continue
        sub = email.message_from_string(chunk.lstrip("\r\n"), policy=email.policy.compat32)
        ctype = sub.get_content_type()
        if ctype == "text/plain" and not _is_attachment(sub):
            plain.append(_part_text(sub, mail))
        elif ctype == "text/html" and not _is_attachment(sub):
            html.append(_part_text(sub, mail))


def _walk_bodies(msg: Message, mail: ParsedMail) -> None:
    plain: list[str] = []
    html: list[str] = []
    html_parts: list[Message] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype.startswith("multipart/"):
            # A multipart leaf means its boundary was not found: salvage the sub-parts.
            mail.flag(BROKEN_MIME)
            _salvage_parts(part, plain, html, mail)
        elif _is_attachment(part) or ctype not in ("text/plain", "text/html"):
            try:
                name = _clean(_decode_header_value(part.get_filename() or "unnamed", mail))
            except Exception:
                name = "unnamed"
            mail.attachments.append(f"{name} ({ctype})")
        elif ctype == "text/plain":
            plain.append(_part_text(part, mail))
        else:
            html_parts.append(part)  # decoded only when there is no text/plain
    if not any(p.strip() for p in plain):
        html.extend(_part_text(part, mail) for part in html_parts)
    if any(p.strip() for p in plain):
        mail.text = "\n".join(p.strip("\r\n") for p in plain)
        mail.text_source = "plain"
    elif html:
        mail.text = html_to_text("\n".join(html))
        mail.text_source = "html"
        mail.flag(HTML_ONLY)
    else:
        mail.flag(NO_TEXT_PART)
    mail.text = mail.text.replace("\r\n", "\n").replace("\x00", "")[:_TEXT_LIMIT]


def _parse_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse ``raw`` mail bytes best-effort; anomalies are flagged, nothing raises."""
    mail = ParsedMail(size=len(raw))
    multiparts = 0
    for _ in _MULTIPART_HEADER.finditer(raw):
        multiparts += 1
        if multiparts > MAX_MULTIPARTS:
            break
    flat = multiparts > MAX_MULTIPARTS
    try:
        msg = BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=flat)
    except Exception:  # the stdlib parser is lenient; keep going with nothing
        mail.flag(BROKEN_MIME)
        mail.text = raw.decode("utf-8", "replace")[:_TEXT_LIMIT]
        mail.text_source = "plain"
        return mail
    for defect in _all_defects(msg):
        mail.defects.append(type(defect).__name__)
    if mail.defects and any(
        d
        in (
            "StartBoundaryNotFoundDefect",
            "CloseBoundaryNotFoundDefect",
            "MultipartInvariantViolationDefect",
            "NoBoundaryInMultipartDefect",
            "MissingHeaderBodySeparatorDefect",
            "InvalidMultipartContentTransferEncodingDefect",
            "MisplacedEnvelopeHeaderDefect",
        )
        for d in mail.defects
    ):
        mail.flag(BROKEN_MIME)
    names = {k.lower() for k in msg}
    mail.has_mail_headers = bool(names & _MAIL_HEADERS)
    mail.subject = _header(msg, "Subject", mail)
    mail.sender = _header(msg, "From", mail)
    to = _header(msg, "To", mail)
    try:
        mail.recipients = [addr for _, addr in getaddresses([to]) if addr]
    except Exception:
        mail.recipients = []
    mail.date = _parse_date(_header(msg, "Date", mail))
    mail.message_id = " ".join(_header(msg, "Message-ID", mail).split())[:998] or None
    try:
        hops = msg.get_all("Received") or []
    except Exception:
        hops = []
    mail.received = [_clean(" ".join(str(h).split()))[:998] for h in hops[-_MAX_HOPS:]]
    for name in ("From", "To", "Subject", "Date", "Message-ID", "X-Mailer", "Auto-Submitted"):
        value = _header(msg, name, mail)
        if value:
            mail.headers[name.lower()] = value[:998]
    if flat:
        mail.flag(BROKEN_MIME)
        payload = msg.get_payload()
        mail.text = (payload if isinstance(payload, str) else "")[:_TEXT_LIMIT]
        mail.text = _clean(mail.text.replace("\r\n", "\n").replace("\x00", ""))
        mail.text_source = "plain" if mail.text.strip() else "none"
        return mail
    try:
        _walk_bodies(msg, mail)
    except Exception:
        mail.flag(BROKEN_MIME)
        payload = msg.get_payload()
        mail.text = (payload if isinstance(payload, str) else "")[:_TEXT_LIMIT]
        mail.text_source = "plain" if mail.text else "none"
    return mail


def _raw_header(msg: Message, name: str) -> str:
    """The first raw (undecoded) value of header ``name``, or ``""``."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return str(value)
    return ""


def _header(msg: Message, name: str, mail: ParsedMail) -> str:
    """Header ``name`` as text: encoded-words decoded, folding removed, raw 8-bit as UTF-8."""
    try:
        value = msg.get(name)
    except Exception:
        mail.flag(UNDECODABLE_HEADER)
        value = _raw_header(msg, name)
    if value is None:
        return ""
    if isinstance(value, Header):
        # compat32 wraps headers with raw 8-bit bytes; the stored string keeps the bytes.
        value = _raw_header(msg, name)
    # 8-bit header bytes (SMTPUTF8 senders) are kept by the parser as surrogates.
    return _clean(_decode_header_value(str(value), mail))


def _all_defects(msg: Message) -> list[object]:
    defects: list[object] = []
    for part in msg.walk():
        defects.extend(getattr(part, "defects", []))
    return defects


def printable_ratio(text: str) -> float:
    """Share of characters in ``text`` that are printable or ordinary whitespace."""
    if not text:
        return 0.0
    sample = text[:4096]
    good = sum(1 for c in sample if (c.isprintable() and c != "\ufffd") or c in "\n\r\t")
    return good / len(sample)
