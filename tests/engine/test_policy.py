"""The retry policy of DESIGN.md as plain functions."""
import random
from datetime import datetime

import pytest

from qlar_console.engine.retry import parse_duration, parse_retry_after, parse_schedule, retry_delay

DEFAULT = parse_schedule("5s,5m,30m,2h,5h,10h,10h")


def test_default_schedule_is_eight_tries_over_about_28_hours():
    assert len(DEFAULT) + 1 == 8
    assert 27 * 3600 < sum(DEFAULT) < 29 * 3600


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5), ("5m", 300), ("2h", 7200), ("1d", 86400), ("200ms", 0.2)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "five minutes", "5x", "-5s"])
def test_bad_durations_are_refused_with_a_message(text):
    with pytest.raises(ValueError, match="Not a duration"):
        parse_duration(text)


def test_jitter_stays_within_20_percent():
    rng = random.Random(1)
    delays = [retry_delay(2, DEFAULT, status=500, rng=rng) for _ in range(500)]
    assert min(delays) >= 240 and max(delays) <= 360
    assert max(delays) - min(delays) > 60  # really jittered


def test_last_try_gives_up():
    assert retry_delay(7, DEFAULT, status=500) is not None
    assert retry_delay(8, DEFAULT, status=500) is None


@pytest.mark.parametrize(("retry_after", "expected"), [(10, 300), (400, 400), (9999, 600)])
def test_retry_after_is_honoured_within_one_to_two_times(retry_after, expected):
    assert retry_delay(2, DEFAULT, status=503, retry_after=retry_after) == expected


@pytest.mark.parametrize("status", [429, 502, 504])
def test_slowdown_statuses_wait_at_least_the_slowdown(status):
    assert retry_delay(1, DEFAULT, status=status, slowdown=60) >= 60


def test_timeouts_wait_at_least_the_slowdown_but_longer_schedules_win():
    assert retry_delay(1, DEFAULT, timed_out=True, slowdown=60) >= 60
    assert retry_delay(3, DEFAULT, timed_out=True, slowdown=60) >= 30 * 60 * 0.8


def test_retry_after_http_date():
    now = datetime(2026, 5, 19, 10, 15, 0)
    assert parse_retry_after("Tue, 19 May 2026 10:16:00 GMT", now) == 60
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("soon", now) is None
