"""RFC 6587 framing: octet counting, LF/NUL, limits, arbitrary chunking and bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from proxbus_ingest_syslog.frames import Frame, SyslogFramer, datagram_frame


def _all(framer: SyslogFramer, *chunks: bytes) -> list[Frame]:
    out: list[Frame] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out + framer.finish()


def test_lf_nul_and_crlf_terminated_frames() -> None:
    frames = _all(SyslogFramer(), b"<13>a\n<13>b\x00<13>c\r\n\n<13>d")
    assert [f.data for f in frames] == [b"<13>a", b"<13>b", b"<13>c", b"<13>d"]


def test_octet_counted_frames_may_contain_newlines() -> None:
    frames = _all(SyslogFramer(), b"9 <13>a\nb c10 <13>hello!")
    assert [f.data for f in frames] == [b"<13>a\nb c", b"<13>hello!"]


def test_octet_connection_resyncs_on_a_frame_without_length() -> None:
    frames = _all(SyslogFramer(), b"7 <13>oct<13>resync\n8 <13>next")
    assert [f.data for f in frames] == [b"<13>oct", b"<13>resync", b"<13>next"]


def test_partial_frames_wait_for_the_rest() -> None:
    framer = SyslogFramer()
    assert framer.feed(b"10") == []
    assert framer.feed(b" <13>hel") == []
    assert [f.data for f in framer.feed(b"lo!<13>x")] == [b"<13>hello!"]
    assert framer.pending == len(b"<13>x")
    assert [f.data for f in framer.feed(b"\n")] == [b"<13>x"]


def test_oversize_lf_line_is_truncated_flagged_and_the_rest_discarded() -> None:
    framer = SyslogFramer(max_frame=10)
    frames = _all(framer, b"<13>" + b"x" * 30, b"y" * 30 + b"\n<13>ok\n")
    assert frames == [Frame(b"<13>xxxxxx", True), Frame(b"<13>ok")]


def test_oversize_complete_lf_line_is_truncated() -> None:
    assert _all(SyslogFramer(max_frame=4), b"<13>abcdef\n") == [Frame(b"<13>", True)]


def test_oversize_octet_counted_frame_is_truncated_and_skipped() -> None:
    framer = SyslogFramer(max_frame=8)
    frames = _all(framer, b"22 <13>0123456789ab", b"cdefgh", b"5 <13>z")
    assert frames == [Frame(b"<13>0123", True), Frame(b"<13>z")]


def test_lf_connection_treats_leading_digits_as_text() -> None:
    frames = _all(SyslogFramer(), b"<13>x\n2026 is not a length\n12345678901234 neither\n")
    assert [f.data for f in frames] == [
        b"<13>x",
        b"2026 is not a length",
        b"12345678901234 neither",
    ]


def test_datagram_is_one_frame_without_its_trailing_newline() -> None:
    assert datagram_frame(b"<13>a\nb\n", 100) == Frame(b"<13>a\nb")
    assert datagram_frame(b"<13>abcdef", 4) == Frame(b"<13>", True)


@given(st.binary(max_size=2048), st.integers(min_value=16, max_value=256))
def test_arbitrary_bytes_never_raise_and_respect_the_limit(data: bytes, limit: int) -> None:
    frames = _all(SyslogFramer(max_frame=limit), data)
    assert all(len(f.data) <= limit for f in frames)


@given(
    st.lists(st.binary(min_size=1, max_size=64).filter(lambda b: not b[:1].isdigit()), max_size=20),
    st.booleans(),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=10),
)
def test_chunking_does_not_change_the_frames(
    messages: list[bytes], octet: bool, cuts: list[int]
) -> None:
    if octet:
        stream = b"".join(b"%d %s" % (len(m), m) for m in messages)
        expected = messages
    else:
        clean = [m.replace(b"\n", b"").replace(b"\x00", b"").rstrip(b"\r") for m in messages]
        clean = [m for m in clean if m and m[:1] not in b"\r" and not m[:1].isdigit()]
        stream = b"".join(m + b"\n" for m in clean)
        expected = clean
    whole = [f.data for f in _all(SyslogFramer(), stream)]
    chunks, pos, i = [], 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        chunks.append(stream[pos : pos + step])
        pos += step
        i += 1
    pieces = [f.data for f in _all(SyslogFramer(), *chunks)]
    assert whole == pieces == expected
