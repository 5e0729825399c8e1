"""Low-latency batched pulls: never wait for a batch to fill.

nats-py's ``fetch(n, timeout)`` returns at once what is available, but when nothing is, its
lingering request waits until ``n`` messages arrived or ``timeout`` passed — at low rates every
message would wait the whole timeout. Each JetStream message says how many more are pending for
the consumer (``metadata.num_pending``), so: when messages are known to be pending, fetch up to
that many (served immediately); when none are, long-poll for one (returns when it arrives).
"""

from __future__ import annotations

from nats.aio.msg import Msg
from proxbus_events import PullConsumer


class AdaptiveFetcher:
    """Wraps a ``PullConsumer`` with the pending-hint strategy above."""

    def __init__(self, consumer: PullConsumer, batch: int, idle_timeout: float = 1.0) -> None:
        self.consumer = consumer
        self.batch = batch
        self.idle_timeout = idle_timeout
        self._pending = 0

    async def fetch(self, limit: int | None = None) -> list[Msg]:
        """Up to ``limit`` (default ``batch``) messages; ``[]`` after ``idle_timeout`` idle."""
        n = min(limit or self.batch, self.batch)
        n = 1 if self._pending <= 0 else min(n, self._pending)
        msgs = await self.consumer.fetch(n, timeout=self.idle_timeout)
        if msgs:
            try:
                self._pending = int(msgs[-1].metadata.num_pending)
            except Exception:  # not a JetStream reply subject: be conservative
                self._pending = 0
        else:
            self._pending = 0
        return msgs
