"""The second factor: TOTP (RFC 6238, pyotp) enrolled by QR code (segno) or typed secret, and ten one-time
recovery codes. The secret is stored encrypted under the master key and never shown after enrolment; a code
is accepted once (the last time step used is kept); recovery codes are stored as their SHA-256 only.
"""
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import pyotp
import segno
from sqlalchemy import update

from ..audit.service import record
from ..clock import utcnow
from ..crypto import secret_box
from ..errors import DomainError
from ..extensions import db
from .models import User

ISSUER = "qlar console"
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
RECOVERY_GROUPS = 4  # four groups of four: 16 characters, about 79 bits, so an unsalted SHA-256 suffices


class TwoFactorError(DomainError):
    """A second-factor rule refused the request."""


def new_secret() -> str:
    """A new TOTP secret: 32 base32 characters (160 bits), as authenticator apps take it."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_code_data_uri(uri: str) -> str:
    """The QR code of `uri` as an SVG data: URI (the CSP allows data: images), black on white to scan well."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=4, dark="#000", light="#fff")


def group_secret(secret: str) -> str:
    """The secret in groups of four, easier to type into an app."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def matching_step(secret: str, code: str, last_step: int | None, now: datetime | None = None) -> int | None:
    """The time step whose code is `code` (this step or one either side, for clock drift), unless already used."""
    code = "".join((code or "").split())
    if len(code) != 6 or not (code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now or datetime.now(UTC))
    for step in (current - 1, current, current + 1):
        if (last_step is None or step > last_step) and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten random one-time codes, like `abcd-efgh-jkmn-pqrs`."""
    return ["-".join("".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(4)) for _ in range(RECOVERY_GROUPS))
            for _ in range(RECOVERY_CODE_COUNT)]


def hash_recovery_code(code: str) -> str:
    """What is stored of a recovery code: the SHA-256 of it without spaces or dashes, in lower case."""
    return hashlib.sha256("".join(c for c in (code or "").lower() if c.isalnum()).encode()).hexdigest()


def enrol(user: User, secret: str, code: str) -> list[str]:
    """Turn the second factor on with the secret the user's app now holds, proven by a code from it.

    Returns the recovery codes, shown once.
    """
    if user.has_2fa:
        raise TwoFactorError("Two-factor authentication is already on: turn it off first to set it up again.")
    step = matching_step(secret, code, None)
    if step is None:
        raise TwoFactorError("That code is not right: enter the 6-digit code your app shows now.", "code")
    codes = new_recovery_codes()
    user.totp_secret_ciphertext = secret_box().encrypt(secret)
    user.totp_enabled_at, user.totp_last_step = utcnow(), step
    user.recovery_code_hashes = [hash_recovery_code(c) for c in codes]
    record(user.username, "user.2fa_enabled", f"{RECOVERY_CODE_COUNT} recovery codes issued")
    db.session.commit()
    return codes


def verify_second_factor(user: User, code: str) -> str | None:
    """Check a code from the app ("totp") or a recovery code ("recovery", used up and audited); None if neither.

    The caller commits (with the login or the change the code was asked for). The user's row is held from here
    to that commit, so the same code (or recovery code) sent twice at once is accepted once.
    """
    if not user.has_2fa:
        return None
    _hold(user)
    step = matching_step(secret_box().decrypt(user.totp_secret_ciphertext), code, user.totp_last_step)
    if step is not None:
        user.totp_last_step = step
        return "totp"
    hashed = hash_recovery_code(code)
    remaining = list(user.recovery_code_hashes or [])
    if any(hmac.compare_digest(hashed, h) for h in remaining):
        remaining.remove(hashed)
        user.recovery_code_hashes = remaining
        record(user.username, "user.2fa_recovery_used", f"{len(remaining)} recovery codes left")
        return "recovery"
    return None


def _hold(user: User) -> None:
    """Hold the user's row until the transaction ends, then read it afresh: an UPDATE that changes nothing takes
    the row lock on PostgreSQL and the write lock on SQLite, so a second request waits here and then sees the
    step or recovery code the first one used."""
    db.session.execute(update(User).where(User.id == user.id).values(session_version=User.session_version)
                       .execution_options(synchronize_session=False))
    db.session.refresh(user)


def disable(user: User, code: str, *, actor: str | None = None) -> None:
    """Turn the second factor off, proven by a code from the app or a recovery code."""
    if not user.has_2fa:
        raise TwoFactorError("Two-factor authentication is not on.")
    if verify_second_factor(user, code) is None:
        raise TwoFactorError("That code is not right: enter a code from your app, or a recovery code.", "code")
    _clear(user)
    record(actor or user.username, "user.2fa_disabled", user.username)
    db.session.commit()


def reset(user: User, *, actor: str) -> None:
    """An admin's reset for a user who lost the device and the recovery codes (the CLI): the factor is removed."""
    _clear(user)
    user.end_sessions()
    record(actor, "user.2fa_reset", f"{user.username}: second factor removed, every session signed out")
    db.session.commit()


def _clear(user: User) -> None:
    """Forget the secret, its last step and the recovery codes."""
    user.totp_secret_ciphertext = user.totp_enabled_at = user.totp_last_step = None
    user.recovery_code_hashes = None
