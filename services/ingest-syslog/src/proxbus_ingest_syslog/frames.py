"""RFC 6587 framing of a syslog TCP stream: octet counting and LF/NUL-terminated frames."""

from __future__ import annotations

from dataclasses import dataclass

_MAX_LEN_DIGITS = 10  # a MSG-LEN longer than this is not octet counting but text


@dataclass(slots=True)
class Frame:
    """One syslog message as received; ``truncated`` when it was cut at the line limit."""

    data: bytes
    truncated: bool = False


class SyslogFramer:
    """Splits one TCP connection's byte stream into frames.

    The framing is detected per connection from its first byte: a digit means octet
    counting (``MSG-LEN SP MSG``, RFC 6587 3.4.1), anything else (``<``) LF or NUL
    terminated frames (3.4.2; a trailing CR is removed). On an octet-counting connection a
    frame without a valid length is read up to the next LF/NUL, to resynchronise. A frame longer than ``max_frame`` bytes is cut to
    ``max_frame`` and flagged; the rest of it is discarded. Never raises on any input.
    """

    __slots__ = ("_buf", "_discard_line", "_octet", "_skip", "max_frame")

    def __init__(self, max_frame: int = 64 * 1024) -> None:
        self.max_frame = max_frame
        self._buf = b""
        self._skip = 0  # bytes of an oversize octet-counted frame still to discard
        self._discard_line = False  # inside an oversize LF frame: discard up to its end
        self._octet: bool | None = None  # framing of this connection, once known

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """The complete frames in what arrived so far (partial frames are kept)."""
        buf = self._buf + data if self._buf else data
        out: list[Frame] = []
        pos = 0
        n = len(buf)
        limit = self.max_frame
        while pos < n:
            if self._skip:
                take = min(self._skip, n - pos)
                pos += take
                self._skip -= take
                continue
            if self._discard_line:
                end = _terminator(buf, pos, n)
                if end < 0:
                    pos = n
                    break
                pos = end + 1
                self._discard_line = False
                continue
            first = buf[pos]
            if self._octet is None and first not in _TERMINATORS:
                self._octet = 0x30 <= first <= 0x39
            if (
                self._octet and 0x30 <= first <= 0x39
            ):  # a digit: octet counting, if a length and SP follow
                space = buf.find(b" ", pos, pos + _MAX_LEN_DIGITS + 1)
                if space < 0:
                    digits = buf[pos : pos + _MAX_LEN_DIGITS + 1]
                    if len(digits) <= _MAX_LEN_DIGITS and digits.isdigit():
                        break  # the length is not complete yet
                elif buf[pos:space].isdigit():
                    length = int(buf[pos:space])
                    start = space + 1
                    if length > limit:
                        if n - start < limit:
                            break
                        out.append(Frame(buf[start : start + limit], True))
                        pos = start + limit
                        self._skip = length - limit
                        continue
                    if n - start < length:
                        break
                    if length:
                        out.append(Frame(buf[start : start + length]))
                    pos = start + length
                    continue
            if first == 0x0A or first == 0x00 or first == 0x0D:
                pos += 1  # empty frame / stray terminator
                continue
            end = _terminator(buf, pos, n)
            if end < 0:
                if n - pos > limit:
                    out.append(Frame(buf[pos : pos + limit], True))
                    self._discard_line = True
                    pos = n
                break
            stop = end - 1 if buf[end - 1] == 0x0D else end
            if stop - pos > limit:
                out.append(Frame(buf[pos : pos + limit], True))
            else:
                out.append(Frame(buf[pos:stop]))
            pos = end + 1
        self._buf = buf[pos:] if pos < n else b""
        return out

    def finish(self) -> list[Frame]:
        """At end of stream: the last frame even without its terminator."""
        rest, self._buf = self._buf, b""
        if self._skip or self._discard_line or not rest.strip(b"\r\n\x00"):
            return []
        if self._octet and rest[:1].isdigit():
            length, space, body = rest.partition(b" ")
            if space and length.isdigit() and len(length) <= _MAX_LEN_DIGITS:
                rest = body  # a short octet-counted frame cut off by the peer
        rest = rest.rstrip(b"\r\n\x00")
        if len(rest) > self.max_frame:
            return [Frame(rest[: self.max_frame], True)]
        return [Frame(rest)] if rest else []


_TERMINATORS = frozenset(b"\r\n\x00")


def _terminator(buf: bytes, start: int, end: int) -> int:
    """Index of the first LF or NUL in ``buf[start:end]``, or -1."""
    lf = buf.find(b"\n", start, end)
    nul = buf.find(b"\x00", start, lf if lf >= 0 else end)
    return nul if nul >= 0 else lf


def datagram_frame(data: bytes, max_frame: int) -> Frame:
    """A UDP datagram is exactly one message (a trailing LF/NUL is not part of it)."""
    data = data.rstrip(b"\r\n\x00")
    if len(data) > max_frame:
        return Frame(data[:max_frame], True)
    return Frame(data)
