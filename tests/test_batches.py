"""How a round's pages are cut into batches and sent (mdupload/batches.py): pipelined, with a shrinking tail."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from mdupload.batches import LATER_SHARE, BatchQueue, LinkEstimate, next_batch_size, send_pipelined

MB = 1_000_000


@dataclass(frozen=True)
class Page:
    name: str
    size: int


class KnownLink:
    """A link whose figures are known (what LinkEstimate would have measured)."""

    def __init__(self, bytes_per_s, file_s):
        self.bytes_per_s, self.file_s = bytes_per_s, file_s

    def start_round(self):
        pass

    def end_round(self):
        pass


def batches_of(pages, link) -> list[list[Page]]:
    return list(iter(BatchQueue(pages, link).take, []))


def test_until_something_is_measured_every_batch_is_full():
    pages = [Page(f"{n}.jpg", MB) for n in range(24)]
    assert [len(b) for b in batches_of(pages, LinkEstimate())] == [10, 10, 4]


@pytest.mark.parametrize("mbit", [40, 100, 1000])
def test_the_batches_shrink_near_the_end_so_that_each_ones_processing_hides_behind_the_later_ones(mbit):
    """Whatever the link, no batch is processed for longer than what is sent after it takes (the last one:
    longer than its own last page), so the link never waits long for an answer; only the tail is cut."""
    rate, file_s = mbit * 1e6 / 8, 0.06
    pages = [Page(f"{n}.jpg", 1_250_000 + n * 1000) for n in range(120)]
    batches = batches_of(pages, KnownLink(rate, file_s))
    sent = [p for b in batches for p in b]
    assert sorted(sent, key=lambda p: p.name) == sorted(pages, key=lambda p: p.name)  # each page once
    assert [p.size for p in sent] == sorted((p.size for p in pages), reverse=True)  # largest first
    assert all(1 <= len(b) <= 10 for b in batches)
    for index, batch in enumerate(batches):
        later = [p for b in batches[index + 1:] for p in b]
        takes = (max(LATER_SHARE * sum(p.size for p in later) / rate, len(batches[index + 1:]) / 5)
                 + batch[-1].size / rate)
        assert len(batch) == 1 or file_s * len(batch) <= takes  # (a page cannot be cut)
    assert len(batches) <= 12 * 1.5  # 12 full batches would do: the tail costs a few requests, not dozens


def test_a_fast_link_cuts_the_tail_finer_than_a_slow_one():
    pages = [Page(f"{n}.jpg", 1_250_000) for n in range(24)]
    slow = [len(b) for b in batches_of(pages, KnownLink(5_000_000, 0.06))]
    fast = [len(b) for b in batches_of(pages, KnownLink(12_500_000, 0.06))]
    assert slow == [10, 10, 4] and fast == [10, 7, 5, 1, 1]


def test_next_batch_size_takes_what_is_left_when_less_than_a_batch():
    assert next_batch_size([MB] * 3, None, 0.1) == 3
    assert next_batch_size([], None, 0.1) == 0


def test_the_link_estimate_measures_answered_bytes_over_the_round_and_keeps_the_best_round():
    now = [0.0]
    link = LinkEstimate(clock=lambda: now[0])
    assert link.bytes_per_s is None and link.file_s > 0  # nothing measured: a guess on the safe side
    link.start_round()
    now[0] = 2.0
    link.answered(10, 10 * MB, last_byte_at=1.4)
    assert link.bytes_per_s == pytest.approx(5 * MB) and link.file_s == pytest.approx(0.06)
    now[0] = 3.0
    link.answered(2, 2 * MB, last_byte_at=2.9)
    assert link.bytes_per_s == pytest.approx(4 * MB) and link.file_s == pytest.approx(0.05)
    link.end_round()
    link.start_round()  # a new round (the next chapter) starts with the best figure so far
    assert link.bytes_per_s == pytest.approx(4 * MB)


def test_the_next_batch_goes_out_once_the_previous_one_is_handed_over_not_once_it_is_answered():
    pages = [Page(f"{n}.jpg", MB) for n in range(30)]
    answer = threading.Event()
    started: list[int] = []
    in_flight_max = [0]
    in_flight = [0]
    lock = threading.Lock()

    def send(batch, handed_over):
        with lock:
            started.append(len(batch))
            in_flight[0] += 1
            in_flight_max[0] = max(in_flight_max[0], in_flight[0])
        handed_over.set()  # every byte handed to the connection...
        assert answer.wait(5)  # ...but no answer until the three are all out
        with lock:
            in_flight[0] -= 1

    def release_when_three_are_out():
        while True:
            with lock:
                if len(started) == 3:
                    break
        answer.set()

    releaser = threading.Thread(target=release_when_three_are_out)
    releaser.start()
    send_pipelined(BatchQueue(pages, LinkEstimate()), send, concurrency=4)
    releaser.join()
    assert started == [10, 10, 10] and in_flight_max[0] == 3


def test_no_more_than_concurrency_requests_are_in_flight():
    pages = [Page(f"{n}.jpg", MB) for n in range(50)]
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def send(batch, handed_over):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        handed_over.set()
        threading.Event().wait(0.02)
        with lock:
            in_flight[0] -= 1

    send_pipelined(BatchQueue(pages, LinkEstimate()), send, concurrency=2)
    assert most[0] == 2


def test_a_failing_send_stops_the_round_and_its_error_is_raised():
    pages = [Page(f"{n}.jpg", MB) for n in range(50)]
    sent: list[int] = []

    def send(batch, handed_over):
        sent.append(len(batch))
        raise RuntimeError("signed out")

    with pytest.raises(RuntimeError, match="signed out"):
        send_pipelined(BatchQueue(pages, LinkEstimate()), send, concurrency=4)
    assert sent == [10]
