"""User rules: creating users, checking credentials (the same work for unknown names), failed logins, password
and role changes, and signing a user out everywhere. The pages and `flask qlar …` call these."""
import logging
import secrets

from sqlalchemy import func, select

from ..audit.service import CLI_ACTOR, record
from ..errors import DomainError, NotFound
from ..extensions import db
from .models import ROLES, User
from .passwords import burn_verification, hash_password, needs_rehash, password_problem

log = logging.getLogger(__name__)

USERNAME_MAX = User.__table__.c.username.type.length  # 80
ACTOR_MAX = 80  # how much of a typed (unknown) username an audit entry keeps


class UserError(DomainError):
    """A user rule refused the request."""


def normalise_username(username: str | None) -> str:
    """The one spelling of a username: trimmed and lower-case, so `Admin` and `admin` are one account."""
    return (username or "").strip().lower()


def find_user(username: str | None) -> User | None:
    """The user of this name in any letter case, or None."""
    name = normalise_username(username)
    if not name or len(name) > USERNAME_MAX or "\x00" in name:  # PostgreSQL text holds no NUL: no name has one
        return None
    return db.session.scalar(db.select(User).where(func.lower(User.username) == name))


def get_user(username: str) -> User:
    """The user of this name, or NotFound saying how to create one."""
    user = find_user(username)
    if user is None:
        raise NotFound(f"No user {normalise_username(username)!r}: create it with `flask qlar create-user`.")
    return user


def check_username(username: str | None) -> str:
    """The normalised username, or UserError: empty, too long for the column, spaces or control characters."""
    name = normalise_username(username)
    if not name:
        raise UserError("Username must not be empty.", "username")
    if len(name) > USERNAME_MAX:
        raise UserError(f"Username must be at most {USERNAME_MAX} characters (this one has {len(name)}).", "username")
    if not name.isprintable() or any(c.isspace() for c in name):
        raise UserError("Username must not contain spaces or control characters.", "username")
    return name


def check_password_rules(password: str, username: str = "", field: str = "password") -> None:
    """UserError with the reason when the password is too short or weak (passwords.password_problem)."""
    problem = password_problem(password, username)
    if problem:
        raise UserError(problem, field)


def create_user(username: str, role: str, password: str | None = None, *, actor: str = CLI_ACTOR) -> tuple[User, str]:
    """Create a user; with no password (None) a random one is made. Returns the user and the password."""
    name = check_username(username)
    if role not in ROLES:
        raise UserError(f"Role must be one of: {', '.join(ROLES)}.", "role")
    if find_user(name):
        raise UserError(f"User {name!r} already exists.", "username")
    if password is None:
        password = secrets.token_urlsafe(18)
    elif not password:
        raise UserError("Password must not be empty: type one at the prompt, or send it on standard input.",
                        "password")
    check_password_rules(password, name)
    user = User(username=name, role=role)
    user.set_password(password)
    db.session.add(user)
    record(actor, "user.created", f"{name} as {role}")
    db.session.commit()
    return user, password


def authenticate(username: str, password: str) -> User | None:
    """The user with these credentials, or None; an unknown name costs the same hash check as a known one.

    A correct password whose hash is older than Argon2id (or weaker than today's parameters) is re-hashed;
    the caller commits it with the login.
    """
    password = password or ""
    user = find_user(username)
    if user is None:
        burn_verification(password)
        return None
    if not user.check_password(password):
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)  # the same password: sessions stay valid
    return user


def record_failed_login(typed_username: str | None, address: str | None, reason: str = "wrong password") -> None:
    """Audit (user.login_failed) and log a failed login: the typed name (shortened), never the password."""
    actor = (typed_username or "").strip()[:ACTOR_MAX].replace("\x00", "") or "(empty)"
    details = f"{reason} from {address or 'unknown address'}"
    record(actor, "user.login_failed", details)
    db.session.commit()
    log.warning("login failed for %r: %s", actor, details)


def change_password(user: User, current: str, new: str, confirm: str | None = None) -> None:
    """Replace the user's password after checking the current one; every other session of the user ends."""
    if not user.check_password(current or ""):
        raise UserError("The current password is not correct.", "current_password")
    if confirm is not None and new != confirm:
        raise UserError("The two new passwords differ.", "confirm_password")
    if new == current:
        raise UserError("The new password must differ from the current one.", "new_password")
    check_password_rules(new or "", user.username, "new_password")
    user.set_password(new)
    record(user.username, "user.password_changed", "every other session signed out")
    db.session.commit()


def set_password(username: str, password: str, *, actor: str) -> User:
    """An admin's password reset (the CLI): the rules apply and every session of the user ends."""
    user = get_user(username)
    if not password:
        raise UserError("Password must not be empty: type one at the prompt, or send it on standard input.")
    check_password_rules(password, user.username)
    user.set_password(password)
    record(actor, "user.password_changed", f"{user.username}: reset, every session signed out")
    db.session.commit()
    return user


def set_role(username: str, role: str, *, actor: str) -> User:
    """Change a user's role; the user's sessions end (models: a role change bumps the session version)."""
    user = get_user(username)
    if role not in ROLES:
        raise UserError(f"Role must be one of: {', '.join(ROLES)}.", "role")
    if user.role == "admin" and role != "admin" and _admins() == 1:
        raise UserError(f"{user.username} is the only admin: make another user admin first.", "role")
    if user.role != role:
        old, user.role = user.role, role
        record(actor, "user.role_changed", f"{user.username}: {old} -> {role}, every session signed out")
        db.session.commit()
    return user


def _admins() -> int:
    """How many admins there are (the rows held, so two demotions at once cannot both pass on PostgreSQL)."""
    return len(db.session.scalars(select(User.id).where(User.role == "admin").with_for_update()).all())


def sign_out_everywhere(user: User, *, actor: str) -> None:
    """End every session of the user, on every browser (the account page's button, the CLI)."""
    user.end_sessions()
    record(actor, "user.signed_out_everywhere", user.username)
    db.session.commit()
