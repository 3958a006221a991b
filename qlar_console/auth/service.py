"""User rules: creating users and checking credentials."""
import secrets

from ..audit.service import record
from ..errors import DomainError
from ..extensions import db
from .models import ROLES, User


class UserError(DomainError):
    """A user rule refused the request."""


def create_user(username: str, role: str, password: str | None = None, *, actor: str = "cli") -> tuple[User, str]:
    """Create a user; with no password a random one is made. Returns the user and the password."""
    username = (username or "").strip()
    if not username:
        raise UserError("Username must not be empty.")
    if role not in ROLES:
        raise UserError(f"Role must be one of: {', '.join(ROLES)}.")
    if db.session.scalar(db.select(User).filter_by(username=username)):
        raise UserError(f"User {username!r} already exists.")
    password = password or secrets.token_urlsafe(12)
    if len(password) < 8:
        raise UserError("Password must be at least 8 characters.")
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    record(actor, "user.created", f"{username} as {role}")
    db.session.commit()
    return user, password


def authenticate(username: str, password: str) -> User | None:
    """The user with these credentials, or None."""
    user = db.session.scalar(db.select(User).filter_by(username=(username or "").strip()))
    return user if user and user.check_password(password or "") else None
