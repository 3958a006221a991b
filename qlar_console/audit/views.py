"""The Audit log page."""
from flask import Blueprint, render_template
from flask_login import login_required

from .service import recent

bp = Blueprint("audit", __name__)


@bp.get("/audit")
@login_required
def index():
    """Who changed what, and when (newest first)."""
    return render_template("audit/index.html", entries=recent())
