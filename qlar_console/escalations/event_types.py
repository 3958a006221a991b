"""The Event types page: each event type's meaning, its fields as the published schema says, and a real example."""
import json

from flask import Blueprint, render_template
from flask_login import login_required

from ..engine.models import EVENT_TYPES
from . import catalog

bp = Blueprint("event_types", __name__)


@bp.get("/event-types")
@login_required
def index():
    """The event catalog, readable: one section per type, then the whole schema as served."""
    bodies = catalog.example_bodies()
    types = [{"name": name, "meaning": catalog.MEANINGS[name][0], "when": catalog.MEANINGS[name][1],
              "fields": catalog.fields(name),
              "example": json.dumps(json.loads(bodies[name]), indent=2, ensure_ascii=False)}
             for name in EVENT_TYPES]
    return render_template("escalations/event_types.html", types=types,
                           schema=catalog.schema_bytes().decode())
