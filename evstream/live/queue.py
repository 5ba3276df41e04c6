"""The hand-over between the reader thread and the model thread: a bounded queue of whole slices and
markers (``Reset``, ``END``).

When the queue is full a paced or live stream drops the OLDEST queued slice and counts it (``dropped``):
whole slices, never single events, and never a marker. Unpaced replay puts with ``block=True`` and waits
instead, so it never drops.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from evstream.slicing import EventSlice

END = object()  # the stream is over


@dataclass(frozen=True)
class Reset:
    """The stream jumped (``why``: seek, loop, slicing); the model thread resets the SNN."""

    why: str


class SliceQueue:
    def __init__(self, maxsize: int, stop: threading.Event):
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._stop = stop
        self.dropped = 0

    @property
    def maxsize(self) -> int:
        return self._q.maxsize

    def resize(self, maxsize: int) -> None:
        """Hold up to ``maxsize`` items from now on (a smaller queue sheds its oldest slices at the next puts)."""
        with self._q.mutex:
            self._q.maxsize = max(1, int(maxsize))

    def qsize(self) -> int:
        return self._q.qsize()

    def get(self, timeout: float):
        """The next item; ``queue.Empty`` after ``timeout`` seconds."""
        return self._q.get(timeout=timeout)

    def put(self, item, block: bool) -> bool:
        """Queue ``item``. On a full queue: wait (``block``; False when stopped meanwhile) or drop the oldest
        queued slice."""
        while block and not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        if block:  # stopping
            return False
        with self._q.mutex:
            dq = self._q.queue
            while isinstance(item, EventSlice) and len(dq) >= self._q.maxsize:
                old = next((i for i, o in enumerate(dq) if isinstance(o, EventSlice)), None)
                if old is None:  # markers only: they are never dropped
                    break
                del dq[old]
                self.dropped += 1
            dq.append(item)
            self._q.not_empty.notify()
        return True

    def flush(self) -> None:
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                return
