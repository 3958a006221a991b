"""Endpoint health: healthy, failing, paused, and the probe of a paused endpoint (DESIGN.md, round 3).

- failing: from the first failed try with no success since;
- paused: failing for QLAR_PAUSE_AFTER, or an event would otherwise use up its schedule while every try
  to the endpoint failed since that event's first try, or the endpoint's key cannot be decrypted (held).
  Its events stay pending; one probe at a time (claim.py), the first after the schedule's first delay, then
  each a quarter of the time paused so far later, at most QLAR_PROBE_MAX_SECONDS;
- recovered: the first success; the held events are due again in their order (created_at).

record.py calls a Health per batch, in the batch's transaction; Resume now calls `resume`. Alerts
are raised here (alerts.py writes them), at most one failing and one paused per outage.
"""
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, tuple_, update

from ..extensions import db
from . import alerts
from .claim import Work
from .models import FAILED, FAILING, HEALTHY, PAUSED, PENDING, Attempt, Endpoint, Event

FAILING_ALERT_AFTER = 2  # consecutive failed tries before endpoint.failing is sent: one blip is not an outage
PROBE_SHARE = 0.25  # a paused endpoint's next probe waits this share of the time it has been paused


@dataclass(frozen=True)
class HealthRules:
    """The pause and probe settings: QLAR_PAUSE_AFTER and QLAR_PROBE_MAX_SECONDS, in seconds."""

    pause_after: float = 1800.0
    probe_max: float = 300.0


def endpoints_of(pairs) -> dict[tuple[str, str], Endpoint]:
    """The primary endpoint of each pair, created when a pair has none yet (in the caller's transaction)."""
    pairs = set(pairs)
    found = {(ep.agent_id, ep.environment): ep for ep in db.session.scalars(select(Endpoint).where(
        tuple_(Endpoint.agent_id, Endpoint.environment).in_(list(pairs)), Endpoint.is_primary))} if pairs else {}
    missing = pairs - found.keys()
    for pair in missing:
        found[pair] = Endpoint(id=alerts.new_id("ep_"), agent_id=pair[0], environment=pair[1], is_primary=True,
                               alert_emails=[], health=HEALTHY, consecutive_failures=0,
                               failing_alerted=False, paused_alerted=False)
        db.session.add(found[pair])
    if missing:
        db.session.flush()  # before any alert row names it (Alert has no relationship to order the INSERTs)
    return found


EP = Endpoint.__table__
_STATES = select(EP.c.id, EP.c.health, EP.c.consecutive_failures, EP.c.failing_alerted, EP.c.paused_alerted).where(
    EP.c.id.in_(bindparam("ids", expanding=True)))


def _quiet(ep) -> bool:
    """Healthy with nothing to clear (an Endpoint or a _STATES row): a success writes nothing."""
    return ep.health == HEALTHY and not (ep.consecutive_failures or ep.failing_alerted or ep.paused_alerted)


@dataclass
class Health:
    """The health decisions of one recorded batch."""

    rules: HealthRules
    endpoints: dict[str, Endpoint]  # by id: those whose health this batch may change (others are quiet)
    raised: list[tuple] = field(default_factory=list)  # (endpoint, type, url, detail) for alerts.raise_alerts

    @classmethod
    def of_batch(cls, rules: HealthRules, ids: set[str], troubled: set[str]) -> "Health":
        """The health of a batch's endpoints (`troubled`: those with a failed or held try), in the caller's
        transaction: one Core read of their states, and Endpoint rows loaded only where health may change."""
        rows = db.session.connection().execute(_STATES, {"ids": list(ids)}) if ids else ()
        load = list(troubled | {row.id for row in rows if not _quiet(row)})
        return cls(rules, {ep.id: ep for ep in db.session.scalars(select(Endpoint).where(Endpoint.id.in_(load)))}
                   if load else {})

    def succeeded(self, work: Work, at: datetime) -> None:
        """A 2xx: the endpoint is healthy; after an alerted outage, recovered."""
        ep = self.endpoints.get(work.endpoint_id)
        if ep is None or _quiet(ep):
            return  # the common case writes nothing: workers never contend for a healthy endpoint's row
        ep.last_success_at, ep.consecutive_failures = at, 0
        if ep.failing_alerted or ep.paused_alerted:
            self.raised.append((ep, "endpoint.recovered", work.target.url,
                                {"since": ep.failing_since or ep.health_since or at, "recoveredAt": at}))
        if ep.health == PAUSED:
            unpark(ep)
        _set(ep, HEALTHY, at)
        ep.failing_since = ep.pause_reason = ep.probe_delay = ep.next_probe_at = None
        ep.failing_alerted = ep.paused_alerted = False

    def failed(self, work: Work, decided: str, next_at: datetime | None, error: str, started: datetime,
               ended: datetime, schedule: list[float]) -> tuple[str, datetime | None, bool]:
        """A failed try (not a 410): (status, next try, whether it used one of the event's tries).

        While paused no event ends failed and no try is used; a failed probe sets when the next one goes.
        """
        ep = self.endpoints[work.endpoint_id]
        was_paused = ep.health == PAUSED
        ep.consecutive_failures += 1
        ep.last_error, ep.last_error_at = error, ended
        if ep.health == HEALTHY:
            _set(ep, FAILING, started)
            ep.failing_since = started
        elif ep.failing_since is None or started < ep.failing_since:
            ep.failing_since = started  # tries in flight together are recorded in any order: the earliest start
        if not was_paused:
            if ep.consecutive_failures >= FAILING_ALERT_AFTER and not ep.failing_alerted:
                ep.failing_alerted = True
                self.raised.append((ep, "endpoint.failing", work.target.url, {"since": ep.failing_since}))
            if decided == FAILED and self._failing_throughout(ep, work, started):
                self.pause(ep, work, ended, schedule, f"Every try failed since {ep.failing_since:%Y-%m-%d %H:%M:%S} "
                           f"UTC and event {work.event_id} would have used up its retry schedule.")
            elif ep.failing_since <= ended - timedelta(seconds=self.rules.pause_after):
                self.pause(ep, work, ended, schedule,
                           f"Failing since {ep.failing_since:%Y-%m-%d %H:%M:%S} UTC (QLAR_PAUSE_AFTER).")
            if ep.health != PAUSED:
                return decided, next_at, True
            return PENDING, ep.next_probe_at if decided == FAILED else next_at, True
        if work.probe:
            self._probe_again(ep, ended)
        return PENDING, ep.next_probe_at, False

    def held(self, work: Work, reason: str, at: datetime, schedule: list[float]) -> datetime:
        """The endpoint cannot be sent to through no fault of the receiver (its key cannot be decrypted):
        paused with that reason, no try used; returns when the event is due again (the next probe)."""
        ep = self.endpoints[work.endpoint_id]
        ep.last_error, ep.last_error_at = reason, at
        if ep.health != PAUSED:
            self.pause(ep, work, at, schedule, reason)
        elif work.probe:
            self._probe_again(ep, at)
        return ep.next_probe_at

    def pause(self, ep: Endpoint, work: Work, at: datetime, schedule: list[float], reason: str) -> None:
        """Pause: only probes go out from now on, the first one the schedule's first delay away."""
        if ep.failing_since is None:
            ep.failing_since = at
        _set(ep, PAUSED, at)
        ep.pause_reason = reason
        ep.probe_delay = max(0.1, min(schedule[0], self.rules.probe_max))
        ep.next_probe_at = at + timedelta(seconds=ep.probe_delay)
        if not ep.paused_alerted:
            ep.paused_alerted = True
            self.raised.append((ep, "endpoint.paused", work.target.url, {"since": at, "reason": reason}))

    def _probe_again(self, ep: Endpoint, at: datetime) -> None:
        """After a failed probe: wait a quarter of the time paused so far (never less than before, at most
        QLAR_PROBE_MAX_SECONDS), so a recovery is seen within a quarter of the outage's length."""
        paused_for = (at - (ep.health_since or at)).total_seconds()
        ep.probe_delay = min(max(ep.probe_delay or 0.1, PROBE_SHARE * paused_for), self.rules.probe_max)
        ep.next_probe_at = at + timedelta(seconds=ep.probe_delay)

    @staticmethod
    def _failing_throughout(ep: Endpoint, work: Work, started: datetime) -> bool:
        """Whether no try to the endpoint succeeded since this event's run began (a poison event's has)."""
        first = db.session.scalar(select(func.min(Attempt.started_at)).where(
            Attempt.event_id == work.event_id, Attempt.number > work.attempt_count - work.tries))
        return ep.failing_since is not None and ep.failing_since <= min(filter(None, (first, started)))


def _set(ep: Endpoint, state: str, at: datetime) -> None:
    ep.health, ep.health_since = state, at


def unpark(ep: Endpoint) -> int:
    """Make a paused endpoint's pending events due again, in the order they happened."""
    return db.session.execute(update(Event).where(
        Event.endpoint_id == ep.id, Event.status == PENDING,
        Event.next_attempt_at > Event.created_at).values(next_attempt_at=Event.created_at, lease_owner=None,
                                                         lease_until=None)).rowcount


def resume(ep: Endpoint, now: datetime) -> int:
    """Resume now: end a pause at once (the caller audits, commits and wakes the dispatcher); returns the
    number of events due again. The outage's alerts stay sent: a later success still says recovered."""
    count = unpark(ep) if ep.health == PAUSED else 0
    _set(ep, HEALTHY, now)
    ep.failing_since = ep.pause_reason = ep.probe_delay = ep.next_probe_at = None
    ep.consecutive_failures = 0
    return count


def expire_held(retention_days: float, now: datetime, resolve) -> int:
    """Events a paused endpoint held past QLAR_TRACE_RETENTION_DAYS end failed, each endpoint with one alert."""
    cutoff = now - timedelta(days=float(retention_days))
    expired = 0
    for ep in db.session.scalars(select(Endpoint).where(Endpoint.health == PAUSED)):
        old = (Event.endpoint_id == ep.id, Event.status == PENDING, Event.created_at < cutoff)
        count = db.session.execute(update(Event).where(*old).values(
            status=FAILED, next_attempt_at=None, lease_owner=None, lease_until=None,
            last_error=f"Held longer than QLAR_TRACE_RETENTION_DAYS ({retention_days:g} days) while the endpoint "
                       "was paused.")).rowcount
        if count:
            expired += count
            url = resolve({ep.id})[ep.id].url
            alerts.raise_alerts([(ep, "delivery.failed", url, {"since": cutoff, "expired": count})], now)
    db.session.commit()
    return expired
