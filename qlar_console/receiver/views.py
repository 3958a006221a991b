"""The receiver's routes: POST /webhook, the traces page (paged), /traces.json, and the key form."""
import hmac
import logging
import re
from datetime import datetime

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for

from .store import InvalidReceiverKey

log = logging.getLogger(__name__)

bp = Blueprint("receiver", __name__)

BAD_TOKEN = "The form was sent without its security token: reload this page and submit it again."
CURSOR = re.compile(r"[0-9]{1,18}")


class BadPageLink(ValueError):
    """A before/after argument of the traces page that is not a trace number."""


def _state():
    return current_app.extensions["qlar_receiver"]


@bp.post("/webhook", provide_automatic_options=False)
def webhook():
    """Verify, validate and route one event; the raw body bytes are what is verified."""
    status, answer = _state().receive(request.get_data(), request.headers)
    return jsonify(answer), status


@bp.get("/")
def traces_page():
    """The traces page: newest request first, with its verdict, outcome and status."""
    message = None
    if request.args.get("key") == "replaced":
        message = "Key replaced: requests signed with the previous key are now rejected."
    try:
        before, after = _cursor("before"), _cursor("after")
        if before is not None and after is not None:
            raise BadPageLink("A page starts before a request or after one, not both: use the page links.")
    except BadPageLink as exc:
        return render_template("receiver/index.html", page_error=str(exc), **_page()), 400
    return render_template("receiver/index.html", message=message, **_page(before, after))


@bp.get("/traces.json")
def traces_json():
    """The same traces as JSON, newest first, for tests and scripts."""
    state = _state()
    return jsonify(
        traces=[trace.to_dict() for trace in state.traces.list()],
        retention_seconds=state.traces.retention_seconds,
        capacity=state.traces.capacity,
        key_fingerprints=state.keys.fingerprints(),
    )


@bp.post("/secret")
def set_secret():
    """Replace the held key with the one pasted in the form (token required; the key is never shown)."""
    state = _state()
    token = request.form.get("token", "")
    if not hmac.compare_digest(token.encode(), state.form_token.encode()):
        log.warning("key form rejected: missing or wrong form token")
        return render_template("receiver/index.html", form_error=BAD_TOKEN, **_page()), 400
    try:
        state.set_keys([request.form.get("secret", "")])
    except InvalidReceiverKey as exc:
        return render_template("receiver/index.html", secret_error=str(exc), **_page()), 400
    return redirect(url_for(".traces_page", key="replaced"), 303)


def _cursor(name: str) -> int | None:
    """The page link's trace number, None when absent; BadPageLink when it is not one."""
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if not CURSOR.fullmatch(value):
        raise BadPageLink(f"{name}={value!r} is not a request number: use the Newer and Older links.")
    return int(value)


def _received(trace) -> datetime | None:
    """When the trace was received, for the page's when() (None if its text is not ISO 8601)."""
    try:
        return datetime.fromisoformat(trace.received_at)
    except ValueError:
        return None


def _page(before: int | None = None, after: int | None = None) -> dict:
    state = _state()
    page = state.traces.page(before, after)
    paged = before is not None or after is not None
    return {
        "page": page,
        "received": {trace.id: _received(trace) for trace in page.traces},
        "pages": {
            "newest": url_for(".traces_page") if paged else None,
            "newer": url_for(".traces_page", after=page.newer_after) if page.newer_after else None,
            "older": url_for(".traces_page", before=page.older_before) if page.older_before else None,
        },
        "fingerprints": state.keys.fingerprints(),
        "form_token": state.form_token,
        "retention_seconds": state.traces.retention_seconds,
        "capacity": state.traces.capacity,
        "tolerance_seconds": state.tolerance_seconds,
        "seen_days": state.seen.retention_seconds / 86400,
        "seen_durable": state.seen.durable,
        "webhook_url": url_for(".webhook", _external=True),
    }
