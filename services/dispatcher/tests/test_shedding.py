"""BacklogForecast: how far a bounded backlog is shed and when it is looked at again."""

from __future__ import annotations

import random

import pytest
from proxbus_dispatcher.shedding import BacklogForecast, next_deadline


def test_the_arrival_rate_is_growth_over_the_elapsed_time_not_per_interval() -> None:
    forecast = BacklogForecast(interval=1.0)
    forecast.start(0.0, 10)
    forecast.observe(2.5, 110, late=1.5)  # a check 1.5 s late saw 2.5 s of arrivals
    assert forecast.rate == pytest.approx(40.0)


def test_one_quiet_interval_after_a_burst_keeps_most_of_the_guard() -> None:
    forecast = BacklogForecast(interval=1.0)
    forecast.start(0.0, 0)
    forecast.observe(1.0, 40)
    forecast.observe(1.2, 40)  # nothing arrived in this interval
    assert 0.5 * 40 < forecast.rate < 40
    for step in range(1, 20):
        forecast.observe(1.2 + step, 40)
    assert forecast.rate < 0.1  # long quiet: the guard is gone


def test_a_late_check_is_remembered_longer_than_a_burst() -> None:
    forecast = BacklogForecast(interval=1.0, min_interval=0.2)
    forecast.start(0.0, 0)
    forecast.observe(1.5, 60, late=0.5)  # a stalled loop
    for step in range(1, 11):  # two seconds of checks on time, at the same 40/s
        forecast.observe(1.5 + 0.2 * step, 60 + 8 * step)
    assert forecast.lateness > 0.4
    assert forecast.rate == pytest.approx(40.0, rel=0.05)
    assert forecast.expected(0.2) >= 40 * (0.2 + 0.4) * 2


def test_the_dead_lettered_are_not_taken_for_a_quiet_interval() -> None:
    forecast = BacklogForecast(interval=1.0)
    forecast.start(0.0, 100)
    forecast.shed(60)  # the check left 40
    forecast.observe(1.0, 80)
    assert forecast.rate == pytest.approx(40.0)


def test_a_failed_check_keeps_the_rate_and_measures_no_growth_from_an_unknown_backlog() -> None:
    forecast = BacklogForecast(interval=1.0, half_life=1.0)
    forecast.start(0.0, 0)
    forecast.observe(1.0, 40)
    forecast.lost()
    forecast.observe(2.0, 500)  # unknown what the failed check left: no growth from it
    forecast.lost()
    forecast.observe(5.0, 900)  # failed checks for seconds (an outage): the guard stays
    assert forecast.rate == pytest.approx(40.0)
    assert forecast.plan(500, 60).target < 60


def test_far_from_the_bound_nothing_is_shed_and_the_next_check_is_a_whole_interval_away() -> None:
    forecast = BacklogForecast(interval=1.0)
    forecast.start(0.0, 0)
    forecast.observe(1.0, 10)
    plan = forecast.plan(10, 60)
    assert (plan.target, plan.interval) == (60, 1.0)
    assert plan.expected == 20  # 10/s for 1 s, twice over


def test_near_the_bound_it_sheds_ahead_of_the_arrivals_and_looks_again_sooner() -> None:
    forecast = BacklogForecast(interval=1.0, min_interval=0.2)
    forecast.start(0.0, 0)
    forecast.observe(1.0, 40, late=0.3)
    plan = forecast.plan(40, 60)
    assert plan.interval == 0.2
    assert plan.expected == 40  # 40/s for the 0.2 s interval and the 0.3 s lateness, twice over
    assert plan.target == 20


def test_the_target_is_never_negative() -> None:
    forecast = BacklogForecast(interval=1.0)
    forecast.start(0.0, 0)
    forecast.observe(1.0, 1000)
    assert forecast.plan(1000, 5).target == 0


def test_checks_keep_a_fixed_clock_and_do_not_make_up_missed_ones() -> None:
    assert next_deadline(10.0, 1.0, 10.4) == 11.0  # the pass took 0.4 s: not 11.4
    assert next_deadline(10.0, 0.2, 10.9) == 10.9  # fell behind: now, not a burst of checks


@pytest.mark.parametrize("seed", range(5))
def test_a_steady_stream_with_late_checks_stays_within_the_bound(seed: int) -> None:
    # 40 events/s in batches of 4 every 0.1 s, bound 60; each check comes up to 0.4 s late
    # (a busy machine). Shedding takes no time here; the backlog is sampled at every arrival.
    rng = random.Random(seed)
    rate, bound = 40.0, 60
    forecast = BacklogForecast(interval=1.0)
    forecast.start(0.0, 0)
    backlog, worst, now, deadline = 0, 0, 0.0, 1.0
    arrival = 0.1
    while now < 60.0:
        check_at = deadline + rng.uniform(0.0, 0.4)
        while arrival <= check_at:
            backlog += round(rate * 0.1)
            worst = max(worst, backlog)
            arrival += 0.1
        now = check_at
        forecast.observe(now, backlog, late=now - deadline)
        plan = forecast.plan(backlog, bound)
        shed = max(0, backlog - plan.target)
        backlog -= shed
        forecast.shed(shed)
        deadline = next_deadline(deadline, plan.interval, now)
    assert worst <= bound
