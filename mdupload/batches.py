"""How one round of a chapter's pages is cut into batches and sent: pipelined, with a shrinking tail.

MangaDex takes at most 10 files per request and answers a batch once it has processed every file in
it; an account has one upload session at a time, so a chapter's last answer holds up its commit, and
its commit the next chapter's begin. Whatever the server still processes after the last byte is
time the link stands idle. Two rules keep that short:

- **Pipelined.** The next batch's request goes out as soon as the previous batch's bytes have all
  been handed to the connection (or it was answered), not once it is answered. One body at a time
  has the link (concurrent bodies share it, so they would all end together and all be processed
  after the last byte), and the server processes each batch while the next one's bytes flow. At most
  `concurrency` requests are in flight. Each request waiting for the one before it to be sent also
  spaces them out: they never come in a burst that the rate limiter would hold back.
- **A shrinking tail.** A batch is as big as allowed unless its processing would outlast the
  transfer of everything sent after it; so the batches shrink near the end of the round, down to a
  single page, and the wait from the last byte to the last answer is a small batch's processing.

`LinkEstimate` measures what the tail is cut by, on this run's own batches (a run's chapters share
one): the throughput, and each file's share of the wait from a batch's last byte to its answer. Until
the first answer, the batches are full. The largest pages go first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from . import limits

# Before any batch was answered: a file's share of the wait for an answer (a guess on the safe side: too
# high only makes the last batches smaller than needed).
UNMEASURED_FILE_S = 0.1
LATER_SHARE = 0.6  # of the later pages' transfer, what hides a batch's processing (next_batch_size; make bench)


class Page(Protocol):
    size: int


class LinkEstimate:
    """The throughput and the per-file answer wait measured on the batches answered so far (thread-safe).

    The throughput of a round is the bytes answered over the time from the round's start to the latest
    answer: a little under the link's (it includes a round trip and some processing), which errs on the
    side of larger batches. A run's chapters share one estimate: a round that ends keeps its figure,
    and the best one counts (each is an underestimate).
    (Not the rate at which bodies are handed to their connections: the connection's buffers take the
    first megabytes at once, and on a slow link that rate is several times the link's.)
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._lock = threading.Lock()
        self._best: float | None = None  # bytes per second of the best round that ended
        self._round_at: float | None = None
        self._round_bytes = 0
        self._round_last: float | None = None
        self._file_s: float | None = None

    def start_round(self) -> None:
        with self._lock:
            self._round_at, self._round_bytes, self._round_last = self._clock(), 0, None

    def end_round(self) -> None:
        with self._lock:
            self._best = self._rate()
            self._round_at = None

    def answered(self, files: int, size: int, last_byte_at: float) -> None:
        """A batch of `files` files, `size` bytes, was answered now; its last byte was handed over `last_byte_at`."""
        now = self._clock()
        with self._lock:
            if files > 0:
                share = max(0.0, now - last_byte_at) / files
                self._file_s = share if self._file_s is None else min(self._file_s, share)
            if self._round_at is not None:
                self._round_bytes += size
                self._round_last = now

    @property
    def bytes_per_s(self) -> float | None:
        with self._lock:
            return self._rate()

    @property
    def file_s(self) -> float:
        with self._lock:
            return UNMEASURED_FILE_S if self._file_s is None else self._file_s

    def _rate(self) -> float | None:
        current = None
        if self._round_at is not None and self._round_last is not None and self._round_last > self._round_at:
            current = self._round_bytes / (self._round_last - self._round_at)
        known = [rate for rate in (self._best, current) if rate is not None]
        return max(known) if known else None


def next_batch_size(sizes: Sequence[int], bytes_per_s: float | None, file_s: float,
                    most: int = limits.FILES_PER_REQUEST) -> int:
    """How many of the pages left (their sizes, in sending order) the next batch takes: the most, unless its
    processing would outlast what comes after it: the transfer of its own last page and of the pages after
    it, of which only LATER_SHARE counts (a body is handed over while the connection's buffers still hold
    its end, so the next ones share the link with it), or the time the global rate limit takes to let their
    requests through, if longer."""
    size = min(most, len(sizes))
    if bytes_per_s is None:
        return size

    def after_s(count: int) -> float:
        later = sizes[count:]
        requests = -(-len(later) // most)
        return max(LATER_SHARE * sum(later) / bytes_per_s, requests / limits.GLOBAL_REQUESTS_PER_SECOND) + sizes[count - 1] / bytes_per_s

    while size > 1 and file_s * size > after_s(size):
        size -= 1
    return size


class BatchQueue:
    """The pages of one round, largest first, cut into batches as they are taken (`next_batch_size`)."""

    def __init__(self, pages: Sequence[Page], link: LinkEstimate):
        self._pages = sorted(pages, key=lambda p: p.size, reverse=True)
        self.link = link
        self._lock = threading.Lock()

    def take(self) -> list:
        with self._lock:
            count = next_batch_size([p.size for p in self._pages], self.link.bytes_per_s, self.link.file_s)
            batch, self._pages = self._pages[:count], self._pages[count:]
            return batch


def send_pipelined(queue: BatchQueue, send: Callable[[list, threading.Event], None], concurrency: int) -> None:
    """Send every batch of `queue` with `send(batch, handed_over)`, which sets `handed_over` once the batch's
    bytes are all handed to the connection and returns once it is answered. The next batch is taken and
    sent as soon as the previous one is handed over (or done), with at most `concurrency` in flight.
    Raises the first exception a `send` raised, once every batch sent has ended."""
    slots = threading.BoundedSemaphore(max(1, concurrency))
    queue.link.start_round()
    futures: list[Future] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="mdupload-batch") as pool:
        while True:
            slots.acquire()
            batch = queue.take()
            if not batch:
                slots.release()
                break
            handed_over = threading.Event()
            future = pool.submit(send, batch, handed_over)
            future.add_done_callback(lambda _done, event=handed_over: (event.set(), slots.release()))
            futures.append(future)
            handed_over.wait()
            if future.done() and future.exception() is not None:
                break  # the others in flight end on their own; nothing more is sent
    for future in futures:
        future.result()
    queue.link.end_round()
