"""Several endpoints per agent · environment: the rules of an additional endpoint (DESIGN.md, round 3).

The card's webhook is the pair's primary endpoint (settings/service.py keeps its rules); each additional
endpoint has its own URL (the same URL rule), switch, key (Regenerate Key with grace), retry schedule,
alerts, event types (none: all), custom headers (endpoint_headers.py) and description. The page, the API and the CLI all
change endpoints through this module; engine/fanout.py decides which endpoints an event goes to.
"""
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, select, update

from .. import errors
from ..audit.service import record
from ..clock import utcnow
from ..crypto import generate_secret, secret_box
from ..engine.alerts import new_id
from ..engine.models import CANCELLED, EVENT_TYPES, HEALTHY, PENDING, Alert, Endpoint, Event
from ..extensions import db
from ..webhook_url import check_webhook_url
from .alerting import AlertsError, check_alert_url, parse_alert_emails
from .endpoint_headers import HeadersError, parse_headers
from .keys import GRACE_PERIODS, rotate_key
from .models import EscalationSettings
from .schedule import canonical_schedule
from .service import MAX_VERSION, AdminOnly, SettingsError

MAX_DESCRIPTION = 200
REMOVED = "Not sent: the endpoint was removed."


class EndpointError(SettingsError):
    """An endpoint rule refused the change; `field` names the form field."""


class EndpointNotFound(EndpointError, errors.NotFound):
    """No endpoint with that id."""


class PrimaryEndpoint(EndpointError, errors.Conflict):
    """The primary endpoint is the card's webhook: it changes on the card (or `webhook set`), not here."""


class EndpointConflict(EndpointError, errors.Conflict):
    """Someone saved the endpoint since it was loaded (If-Match)."""


@dataclass
class EndpointChange:
    """What Add endpoint or a change submits; None keeps the saved value."""

    url: str | None = None
    enabled: bool | None = None
    event_types: list[str] | None = None  # [] or None on add: every event type
    headers: str | dict | list | None = None  # "Name: value" lines, a mapping, or [name, value] pairs
    description: str | None = None
    retry_schedule: str | None = None  # "" or "default": QLAR_RETRY_SCHEDULE
    alert_emails: str | list[str] | None = None
    alert_url: str | None = None


def parse_event_types(values) -> list[str]:
    """The event types an endpoint hears, in the catalogue's order ([]: all); an unknown one is refused."""
    values = [str(v).strip() for v in (values or []) if str(v).strip()]
    unknown = [v for v in values if v not in EVENT_TYPES]
    if unknown:
        raise EndpointError(f"Event types: unknown event type {unknown[0][:40]!r} "
                            f"(use {', '.join(EVENT_TYPES)}).", "event_types")
    return [t for t in EVENT_TYPES if t in values]


def endpoints_of_pair(settings: EscalationSettings) -> list[Endpoint]:
    """Every endpoint of the pair, the primary first, then the additional ones oldest first."""
    return list(db.session.scalars(select(Endpoint).where(
        Endpoint.agent_id == settings.agent_id, Endpoint.environment == settings.environment)
        .order_by(Endpoint.is_primary.desc(), Endpoint.created_at, Endpoint.id)))


def additional_endpoints(settings: EscalationSettings) -> list[Endpoint]:
    """The pair's additional endpoints, oldest first."""
    return [ep for ep in endpoints_of_pair(settings) if not ep.is_primary]


def get_endpoint(endpoint_id: str) -> Endpoint:
    """An endpoint by id (ep_…), or EndpointNotFound."""
    ep = db.session.get(Endpoint, str(endpoint_id)[:40]) if endpoint_id else None
    if ep is None:
        raise EndpointNotFound(f"No endpoint {str(endpoint_id)[:60]!r}.")
    return ep


def editable(endpoint_id: str) -> Endpoint:
    """An additional endpoint by id; the primary is refused (it is the card's webhook)."""
    ep = get_endpoint(endpoint_id)
    if ep.is_primary:
        raise PrimaryEndpoint(f"{ep.id} is the primary endpoint of {ep.agent_id} \u00b7 {ep.environment}: change it "
                              "on the Escalation page's card (or with `flask qlar webhook set`).")
    return ep


def add_endpoint(settings: EscalationSettings, change: EndpointChange, actor: str, *, as_admin: bool = False
                 ) -> Endpoint:
    """Add an endpoint to the pair (switched on unless `enabled` is False), with a key of its own; audited."""
    limit = int(current_app.config["MAX_ENDPOINTS"])
    count = db.session.scalar(select(func.count()).select_from(Endpoint).where(
        Endpoint.agent_id == settings.agent_id, Endpoint.environment == settings.environment)) or 1
    if count >= limit:
        raise EndpointError(f"{settings.label} already has {count} endpoints, the most allowed "
                            f"(QLAR_MAX_ENDPOINTS={limit}).", "url")
    now = utcnow()
    ep = Endpoint(id=new_id("ep_"), agent_id=settings.agent_id, environment=settings.environment, is_primary=False,
                  created_at=now, health=HEALTHY, consecutive_failures=0, failing_alerted=False,
                  paused_alerted=False, alert_emails=[], event_types=[], headers={}, enabled=True, version=1,
                  secret_ciphertext=secret_box().encrypt(generate_secret()), secret_created_at=now)
    _apply(ep, change, as_admin=as_admin, adding=True)
    ep.saved_by, ep.saved_at = actor, now
    db.session.add(ep)
    record(actor, "endpoint.added", f"{ep.id}: {ep.url}; {_describe(ep)}",
           agent_id=ep.agent_id, environment=ep.environment)
    db.session.commit()
    return ep


def update_endpoint(ep: Endpoint, change: EndpointChange, actor: str, *, expected_version: int | None = None,
                    as_admin: bool = False) -> Endpoint:
    """Change an additional endpoint (only if nobody saved since expected_version, when given); audited."""
    if ep.is_primary:
        editable(ep.id)
    if expected_version is not None and not 0 < expected_version <= MAX_VERSION:
        raise EndpointError("The version is not valid: reload and try again.", "version")
    version = ep.version
    _apply(ep, change, as_admin=as_admin, adding=False)
    if change.enabled:
        ep.disabled_reason = ep.disabled_at = None
    now = utcnow()
    values = {c: getattr(ep, c) for c in ("url", "enabled", "event_types", "headers", "description",
                                          "retry_schedule", "alert_emails", "alert_url", "disabled_reason",
                                          "disabled_at")}
    db.session.expire(ep)
    result = db.session.execute(update(Endpoint).where(
        Endpoint.id == ep.id, Endpoint.version == (expected_version if expected_version is not None else version))
        .values(**values, version=Endpoint.version + 1, saved_by=actor, saved_at=now))
    if result.rowcount != 1:
        db.session.rollback()
        db.session.refresh(ep)
        raise EndpointConflict(f"{ep.saved_by or 'Someone'} saved endpoint {ep.id} after you loaded it: "
                               "nothing was changed; reload and try again.")
    db.session.refresh(ep)
    record(actor, "endpoint.saved", f"{ep.id}: version {ep.version}; {'enabled' if ep.enabled else 'disabled'}; "
           f"{ep.url}; {_describe(ep)}", agent_id=ep.agent_id, environment=ep.environment)
    db.session.commit()
    return ep


def remove_endpoint(ep: Endpoint, actor: str) -> int:
    """Remove an additional endpoint: its pending events end cancelled (the log keeps them); returns how many."""
    editable(ep.id)
    cancelled = db.session.execute(update(Event).where(Event.endpoint_id == ep.id, Event.status == PENDING).values(
        status=CANCELLED, next_attempt_at=None, lease_owner=None, lease_until=None, last_error=REMOVED)).rowcount
    db.session.execute(Alert.__table__.delete().where(Alert.endpoint_id == ep.id))
    record(actor, "endpoint.removed", f"{ep.id}: {ep.url}; {cancelled} pending events cancelled",
           agent_id=ep.agent_id, environment=ep.environment)
    db.session.delete(ep)
    db.session.commit()
    return cancelled


def reveal_endpoint_secret(ep: Endpoint, actor: str, via: str = "Copy") -> str:
    """The endpoint's plaintext key; audited (the caller checks the `secrets` scope or the role)."""
    editable(ep.id)
    plaintext = secret_box().decrypt(ep.secret_ciphertext)
    record(actor, "webhook.secret_revealed", f"endpoint {ep.id} via {via}",
           agent_id=ep.agent_id, environment=ep.environment)
    db.session.commit()
    return plaintext


def regenerate_endpoint_secret(ep: Endpoint, actor: str, grace: str = "none") -> None:
    """Regenerate Key of an additional endpoint: the other endpoints' keys stay as they are; audited."""
    editable(ep.id)
    if grace not in GRACE_PERIODS:
        raise EndpointError(f"Grace period must be one of: {', '.join(GRACE_PERIODS)}.", "grace")
    rotate_key(ep, grace)
    record(actor, "webhook.secret_regenerated", f"endpoint {ep.id}: " + (
        f"previous key valid for {grace}" if GRACE_PERIODS[grace] else "previous key invalid at once"),
        agent_id=ep.agent_id, environment=ep.environment)
    db.session.commit()


def _apply(ep: Endpoint, change: EndpointChange, *, as_admin: bool, adding: bool) -> None:
    """Check the change and set it on the endpoint object (nothing is flushed here)."""
    if change.url is not None or adding:
        checked = check_webhook_url(change.url or "", enabled=True,
                                    resolve_seconds=float(current_app.config["RESOLVE_TIMEOUT_SECONDS"]))
        ep.url = checked.url
    if change.enabled is not None:
        ep.enabled = bool(change.enabled)
    if change.event_types is not None:
        ep.event_types = parse_event_types(change.event_types)
    if change.headers is not None:
        try:
            ep.headers = parse_headers(change.headers)
        except HeadersError as exc:
            raise EndpointError(str(exc), exc.field) from None
    if change.description is not None:
        description = " ".join(str(change.description).split())
        if len(description) > MAX_DESCRIPTION:
            raise EndpointError(f"Description: at most {MAX_DESCRIPTION} characters.", "description")
        ep.description = description or None
    if change.retry_schedule is not None:
        try:
            schedule = canonical_schedule(change.retry_schedule)
        except ValueError as exc:
            raise EndpointError(str(exc), "retry_schedule") from None
        if schedule != ep.retry_schedule and not as_admin:
            raise AdminOnly("Only an admin can change the retry schedule.", "retry_schedule")
        ep.retry_schedule = schedule
    try:
        if change.alert_emails is not None:
            ep.alert_emails = parse_alert_emails(change.alert_emails)
        if change.alert_url is not None:
            ep.alert_url = check_alert_url(change.alert_url) or None
    except AlertsError as exc:
        raise EndpointError(str(exc), exc.field) from None


def _describe(ep: Endpoint) -> str:
    types = ", ".join(ep.event_types or []) or "all event types"
    headers = ", ".join(ep.headers or {}) or "no custom headers"
    return f"{types}; {headers}"

