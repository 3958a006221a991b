"""The demo that `make run` seeds: agent-123 with production and staging, and an admin."""
from .auth.models import User
from .auth.service import create_user
from .extensions import db
from .settings.service import add_agent

DEMO_AGENT = "agent-123"
DEMO_ENVIRONMENTS = ["production", "staging"]


def seed_demo() -> str | None:
    """Create what is missing; returns the admin's one-time password when the admin is new."""
    add_agent(DEMO_AGENT, DEMO_ENVIRONMENTS, "demo")
    if db.session.scalar(db.select(User).filter_by(username="admin")):
        return None
    _, password = create_user("admin", "admin", actor="demo")
    return password
