"""The worker's memory budget: reservations never pass the limit, one attempt always runs, a wait
that runs out raises MemoryBusy, and an attempt's reservations all come back when it ends."""

from __future__ import annotations

import threading
import time

import pytest

from lote.jobs import memory


def test_a_reservation_waits_until_another_gives_back():
    budget = memory.Budget(100)
    budget.take(70, 0)
    got = threading.Event()

    def second() -> None:
        budget.take(50, 5)
        got.set()

    waiter = threading.Thread(target=second)
    waiter.start()
    assert not got.wait(0.1) and budget.used == 70  # 120 would pass the limit
    budget.give(70)
    waiter.join()
    assert got.is_set() and budget.used == 50 and budget.peak == 70


def test_a_wait_that_runs_out_raises_and_takes_nothing():
    budget = memory.Budget(100)
    budget.take(90, 0)
    with pytest.raises(memory.MemoryBusy) as busy:
        budget.take(20, 0.05)
    assert busy.value.status == 503 and budget.used == 90


def test_one_attempt_always_runs_however_large():
    budget = memory.Budget(100)
    budget.take(500, 0)  # nothing else holds memory: it would never fit otherwise
    assert budget.used == 500


def test_an_attempt_gives_back_everything_it_held_even_when_it_fails():
    limit = 7_777_777_777  # a budget of its own in this process
    with pytest.raises(RuntimeError), memory.hold(limit, 2, 0) as held:
        assert memory.budget(limit).used == memory.worst_case(2)  # reserved whole, before any input
        held.input(1000)  # known now: what the first input will not use goes back at once
        assert memory.budget(limit).used == memory.worst_case(1) + memory.INPUT_FACTOR * 1000
        raise RuntimeError("the model call failed")
    assert memory.budget(limit).used == 0


def test_attempts_with_several_inputs_never_wait_on_each_other_forever():
    # Reserving input by input, each attempt held part of the budget while waiting for the rest, and
    # a batch of four-photo items livelocked (bench/RESULTS.md). Reserved whole, they take turns.
    limit = memory.worst_case(4) + 3 * memory.worst_case(1)
    done: list[int] = []

    def attempt() -> None:
        for _ in range(5):
            with memory.hold(limit, 4, 10) as held:
                for _ in range(4):
                    held.input(3_000_000)
                time.sleep(0.005)
        done.append(1)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(done) == 8 and memory.budget(limit).used == 0
    assert memory.budget(limit).peak <= limit


def test_threads_never_hold_more_than_the_limit_together():
    budget = memory.Budget(1000)
    held_at_once: list[int] = []

    def attempt() -> None:
        for _ in range(50):
            budget.take(300, 5)
            held_at_once.append(budget.used)
            budget.give(300)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(held_at_once) <= 900 and budget.peak <= 1000 and budget.used == 0
