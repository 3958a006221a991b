"""Alerts: what an endpoint's owners are told (failing, paused, recovered, a delivery failed), written to the
alert outbox in the caller's transaction. alerter.py sends them: one email and one signed POST each.

An alert never carries a secret: the endpoint URL is shown without its query string, and the texts
name only states, counts, times and errors.
"""
import secrets
import time
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import func, select

from ..extensions import db
from .models import NO_RECIPIENT, PENDING, Alert, Endpoint, Event
from .outbox import freeze, rfc3339

WORDS = {"endpoint.failing": "failing", "endpoint.paused": "paused", "endpoint.recovered": "recovered",
         "delivery.failed": "failed"}


def new_id(prefix: str) -> str:
    """prefix + milliseconds + randomness (hex): unique and roughly in creation order (alr_…, ep_…)."""
    return f"{prefix}{int(time.time() * 1000):012x}{secrets.token_hex(5)}"


def shown_url(url: str | None) -> str | None:
    """The endpoint URL as an alert shows it: without a query string or fragment (they may hold tokens)."""
    if not url:
        return None
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "\u2026" if parts.query else "", ""))


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC" if at else "an unknown time"


def _text(kind: str, label: str, url: str | None, doc: dict, detail: dict) -> str:
    """The one readable sentence (a few, at most) that Slack, Teams and the email show."""
    where = f"the webhook of {label}" + (f" ({url})" if url else "")
    pending, error = doc["pending"], doc["lastError"]
    waiting = f"{pending} event{'s' if pending != 1 else ''}"
    if kind == "endpoint.failing":
        return (f"qlar: {where} is failing since {_when(detail['since'])}: {error}. {waiting} waiting; qlar keeps "
                "retrying and pauses the endpoint if this goes on, without losing any event.")
    if kind == "endpoint.paused":
        return (f"qlar paused {where} at {_when(detail['since'])}. {detail['reason']} Last error: {error}. "
                f"{waiting} held, none lost: qlar probes the endpoint with one event at a time and delivers the "
                "rest in order once it answers again. Resume now on the Escalation page ends the pause.")
    if kind == "endpoint.recovered":
        return (f"qlar: {where} recovered at {_when(detail['recoveredAt'])} after failing since "
                f"{_when(detail['since'])}. {waiting} being delivered in order.")
    if "expired" in detail:
        return (f"qlar: {detail['expired']} events to {where} ended failed: the endpoint was paused and they were "
                "held longer than QLAR_TRACE_RETENTION_DAYS. Resend them from Deliveries (Resend failed\u2026).")
    return (f"qlar: event {detail['eventId']} ({detail['eventType']} of {detail['escalationId']}) to {where} "
            f"failed after {detail['tries']} tries: {error}. Resend it from Deliveries.")


def raise_alerts(items: list[tuple], now: datetime) -> list[str]:
    """Write each (endpoint, type, endpoint URL, detail) to the alert outbox: a row per channel the
    endpoint's owners set (email, webhook), or one row saying nobody is set. Returns the alert ids."""
    ids = []
    for ep, kind, url, detail in items:
        ep: Endpoint
        label = f"{ep.agent_id} \u00b7 {ep.environment}"
        pending = db.session.scalar(select(func.count()).select_from(Event).where(
            Event.endpoint_id == ep.id, Event.status == PENDING))
        alert_id = new_id("alr_")
        doc = {"alertId": alert_id, "type": kind, "agentId": ep.agent_id, "environment": ep.environment,
               "endpointId": ep.id, "endpointUrl": shown_url(url), "since": rfc3339(detail["since"]),
               "pending": pending, "lastError": detail.get("error") or ep.last_error, "timestamp": rfc3339(now)}
        doc.update({k: v for k, v in detail.items() if k in ("eventId", "eventType", "escalationId", "expired")})
        doc["text"] = _text(kind, label, doc["endpointUrl"], doc, detail)
        subject = f"qlar webhook {WORDS[kind]}: {label}"
        body = freeze(doc)
        channels = [(c, t) for c, t in (("email", ", ".join(ep.alert_emails or [])), ("webhook", ep.alert_url)) if t]
        for channel, target in channels or [("none", None)]:
            db.session.add(Alert(alert_id=alert_id, endpoint_id=ep.id, agent_id=ep.agent_id,
                                 environment=ep.environment, type=kind, channel=channel, target=target,
                                 subject=subject, body=body, created_at=now, tries=0,
                                 status=PENDING if target else NO_RECIPIENT, next_attempt_at=now if target else None,
                                 last_error=None if target else "No alert emails or alert webhook URL set."))
        ids.append(alert_id)
    return ids


def recent_alerts(agent_id: str, environment: str, limit: int = 20) -> list[Alert]:
    """A pair's latest alert rows (each channel's delivery state), newest first, for its page."""
    return list(db.session.scalars(select(Alert).where(Alert.agent_id == agent_id, Alert.environment == environment)
                                   .order_by(Alert.created_at.desc(), Alert.id).limit(limit)))
