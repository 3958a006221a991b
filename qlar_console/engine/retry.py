"""The retry decision: the schedule, jitter, Retry-After and slow-down rules of DESIGN.md, as pure functions."""
import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from .models import FAILED, PENDING, SUCCEEDED

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
SLOWDOWN_STATUSES = {429, 502, 504}
JITTER = 0.2
MAX_RETRIES = 20  # delays in a schedule (a run is at most 21 tries)
MAX_DELAY = 86400.0  # seconds: no single wait longer than a day


def parse_duration(text: str) -> float:
    """Seconds in a duration such as 5s, 5m, 2h, 1d or 200ms."""
    match = DURATION.match(str(text))
    if not match:
        raise ValueError(f"Not a duration: {str(text).strip()!r} (use a number and one of ms, s, m, h, d, such as 5m).")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_schedule(text: str) -> list[float]:
    """The delays after each failed try, from a comma-separated list like 5s,5m,30m, within the limits.

    ValueError says what is wrong: not a duration, no delay at all, more than MAX_RETRIES delays, or a
    delay over a day. The one rule for QLAR_RETRY_SCHEDULE and each pair's override.
    """
    delays = [parse_duration(part) for part in str(text).split(",") if part.strip()]
    if not delays:
        raise ValueError("A retry schedule needs at least one delay, such as 5s,5m,30m.")
    if len(delays) > MAX_RETRIES:
        raise ValueError(f"A retry schedule has at most {MAX_RETRIES} delays, not {len(delays)}.")
    if max(delays) > MAX_DELAY:
        raise ValueError("No delay of a retry schedule may be longer than 1d (24h).")
    return delays


def format_schedule(delays: list[float]) -> str:
    """A schedule as text in its largest exact units (5s,5m,2h), as parse_schedule reads it back."""
    parts = []
    for delay in delays:
        unit = next((u for u in ("d", "h", "m", "s") if delay >= UNITS[u] and delay % UNITS[u] == 0), None)
        # never an exponent (1.0005e+06ms would not parse back); a millionth of a millisecond is precise enough
        millis = f"{round(delay * 1000, 6):f}".rstrip("0").rstrip(".")
        parts.append(f"{delay / UNITS[unit]:g}{unit}" if unit else f"{millis}ms")
    return ",".join(parts)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return max(0.0, (when - now).total_seconds())


def retry_delay(
    tries: int,
    schedule: list[float],
    *,
    status: int | None = None,
    timed_out: bool = False,
    retry_after: float | None = None,
    slowdown: float = 60.0,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait after the `tries`-th failed try of a run, or None when it was the last."""
    if tries > len(schedule):
        return None
    scheduled = schedule[tries - 1]
    delay = scheduled * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = min(max(retry_after, scheduled), 2 * scheduled)
    if timed_out or status in SLOWDOWN_STATUSES:
        delay = max(delay, slowdown)
    return delay


def decide(outcome, tries: int, schedule: list[float], slowdown: float, now: datetime) -> tuple[str, datetime | None]:
    """After the `tries`-th try of a run: (succeeded | failed | pending, when to try next).

    2xx is delivered; 410 Gone stops at once; anything else retries on the schedule until it runs out.
    """
    if outcome.ok:
        return SUCCEEDED, None
    if outcome.status == 410:
        return FAILED, None
    delay = retry_delay(tries, schedule, status=outcome.status, timed_out=outcome.timed_out, slowdown=slowdown,
                        retry_after=parse_retry_after(outcome.headers.get("Retry-After"), now))
    if delay is None:
        return FAILED, None
    return PENDING, now + timedelta(seconds=delay)
