"""Lines from standard input that an event loop can stop waiting for.

``tether connect`` reads what the user types while the client runs. A worker thread blocked
in ``readline()`` cannot be cancelled: on Ctrl-C the program would wait for one more Enter
before it could exit (and a second Ctrl-C would interrupt the interpreter's thread join).
So, on POSIX, the loop itself waits until the descriptor is readable (``anyio.wait_readable``,
epoll/kqueue on asyncio and trio alike) and then ``os.read`` takes what is there, which never
blocks once readiness is reported. Cancelling that wait is an ordinary checkpoint.

Regular files and ``/dev/null`` cannot be polled (epoll refuses them) and never block, so
they are read directly. Where the loop cannot wait on a descriptor at all (Windows), a daemon
thread reads with ``os.read``: it holds no lock of ``sys.stdin``, so an exit while it waits is
clean (the interpreter does not join daemon threads).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
from typing import Final, Literal, TextIO

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["MAX_LINE", "LineTooLong", "ReadMode", "StdinLines"]

#: The longest line kept, in bytes; longer ones are dropped (``LineTooLong``), so a pasted
#: blob cannot grow the buffer without bound.
MAX_LINE: Final = 1 << 20
_CHUNK: Final = 64 * 1024


class LineTooLong(ValueError):
    """A line longer than :data:`MAX_LINE` bytes was read and dropped."""


#: ``poll``: the loop waits for readiness; ``direct``: a file that never blocks;
#: ``thread``: a daemon thread reads (where the loop cannot wait on a descriptor).
ReadMode = Literal["poll", "direct", "thread"]


def _read_mode(fd: int) -> ReadMode:
    if sys.platform == "win32":
        return "thread"
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd):
        return "poll"
    return "direct"


class StdinLines:
    """``await lines.next()`` returns the next line without its newline, or ``None`` at EOF.

    Raises :class:`LineTooLong` for a line over :data:`MAX_LINE` bytes (the next call goes on
    with the line after it). Bytes that are not UTF-8 are replaced, never raised. Use it as a
    context manager, or call :meth:`close`, so a reader thread does not outlive it.
    """

    def __init__(self, stream: TextIO | None = None, *, mode: ReadMode | None = None) -> None:
        self._fd = (stream if stream is not None else sys.stdin).fileno()
        self._pending = bytearray()
        self._skipping = False  # inside a line that was too long, until its newline
        self._eof = False
        self._chunks: MemoryObjectReceiveStream[bytes] | None = None
        self.mode: ReadMode = mode if mode is not None else _read_mode(self._fd)

    def __enter__(self) -> StdinLines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def next(self) -> str | None:
        """The next line, or ``None`` once standard input is at its end."""
        while True:
            line = self._take_line()
            if line is not None:
                return line
            if self._eof:
                if self._pending and not self._skipping:
                    rest, self._pending = bytes(self._pending), bytearray()
                    return rest.decode("utf-8", errors="replace")
                return None
            chunk = await self._read_chunk()
            if not chunk:
                self._eof = True
            else:
                self._pending += chunk

    def _take_line(self) -> str | None:
        while True:
            newline = self._pending.find(b"\n")
            if newline < 0:
                if len(self._pending) > MAX_LINE:
                    self._pending.clear()
                    if not self._skipping:
                        self._skipping = True
                        raise LineTooLong(f"a line longer than {MAX_LINE} bytes was dropped")
                return None
            raw = bytes(self._pending[:newline])
            del self._pending[: newline + 1]
            if self._skipping:  # the end of the dropped line
                self._skipping = False
                continue
            if len(raw) > MAX_LINE:
                raise LineTooLong(f"a line longer than {MAX_LINE} bytes was dropped")
            return raw.rstrip(b"\r").decode("utf-8", errors="replace")

    async def _read_chunk(self) -> bytes:
        if self.mode == "poll":
            await anyio.wait_readable(self._fd)
            return os.read(self._fd, _CHUNK)
        if self.mode == "direct":
            await anyio.lowlevel.checkpoint()
            return os.read(self._fd, _CHUNK)
        if self._chunks is None:
            send, self._chunks = anyio.create_memory_object_stream[bytes](1)
            token = anyio.lowlevel.current_token()
            threading.Thread(
                target=_read_in_thread,
                args=(self._fd, send, token),
                name="tether-stdin",
                daemon=True,
            ).start()
        try:
            return await self._chunks.receive()
        except anyio.EndOfStream:
            self.close()
            return b""

    def close(self) -> None:
        """Stop reading: a ``thread``-mode reader ends after its current read. Idempotent."""
        if self._chunks is not None:
            self._chunks.close()


def _read_in_thread(
    fd: int, send: MemoryObjectSendStream[bytes], token: anyio.lowlevel.EventLoopToken
) -> None:
    """The daemon thread of :class:`StdinLines` in ``thread`` mode; closes ``send`` at EOF."""
    try:
        while chunk := os.read(fd, _CHUNK):
            anyio.from_thread.run(send.send, chunk, token=token)
    except (OSError, RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        return  # stdin broke, or the event loop is gone: nobody reads any more
    with contextlib.suppress(RuntimeError):  # the event loop is gone
        anyio.from_thread.run_sync(send.close, token=token)
