"""The Users page (/users, admins): every console user with role and second factor; Add user (a first password
shown once), Change role, Reset 2FA and Sign out everywhere. The rules and their audit entries are service.py's
and totp.py's, as for the `flask qlar user` commands."""
from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, logout_user
from sqlalchemy import select

from ..extensions import db
from .forms import UserForm
from .login import require_role
from .models import ROLES, User
from .service import UserError, create_user, get_user, set_role, sign_out_everywhere
from .sessions import clear_session
from .totp import reset

bp = Blueprint("users", __name__, url_prefix="/users")


def _page(form: UserForm | None = None, created: User | None = None, password: str | None = None,
          status: int = 200):
    """The list and the Add user form (with a refused POST's errors, or the user just added and its password)."""
    users = db.session.scalars(select(User).order_by(User.username)).all()
    html = render_template("auth/users.html", users=users, form=form or UserForm(formdata=None),
                           roles=ROLES, created=created, password=password)
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"  # a first password may be on it
    return response


def _done(message: str):
    flash(message, "success")
    return redirect(url_for("users.index"))


@bp.get("")
@require_role("admin")
def index():
    """Every user: username, role, two-factor authentication, since when."""
    return _page()


@bp.post("")
@require_role("admin")
def add():
    """Add user: a random first password, shown once on the page that answers (the user changes it on /account)."""
    form = UserForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    try:
        user, password = create_user(form.username.data, form.role.data, actor=current_user.username)
    except UserError as exc:
        form[exc.field if exc.field in form else "username"].errors = [str(exc)]
        return _page(form, status=422)
    return _page(created=user, password=password, status=201)


@bp.post("/<username>/role")
@require_role("admin")
def change_role(username: str):
    """Change role: every session of the user ends; the last admin keeps the role."""
    try:
        user = set_role(username, request.form.get("role", ""), actor=current_user.username)
    except UserError as exc:
        flash(str(exc), "error")
        return redirect(url_for("users.index"))
    return _done(f"{user.username} is now {user.role}; every session of theirs is signed out.")


@bp.post("/<username>/2fa/reset")
@require_role("admin")
def reset_2fa(username: str):
    """Reset 2FA for a user who lost the device and the recovery codes: the factor is removed, sessions end."""
    user = get_user(username)
    if not user.has_2fa:
        flash(f"{user.username} has no second factor to reset.", "error")
        return redirect(url_for("users.index"))
    reset(user, actor=current_user.username)
    return _done(f"Two-factor authentication of {user.username} is removed; every session of theirs is signed out.")


@bp.post("/<username>/sign-out")
@require_role("admin")
def sign_out(username: str):
    """Sign out everywhere: every browser signed in as the user must log in again (this one too, for oneself)."""
    user = get_user(username)
    sign_out_everywhere(user, actor=current_user.username)
    if user.id == current_user.id:
        logout_user()
        clear_session()
        flash("You are signed out everywhere: every browser that was signed in as you must log in again.", "success")
        return redirect(url_for("auth.login"))
    return _done(f"{user.username} is signed out everywhere.")
