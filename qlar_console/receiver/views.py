"""The receiver's routes: POST /webhook, the traces page (paged), /traces.json, the key form and faults on command."""
import hmac
import logging
import re
import time
from datetime import datetime

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for

from .faults import EXAMPLE, InvalidFault, drop_connection, parse_fault
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
    """Verify, validate and route one event (the raw body bytes are what is verified), or follow the fault in force:
    its status replaces the answer, its delay comes before the answer, a reset drops the connection (faults.py)."""
    state = _state()
    fault = state.faults.take()  # each request uses one of the fault's count, whatever it carries
    status, answer = state.receive(request.get_data(), request.headers, fault)
    if fault and fault.fault.delay_ms:
        time.sleep(fault.fault.delay_ms / 1000)
    if status == 0:  # a reset fault
        if drop_connection(request.environ):
            return "", 204  # written nowhere: the connection is gone
        return jsonify(error="This server cannot drop a connection, so the reset fault was answered 500."), 500
    return jsonify(answer), status


@bp.get("/faults")
def faults_json():
    """The fault in force: {"fault": {status, count, delayMs, reset, remaining, description}} or {"fault": null}."""
    return jsonify(fault=_state().faults.current())


@bp.post("/faults")
def set_faults_json():
    """Put a fault in force for the next requests; JSON only, which a cross-site form cannot send."""
    if not request.is_json:
        return jsonify(error=f"Send the fault as JSON (Content-Type: application/json), such as {EXAMPLE}."), 415
    state = _state()
    try:
        state.faults.set(parse_fault(request.get_json(silent=True)))
    except InvalidFault as exc:
        return jsonify(error=str(exc), field=exc.field), 400
    return jsonify(fault=state.faults.current())


@bp.delete("/faults")
def clear_faults_json():
    """No fault: requests are answered normally again."""
    _state().faults.clear()
    return jsonify(fault=None)


@bp.post("/faults/form")
def set_faults_form():
    """The page's Faults form: put a fault in force (form token required)."""
    state = _state()
    if not _token_ok(state, "faults form"):
        return render_template("receiver/index.html", form_error=BAD_TOKEN, **_page()), 400
    document = {"status": _form_number("status"), "count": _form_number("count"),
                "delayMs": _form_number("delay_ms"), "reset": "reset" in request.form}
    try:
        state.faults.set(parse_fault(document))
    except InvalidFault as exc:
        return render_template("receiver/index.html", fault_error=str(exc), fault_field=exc.field,
                               fault_form=request.form, **_page()), 400
    return redirect(url_for(".traces_page", faults="set"), 303)


@bp.post("/faults/clear")
def clear_faults_form():
    """The page's Clear faults button (form token required)."""
    state = _state()
    if not _token_ok(state, "faults form"):
        return render_template("receiver/index.html", form_error=BAD_TOKEN, **_page()), 400
    state.faults.clear()
    return redirect(url_for(".traces_page", faults="cleared"), 303)


def _token_ok(state, form: str) -> bool:
    """Whether the posted form carries this process's form token (logged when not)."""
    if hmac.compare_digest(request.form.get("token", "").encode(), state.form_token.encode()):
        return True
    log.warning("%s rejected: missing or wrong form token", form)
    return False


def _form_number(name: str) -> int | str | None:
    """A number field of the Faults form: None when empty, an int when digits, else the text (parse_fault says why)."""
    value = request.form.get(name, "").strip()
    if not value:
        return None
    return int(value) if value.isascii() and value.isdigit() else value


@bp.get("/")
def traces_page():
    """The traces page: newest request first, with its verdict, outcome and status."""
    message = None
    if request.args.get("key") == "replaced":
        message = "Key replaced: requests signed with the previous key are now rejected."
    elif request.args.get("faults") == "set":
        message = "Fault set. " + (_state().faults.current() or {}).get("description", "It has been used up already.")
    elif request.args.get("faults") == "cleared":
        message = "Faults cleared: requests are answered normally."
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
    if not _token_ok(state, "key form"):
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
        "fault": state.faults.current(),
        "retention_seconds": state.traces.retention_seconds,
        "capacity": state.traces.capacity,
        "tolerance_seconds": state.tolerance_seconds,
        "seen_days": state.seen.retention_seconds / 86400,
        "seen_durable": state.seen.durable,
        "webhook_url": url_for(".webhook", _external=True),
    }
