"""The login throttle: QLAR_LOGIN_RATE_LIMIT failed attempts per username and per client address, counted in
the API's Flask-Limiter storage (QLAR_RATELIMIT_STORAGE_URI, so several processes share the counts).

Each attempt takes its place in both counts atomically before any password or code is checked, so attempts
sent at once cannot all pass the check before one is counted; only failures keep theirs (a view marks one with
failed(), the others are given back). The attempt past the limit gets 429 and "Too many attempts, try again in
N minutes".
"""
import functools
import logging
import math
import time

from flask import current_app, g, render_template, request, session
from limits import RateLimitItem, parse
from limits.strategies import FixedWindowRateLimiter

from ..ratelimit import address_key, limiter
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
    """The client's address (an IPv6 one by its /64)."""
    return "addr:" + address_key()


def _too_many(item: RateLimitItem, counter: FixedWindowRateLimiter, scope: str, key: str):
    """The page past the limit: 429, how long to wait (Retry-After), logged without the password."""
    wait = max(1, math.ceil(counter.get_window_stats(item, scope, key).reset_time - time.time()))
    minutes = math.ceil(wait / 60)
    log.warning("login throttled (%s, limit %s) from %s", key, item, request.remote_addr)
    message = f"Too many attempts, try again in {minutes} minute{'s' if minutes != 1 else ''}."
    response = current_app.make_response((render_template("error.html", message=message, status=429), 429))
    response.headers["Retry-After"] = str(wait)
    return response


def throttled(view):
    """Decorator for the login steps: the per-username and per-address limits, taken before the view runs."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if request.method != "POST" or not limiter.enabled:
            return view(*args, **kwargs)
        item = parse(current_app.config["LOGIN_RATE_LIMIT"])
        counter = FixedWindowRateLimiter(limiter.storage)
        taken = []
        for scope, key in (("login-user", _username_key()), ("login-address", _address_key())):
            taken.append((scope, key))
            if not counter.hit(item, scope, key):  # atomic: the count is this attempt's place in the window
                _give_back(counter, item, taken)  # a refused attempt checks nothing, so it does not count
                return _too_many(item, counter, scope, key)
        g.login_failed = False
        try:
            response = view(*args, **kwargs)
        except BaseException:
            _give_back(counter, item, taken)
            raise
        if not g.login_failed:
            _give_back(counter, item, taken)
        return response

    return wrapped


def _give_back(counter: FixedWindowRateLimiter, item: RateLimitItem, taken: list[tuple[str, str]]) -> None:
    for scope, key in taken:
        counter.hit(item, scope, key, cost=-1)
