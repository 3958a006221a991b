"""API token rules: create (shown once), authenticate a bearer, check scope and role, revoke."""
import hashlib
import secrets
from datetime import datetime, timedelta

from ..audit.service import record
from ..clock import utcnow
from ..crypto import TOKEN_PREFIX
from ..errors import DomainError
from ..extensions import db
from .models import SCOPE_ROLES, SCOPES, ApiToken
from .service import find_user

LAST_USED_PRECISION = timedelta(minutes=1)
EXPIRY_CHOICES = {"never": None, "30d": 30, "90d": 90, "365d": 365}  # the API tokens page's choices


class TokenError(DomainError):
    """A token rule refused the request."""


class Unauthorized(TokenError):
    """No usable token: missing, unknown, revoked or expired (401)."""


class TokenForbidden(TokenError):
    """The token or its user may not do this (403); `kind` is scope or role."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def hash_token(plaintext: str) -> str:
    """What is stored and looked up: the SHA-256 of the token (tokens are random, so no salt or stretching)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_token(name: str, username: str, scopes: list[str], *, actor: str,
                 expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Create a token for `username`; returns it and the plaintext, which is never stored or shown again."""
    name = (name or "").strip()
    if not name or len(name) > 80 or not name.isprintable():
        raise TokenError("Give the token a name of 1 to 80 characters.", "name")
    user = find_user(username)
    if user is None:
        raise TokenError(f"No user {username!r}: create it first with `flask qlar create-user`.", "user")
    if not scopes or not set(scopes) <= set(SCOPES):
        raise TokenError(f"Choose scopes among: {', '.join(SCOPES)}.", "scopes")
    scopes = [s for s in SCOPES if s in scopes]
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise TokenError("A token expires after 1 to 3650 days, or never.", "expires")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = ApiToken(
        name=name, user=user, scopes=scopes, token_hash=hash_token(plaintext), hint=plaintext[:len(TOKEN_PREFIX) + 4],
        created_at=now, created_by=actor, expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.session.add(token)
    expiry = f"expires {token.expires_at:%Y-%m-%d}" if token.expires_at else "never expires"
    record(actor, "api_token.created", f"{name!r} for {user.username}, scopes {', '.join(scopes)}, {expiry}")
    db.session.commit()
    return token, plaintext


def weaker_role_warning(token: ApiToken) -> str | None:
    """Why some of the token's scopes will be refused: its user's role is below what they need."""
    refused = [s for s in token.scopes if not token.user.has_role(SCOPE_ROLES[s])]
    if refused:
        return (f"{token.user.username} is a {token.user.role}: calls needing {', '.join(refused)} "
                f"will be refused (403) unless the role changes.")
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header as authentication reads it (the scheme in any case,
    spaces around the token ignored), or None."""
    scheme, _, plaintext = (authorization or "").strip().partition(" ")
    return (plaintext.strip() or None) if scheme.lower() == "bearer" else None


def token_id(authorization: str | None) -> int | None:
    """The id of the token an Authorization header names, whatever its state, or None (the rate limit's key)."""
    plaintext = bearer_token(authorization)
    if plaintext is None:
        return None
    return db.session.scalar(db.select(ApiToken.id).filter_by(token_hash=hash_token(plaintext)))


def authenticate_token(authorization: str | None, now: datetime | None = None) -> ApiToken:
    """The active token of an `Authorization: Bearer …` header, its last use noted; else Unauthorized."""
    plaintext = bearer_token(authorization)
    if plaintext is None:
        raise Unauthorized("Send an API token as `Authorization: Bearer <token>`.")
    token = db.session.scalar(db.select(ApiToken).filter_by(token_hash=hash_token(plaintext)))
    now = now or utcnow()
    if token is None:
        raise Unauthorized("This API token is not valid.")
    state = token.state(now)
    if state != "active":
        raise Unauthorized(f"This API token is {state}: ask an admin for a new one.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        token.last_used_at = now  # to the minute: a busy pipeline does not rewrite the row on every call
    return token


def authorize(token: ApiToken, scope: str) -> None:
    """Refuse (TokenForbidden) unless the token has `scope` and its user's role still allows it."""
    if scope not in token.scopes:
        raise TokenForbidden(f"This call needs the {scope!r} scope; the token has {', '.join(token.scopes)}.", "scope")
    role = SCOPE_ROLES[scope]
    if not token.user.has_role(role):
        raise TokenForbidden(f"{token.user.username} is a {token.user.role}; this call needs the {role} role.", "role")


def list_tokens() -> list[ApiToken]:
    """Every token, newest first."""
    return list(db.session.scalars(db.select(ApiToken).order_by(ApiToken.id.desc())))


def revoke_token(token_id: int, actor: str) -> ApiToken:
    """Revoke a token now; it authenticates nothing from then on."""
    token = db.session.get(ApiToken, token_id) if 0 < token_id < 2**31 else None  # PostgreSQL ids are int4
    if token is None:
        raise TokenError(f"No API token {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record(actor, "api_token.revoked", f"{token.name!r} of {token.user.username}")
        db.session.commit()
    return token
