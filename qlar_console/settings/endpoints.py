"""What the delivery engine asks of the settings: each webhook as a try needs it, and the 410 switch-off."""
from datetime import datetime

from sqlalchemy import select, tuple_

from ..audit.service import record
from ..crypto import MasterKeyError
from ..engine.claim import Target
from ..engine.retry import parse_schedule
from ..extensions import db
from ..webhook_url import InvalidWebhookURL, check_webhook_url
from .models import EscalationSettings
from .service import get_settings, signing_secrets


def resolve_endpoints(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], Target]:
    """The saved webhook of each (agent, environment), read in the caller's transaction.

    The URL rule runs again at send time, and the keys are decrypted here: a URL that no longer passes
    becomes the target's `problem`, recorded on the try; a master key that cannot decrypt the key holds
    the events (`held`: the endpoint pauses, no try is used).
    """
    rows = db.session.scalars(select(EscalationSettings).where(
        tuple_(EscalationSettings.agent_id, EscalationSettings.environment).in_(list(pairs))))
    found = {(s.agent_id, s.environment): s for s in rows}
    endpoints = {}
    for pair in pairs:
        settings = found.get(pair)
        endpoint = Target(enabled=bool(settings and settings.webhook_enabled))
        if endpoint.enabled:
            try:
                endpoint.url = settings.webhook_url or ""
                endpoint.url = check_webhook_url(endpoint.url, enabled=True).url
                endpoint.schedule = parse_schedule(settings.retry_schedule) if settings.retry_schedule else None
                endpoint.keys = signing_secrets(settings)
            except MasterKeyError as exc:
                endpoint.held = str(exc)
            except (InvalidWebhookURL, ValueError) as exc:
                endpoint.problem = str(exc)
        endpoints[pair] = endpoint
    return endpoints


def switch_off_after_gone(pair: tuple[str, str], event_id: str, now: datetime) -> None:
    """410 Gone: the receiver asks us to stop; switch the webhook off and say why on the card (audited)."""
    settings = get_settings(*pair)
    settings.webhook_enabled = False
    settings.disabled_reason = (
        f"The endpoint answered 410 Gone at {now:%Y-%m-%d %H:%M:%S} UTC (event {event_id}), "
        "so qlar switched the webhook off. Enable it and save to resume."
    )
    settings.disabled_at = now
    settings.version += 1
    settings.saved_by, settings.saved_at = "dispatcher (410 Gone)", now
    record("dispatcher", "webhook.disabled", settings.disabled_reason,
           agent_id=settings.agent_id, environment=settings.environment)
