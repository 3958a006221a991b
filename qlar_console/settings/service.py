"""Escalation settings rules: the agent x environment pairs, and saving a page with optimistic locking."""
import logging
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import update

from .. import errors
from ..audit.service import record
from ..clock import utcnow
from ..crypto import generate_secret, secret_box
from ..engine.health import endpoints_of
from ..extensions import db
from ..webhook_url import check_webhook_url
from .alerting import AlertsError, apply_alerts, check_alert_url, parse_alert_emails
from .models import CLAIM_TIMEOUT_MINUTES, TRIGGER_CONDITIONS, URGENCY_LEVELS, Agent, EscalationSettings
from .schedule import canonical_schedule, describe_schedule

log = logging.getLogger(__name__)

MAX_VERSION = 2**31 - 1  # the version column is a 32-bit integer on PostgreSQL


class SettingsError(errors.DomainError):
    """A settings rule refused the change."""


class UnknownPair(SettingsError, errors.NotFound):
    """No such agent or environment."""


class AdminOnly(SettingsError, errors.Forbidden):
    """The change touches what only an admin may set (the retry schedule)."""


class StaleSettings(SettingsError, errors.Conflict):
    """Someone saved a newer version since the form was loaded."""

    def __init__(self, saved_by: str | None, saved_at: datetime | None):
        self.saved_by, self.saved_at = saved_by, saved_at
        when = saved_at.strftime("%Y-%m-%d %H:%M:%S UTC") if saved_at else "an unknown time"
        super().__init__(
            f"{saved_by or 'Someone'} saved these settings at {when}, after you opened the page. "
            "Your changes were not saved: they are still in the form; review them and press Save again."
        )


@dataclass
class SettingsChange:
    """What a Save submits: the behaviour fields and the webhook switch and URL."""

    webhook_enabled: bool
    webhook_url: str
    trigger_conditions: list[str] = field(default_factory=lambda: [TRIGGER_CONDITIONS[0]])
    default_urgency: str = "high"
    claim_timeout_minutes: int = 30
    retry_schedule: str | None = None  # as typed: "" or "default" clears the override; None keeps the saved one
    alert_emails: str | list[str] | None = None  # comma-separated (or a list); "" clears; None keeps the saved ones
    alert_url: str | None = None  # "" clears; None keeps the saved one

    @classmethod
    def from_settings(cls, settings: EscalationSettings, **overrides) -> "SettingsChange":
        """The change that would save the current values, with some fields overridden."""
        values = dict(
            webhook_enabled=settings.webhook_enabled,
            webhook_url=settings.webhook_url or "",
            trigger_conditions=list(settings.trigger_conditions),
            default_urgency=settings.default_urgency,
            claim_timeout_minutes=settings.claim_timeout_minutes,
            retry_schedule=settings.retry_schedule,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def get_settings(agent_id: str, environment: str) -> EscalationSettings:
    """The settings of one agent x environment, or UnknownPair."""
    settings = db.session.scalar(
        db.select(EscalationSettings).filter_by(agent_id=agent_id, environment=environment)
    )
    if settings is None:
        raise UnknownPair(f"No agent {agent_id!r} with environment {environment!r}.")
    return settings


def all_settings() -> list[EscalationSettings]:
    """Every agent x environment, for the switcher."""
    return list(
        db.session.scalars(
            db.select(EscalationSettings).order_by(EscalationSettings.agent_id, EscalationSettings.environment)
        )
    )


def add_agent(agent_id: str, environments: list[str], actor: str) -> Agent:
    """Create an agent (if new) and the settings of each environment not yet present."""
    if not agent_id or not all(environments):
        raise SettingsError("Agent id and environment names must not be empty.")
    agent = db.session.get(Agent, agent_id) or Agent(id=agent_id)
    db.session.add(agent)
    existing = {s.environment for s in agent.settings}
    for env in environments:
        if env not in existing:
            db.session.add(EscalationSettings(agent=agent, environment=env))
            record(actor, "agent.environment_added", agent_id=agent_id, environment=env)
    endpoints_of({(agent_id, env) for env in environments})  # each pair's primary endpoint record
    db.session.commit()
    return agent


def save_settings(settings: EscalationSettings, change: SettingsChange, *, expected_version: int, actor: str,
                  as_admin: bool = False):
    """Save the page if nobody saved since expected_version; returns the URL check (with its warning).

    as_admin: the actor is an admin (or the CLI's operator), the only one who may change the retry schedule.
    """
    if not 0 < expected_version <= MAX_VERSION:  # past it, the database cannot even compare the number
        raise SettingsError("The form's version is not valid: reload the page and try again.", "version")
    checked = check_webhook_url(change.webhook_url, enabled=change.webhook_enabled,
                                resolve_seconds=float(current_app.config["RESOLVE_TIMEOUT_SECONDS"]))
    unknown = set(change.trigger_conditions) - set(TRIGGER_CONDITIONS)
    if unknown:
        raise SettingsError(f"Unknown trigger condition: {sorted(unknown)[0]}.", "trigger_conditions")
    if change.default_urgency not in URGENCY_LEVELS:
        raise SettingsError(f"Default urgency must be one of {', '.join(URGENCY_LEVELS)}.", "default_urgency")
    if not CLAIM_TIMEOUT_MINUTES[0] <= change.claim_timeout_minutes <= CLAIM_TIMEOUT_MINUTES[1]:
        low, high = CLAIM_TIMEOUT_MINUTES
        raise SettingsError(f"Claim timeout must be between {low} and {high} minutes.", "claim_timeout_minutes")
    schedule = _checked_schedule(settings, change.retry_schedule, as_admin)
    try:
        emails = None if change.alert_emails is None else parse_alert_emails(change.alert_emails)
        alert_url = None if change.alert_url is None else (check_alert_url(change.alert_url) or "")
    except AlertsError as exc:
        raise SettingsError(str(exc), exc.field) from None
    now = utcnow()
    values = dict(
        webhook_enabled=change.webhook_enabled,
        webhook_url=checked.url or None,
        trigger_conditions=list(change.trigger_conditions),
        default_urgency=change.default_urgency,
        claim_timeout_minutes=change.claim_timeout_minutes,
        retry_schedule=schedule,
        version=expected_version + 1,
        saved_by=actor,
        saved_at=now,
    )
    if change.webhook_enabled:
        values["disabled_reason"] = None  # re-enabled: the card now offers to resend what was missed
    if change.webhook_enabled and not settings.secret_ciphertext:
        values.update(secret_ciphertext=secret_box().encrypt(generate_secret()), secret_created_at=now)
    old_schedule = settings.retry_schedule  # before the UPDATE, which also sets it on the loaded object
    result = db.session.execute(
        update(EscalationSettings)
        .where(EscalationSettings.id == settings.id, EscalationSettings.version == expected_version)
        .values(**values)
    )
    if result.rowcount != 1:
        db.session.rollback()
        db.session.refresh(settings)
        raise StaleSettings(settings.saved_by, settings.saved_at)
    state = "enabled" if change.webhook_enabled else "disabled"
    record(
        actor, "settings.saved",
        f"version {expected_version + 1}; webhook {state}; URL {checked.url or '(none)'}; "
        f"urgency {change.default_urgency}; triggers {', '.join(change.trigger_conditions) or '(none)'}",
        agent_id=settings.agent_id, environment=settings.environment,
    )
    if schedule != old_schedule:
        record(actor, "webhook.retry_schedule_changed",
               f"{describe_schedule(old_schedule)} \u2192 {describe_schedule(schedule)}",
               agent_id=settings.agent_id, environment=settings.environment)
    apply_alerts(settings, emails, alert_url, actor)
    db.session.commit()
    db.session.refresh(settings)
    log.info("settings saved for %s by %s (version %s)", settings.label, actor, settings.version)
    return checked


def _checked_schedule(settings: EscalationSettings, text: str | None, as_admin: bool) -> str | None:
    """The retry schedule to save: the one typed, in canonical text (None: the default), if the actor may set it.

    Only an admin changes it; anyone may send back the one already saved (None: keep it).
    """
    if text is None:
        return settings.retry_schedule
    try:
        schedule = canonical_schedule(text)
    except ValueError as exc:
        if not as_admin:
            raise AdminOnly("Only an admin can change the retry schedule.", "retry_schedule") from None
        raise SettingsError(str(exc), "retry_schedule") from None
    if schedule != settings.retry_schedule and not as_admin:
        raise AdminOnly("Only an admin can change the retry schedule.", "retry_schedule")
    return schedule
