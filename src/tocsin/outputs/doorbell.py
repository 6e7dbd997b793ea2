"""Rings the stream workers this process started, once per committed batch.

A stream worker (`tocsin serve --stream-workers N`) tails the committed log; polled, it would
hear of each batch up to one poll later. The serving process hands each worker the read end of
a pipe at start, and this output writes one byte to every pipe after each batch: the worker
reads the log at once. The pipe is the only state and its bound: a ring finding the pipe full
is dropped (the worker has one pending already and reads everything committed when it wakes),
and a worker that has gone is not written to again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

from tocsin.envelopes import Envelope

__all__ = ["Doorbell"]

log = logging.getLogger(__name__)


class Doorbell:
    """The output that wakes stream workers (see the module docstring)."""

    name = "doorbell"
    FROM_LOG = False  # nothing to rebuild: a worker reads the log itself

    def __init__(self, fds: Sequence[int]) -> None:
        self.fds = list(fds)  # write ends, non-blocking; owned by whoever started the workers

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def apply(self, batch: Sequence[Envelope]) -> None:
        for fd in list(self.fds):
            try:
                os.write(fd, b"\x01")
            except BlockingIOError:
                pass  # a ring is pending already
            except OSError as exc:  # the worker is gone (EPIPE) or the pipe closed
                log.warning("a stream worker's doorbell failed (%s); it falls back to polling",
                            exc)
                self.fds.remove(fd)

    def rebuild(self, entries: Iterable[Envelope]) -> None:
        pass
