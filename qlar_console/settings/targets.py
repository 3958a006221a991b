"""What the delivery engine asks of the settings: each endpoint as a try needs it, and the 410 switch-off.

The primary endpoint's URL, switch, key and schedule are the card's (the settings row); an additional
endpoint keeps its own on its endpoint row (settings/endpoints.py).
"""
from datetime import datetime

from sqlalchemy import select, tuple_

from ..audit.service import record
from ..crypto import MasterKeyError
from ..engine.claim import Target
from ..engine.models import Endpoint
from ..engine.retry import parse_schedule
from ..extensions import db
from ..webhook_url import InvalidWebhookURL, check_webhook_url
from .keys import signing_secrets
from .models import EscalationSettings
from .service import get_settings


def resolve_endpoints(ids: set[str]) -> dict[str, Target]:
    """Each endpoint (by id) as its tries need it, read in the caller's transaction.

    The URL rule runs again at send time, and the keys are decrypted here: a URL that no longer passes
    becomes the target's `problem`, recorded on the try; a master key that cannot decrypt the key holds
    the events (`held`: the endpoint pauses, no try is used).
    """
    endpoints = {ep.id: ep for ep in db.session.scalars(select(Endpoint).where(Endpoint.id.in_(list(ids))))}
    pairs = {(ep.agent_id, ep.environment) for ep in endpoints.values() if ep.is_primary}
    cards = {(s.agent_id, s.environment): s for s in db.session.scalars(select(EscalationSettings).where(
        tuple_(EscalationSettings.agent_id, EscalationSettings.environment).in_(list(pairs))))} if pairs else {}
    targets = {}
    for endpoint_id in ids:
        ep = endpoints.get(endpoint_id)
        # the primary's settings are the card's; an additional endpoint's are its own
        source = cards.get((ep.agent_id, ep.environment)) if ep and ep.is_primary else ep
        enabled = bool(source and (source.webhook_enabled if ep.is_primary else source.enabled))
        target = Target(enabled=enabled)
        if enabled:
            try:
                target.url = (source.webhook_url if ep.is_primary else source.url) or ""
                target.url = check_webhook_url(target.url, enabled=True).url
                target.schedule = parse_schedule(source.retry_schedule) if source.retry_schedule else None
                target.headers = {} if ep.is_primary else dict(ep.headers or {})
                target.keys = signing_secrets(source)
            except MasterKeyError as exc:
                target.held = str(exc)
            except (InvalidWebhookURL, ValueError) as exc:
                target.problem = str(exc)
        targets[endpoint_id] = target
    return targets


def switch_off_after_gone(endpoint_id: str, event_id: str, now: datetime) -> None:
    """410 Gone: the receiver asks us to stop; switch the endpoint off and say why on its page (audited)."""
    ep = db.session.get(Endpoint, endpoint_id)
    reason = (f"The endpoint answered 410 Gone at {now:%Y-%m-%d %H:%M:%S} UTC (event {event_id}), "
              "so qlar switched the webhook off. Enable it and save to resume.")
    if ep is None or ep.is_primary:
        settings = get_settings(ep.agent_id, ep.environment) if ep else None
        if settings is None:
            return
        settings.webhook_enabled = False
        holder = settings
    else:
        ep.enabled = False
        holder = ep
    holder.disabled_reason, holder.disabled_at = reason, now
    holder.version += 1
    holder.saved_by, holder.saved_at = "dispatcher (410 Gone)", now
    record("dispatcher", "webhook.disabled", reason if ep is None or ep.is_primary else f"endpoint {ep.id}: {reason}",
           agent_id=holder.agent_id, environment=holder.environment)
