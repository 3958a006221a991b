"""The webhook secret's lifecycle: reveal, regenerate with a grace period, the keys to sign with, master-key rotation.

The card's webhook (EscalationSettings) and each additional endpoint (engine.models.Endpoint) both hold
SigningKeys; rotate_key and signing_secrets serve both.
"""
import logging
from datetime import datetime, timedelta
from typing import NamedTuple

from cryptography.fernet import Fernet
from flask import current_app

from ..audit.service import record
from ..clock import utcnow
from ..crypto import generate_secret, master_key_path, reset_secret_box, secret_box, write_master_key_file
from ..engine.models import Endpoint, SigningKeys
from ..extensions import db
from .models import EscalationSettings
from .service import SettingsError

log = logging.getLogger(__name__)

GRACE_PERIODS = {"none": None, "1h": timedelta(hours=1), "24h": timedelta(hours=24)}


def reveal_secret(settings: EscalationSettings, actor: str, via: str = "Copy") -> str:
    """Return the plaintext key (creating it if the webhook never had one); audited."""
    _ensure_secret(settings)
    plaintext = secret_box().decrypt(settings.secret_ciphertext)
    record(actor, "webhook.secret_revealed", f"via {via}",
           agent_id=settings.agent_id, environment=settings.environment)
    db.session.commit()
    return plaintext


def regenerate_secret(settings: EscalationSettings, actor: str, grace: str = "none") -> None:
    """Replace the key now; the old one stays valid only for the chosen grace period."""
    if grace not in GRACE_PERIODS:
        raise SettingsError(f"Grace period must be one of: {', '.join(GRACE_PERIODS)}.", "grace")
    rotate_key(settings, grace)
    record(actor, "webhook.secret_regenerated",
           f"previous key valid for {grace}" if GRACE_PERIODS[grace] else "previous key invalid at once",
           agent_id=settings.agent_id, environment=settings.environment)
    db.session.commit()


def rotate_key(holder: SigningKeys, grace: str) -> None:
    """A new key now, the old one valid for the grace period (the card's webhook or an endpoint's)."""
    now, period = utcnow(), GRACE_PERIODS[grace]
    # The previous key is kept encrypted (never for signing once expired) so the signature debugger
    # can tell a receiver it still holds the previous key.
    holder.previous_secret_ciphertext = holder.secret_ciphertext
    holder.previous_secret_expires_at = now + period if period else now
    holder.secret_ciphertext = secret_box().encrypt(generate_secret())
    holder.secret_created_at = now


def revoke_previous_secret(settings: EscalationSettings, actor: str) -> None:
    """End a rotation grace period now: only the current key validates from here on."""
    settings.previous_secret_expires_at = utcnow()
    record(actor, "webhook.previous_secret_revoked",
           agent_id=settings.agent_id, environment=settings.environment)
    db.session.commit()


def signing_secrets(settings: SigningKeys, now: datetime | None = None) -> list[str]:
    """The plaintext keys a delivery is signed with right now: current first, then a previous in grace."""
    box = secret_box()
    keys = [box.decrypt(settings.secret_ciphertext)] if settings.secret_ciphertext else []
    if settings.previous_secret_active(now or utcnow()):
        keys.append(box.decrypt(settings.previous_secret_ciphertext))
    return keys


class DebugKey(NamedTuple):
    """A key the signature debugger compares with, and when it stops validating (None: it does not)."""

    secret: str
    stops_at: datetime | None


def debugger_keys(settings: EscalationSettings) -> dict[str, DebugKey]:
    """The current key and the last previous one (even expired), for the signature debugger only."""
    box = secret_box()
    keys = {"current": DebugKey(box.decrypt(settings.secret_ciphertext), None)} if settings.secret_ciphertext else {}
    if settings.previous_secret_ciphertext:
        keys["previous"] = DebugKey(box.decrypt(settings.previous_secret_ciphertext),
                                    settings.previous_secret_expires_at)
    return keys


def rotate_master_key(actor: str) -> str:
    """Re-encrypt every stored secret under a new (file) or the first (QLAR_MASTER_KEY) master key."""
    box = secret_box()
    from_file = box.source != "QLAR_MASTER_KEY"
    if from_file:  # keep old keys readable until the re-encrypted rows are committed
        path = master_key_path(current_app)
        new_key = Fernet.generate_key().decode()
        write_master_key_file(path, [new_key, *box.keys])
        box = reset_secret_box()
    count = 0
    holders = [*db.session.scalars(db.select(EscalationSettings)), *db.session.scalars(db.select(Endpoint))]
    for holder in holders:  # the cards' keys and the additional endpoints' keys
        for column in ("secret_ciphertext", "previous_secret_ciphertext"):
            if token := getattr(holder, column):
                setattr(holder, column, box.rotate(token))
                count += 1
    record(actor, "master_key.rotated", f"{count} secrets re-encrypted")
    db.session.commit()
    if from_file:
        write_master_key_file(path, [new_key])
        reset_secret_box()
        return f"Generated a new master key in {path} and re-encrypted {count} secrets."
    return (f"Re-encrypted {count} secrets with the first key of QLAR_MASTER_KEY; "
            "the other keys can now be removed.")


def _ensure_secret(settings: EscalationSettings) -> None:
    """Give the webhook its first key if it has none (the key exists from the first enable)."""
    if not settings.secret_ciphertext:
        settings.secret_ciphertext = secret_box().encrypt(generate_secret())
        settings.secret_created_at = utcnow()
