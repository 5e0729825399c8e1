"""A received mail's DATA: in memory up to a threshold, beyond it in an unlinked temp file."""

from __future__ import annotations

import ctypes
import ctypes.util
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, cast

_WRITE_CHUNK = 64 * 1024


class MailBody:
    """Bytes of one DATA transaction; large mails go to disk while they arrive.

    The file is created with ``tempfile.TemporaryFile`` (already unlinked), so a crash leaves
    nothing behind. ``read()`` returns the whole content (for the parser); ``close()`` frees it.
    """

    __slots__ = ("_buf", "_directory", "_file", "size", "threshold")

    def __init__(self, threshold: int, directory: Path | None = None) -> None:
        self.threshold = threshold
        self._directory = directory
        self._buf = bytearray()
        self._file: IO[bytes] | None = None
        self.size = 0

    @property
    def spooled(self) -> bool:
        """True once the content went to disk."""
        return self._file is not None

    def write(self, data: bytes) -> None:
        """Append ``data``.

        Raises:
            OSError: the spool file could not be created or written (disk full).
        """
        self.size += len(data)
        self._buf += data
        if self._file is None:
            if len(self._buf) > self.threshold:
                self._file = tempfile.TemporaryFile(  # noqa: SIM115 (closed in close())
                    prefix="proxbus-mail-", dir=self._directory
                )
                self._spill()
        elif len(self._buf) >= _WRITE_CHUNK:
            self._spill()

    def _spill(self) -> None:
        assert self._file is not None
        self._file.write(self._buf)
        self._buf = bytearray()  # a new object: the old buffer's memory is released

    def read(self) -> bytes:
        """The whole content (read back from disk when spooled)."""
        if self._file is None:
            return bytes(self._buf)
        if self._buf:
            self._spill()
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        """Free the memory and delete the file (idempotent)."""
        self._buf = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on another C library."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast("Callable[[int], int]", trim)


_MALLOC_TRIM = _find_malloc_trim()


def release_memory() -> None:
    """After a large mail: return the freed parser buffers to the OS instead of keeping them.

    glibc keeps freed heap memory for reuse; a few 9 MB mails otherwise leave the process
    hundreds of MB larger for good (issue 19 measured 331 MB held after a burst).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
