"""StdinLines: lines from a descriptor, cancellable, bounded, on asyncio and trio."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import anyio
import pytest

from tether._stdin import MAX_LINE, LineTooLong, ReadMode, StdinLines

pytestmark = pytest.mark.anyio

INPUT = b"join news\r\nsend news chat {}\n\n\xff bad utf-8\nlast line, no newline"
EXPECTED = ["join news", "send news chat {}", "", "\ufffd bad utf-8", "last line, no newline"]


@pytest.fixture
def pipe() -> Iterator[tuple[TextIO, int]]:
    """The read end as a text stream (what sys.stdin is) and the write end's descriptor."""
    read_fd, write_fd = os.pipe()
    with open(read_fd, encoding="utf-8") as reader:
        try:
            yield reader, write_fd
        finally:
            with contextlib.suppress(OSError):  # the test closed it
                os.close(write_fd)


async def read_all(lines: StdinLines) -> list[str]:
    got = []
    with anyio.fail_after(10):
        while (line := await lines.next()) is not None:
            got.append(line)
    return got


@pytest.mark.parametrize("mode", ["poll", "thread"])
async def test_lines_from_a_pipe(pipe: tuple[TextIO, int], mode: ReadMode) -> None:
    reader, write_fd = pipe
    for i in range(0, len(INPUT), 7):  # lines split across reads
        os.write(write_fd, INPUT[i : i + 7])
    os.close(write_fd)
    with StdinLines(reader, mode=mode) as lines:
        assert await read_all(lines) == EXPECTED


async def test_a_pipe_is_polled_and_a_file_read_directly(
    pipe: tuple[TextIO, int], tmp_path: Path
) -> None:
    assert StdinLines(pipe[0]).mode == "poll"
    path = tmp_path / "commands"
    path.write_bytes(INPUT)
    with path.open(encoding="utf-8") as file:
        lines = StdinLines(file)
        assert lines.mode == "direct"
        assert await read_all(lines) == EXPECTED
    with open(os.devnull, encoding="utf-8") as devnull:  # epoll refuses /dev/null
        assert StdinLines(devnull).mode == "direct"
        assert await read_all(StdinLines(devnull)) == []


async def test_waiting_for_a_line_is_cancellable(pipe: tuple[TextIO, int]) -> None:
    reader, write_fd = pipe
    lines = StdinLines(reader)
    with anyio.fail_after(10), anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(lines.next)
            await anyio.wait_all_tasks_blocked()  # it waits: nothing was typed
            scope.cancel()
    assert scope.cancelled_caught
    os.write(write_fd, b"after the cancel\n")  # nothing was lost by the cancel
    with anyio.fail_after(10):
        assert await lines.next() == "after the cancel"


async def test_a_line_too_long_is_dropped_and_reading_goes_on(pipe: tuple[TextIO, int]) -> None:
    reader, write_fd = pipe
    lines = StdinLines(reader)

    async def write() -> None:
        # Larger than the pipe's buffer: written while the reader reads.
        blob = b"x" * (MAX_LINE + 10) + b"\nnext\n" + b"y" * (MAX_LINE + 1) + b"\n"
        await anyio.to_thread.run_sync(os.write, write_fd, blob)
        await anyio.to_thread.run_sync(os.close, write_fd)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(write)
        with anyio.fail_after(10):
            with pytest.raises(LineTooLong):
                await lines.next()
            assert await lines.next() == "next"
            with pytest.raises(LineTooLong):
                await lines.next()
            assert await lines.next() is None
