"""The asyncio consumer's queue: order, types and byte counts kept; nothing the collector visits."""

from __future__ import annotations

import gc
import random

import pytest

from consumers.aio._queue import OVERHEAD, MessageQueue
from consumers.errors import Message

TYPES = ("events", "people", "groups")


def _check(queue: MessageQueue, model: list[Message]) -> None:
    assert queue.pending == len(model)
    assert queue.queued_bytes == sum(len(m) + OVERHEAD for _, m in model)


@pytest.mark.parametrize("seed", range(40))
def test_random_pushes_takes_and_put_backs_keep_order_and_types(seed: int) -> None:
    rng = random.Random(seed)
    queue, model = MessageQueue(1 << 30), []
    serial = 0
    for _ in range(300):
        action = rng.random()
        if action < 0.5:  # a run of pushes, mostly one type
            kind = rng.choice(TYPES)
            for _ in range(rng.randint(1, 30)):
                if rng.random() < 0.1:
                    kind = rng.choice(TYPES)
                text = f'{{"n": {serial}}}'
                serial += 1
                queue.push(kind, text)
                queue.queued_bytes += len(text) + OVERHEAD
                model.append((kind, text))
        elif action < 0.85:
            count = rng.randint(0, 40)
            got = queue.take(count)
            taken, model = model[:count], model[count:]
            expected: dict[str, list[str]] = {}
            for kind, text in taken:
                expected.setdefault(kind, []).append(text)
            assert got == expected
            if rng.random() < 0.5:  # some were not sent (of any slices): back, in order
                back = [m for m in taken if rng.random() < 0.6]
                queue.put_back(back)
                model = back + model
        else:
            assert queue.take_all() == model
            model = []
        _check(queue, model)
    assert queue.take_all() == model


def test_a_full_queue_is_nothing_the_garbage_collector_visits() -> None:
    queue = MessageQueue(1 << 30)
    gc.collect()
    before = len(gc.get_objects())
    for i in range(20_000):
        queue.push("events" if i % 1000 else "people", f'{{"event": "e", "n": {i}}}')
    queue.put_back([("groups", '{"n": -1}')])
    assert not gc.is_tracked(queue.texts) and not gc.is_tracked(queue.starts)
    assert len(gc.get_objects()) - before < 50  # not one per message


def test_a_drained_queue_gives_its_memory_back() -> None:
    import tracemalloc

    queue = MessageQueue(1 << 30)
    texts = [f'{{"n": {i}}}' for i in range(100_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for text in texts:
            queue.push("events", text)
        full = tracemalloc.get_traced_memory()[0] - before
        while queue.pending:
            queue.take(1000)
        left = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert full > 4_000_000 and left < 100_000, (full, left)
