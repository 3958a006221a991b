"""Login, logout, and the role check every other blueprint uses."""
import functools
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..audit.service import record
from ..extensions import db, login_manager
from .forms import LoginForm
from .models import User
from .service import authenticate

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """Flask-Login's lookup of the user stored in the session."""
    return db.session.get(User, int(user_id))


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
