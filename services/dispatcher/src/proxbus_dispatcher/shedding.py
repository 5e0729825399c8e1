"""How far a bounded backlog's shed loop sheds, and when it looks again: pure, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MARGIN = 2.0  # expected arrivals are taken twice over: one interval's growth is noisy
PEAK_HALF_LIFE = 0.5  # seconds for the remembered peak rate to halve
# Seconds for the remembered lateness to halve: a busy machine stays busy for a while, and one
# stall it has seen says the next check may come as late.
LATENESS_HALF_LIFE = 10.0
MIN_INTERVAL = 0.2  # seconds between two checks of a backlog near its bound


@dataclass(slots=True, frozen=True)
class ShedPlan:
    """One check's decision: shed the oldest until ``target`` wait behind a taken delivery."""

    target: int
    expected: int  # arrivals expected before the next check, with the margin
    interval: float  # seconds from this check's deadline to the next one's


@dataclass(slots=True)
class BacklogForecast:
    """Arrival rate and lateness of a backlog's checks, and the plan of each check.

    The rate is growth over the monotonic time since the previous reading, not per interval
    (a stalled event loop makes an interval longer), kept as a peak that decays with
    ``PEAK_HALF_LIFE`` so one quiet interval after a burst does not drop the guard. Checks run
    on a fixed clock (``next_deadline``); how late they come is remembered the same way (with
    ``LATENESS_HALF_LIFE``) and added to the time the next check may take.
    """

    interval: float = 1.0
    min_interval: float = MIN_INTERVAL
    margin: float = MARGIN
    half_life: float = PEAK_HALF_LIFE
    lateness_half_life: float = LATENESS_HALF_LIFE
    rate: float = 0.0  # arrivals per second, decaying peak
    lateness: float = 0.0  # seconds a check came after its deadline, decaying peak
    last_plan: ShedPlan | None = field(default=None, init=False)
    _read_at: float | None = field(default=None, init=False, repr=False)
    # The backlog the previous check left (None: unknown).
    _left: int | None = field(default=None, init=False, repr=False)

    def start(self, now: float, backlog: int | None) -> None:
        """The backlog read before the first check (None: unknown)."""
        self._read_at, self._left = now, backlog

    def observe(self, now: float, backlog: int, late: float = 0.0) -> None:
        """The backlog read at ``now`` by a check that came ``late`` seconds after its deadline."""
        if self._read_at is not None and now > self._read_at:
            elapsed = now - self._read_at
            keep = 0.5 ** (elapsed / self.half_life)
            self.lateness = max(late, self.lateness * 0.5 ** (elapsed / self.lateness_half_life))
            if self._left is not None:  # unknown after a failed check: the rate is kept
                growth = max(0, backlog - self._left)
                self.rate = max(growth / elapsed, self.rate * keep)
        else:
            self.lateness = max(self.lateness, late)
        self.lateness = max(0.0, self.lateness)
        self._read_at, self._left = now, backlog

    def plan(self, backlog: int, bound: int) -> ShedPlan:
        """How far to shed ``backlog`` so it stays within ``bound`` until the next check."""
        expected = self.expected(self.interval)
        if backlog + expected <= bound:
            # Far from the bound: nothing to shed; look again after a whole interval.
            self.last_plan = ShedPlan(bound, expected, self.interval)
        else:
            # Near it: shed ahead of the arrivals and look again sooner, so less is shed each time.
            short = min(self.interval, self.min_interval)
            expected = self.expected(short)
            self.last_plan = ShedPlan(max(0, bound - expected), expected, short)
        return self.last_plan

    def expected(self, interval: float) -> int:
        """Arrivals expected before a check ``interval`` away, with the lateness and margin."""
        return math.ceil(self.rate * (interval + self.lateness) * self.margin)

    def shed(self, count: int) -> None:
        """``count`` deliveries left the backlog in this check (dead-lettered)."""
        if self._left is not None:
            self._left = max(0, self._left - count)

    def lost(self) -> None:
        """This check failed part way: the backlog it left is unknown (the rate is kept)."""
        self._left = None


def next_deadline(deadline: float, interval: float, now: float) -> float:
    """The next check's deadline on a fixed clock: ``interval`` after the previous deadline,
    or ``now`` when the loop fell a whole interval or more behind (missed checks are not
    made up in a burst)."""
    following = deadline + interval
    return following if following > now else now
