"""Sessions with a server-side anchor: the cookie carries the user's session version (User.get_id) and the
login and last-use times; each request checks them against the database and the configured lifetimes.

Logout, a password or role change and "sign out everywhere" bump the version, so every earlier cookie,
even one copied before, is refused. An idle session ends after QLAR_SESSION_IDLE_MINUTES, any session
QLAR_SESSION_MAX_HOURS after its login; the next page then asks to log in again, saying why.
"""
import logging
import time

from flask import current_app, flash, g, session
from flask_login import login_user, logout_user

from ..extensions import db
from .models import User

log = logging.getLogger(__name__)

LOGIN_AT = "_qlar_login_at"  # Unix seconds of the login
SEEN_AT = "_qlar_seen_at"  # Unix seconds of the last request
SEEN_PRECISION = 30  # the last-use time is rewritten (a new cookie) at most this often
ENDED = "Your session has ended (logged out, or signed out everywhere): log in again."


def clear_session() -> None:
    """Forget everything of the session but its CSRF token (a form already open on the page stays usable)."""
    csrf_token = session.get("csrf_token")
    session.clear()
    if csrf_token:
        session["csrf_token"] = csrf_token


def start_session(user: User) -> None:
    """Sign the user in on this browser: the cookie holds the current session version and the login time."""
    clear_session()  # nothing of an earlier session (or of the password step) carries over
    session.pop("csrf_token", None)  # nor its CSRF token: the signed-in session gets a fresh one
    g.pop("csrf_token", None)
    login_user(user)
    now = int(time.time())
    session[LOGIN_AT] = session[SEEN_AT] = now


def end_session(user: User) -> None:
    """Log out: this cookie and every other one of the user stop working (the caller commits)."""
    user.end_sessions()
    logout_user()
    clear_session()


def renew_session(user: User) -> None:
    """Keep this browser signed in after the user's version changed here (a password change on this page)."""
    login_at = session.get(LOGIN_AT)
    start_session(user)
    if isinstance(login_at, int):
        session[LOGIN_AT] = login_at  # the absolute lifetime still counts from the first login


def load_session_user(user_id: str) -> User | None:
    """Flask-Login's user loader: the user of this cookie while its version and times are valid, else None."""
    user_part, _, version = (user_id or "").partition(":")
    user = db.session.get(User, int(user_part)) if user_part.isdigit() and version.isdigit() else None
    if user is None or user.session_version != int(version):
        return _refuse(ENDED)
    problem = session_expired(session.get(LOGIN_AT), session.get(SEEN_AT), int(time.time()))
    if problem:
        return _refuse(problem)
    now = int(time.time())
    if now - session[SEEN_AT] >= SEEN_PRECISION:
        session[SEEN_AT] = now
    return user


def session_expired(login_at, seen_at, now: int) -> str | None:
    """Why a session with these times has ended (idle too long, or past its lifetime), or None while it lives."""
    if not isinstance(login_at, int) or not isinstance(seen_at, int):
        return ENDED
    max_hours = float(current_app.config["SESSION_MAX_HOURS"])
    idle_minutes = float(current_app.config["SESSION_IDLE_MINUTES"])
    if now - login_at > max_hours * 3600:
        return f"Your session has ended: a login lasts at most {max_hours:g} hours. Log in again."
    if now - seen_at > idle_minutes * 60:
        return f"Your session has ended after {idle_minutes:g} minutes without activity. Log in again."
    return None


def _refuse(reason: str) -> None:
    """Drop the session of a refused cookie and say why on the login page it leads to."""
    log.info("session refused: %s", reason)
    clear_session()
    flash(reason, "warning")
    g.session_refused = True  # login.unauthorized then adds no second message
    return None
