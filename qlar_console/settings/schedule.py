"""Each pair's retry schedule: an optional override of QLAR_RETRY_SCHEDULE, as text the card, API, CLI and
Deliveries page all show the same way. service.save_settings stores it (admins only); endpoints.py sends by it."""
from dataclasses import dataclass

from flask import current_app

from ..engine.retry import format_schedule, parse_schedule
from ..extensions import db
from .models import EscalationSettings

DEFAULT_WORDS = {"", "default"}  # what clears an override (besides None, and null in the API)
MAX_TEXT = EscalationSettings.retry_schedule.type.length  # the column's: 200 characters


def canonical_schedule(text: str | None) -> str | None:
    """The override to store for what was typed: its canonical text, or None for the server default.

    ValueError (parse_schedule's message) when it is not a schedule within the limits.
    """
    if text is None or text.strip().lower() in DEFAULT_WORDS:
        return None
    canonical = format_schedule(parse_schedule(text))
    if len(canonical) > MAX_TEXT:
        raise ValueError(f"A retry schedule is at most {MAX_TEXT} characters written out; use rounder delays.")
    return canonical


def default_schedule_text() -> str:
    """QLAR_RETRY_SCHEDULE in canonical text (the dispatcher refused to start if it does not parse)."""
    return format_schedule(parse_schedule(current_app.config["RETRY_SCHEDULE"]))


def describe_schedule(saved: str | None) -> str:
    """How a pair's schedule reads everywhere: "1s,2s,5s", or "default (5s,5m,30m,…)" without an override."""
    return saved if saved else f"default ({default_schedule_text()})"


@dataclass(frozen=True)
class ScheduleInForce:
    """The schedule one pair's retries follow (or the server default's, pair None), and whether it is an override."""

    pair: str | None  # "agent-123 · staging", or None for the server default
    text: str
    delays: list[float]
    override: bool


def schedule_in_force(settings: EscalationSettings | None) -> ScheduleInForce:
    """The schedule a pair's deliveries follow now; with settings None, the server default."""
    if settings is not None and settings.retry_schedule:
        return ScheduleInForce(settings.label, settings.retry_schedule, parse_schedule(settings.retry_schedule), True)
    text = default_schedule_text()
    return ScheduleInForce(settings.label if settings else None, text, parse_schedule(text), False)


def overridden_pairs() -> list[ScheduleInForce]:
    """Every pair with its own schedule, for the Deliveries page's queue-health panel."""
    rows = db.session.scalars(db.select(EscalationSettings).where(EscalationSettings.retry_schedule.is_not(None))
                              .order_by(EscalationSettings.agent_id, EscalationSettings.environment))
    return [schedule_in_force(settings) for settings in rows]
