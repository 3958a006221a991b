"""Login, logout, and the API tokens page."""
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..audit.service import record
from ..clock import utcnow
from ..extensions import db
from .forms import LoginForm, TokenForm
from .login import require_role
from .models import SCOPE_ROLES, User
from .service import authenticate
from .tokens import EXPIRY_CHOICES, TokenError, create_token, list_tokens, revoke_token, weaker_role_warning

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only follow `next` to a path on this site."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("settings.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form and sign the user in."""
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user:
            login_user(user)
            record(user.username, "user.login")
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")))
        flash("Invalid username or password.", "error")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    """Sign out (a POST, so a link cannot log anyone out)."""
    logout_user()
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
