"""Rate-limited logging for what a remote party can trigger: one summary line per interval.

A flood of refused connections or hostile requests must cost counters, not a log line each
(issue 19 measured 9,001 warnings for one test). ``RateLimitedLog.record(reason, source)``
logs the first occurrence of an interval at once, counts the rest, and logs one summary line
with the counts per reason and the busiest sources when the interval is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

__all__ = ["RateLimitedLog"]

_MAX_SOURCES = 1024  # distinct sources remembered per interval (bounded memory)
# Distinct reasons counted per interval; a reason may carry what a client chose (a request
# path), so the rest is counted as "other reasons" (bounded memory and summary line).
_MAX_REASONS = 64
_OTHER_REASONS = "other reasons"
_TOP_SOURCES = 5


class RateLimitedLog:
    """At most one line per ``interval`` (plus the first one) for a kind of remote trouble.

    ``what`` names it in every line, e.g. ``"refused SMTP connections"``. Not thread-safe:
    call it from the event loop.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval: float = 10.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self.what = what
        self.interval = interval
        self.level = level
        self._clock = clock
        self._window_start: float | None = None
        self._reasons: Counter[str] = Counter()
        self._sources: Counter[str] = Counter()
        self._other_sources = 0
        self._timer: asyncio.TimerHandle | None = None
        self.total = 0  # every occurrence ever recorded
        self.lines = 0  # log lines written

    def record(
        self,
        reason: str,
        source: str = "",
        detail: str = "",
        *,
        exc_info: BaseException | None = None,
    ) -> None:
        """Count one occurrence; log it at once only after a quiet interval.

        ``exc_info``: an exception whose traceback goes with the line logged at once (the
        first of an interval); the summarised ones are counted only.
        """
        self.total += 1
        now = self._clock()
        if self._window_start is not None and now - self._window_start >= self.interval:
            self.flush()
        if self._window_start is None:
            # Quiet until now: say it at once, then summarise the rest of the interval.
            self._window_start = now
            self._emit(
                "%s: %s%s%s",
                self.what,
                reason,
                f" from {source}" if source else "",
                f" ({detail})" if detail else "",
                exc_info=exc_info,
            )
            self._schedule()
            return
        if reason in self._reasons or len(self._reasons) < _MAX_REASONS:
            self._reasons[reason] += 1
        else:
            self._reasons[_OTHER_REASONS] += 1
        if source:
            if source in self._sources or len(self._sources) < _MAX_SOURCES:
                self._sources[source] += 1
            else:
                self._other_sources += 1

    def flush(self) -> None:
        """Log the summary of the interval; a new interval starts only if there was one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._reasons:
            self._window_start = None
            return
        counts = ", ".join(f"{r[:80]}={n}" for r, n in sorted(self._reasons.items()))
        top = ", ".join(f"{s}={n}" for s, n in self._sources.most_common(_TOP_SOURCES))
        if self._other_sources:
            top += f", others={self._other_sources}"
        self._emit(
            "%s: %d more in the last %.0fs (%s)%s",
            self.what,
            sum(self._reasons.values()),
            self.interval,
            counts,
            f"; top sources: {top}" if top else "",
        )
        self._reasons.clear()
        self._sources.clear()
        self._other_sources = 0
        # Still noisy: the next interval is summarised too, not announced line by line.
        self._window_start = self._clock()
        self._schedule()

    def _emit(self, msg: str, *args: object, exc_info: BaseException | None = None) -> None:
        self.lines += 1
        self._log.log(self.level, msg, *args, exc_info=exc_info)

    def _schedule(self) -> None:
        """Summarise even if nothing else arrives (the flood may just stop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self.interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()
