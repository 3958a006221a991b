"""Who is signed in and what they may do: Flask-Login's manager, its user loader (sessions.py), the role check
of the pages, and the gate that sends a user who must enrol a second factor (QLAR_REQUIRE_2FA) to enrolment (account.py
registers it)."""
import functools

from flask import Flask, abort, current_app, flash, g, redirect, request, url_for
from flask_login import LoginManager, current_user, login_required, login_url

from .models import ROLES
from .sessions import load_session_user

LOGIN_MESSAGE = "Please log in to continue."
ENROL_MESSAGE = "Set up two-factor authentication to continue: it is required for your role."

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.session_protection = "strong"  # a cookie presented from another address or browser is dropped
login_manager.user_loader(load_session_user)

# What a user who must still enrol a second factor may reach: logging in and out, and the account pages.
ENROL_OPEN = {"static", "auth.login", "auth.login_code", "auth.logout"}


@login_manager.unauthorized_handler
def unauthorized():
    """Send to the login page (coming back here after it); say why unless the session check already did."""
    if not g.get("session_refused"):
        flash(LOGIN_MESSAGE, "message")
    return redirect(login_url("auth.login", request.url if request.method == "GET" else None))


def require_role(role: str):
    """Decorator: the view needs a logged-in user with at least `role`, else 403."""

    def decorator(view):
        @functools.wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not current_user.has_role(role):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def second_factor_required(user) -> bool:
    """True when QLAR_REQUIRE_2FA covers the user's role ("admin": admins; "editor": editors and admins; "all")."""
    required = (current_app.config.get("REQUIRE_2FA") or "").strip().lower()
    return bool(required) and user.has_role("viewer" if required == "all" else required)


def must_enrol_2fa(user) -> bool:
    """True when a second factor is required of the user and not enrolled yet."""
    return second_factor_required(user) and not user.has_2fa


def check_require_2fa(app: Flask) -> None:
    """Refuse to start with a QLAR_REQUIRE_2FA that names no role."""
    required = (app.config.get("REQUIRE_2FA") or "").strip().lower()
    if required and required not in (*ROLES, "all"):
        raise RuntimeError(f"QLAR_REQUIRE_2FA must be empty, a role ({', '.join(ROLES)}) or all; not {required!r}.")


def enrolment_gate():
    """before_request: a user who must enrol a second factor reaches only the account pages until they do."""
    if not current_app.config.get("REQUIRE_2FA") or request.path.startswith("/api/"):
        return None
    if request.endpoint in ENROL_OPEN or request.blueprint == "account":
        return None
    if current_user.is_authenticated and must_enrol_2fa(current_user):
        flash(ENROL_MESSAGE, "warning")
        return redirect(url_for("account.enrol"))
    return None
