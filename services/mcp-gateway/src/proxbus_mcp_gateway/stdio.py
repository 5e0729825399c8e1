"""stdin/stdout for the MCP stdio transport on the event loop, without worker threads.

The SDK's ``stdio_server()`` wraps the standard streams in ``anyio.wrap_file``: every line
read and every write + flush of an answer is a hop to a worker thread and back (measured with
py-spy on ``get_vms`` over stdio: about a fifth of the gateway's busy CPU per call, issue 17).
:func:`native_stdio` gives ``stdio_server()`` the same two streams (an async line iterator, an
async ``write`` / ``flush``) read and written by asyncio pipe transports instead.

As the SDK does, fd 0 and fd 1 are taken over while serving: the wire moves to private
duplicates, fd 0 then reads the null device and fd 1 writes to stderr, so a stray ``print`` or
a child process cannot corrupt the protocol; both are restored on exit. Only pipes and sockets
are served this way (what every MCP client spawns the server with): putting a terminal or a
regular file into non-blocking mode would affect other processes sharing it, so for those
:func:`native_stdio` yields None and the SDK's own streams are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
import sys
from collections.abc import AsyncIterator

MAX_LINE = 32 * 1024 * 1024
"""Longest JSON-RPC line read; a longer one is skipped and answered as a parse error."""


EOF_TURNS = 8


class StdinLines:
    """``async for line in stdin`` over an asyncio pipe (lines keep their newline)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> StdinLines:
        return self

    async def __anext__(self) -> str:
        try:
            raw = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                await _let_last_requests_start()
                raise StopAsyncIteration from None
            raw = exc.partial  # the last line had no newline
        except asyncio.LimitOverrunError:
            await self._skip_line()
            return "\n"  # not JSON: the SDK answers it as a parse error
        return raw.decode("utf-8", errors="replace")

    async def _skip_line(self) -> None:
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await self._reader.readexactly(exc.consumed)
            except asyncio.IncompleteReadError:
                return


class StdoutWriter:
    """``await stdout.write(text)`` / ``await stdout.flush()`` over an asyncio pipe."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


async def _let_last_requests_start() -> None:
    """Give the SDK's handlers of the last lines a turn of the loop before EOF is reported.

    At EOF the SDK cancels its handlers; one spawned but not yet started is then dropped
    without any answer (not even its "Connection closed" error). Read through a worker thread
    the EOF came a thread hop later; these few loop turns (no waiting on time) give the same
    room, so a client that writes a request and closes stdin still gets an answer.
    """
    for _ in range(EOF_TURNS):
        await asyncio.sleep(0)


def _is_pipe_or_socket(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextlib.asynccontextmanager
async def native_stdio() -> AsyncIterator[tuple[StdinLines, StdoutWriter] | None]:
    """The process's stdin/stdout as asyncio streams, or None when they are not pipes/sockets."""
    if not (_is_pipe_or_socket(0) and _is_pipe_or_socket(1)):
        yield None
        return
    loop = asyncio.get_running_loop()
    sys.stdout.flush()
    wire_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    wire_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    # The transports own (and close) their own duplicates; wire_in/out restore fd 0/1.
    in_file = os.fdopen(fcntl.fcntl(wire_in, fcntl.F_DUPFD_CLOEXEC, 3), "rb", buffering=0)
    out_file = os.fdopen(fcntl.fcntl(wire_out, fcntl.F_DUPFD_CLOEXEC, 3), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    writer: asyncio.StreamWriter | None = None
    read_transport: asyncio.ReadTransport | None = None
    try:
        reader = asyncio.StreamReader(limit=MAX_LINE)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), in_file
        )
        write_transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), out_file
        )
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        yield StdinLines(reader), StdoutWriter(writer)
    finally:
        if writer is not None:
            writer.close()  # after what is buffered is written (bounded: a reader may be gone)
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 5)
        else:
            out_file.close()
        if read_transport is not None:
            read_transport.close()
        else:
            in_file.close()
        for fd in (wire_in, wire_out):
            os.set_blocking(fd, True)  # the transports made the shared descriptions non-blocking
        os.dup2(wire_in, 0)
        os.dup2(wire_out, 1)
        os.close(wire_in)
        os.close(wire_out)
