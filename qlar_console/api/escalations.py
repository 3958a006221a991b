"""/api/v1 escalations: create, claim, complete, release, and simulate jobs."""
from . import api_blueprint

bp = api_blueprint("Escalations", "The escalation lifecycle and synthetic traffic (simulate jobs).")
