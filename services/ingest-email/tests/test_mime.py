"""mime.py: text extraction, decoding and best-effort parsing of hostile mail."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from proxbus_ingest_email.classify import Rejection, build_event
from proxbus_ingest_email.mime import (
    BROKEN_MIME,
    HTML_ONLY,
    NO_TEXT_PART,
    UNKNOWN_CHARSET,
    html_to_text,
    parse_mail,
)


def test_text_plain_is_preferred_over_html(mails):
    raw = mails.notification("s", "plain body", "<p>html body</p>")
    mail = parse_mail(raw)
    assert mail.text.strip() == "plain body"
    assert mail.text_source == "plain"


def test_html_only_mail_falls_back_to_visible_text():
    raw = (
        b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style></head><body><p>Hello &amp; welcome</p>"
        b"<table><tr><td>100</td><td>ok</td></tr></table><script>x()</script></body></html>"
    )
    mail = parse_mail(raw)
    assert mail.text_source == "html"
    assert HTML_ONLY in mail.anomalies
    assert "Hello & welcome" in mail.text
    assert "100  ok" in mail.text
    assert "x()" not in mail.text
    assert "p{}" not in mail.text


def test_encoded_word_subject_and_latin1_body_are_decoded():
    raw = (
        b"Subject: =?utf-8?q?Sicherung_f=C3=BCr_VM_100?= =?iso-8859-1?b?5A==?=\r\n"
        b"From: root@pve1\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xfc\xdfe\r\n"
    )
    mail = parse_mail(raw)
    assert mail.subject == "Sicherung für VM 100ä"
    assert mail.text.strip() == "Grüße"
    assert mail.anomalies == []


def test_unknown_charset_decodes_as_utf8_with_replacement_and_is_flagged():
    raw = (
        b"Subject: x\r\nContent-Type: text/plain; charset=x-klingon-42\r\n\r\ncaf\xc3\xa9 \xff\r\n"
    )
    mail = parse_mail(raw)
    assert UNKNOWN_CHARSET in mail.anomalies
    assert mail.text.startswith("café \ufffd")


def test_broken_boundary_is_read_best_effort_and_flagged():
    raw = (
        b"Subject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="XYZ"\r\n\r\n'
        b"--ABC\r\nContent-Type: text/plain\r\n\r\nstill readable\r\n--ABC--\r\n"
    )
    mail = parse_mail(raw)
    assert BROKEN_MIME in mail.anomalies
    assert mail.subject == "broken"
    event = build_event(raw, mail, site="lab")
    assert not isinstance(event, Rejection)
    assert event.kind == "email.message"
    assert "still readable" in event.message


def test_multipart_without_boundary_parameter_is_flagged():
    raw = b"Subject: nob\r\nContent-Type: multipart/mixed\r\n\r\nhello\r\n"
    mail = parse_mail(raw)
    assert BROKEN_MIME in mail.anomalies


def test_mail_without_text_part_lists_attachments():
    raw = (
        b"Subject: report\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
        b'filename="r.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n'
    )
    mail = parse_mail(raw)
    assert NO_TEXT_PART in mail.anomalies
    assert mail.attachments == ["r.pdf (application/pdf)"]
    event = build_event(raw, mail, site="lab")
    assert not isinstance(event, Rejection)
    assert "r.pdf" in event.message


def test_html_to_text_keeps_pre_formatting():
    assert html_to_text("<pre>a   b\nc</pre>") == "a   b\nc"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw):
    mail = parse_mail(raw)
    result = build_event(raw, mail, site="lab")
    assert isinstance(result, Rejection) or result.to_json()


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=200),
    st.text(max_size=500),
    st.sampled_from(["utf-8", "latin-1", "bogus-cs", "", "utf-16"]),
    st.sampled_from(["multipart/alternative", "text/plain", "text/html", "multipart/mixed"]),
)
def test_header_shaped_garbage_never_raises(subject, body, charset, ctype):
    raw = (
        f"Subject: {subject}\r\nContent-Type: {ctype}; charset={charset}; boundary=q\r\n\r\n{body}"
    ).encode("utf-8", "surrogatepass")
    mail = parse_mail(raw)
    result = build_event(raw, mail, site="lab")
    assert isinstance(result, Rejection) or result.to_json()


def test_eight_bit_headers_and_filenames_are_valid_text():
    raw = (
        b"Subject: caf\xc3\xa9 \xff\r\nFrom: \xff@x\r\nMessage-ID: <\xff@x>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\nhello\r\n--b\r\n"
        b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="r\xe9.pdf"'
        b"\r\n\r\nxx\r\n--b--\r\n"
    )
    mail = parse_mail(raw)
    assert mail.subject == "café \ufffd"
    assert mail.attachments == ["r\ufffd.pdf (application/pdf)"]
    event = build_event(raw, mail, site="lab")
    assert not isinstance(event, Rejection)
    assert b"hello" in event.to_json()


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=60), st.binary(max_size=60))
def test_eight_bit_garbage_in_headers_never_breaks_json(header, filename):
    raw = (
        b"Subject: " + header.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="'
        + filename.replace(b"\r", b"").replace(b"\n", b"").replace(b'"', b"")
        + b'"\r\n\r\nxx\r\n--b--\r\n'
    )
    result = build_event(raw, parse_mail(raw), site="lab")
    assert isinstance(result, Rejection) or result.to_json()
