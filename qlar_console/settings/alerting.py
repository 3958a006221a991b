"""Who hears of a pair's webhook trouble, and what its health is: the rules behind the card's Alerts fields,
Resume now, and the health shown on the card, in the API, the CLI and queue health.

The endpoint record (engine/models.Endpoint) holds health and alert recipients; this module is the one
place the page, the API and the CLI change them (DESIGN.md "An endpoint that is down loses nothing").
"""
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from .. import errors
from ..audit.service import record
from ..clock import utcnow
from ..engine import health
from ..engine.models import PAUSED, PENDING, Endpoint, Event
from ..engine.outbox import notify_dispatcher
from ..extensions import db
from ..webhook_url import InvalidWebhookURL, check_webhook_url
from .models import EscalationSettings

MAX_ALERT_EMAILS = 10
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


class AlertsError(errors.DomainError):
    """An alert recipient is not valid (field alert_emails or alert_url)."""


class NotPaused(errors.Conflict):
    """Resume now on an endpoint that is not paused."""


def primary_endpoint(settings: EscalationSettings) -> Endpoint:
    """The pair's primary endpoint record (the card's webhook), created if it has none yet."""
    return health.endpoints_of({(settings.agent_id, settings.environment)})[(settings.agent_id, settings.environment)]


def parse_alert_emails(value: str | list[str] | None) -> list[str]:
    """The alert addresses from a comma-separated text (or a list): each checked, duplicates dropped."""
    parts = value if isinstance(value, list) else str(value or "").replace(";", ",").split(",")
    if isinstance(value, list) and not all(str(part).strip() for part in value):
        raise AlertsError("Alert emails: an empty address (leave it out instead).", "alert_emails")
    if isinstance(value, list) and len(value) > MAX_ALERT_EMAILS:
        raise AlertsError(f"Alert emails: at most {MAX_ALERT_EMAILS} addresses, not {len(value)}.", "alert_emails")
    emails = []
    for part in parts:
        address = str(part).strip()
        if not address:
            continue
        if len(address) > 254 or not EMAIL.match(address):
            raise AlertsError(f"Alert emails: {address[:80]!r} is not an email address "
                              "(use name@example.com, comma-separated).", "alert_emails")
        if address.lower() not in {e.lower() for e in emails}:
            emails.append(address)
    if len(emails) > MAX_ALERT_EMAILS:
        raise AlertsError(f"Alert emails: at most {MAX_ALERT_EMAILS} addresses, not {len(emails)}.", "alert_emails")
    return emails


def check_alert_url(url: str | None) -> str | None:
    """The alert webhook URL under the webhook URL rule (https only), or None when empty."""
    if not (url or "").strip():
        return None
    try:
        return check_webhook_url(url, enabled=True).url
    except InvalidWebhookURL as exc:
        raise AlertsError(f"Alert webhook URL: {exc}", "alert_url") from None


def apply_alerts(settings: EscalationSettings, emails: list[str] | None, url: str | None, actor: str) -> None:
    """Set the recipients (None keeps each as saved; the caller checked them and commits), audited on change."""
    endpoint = primary_endpoint(settings)
    new_emails = endpoint.alert_emails if emails is None else emails
    new_url = endpoint.alert_url if url is None else (url or None)
    if (list(new_emails or []), new_url) == (list(endpoint.alert_emails or []), endpoint.alert_url):
        return
    endpoint.alert_emails, endpoint.alert_url = list(new_emails or []), new_url
    record(actor, "webhook.alerts_changed",
           f"emails {', '.join(endpoint.alert_emails) or '(none)'}; URL {endpoint.alert_url or '(none)'}",
           agent_id=settings.agent_id, environment=settings.environment)


def resume(settings: EscalationSettings, actor: str) -> int:
    """Resume now: end the pause of the pair's endpoint at once; returns how many held events are due again."""
    endpoint = primary_endpoint(settings)
    if endpoint.health != PAUSED:
        db.session.rollback()
        raise NotPaused(f"The webhook of {settings.label} is not paused (it is {endpoint.health}).")
    count = health.resume(endpoint, utcnow())
    record(actor, "webhook.resumed", f"{count} held events due again", agent_id=settings.agent_id,
           environment=settings.environment)
    db.session.commit()
    notify_dispatcher()
    return count


def resume_endpoint(ep: Endpoint, actor: str) -> int:
    """Resume now for one additional endpoint: end its pause at once; returns how many held events are due again."""
    if ep.health != PAUSED:
        db.session.rollback()
        raise NotPaused(f"Endpoint {ep.id} is not paused (it is {ep.health}).")
    count = health.resume(ep, utcnow())
    record(actor, "webhook.resumed", f"endpoint {ep.id}: {count} held events due again", agent_id=ep.agent_id,
           environment=ep.environment)
    db.session.commit()
    notify_dispatcher()
    return count


@dataclass(frozen=True)
class HealthView:
    """An endpoint's health as every surface shows it."""

    state: str  # healthy | failing | paused
    since: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    pause_reason: str | None
    next_probe_at: datetime | None
    pending: int
    alert_emails: list[str]
    alert_url: str | None

    @property
    def word(self) -> str:
        """The badge's word: Healthy, Failing or Paused."""
        return self.state.capitalize()

    def document(self) -> dict:
        """The API's healthDetail (times as datetimes; the schema renders them)."""
        return {"state": self.state, "since": self.since, "lastError": self.last_error,
                "lastErrorAt": self.last_error_at, "pauseReason": self.pause_reason,
                "nextProbeAt": self.next_probe_at, "pending": self.pending}


def health_view(settings: EscalationSettings, ep: Endpoint | None = None) -> HealthView:
    """An endpoint's health (default: the pair's primary), with its pending events counted."""
    ep = ep or primary_endpoint(settings)
    pending = db.session.scalar(select(func.count()).select_from(Event).where(
        Event.endpoint_id == ep.id, Event.status == PENDING))
    return HealthView(ep.health, ep.health_since if ep.health != "healthy" else None, ep.last_error, ep.last_error_at,
                      ep.pause_reason, ep.next_probe_at, pending or 0, list(ep.alert_emails or []), ep.alert_url)


def unhealthy_endpoints() -> list[Endpoint]:
    """Every endpoint failing or paused, for queue health."""
    return list(db.session.scalars(select(Endpoint).where(Endpoint.health != "healthy")
                                   .order_by(Endpoint.agent_id, Endpoint.environment)))


def health_counts() -> dict[str, int]:
    """How many endpoints are in each state, for /metrics."""
    counts = dict(db.session.execute(select(Endpoint.health, func.count()).group_by(Endpoint.health)).all())
    return {state: counts.get(state, 0) for state in ("healthy", "failing", "paused")}
