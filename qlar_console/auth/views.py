"""Login (password, then the code of a second factor when enrolled), logout, and the API tokens page."""
import time
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from ..audit.service import record
from ..clock import utcnow
from ..extensions import db
from .forms import CodeForm, LoginForm, TokenForm
from .login import require_role
from .models import SCOPE_ROLES, User
from .service import authenticate, record_failed_login
from .sessions import clear_session, end_session, start_session
from .throttle import PENDING_USER, failed, throttled
from .tokens import EXPIRY_CHOICES, TokenError, create_token, list_tokens, revoke_token, weaker_role_warning
from .totp import verify_second_factor

bp = Blueprint("auth", __name__)

PENDING = "_qlar_2fa_pending"  # [user id, session version, Unix seconds] between the password and the code
PENDING_SECONDS = 300
INVALID = "Invalid username or password."


def _safe_next(target: str | None) -> str:
    """Only follow `next` to a path on this site."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("settings.index")


def _signed_in(user: User, how: str = ""):
    """Start the session, audit the login, and go where the user was heading."""
    start_session(user)
    record(user.username, "user.login", how)
    db.session.commit()
    return redirect(_safe_next(request.args.get("next")))


@bp.route("/login", methods=["GET", "POST"])
@throttled
def login():
    """Show the login form and check the password; with a second factor enrolled, ask for its code next."""
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is None:
            failed()
            record_failed_login(form.username.data, request.remote_addr)
            flash(INVALID, "error")
            return render_template("auth/login.html", form=form)
        if not user.has_2fa:
            return _signed_in(user)
        db.session.commit()  # a re-hashed password
        clear_session()
        session[PENDING] = [user.id, user.session_version, int(time.time())]
        session[PENDING_USER] = user.username
        return redirect(url_for("auth.login_code", next=request.args.get("next")))
    return render_template("auth/login.html", form=form)


def _pending_user() -> User | None:
    """The user who passed the password step on this browser in the last five minutes, or None."""
    pending = session.get(PENDING)
    if not (isinstance(pending, list) and len(pending) == 3 and all(isinstance(v, int) for v in pending)):
        return None
    user_id, version, at = pending
    user = db.session.get(User, user_id)
    if user is None or user.session_version != version or time.time() - at > PENDING_SECONDS:
        return None
    return user


@bp.route("/login/code", methods=["GET", "POST"])
@throttled
def login_code():
    """The second step: a code from the authenticator app, or a recovery code (each works once)."""
    user = _pending_user()
    if user is None:
        session.pop(PENDING, None)
        flash("Log in with your username and password first (the code step lasts five minutes).", "warning")
        return redirect(url_for("auth.login", next=request.args.get("next")))
    form = CodeForm()
    if form.validate_on_submit():
        kind = verify_second_factor(user, form.code.data)
        if kind == "totp":
            return _signed_in(user)
        if kind == "recovery":
            left = len(user.recovery_code_hashes or [])
            response = _signed_in(user, "with a recovery code")
            flash(f"You used a recovery code: {left} left. Set up two-factor authentication again on your "
                  "account page if your app is lost.", "warning")
            return response
        failed()
        record_failed_login(user.username, request.remote_addr, "wrong authentication code")
        form.code.errors = ["That code is not right: enter the 6-digit code your app shows now, or a recovery code."]
        return render_template("auth/login_code.html", form=form), 422
    return render_template("auth/login_code.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    """Sign out (a POST, so a link cannot log anyone out): this cookie, and every copy of it, stops working."""
    user = current_user._get_current_object()
    end_session(user)
    record(user.username, "user.logout")
    db.session.commit()
    flash("You have been logged out.", "success")
    return redirect(url_for("auth.login"))


def _token_form(**kwargs) -> TokenForm:
    """The Create token form, its User select listing every user."""
    form = TokenForm(**kwargs)
    form.user.choices = [(u.username, f"{u.username} ({u.role})")
                         for u in db.session.scalars(db.select(User).order_by(User.username))]
    return form


def _tokens_page(form: TokenForm, status: int = 200, created=None, plaintext=None, warning=None):
    """The API tokens page; right after Create token it carries the new token, once, never cached."""
    html = render_template("auth/tokens.html", form=form, tokens=list_tokens(), now=utcnow(), scope_roles=SCOPE_ROLES,
                           created=created, plaintext=plaintext, warning=warning)
    response = make_response(html, status)
    if request.method == "POST":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/tokens", methods=["GET", "POST"])
@require_role("admin")
def tokens():
    """API tokens: every token with Revoke; a POST is Create token, whose response shows the token once."""
    form = _token_form()
    if request.method == "GET":
        return _tokens_page(form)
    if not form.validate_on_submit():
        return _tokens_page(form, 422)
    try:
        token, plaintext = create_token(form.name.data, form.user.data, form.scopes.data, actor=current_user.username,
                                        expires_in_days=EXPIRY_CHOICES[form.expires.data])
    except TokenError as exc:
        if exc.field in form:
            form[exc.field].errors = [str(exc)]
        else:
            flash(str(exc), "error")
        return _tokens_page(form, 422)
    return _tokens_page(_token_form(formdata=None), 201, token, plaintext, weaker_role_warning(token))


@bp.post("/tokens/<int:token_id>/revoke")
@require_role("admin")
def revoke(token_id: int):
    """Revoke: the token authenticates nothing from now on."""
    try:
        token = revoke_token(token_id, current_user.username)
    except TokenError:
        abort(404)
    flash(f"API token {token.name!r} of {token.user.username} revoked: calls with it are refused from now on.",
          "success")
    return redirect(url_for("auth.tokens"))
