"""The Audit log page: readable actions, filters (actor, action, UTC days) and paging both ways."""
from flask import Blueprint, render_template, request, url_for
from flask_login import login_required

from . import service

bp = Blueprint("audit", __name__)


@bp.get("/audit")
@login_required
def index():
    """Who changed what, and when (newest first); a filter or page link the page cannot use is a 400 saying why."""
    choices = service.action_choices()
    try:
        filters, cursor = service.parse_filters(request.args, {code for code, _ in choices})
    except service.InvalidAuditFilter as exc:
        return _render(service.AuditFilters(), None, choices, error=exc), 400
    return _render(filters, service.list_entries(filters, cursor), choices, paged=cursor != service.Cursor())


def _render(filters, page, choices, *, error=None, paged=False):
    args = filters.as_args()
    links = {}
    if page is not None:
        links = {
            "newest": url_for(".index", **args) if paged else None,
            "newer": url_for(".index", after=page.newer_after, **args) if page.newer_after else None,
            "older": url_for(".index", before=page.older_before, **args) if page.older_before else None,
        }
    return render_template(
        "audit/index.html", form=request.args, page=page, links=links, error=error, filtered=bool(args),
        actions=choices, actors=service.actors(), action_name=service.action_name,
    )
