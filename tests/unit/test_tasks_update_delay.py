"""The Cloud Tasks emulator applies an UpdateQueue after a delay, as Cloud Tasks documents it may."""

from __future__ import annotations

import time

from google.cloud import tasks_v2
from google.protobuf import field_mask_pb2

from lote_local.tasks.engine import Emulator
from lote_local.tasks.store import queue_message

PARENT = "projects/p/locations/l"


def _rate(rps: float) -> tasks_v2.Queue:
    return tasks_v2.Queue(
        name=f"{PARENT}/queues/q", rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=rps)
    )


def test_an_update_answers_the_new_settings_at_once_and_dispatch_follows_them_after_the_delay():
    engine = Emulator(update_delay_s=0.5)
    try:
        engine.create_queue(PARENT, _rate(1))
        mask = field_mask_pb2.FieldMask(paths=["rate_limits.max_dispatches_per_second"])
        updated_at = time.monotonic()
        record = engine.update_queue(_rate(50), list(mask.paths))
        assert queue_message(record, time.time()).rate_limits.max_dispatches_per_second == 50
        assert record.config.rate == 1  # still dispatching at the old rate
        with engine.locked():  # the scheduler applies it when it is due; await that, no fixed sleep
            applied = engine.locked().wait_for(lambda: record.config.rate == 50, timeout=5)
        assert applied and time.monotonic() - updated_at >= 0.5
        assert record.pending == []
    finally:
        engine.close()


def test_updates_closer_together_than_the_delay_each_take_effect_in_turn():
    engine = Emulator(update_delay_s=0.3)
    try:
        engine.create_queue(PARENT, _rate(1))
        record = engine.update_queue(_rate(10), [])
        time.sleep(0.15)  # the second update comes while the first is still on its way
        engine.update_queue(_rate(20), [])
        with engine.locked():
            assert engine.locked().wait_for(lambda: record.config.rate == 10, timeout=5)
            assert record.config.rate == 10 and len(record.pending) == 1
            assert engine.locked().wait_for(lambda: record.config.rate == 20, timeout=5)
    finally:
        engine.close()


def test_without_a_delay_an_update_takes_effect_at_once():
    engine = Emulator()
    try:
        engine.create_queue(PARENT, _rate(1))
        assert engine.update_queue(_rate(50), []).config.rate == 50
    finally:
        engine.close()
