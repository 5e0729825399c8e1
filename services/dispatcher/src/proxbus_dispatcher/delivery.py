"""Delivery workers: one durable pull consumer per receiver, limits, retries, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from proxbus_events import DELIVERIES_STREAM, DLQ_STREAM, delivery_subject, dlq_subject
from proxbus_runtime import EventPublisher, PullConsumer, RateLimitedLog, TokenBucket
from pydantic import ValidationError

from .breaker import CircuitBreaker
from .dlq import DeadLetter
from .errors import PermanentError, RetryableError
from .metrics import DispatcherMetrics
from .notification import Notification
from .notifiers import Notifier, ReceiverBase
from .shedding import BacklogForecast, ShedPlan, next_deadline

log = logging.getLogger(__name__)

DEAD_LETTER_TIMEOUT = 5.0  # seconds to wait for JetStream to store a dead letter
SHED_INTERVAL = 1.0  # seconds between two backlog checks of a worker with a bound, far from it


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: ``base * 2**(attempt-1)`` capped, times U(0.5, 1)."""
    raw = min(cap, base * (2 ** max(0, attempt - 1)))
    return float(raw * (rng or random).uniform(0.5, 1.0))


@dataclass(slots=True)
class Outcome:
    kind: str  # sent | retry | dead
    error: str = ""


class DeliveryWorker:
    """Takes ``proxbus.deliveries.<receiver>`` and sends each with the receiver's notifier."""

    def __init__(
        self,
        js: JetStreamContext,
        receiver: ReceiverBase,
        notifier: Notifier,
        metrics: DispatcherMetrics,
        *,
        publisher: EventPublisher,
        ack_wait: float = 60.0,
    ) -> None:
        """``publisher`` is the runtime's (``Service.publisher``): dead letters go out
        through its ``send()``."""
        self.receiver = receiver
        self._js = js
        self._publisher = publisher
        self._notifier = notifier
        self._metrics = metrics
        self.consumer = PullConsumer(
            js,
            stream=DELIVERIES_STREAM,
            durable=f"deliver-{receiver.name}",
            filter_subject=delivery_subject(receiver.name),
            ack_wait=max(ack_wait, receiver.timeout * 3),
            max_ack_pending=max(64, receiver.concurrency * 4),
        )
        self._slots = asyncio.Semaphore(receiver.concurrency)
        self._bucket = TokenBucket(receiver.rate_limit) if receiver.rate_limit else None
        self._tasks: set[asyncio.Task[None]] = set()
        self.breaker = CircuitBreaker(receiver.breaker_failures, receiver.breaker_interval)
        # A dead target's overflow is a dead letter per event: the DLQ keeps each reason, the
        # log says it once per interval with the counts (issue 19).
        self._dead_log = RateLimitedLog(log, f"dead-lettered deliveries for {receiver.name}")
        self._shed_log = RateLimitedLog(log, f"failed backlog checks of {receiver.name}")
        self._backlog = metrics.backlog.labels(receiver.name)
        self._backlog_bytes = metrics.backlog_bytes.labels(receiver.name)
        self._mean_size = 0.0  # moving mean of the sizes of the deliveries taken
        self._shed_consumer = PullConsumer(
            js,
            stream=DELIVERIES_STREAM,
            durable=self.consumer.durable,
            filter_subject=delivery_subject(receiver.name),
            ack_wait=self.consumer.config.ack_wait or ack_wait,
            max_ack_pending=self.consumer.config.max_ack_pending or 64,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and send until ``stop``; in-flight sends finish (bounded by the timeout)."""
        await self.consumer.start()
        shedder = asyncio.create_task(self._shed_loop(stop), name=f"shed-{self.receiver.name}")
        limit = self.receiver.concurrency
        while not stop.is_set():
            hold = self.breaker.wait()
            if hold > 0:
                with contextlib.suppress(TimeoutError):  # re-checked: a probe may end early
                    await asyncio.wait_for(stop.wait(), min(hold, 0.25))
                continue
            await self._slots.acquire()
            free = 1
            if self.breaker.open:
                self.breaker.take_probe()  # one delivery, then wait for its outcome
            else:
                while free < limit and not self._slots.locked():
                    await self._slots.acquire()
                    free += 1
            try:
                msgs = await self.consumer.fetch(free, timeout=0.5)
            except Exception as exc:
                log.warning("deliveries fetch for %s failed: %s", self.receiver.name, exc)
                msgs = []
                await asyncio.sleep(0.5)
            if not msgs and self.breaker.probing:
                self.breaker.probing = False  # nothing to probe with: try again later
            for _ in range(free - len(msgs)):
                self._slots.release()
            for msg in msgs:
                task = asyncio.create_task(self._handle(msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        shedder.cancel()
        await asyncio.gather(shedder, return_exceptions=True)
        if self._tasks:
            # Bounded so SIGTERM finishes in time; an unfinished send is redelivered.
            await asyncio.wait(self._tasks, timeout=min(self.receiver.timeout + 1, 5.0))
        await self.consumer.close()
        await self._shed_consumer.close()

    async def _handle(self, msg: Msg) -> None:
        try:
            await self.process(msg)
        except Exception:
            log.exception(
                "delivery to %s failed unexpectedly; will be redelivered", self.receiver.name
            )
        finally:
            self._slots.release()

    async def process(self, msg: Msg) -> Outcome:
        """Send one delivery message and settle it (ack / nak with delay / dead-letter)."""
        name = self.receiver.name
        try:
            notification = Notification.from_json(msg.data)
        except ValidationError as exc:
            await self._dead_letter_raw(msg, f"invalid delivery body: {exc.errors()[0]['msg']}")
            return Outcome("dead", "invalid body")
        attempt = int(msg.metadata.num_delivered)
        over = self._over_bounds(msg, notification)
        if over is not None:
            if self.breaker.probing:
                self.breaker.probing = False  # not sent, so no probe: take another one
            bound, error = over
            await self._dead_letter(msg, notification, attempt, error, bound)
            return Outcome("dead", error)
        if self._bucket is not None:
            await self._bucket.take()
        started = time.monotonic()
        try:
            await self._notifier.send(notification)
        except RetryableError as exc:
            self.breaker.failure()
            return await self._retry_or_dead(
                msg, notification, attempt, exc.message, exc.retry_after
            )
        except PermanentError as exc:
            self.breaker.success()  # the target answered
            await self._dead_letter(msg, notification, attempt, exc.message, "refused by target")
            return Outcome("dead", exc.message)
        except Exception as exc:  # a notifier bug must not lose the delivery
            self.breaker.failure()
            log.exception("notifier %s raised unexpectedly", name)
            return await self._retry_or_dead(
                msg, notification, attempt, f"{type(exc).__name__}: {exc}", None
            )
        self.breaker.success()
        await msg.ack()
        self._metrics.delivery_seconds.labels(name).observe(time.monotonic() - started)
        self._metrics.notifications.labels(name, "sent").inc()
        log.debug("delivered %s to %s (attempt %d)", notification.id, name, attempt)
        return Outcome("sent")

    def _over_bounds(self, msg: Msg, notification: Notification) -> tuple[str, str] | None:
        """Which bound a delivery is over when taken, and why in words (dead-lettered without
        another send); None: send it."""
        r = self.receiver
        backlog = int(msg.metadata.num_pending or 0)
        self._backlog.set(backlog)
        backlog_bytes = self._estimate_bytes(backlog, len(msg.data or b""))
        self._backlog_bytes.set(backlog_bytes)
        if r.max_backlog is not None and backlog >= r.max_backlog:
            return (
                "max_backlog",
                f"backlog of {backlog} over max_backlog {r.max_backlog} (not sent)",
            )
        if r.max_backlog_bytes is not None and backlog_bytes >= r.max_backlog_bytes:
            return "max_backlog_bytes", (
                f"backlog of ~{backlog_bytes} bytes ({backlog} deliveries) over "
                f"max_backlog_bytes {r.max_backlog_bytes} (not sent)"
            )
        age = time.time() - notification.created_at.timestamp()
        if age >= r.max_age:
            return "max_age", f"older than max_age {r.max_age:g}s when taken ({age:.0f}s, not sent)"
        return None

    def _estimate_bytes(self, backlog: int, size: int) -> int:
        """Bytes waiting behind this delivery: ``backlog`` × the moving mean size of the
        deliveries this worker took (this one included). JetStream counts a consumer's
        pending messages, not their bytes, and the stream's byte total mixes every receiver;
        a receiver's deliveries come from one intake and are of similar size."""
        self._mean_size = size if self._mean_size == 0 else 0.9 * self._mean_size + 0.1 * size
        return int(backlog * self._mean_size)

    def _count_bound(self) -> int | None:
        """``max_backlog``, or fewer when ``max_backlog_bytes`` at the mean size says so."""
        r = self.receiver
        bound = r.max_backlog
        if r.max_backlog_bytes is not None and self._mean_size > 0:
            by_bytes = max(1, int(r.max_backlog_bytes / self._mean_size))
            bound = by_bytes if bound is None else min(bound, by_bytes)
        return bound

    async def _shed_loop(self, stop: asyncio.Event) -> None:
        """Every check, dead-letter what would pass ``max_backlog`` (or ``max_backlog_bytes``
        at the mean delivery size) before the next one, whatever the sends do.

        A hanging target holds every send slot for its timeout, and an open circuit takes one
        probe per interval: deliveries are then taken far slower than they arrive, so the bound
        checked when one is taken would let the backlog grow with every event. This looks at
        the backlog itself, on a subscription of its own to the same durable consumer, on a
        fixed clock (``BacklogForecast`` says how far to shed and when to look again). A check
        that fails for any reason (a dead letter JetStream did not store, a timeout) is
        counted and logged, and the next one goes on.
        """
        if self.receiver.max_backlog is None and self.receiver.max_backlog_bytes is None:
            return
        forecast = BacklogForecast(interval=SHED_INTERVAL)
        forecast.start(time.monotonic(), await self._backlog_now())
        deadline = time.monotonic() + SHED_INTERVAL
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.monotonic()))
            if stop.is_set():
                return
            late = time.monotonic() - deadline
            interval = forecast.interval
            bound = self._count_bound()
            if bound is not None:  # None: a bytes bound only, no delivery taken yet
                try:
                    interval = await self._shed_overflow(bound, forecast, late)
                except Exception as exc:
                    forecast.lost()
                    self._shed_log.record(type(exc).__name__, "", str(exc) or repr(exc))
                    if forecast.last_plan is not None:  # near the bound: try again as soon
                        interval = forecast.last_plan.interval
            deadline = next_deadline(deadline, interval, time.monotonic())

    async def _backlog_now(self) -> int | None:
        try:
            info = await self._js.consumer_info(DELIVERIES_STREAM, self.consumer.durable)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error):
            return None
        return int(info.num_pending)

    async def _shed_overflow(self, bound: int, forecast: BacklogForecast, late: float) -> float:
        """Dead-letter the oldest deliveries, not sent, so the backlog stays within ``bound``
        until the next check; the seconds until that check.

        Between two checks the backlog grows by what arrives. When it would pass ``bound``
        before the next check at the forecast's rate, the oldest are shed until the count
        behind a taken delivery is ``bound`` minus the arrivals expected, not just ``bound``:
        a dead target's backlog then stays within its bound instead of overshooting it by an
        interval of arrivals each time. The count behind each taken delivery decides, not an
        excess worked out beforehand, since other replicas take from the same consumer.

        Raises:
            Exception: anything a consumer read, fetch or dead letter raised (the caller counts
                it and checks again at the next deadline).
        """
        info = await self._js.consumer_info(DELIVERIES_STREAM, self.consumer.durable)
        pending = int(info.num_pending)
        self._backlog.set(pending)
        forecast.observe(time.monotonic(), pending, late)
        plan = forecast.plan(pending, bound)
        log.debug(
            "backlog of %s: %d (bound %d), %.1f/s, %.2fs late: shed to %d, next in %.1fs",
            self.receiver.name, pending, bound, forecast.rate, forecast.lateness,
            plan.target, plan.interval,
        )  # fmt: skip
        behind = pending
        while behind > plan.target:
            msgs = await self._shed_consumer.fetch(min(behind - plan.target, 256), timeout=0.5)
            if not msgs:
                break
            for i, msg in enumerate(msgs):
                behind = int(msg.metadata.num_pending or 0)
                try:
                    if await self._shed_one(msg, behind, bound, plan):
                        forecast.shed(1)
                except Exception:
                    # Not dead-lettered: these wait again now, not after the ack wait.
                    for left in msgs[i:]:
                        with contextlib.suppress(Exception):
                            await left.nak()
                    raise
        return plan.interval

    async def _shed_one(self, msg: Msg, behind: int, bound: int, plan: ShedPlan) -> bool:
        """Dead-letter one taken delivery if it is over a bound or ``behind`` is not under the
        plan's target (True), else put it back (False)."""
        try:
            notification = Notification.from_json(msg.data)
        except ValidationError as exc:
            await self._dead_letter_raw(msg, f"invalid delivery body: {exc}")
            return True
        over = self._over_bounds(msg, notification)
        if over is None and behind >= plan.target:
            name = "max_backlog"
            if bound != self.receiver.max_backlog:  # the bytes bound at the mean size
                name = "max_backlog_bytes"
            why = (
                f"backlog of {behind} would pass {name} ({bound} deliveries) with the "
                f"{plan.expected} expected before the next check (not sent)"
            )
            over = name, why
        if over is None:
            await msg.nak()  # back under the target (another replica took some)
            return False
        attempt = int(msg.metadata.num_delivered)
        await self._dead_letter(msg, notification, attempt, over[1], over[0])
        return True

    async def _retry_or_dead(
        self,
        msg: Msg,
        notification: Notification,
        attempt: int,
        error: str,
        retry_after: float | None,
    ) -> Outcome:
        r = self.receiver
        age = time.time() - notification.created_at.timestamp()
        out_of_attempts = r.max_attempts is not None and attempt >= r.max_attempts
        if out_of_attempts or age >= r.max_age:
            why = "max attempts" if out_of_attempts else "max age"
            await self._dead_letter(msg, notification, attempt, f"{error} ({why} reached)", why)
            return Outcome("dead", error)
        delay = (
            retry_after
            if retry_after is not None
            else backoff_delay(attempt, r.backoff_base, r.backoff_max)
        )
        delay = max(delay, 0.001)
        self._metrics.notifications.labels(r.name, "retry").inc()
        log.info(
            "delivery %s to %s failed (attempt %d%s): %s; retrying in %.2fs",
            notification.id,
            r.name,
            attempt,
            f"/{r.max_attempts}" if r.max_attempts is not None else "",
            error,
            delay,
        )
        await msg.nak(delay=delay)
        return Outcome("retry", error)

    async def _dead_letter(
        self, msg: Msg, notification: Notification, attempt: int, error: str, why: str
    ) -> None:
        """Store the dead letter, then ack; ``why`` is the short reason the log counts by."""
        letter = DeadLetter(
            receiver=self.receiver.name,
            delivery_id=notification.id,
            error=error,
            attempts=attempt,
            notification=notification,
        )
        seq = msg.metadata.sequence.stream
        stored = await self._publisher.send(
            dlq_subject(self.receiver.name),
            letter.model_dump_json(by_alias=True).encode(),
            {"Nats-Msg-Id": f"{notification.id}.dlq.{seq}", "Nats-Expected-Stream": DLQ_STREAM},
        )
        # PublishError or TimeoutError: not acked, the delivery comes back and dies again.
        await asyncio.wait_for(stored, DEAD_LETTER_TIMEOUT)
        await msg.ack()
        self._metrics.notifications.labels(self.receiver.name, "dead").inc()
        self._dead_log.record(why, "", f"{notification.id} after {attempt} attempts: {error}")

    async def _dead_letter_raw(self, msg: Msg, error: str) -> None:
        log.error("terminating undecodable delivery on %s: %s", msg.subject, error)
        with contextlib.suppress(Exception):
            await msg.term()
        self._metrics.notifications.labels(self.receiver.name, "dead").inc()
