"""The login throttle: QLAR_LOGIN_RATE_LIMIT failed attempts per username and per client address, counted in
the API's Flask-Limiter storage (QLAR_RATELIMIT_STORAGE_URI, so several processes share the counts).

Only failures count (a view marks one with failed()); the attempt past the limit gets 429 and
"Too many attempts, try again in N minutes", before any password is checked.
"""
import logging
import math
import time

from flask import current_app, g, render_template, request, session

from ..ratelimit import limiter
from .service import normalise_username

log = logging.getLogger(__name__)

PENDING_USER = "_qlar_2fa_username"  # set by the password step for the code step (views.py)


def failed() -> None:
    """Count this request as a failed attempt (against its username and its address)."""
    g.login_failed = True


def _username_key() -> str:
    """The username the attempt is for: typed on the password step, remembered for the code step."""
    typed = request.form.get("username") if request.endpoint == "auth.login" else session.get(PENDING_USER)
    return "user:" + (normalise_username(typed)[:80] or "-")


def _address_key() -> str:
    """The client's address."""
    return "addr:" + (request.remote_addr or "unknown")


def _too_many(limit):
    """The page past the limit: 429, how long to wait (Retry-After), logged without the password."""
    wait = max(1, int(limit.reset_at - time.time()))
    minutes = math.ceil(wait / 60)
    log.warning("login throttled (%s, limit %s) from %s", limit.key, limit.limit, request.remote_addr)
    message = f"Too many attempts, try again in {minutes} minute{'s' if minutes != 1 else ''}."
    response = current_app.make_response((render_template("error.html", message=message, status=429), 429))
    response.headers["Retry-After"] = str(wait)
    return response


def _limit(scope: str, key_func):
    """One shared limit of the login steps: checked before the view, deducted only when the view failed()."""
    return limiter.shared_limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], scope=scope, key_func=key_func,
                                methods=["POST"], deduct_when=lambda response: bool(g.get("login_failed")),
                                on_breach=_too_many)


def throttled(view):
    """Decorator for the login steps: the per-username and per-address limits."""
    return _limit("login-user", _username_key)(_limit("login-address", _address_key)(view))
