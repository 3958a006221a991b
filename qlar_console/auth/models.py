"""Users and their roles, and API tokens."""
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db
from .passwords import hash_password, verify_password

ROLES = ("viewer", "editor", "admin")


class User(UserMixin, db.Model):
    """A console user: viewer reads, editor changes escalation settings, admin also manages users."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The server-side anchor of every session cookie: bumping it signs the user out everywhere (sessions.py).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Second factor (totp.py): the TOTP secret encrypted with the master key, the last time step accepted
    # (a code works once), and the SHA-256 of each unused recovery code.
    totp_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None]
    recovery_code_hashes: Mapped[list[str] | None] = mapped_column(JSON)

    def get_id(self) -> str:
        """What the session cookie holds: the id and the session version, so a bumped version refuses old cookies."""
        return f"{self.id}:{self.session_version}"

    def set_password(self, password: str) -> None:
        """Store an Argon2id hash of the password; replacing a password ends every session of the user."""
        if self.password_hash:
            self.end_sessions()
        self.password_hash = hash_password(password)

    def check_password(self, password: str) -> bool:
        """True when password matches the stored hash."""
        return verify_password(self.password_hash, password)

    def end_sessions(self) -> None:
        """Refuse every session cookie issued so far (logout, password or role change, sign out everywhere)."""
        self.session_version = (self.session_version or 0) + 1

    @property
    def has_2fa(self) -> bool:
        """True when a second factor is enrolled."""
        return self.totp_enabled_at is not None

    def has_role(self, role: str) -> bool:
        """True when this user's role is at least `role`."""
        return ROLES.index(self.role) >= ROLES.index(role)


@event.listens_for(User.role, "set", active_history=True)
def _role_changed(user: User, value, old, _initiator) -> None:
    """A role change, wherever it is made, ends the user's sessions (a page open with the old role is refused)."""
    if isinstance(old, str) and old != value:
        user.end_sessions()


SCOPES = ("read", "write", "secrets")
SCOPE_ROLES = {"read": "viewer", "write": "editor", "secrets": "editor"}  # the role a scope still needs


class ApiToken(db.Model):
    """A bearer token for /api/: shown once, stored as its SHA-256, acting as its user within its scopes."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    user: Mapped[User] = relationship(lazy="joined")
    scopes: Mapped[list[str]] = mapped_column(JSON)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(24))  # the first characters, to recognise a token in a list
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def state(self, now: datetime) -> str:
        """active, expired or revoked."""
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= now:
            return "expired"
        return "active"
