"""Who is signed in and what they may do: Flask-Login's manager, its user loader, and the role check of the pages."""
import functools

from flask import abort
from flask_login import LoginManager, current_user, login_required

from ..extensions import db
from .models import User

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to continue."


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
