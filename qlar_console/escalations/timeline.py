"""An escalation's timeline: its events in sequence order and, under each, its delivery at every endpoint (one
line per endpoint row) with every attempt and Copy as cURL.

Read in four queries whatever the number of events, endpoints and attempts: the escalation, its event rows (bodies
included: the cURL commands need them), their attempts, and the endpoints' labels. The view is
escalations.views.timeline.
"""
import logging
from dataclasses import dataclass

from sqlalchemy.orm import selectinload

from ..deliveries.curl import curl_command
from ..deliveries.display import endpoint_label, endpoint_labels
from ..engine.models import CANCELLED, PENDING, SKIPPED, Attempt, Event
from ..engine.send import timed_out
from ..extensions import db
from .models import Escalation
from .service import LABELS, get_escalation

log = logging.getLogger(__name__)

UNTRIED = {  # what an event without attempts says, by its delivery status
    PENDING: "Not tried yet: the dispatcher sends it when it is due.",
    SKIPPED: "Never sent: the webhook was disabled or not saved when this event was written.",
    CANCELLED: "Never sent: the webhook was switched off before this event was tried.",
}


@dataclass(frozen=True)
class AttemptEntry:
    """One try as the timeline shows it, with its request as a curl command (None when none can carry it)."""

    attempt: Attempt
    curl: str | None

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx within the timeout (the dispatcher's rule for delivered)."""
        status = self.attempt.response_status
        return status is not None and 200 <= status < 300 and not timed_out(self.attempt.error)

    @property
    def result(self) -> str:
        """"HTTP 200", "HTTP 500", or "No response" when the try failed before an answer."""
        status = self.attempt.response_status
        return f"HTTP {status}" if status is not None else "No response"


@dataclass(frozen=True)
class DeliveryEntry:
    """One event's row at one endpoint: its delivery state and its attempts, oldest first."""

    event: Event
    endpoint: str  # the endpoint's short label ("primary", its description or URL host)
    attempts: list[AttemptEntry]

    @property
    def untried(self) -> str | None:
        """Why there is no attempt to show, or None when there are some."""
        if self.attempts:
            return None
        return UNTRIED.get(self.event.status, "No attempts are recorded for this event.")


@dataclass(frozen=True)
class EventEntry:
    """One event of the escalation (its primary row) and its delivery at each endpoint, the primary first."""

    event: Event
    deliveries: list[DeliveryEntry]

    @property
    def attempts(self) -> list[AttemptEntry]:
        """Every attempt of the event, at every endpoint."""
        return [a for d in self.deliveries for a in d.attempts]

    @property
    def untried(self) -> str | None:
        """Why the event has no attempt at any endpoint, or None."""
        return self.deliveries[0].untried if not self.attempts else None


@dataclass(frozen=True)
class Timeline:
    """An escalation, its fields as labelled pairs, and its events in sequence order."""

    escalation: Escalation
    events: list[EventEntry]

    @property
    def fields(self) -> list[tuple[str, str]]:
        """The escalation's payload fields with their labels (Thread ID, Urgency level, …), id and status left out."""
        return [(LABELS[name], value) for name, value in self.escalation.as_payload().items() if name in LABELS]

    @property
    def attempt_count(self) -> int:
        """All the attempts on the page."""
        return sum(len(entry.attempts) for entry in self.events)


def replay_command(attempt: Attempt, body: bytes) -> str | None:
    """The attempt's request as a curl command, or None (logged) when its bytes cannot go in one."""
    try:
        return curl_command(attempt.url, attempt.request_headers or {}, body)
    except ValueError:
        log.warning("attempt %s of event %s cannot be written as a curl command", attempt.number, attempt.event_id)
        return None


def load_timeline(escalation_id: str) -> Timeline:
    """The escalation's timeline; UnknownEscalation (a NotFound: the 404 page) when there is no such escalation."""
    escalation = get_escalation(escalation_id)
    rows = db.session.scalars(
        db.select(Event).where(Event.escalation_id == escalation.id)
        .order_by(Event.sequence, Event.id).options(selectinload(Event.attempts))
    )
    labels = endpoint_labels()
    grouped: dict[str, list[Event]] = {}
    for row in rows:  # one group per event (its webhook-id), in sequence order
        grouped.setdefault(row.webhook_id, []).append(row)
    entries = []
    for group in grouped.values():
        group.sort(key=lambda row: (row.message_id is not None, row.id))  # the primary row first
        entries.append(EventEntry(group[0], [
            DeliveryEntry(row, endpoint_label(labels, row.endpoint_id),
                          [AttemptEntry(a, replay_command(a, row.body)) for a in row.attempts])
            for row in group]))
    return Timeline(escalation, entries)
