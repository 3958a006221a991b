"""The home page's overview: every agent x environment with its webhook state and its last 24 hours of deliveries.

Three queries whatever the number of pairs or the size of the log: the settings, the events created in the window
counted per pair and status (a range on ix_events_created_at), and each pair's latest attempt in the window (a range
on ix_attempts_started_at, then primary keys).
"""
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select

from ..clock import utcnow
from ..engine.models import FAILED, PENDING, SUCCEEDED, Attempt, Event
from ..engine.send import timed_out
from ..extensions import db
from .models import EscalationSettings
from .service import all_settings

WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class LastAttempt:
    """A pair's most recent delivery attempt: when, and what came back."""

    at: datetime
    status: int | None
    error: str | None
    event_id: str

    @property
    def ok(self) -> bool:
        """True when the endpoint answered 2xx within the timeout."""
        return self.status is not None and 200 <= self.status < 300 and not timed_out(self.error)

    @property
    def result(self) -> str:
        """The HTTP status, or a short name of the error when there was no answer."""
        if self.status is not None:
            return str(self.status)
        return (self.error or "Error").split(":", 1)[0].split(" after ", 1)[0].rstrip(".")[:40]


@dataclass(frozen=True)
class PairOverview:
    """One row of the overview."""

    settings: EscalationSettings
    host: str | None
    key_age: timedelta | None
    succeeded: int
    failed: int
    pending: int
    last: LastAttempt | None

    @property
    def success_rate(self) -> float | None:
        """Succeeded / finished (succeeded + failed) in the window, as a percentage; None when none finished."""
        finished = self.succeeded + self.failed
        return 100.0 * self.succeeded / finished if finished else None

    @property
    def success_text(self) -> str | None:
        """The success rate as the page shows it: "100 %", "98.5 %", "0 %" (None when none finished)."""
        rate = self.success_rate
        if rate is None:
            return None
        return f"{rate:.0f} %" if rate in (0.0, 100.0) else f"{min(rate, 99.9):.1f} %"

    @property
    def key_age_text(self) -> str | None:
        """How old the signing key is, e.g. "12 days" (None when no key was created yet)."""
        return age_text(self.key_age) if self.key_age is not None else None


def url_host(url: str | None) -> str | None:
    """The host of a webhook URL (with a non-default port), or None."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        return parts.netloc.rsplit("@", 1)[-1] or None  # never show credentials written into the URL
    except ValueError:
        return None


def age_text(age: timedelta) -> str:
    """A short, rounded-down age: "just now", "5 min", "3 h", "12 days"."""
    seconds = max(0, int(age.total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    days = seconds // 86400
    return "1 day" if days == 1 else f"{days} days"


def _counts(since: datetime) -> dict[tuple[str, str], dict[str, int]]:
    rows = db.session.execute(
        select(Event.agent_id, Event.environment, Event.status, func.count())
        .where(Event.created_at >= since)
        .group_by(Event.agent_id, Event.environment, Event.status)
    )
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for agent_id, environment, status, count in rows:
        counts.setdefault((agent_id, environment), {})[status] = count
    return counts


def _latest_attempts(since: datetime) -> dict[tuple[str, str], LastAttempt]:
    latest_ids = (
        select(func.max(Attempt.id))
        .join(Event, Event.id == Attempt.event_id)
        .where(Attempt.started_at >= since)
        .group_by(Event.agent_id, Event.environment)
    )
    rows = db.session.execute(
        select(Event.agent_id, Event.environment, Attempt.started_at, Attempt.response_status, Attempt.error,
               Attempt.event_id)
        .join(Event, Event.id == Attempt.event_id)
        .where(Attempt.id.in_(latest_ids))
    )
    return {(agent, env): LastAttempt(at, status, error, event_id)
            for agent, env, at, status, error, event_id in rows}


def pair_overview(now: datetime | None = None) -> list[PairOverview]:
    """Every agent x environment (in the switcher's order) with its webhook state and last-24-hours figures."""
    now = now or utcnow()
    since = now - WINDOW
    pairs = all_settings()
    if not pairs:
        return []
    counts, latest = _counts(since), _latest_attempts(since)
    result = []
    for s in pairs:
        key = (s.agent_id, s.environment)
        by_status = counts.get(key, {})
        result.append(PairOverview(
            settings=s,
            host=url_host(s.webhook_url),
            key_age=now - s.secret_created_at if s.secret_created_at else None,
            succeeded=by_status.get(SUCCEEDED, 0),
            failed=by_status.get(FAILED, 0),
            pending=by_status.get(PENDING, 0),
            last=latest.get(key),
        ))
    return result
