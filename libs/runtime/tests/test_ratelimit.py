import asyncio
import time

import pytest
from proxbus_runtime import TokenBucket


def test_burst_then_refill_at_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5  # one token back
    assert [bucket.try_take() for _ in range(2)] == [True, False]
    now[0] = 100.0  # never more than the burst
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]


def test_the_default_burst_is_the_rate_but_at_least_one() -> None:
    assert TokenBucket(0.5).burst == 1.0
    assert TokenBucket(20).burst == 20.0
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)


async def test_take_paces_concurrent_callers() -> None:
    bucket = TokenBucket(20.0, 1)
    started = time.monotonic()
    await asyncio.gather(*(bucket.take() for _ in range(5)))
    # One token at once, then four more at 20/s: about 0.2 s.
    assert 0.15 <= time.monotonic() - started < 2.0
