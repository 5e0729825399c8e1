"""Children's output under ``proxbus up``: one log file per service, secrets redacted.

Every line a child writes (stdout and stderr) goes to ``<data-dir>/logs/<service>.log``, after
``Redactor`` replaced every known secret with ``***``; the file rotates at ``MAX_BYTES`` (one
``.1`` kept). ``proxbus logs [SERVICE] [-f] [-n N]`` prints them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

MAX_BYTES = 10 * 1024 * 1024
MAX_LINE = 16 * 1024
STREAM_LIMIT = 1024 * 1024  # asyncio StreamReader limit given to create_subprocess_exec
FOLLOW_INTERVAL = 0.25

LineHandler = Callable[[str], None]


def logs_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


class Redactor:
    """Replaces known secret values in text (the demo's tokens and passwords...)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # Short values would mangle ordinary text (and are no secret worth the name).
        self._secrets.update(s for s in secrets if len(s) >= 6)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "***")
        return text


class LogFile:
    """Appends lines to one service's log file, rotating it at ``max_bytes``."""

    def __init__(self, path: Path, redact: Redactor, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.redact = redact
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO = path.open("a", encoding="utf-8", errors="replace")
        self._size = path.stat().st_size

    def write(self, line: str) -> str:
        """Write one line (redacted, bounded); returns what was written, without the newline."""
        text = self.redact(line.rstrip("\r\n"))
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + f" … ({len(text) - MAX_LINE} more characters)"
        data = text + "\n"
        if self._size + len(data) > self.max_bytes:
            self._rotate()
        self._fh.write(data)
        self._fh.flush()
        self._size += len(data.encode("utf-8", errors="replace"))
        return text

    def _rotate(self) -> None:
        self._fh.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._fh = self.path.open("a", encoding="utf-8", errors="replace")
        self._size = 0

    def close(self) -> None:
        self._fh.close()


async def pump(reader: asyncio.StreamReader, sink: LogFile, *handlers: LineHandler) -> None:
    """Copy ``reader`` line by line into ``sink``, handing each written line to ``handlers``."""
    while True:
        try:
            raw = await reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            # A line longer than the stream limit: take what is buffered as one line.
            raw = await reader.read(STREAM_LIMIT)
        if not raw:
            return
        text = sink.write(raw.decode("utf-8", errors="replace"))
        for handler in handlers:
            handler(text)


# ---------------------------------------------------------------------------- proxbus logs


def _tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of ``path`` (reads at most ~1 MiB from its end)."""
    if lines <= 0 or not path.exists():
        return []
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 1024 * 1024))
        data = fh.read()
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def show_logs(
    data_dir: Path,
    service: str | None,
    *,
    lines: int = 50,
    follow: bool = False,
    out: TextIO | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """``proxbus logs``: the last ``lines`` of one log (or of each, prefixed), then follow."""
    out = out or sys.stdout
    directory = logs_dir(data_dir)
    known = sorted(p.stem for p in directory.glob("*.log")) if directory.is_dir() else []
    if service is not None and service not in known:
        have = ", ".join(known) or "none yet: is `proxbus up` running with this --data-dir?"
        print(
            f"proxbus logs: no log for {service!r} in {directory} (have: {have})", file=sys.stderr
        )
        return 1
    if not known:
        print(f"proxbus logs: no logs in {directory}: start `proxbus up` first", file=sys.stderr)
        return 1
    names = [service] if service else known
    width = max(len(n) for n in names)

    def emit(name: str, line: str) -> None:
        out.write(f"{name:<{width}} | {line}\n" if service is None else f"{line}\n")

    positions: dict[str, tuple[int, int]] = {}
    for name in names:
        path = directory / f"{name}.log"
        for line in _tail(path, lines):
            emit(name, line)
        stat = path.stat()
        positions[name] = (stat.st_ino, stat.st_size)
    out.flush()
    if not follow:
        return 0
    try:
        while not stop():
            for name in names:
                path = directory / f"{name}.log"
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                inode, offset = positions[name]
                if stat.st_ino != inode or stat.st_size < offset:
                    offset = 0  # rotated or truncated: read the new file from its start
                if stat.st_size > offset:
                    with path.open("rb") as fh:
                        fh.seek(offset)
                        data = fh.read()
                    complete = data.rfind(b"\n") + 1
                    for line in data[:complete].decode("utf-8", errors="replace").splitlines():
                        emit(name, line)
                    offset += complete
                positions[name] = (stat.st_ino, offset)
            out.flush()
            time.sleep(FOLLOW_INTERVAL)
    except KeyboardInterrupt:
        return 0
    return 0
