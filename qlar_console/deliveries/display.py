"""How the Deliveries pages (and the escalation timeline) show things: endpoint labels, a body as indented JSON."""
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select

from ..engine.models import Endpoint
from ..extensions import db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndpointLabel:
    """How the pages name an endpoint: its pair and a short label ("primary", or its description or URL host)."""

    id: str
    agent_id: str
    environment: str
    short: str
    is_primary: bool = False

    @property
    def pair(self) -> tuple[str, str]:
        return self.agent_id, self.environment

    def __str__(self) -> str:
        return f"{self.agent_id} \u00b7 {self.environment}: {self.short}"


def endpoint_labels() -> dict[str, EndpointLabel]:
    """Every endpoint's label (one query), each pair's primary first then the others oldest first."""
    rows = db.session.execute(select(Endpoint.id, Endpoint.is_primary, Endpoint.description, Endpoint.url,
                                     Endpoint.agent_id, Endpoint.environment)
                              .order_by(Endpoint.agent_id, Endpoint.environment, Endpoint.is_primary.desc(),
                                        Endpoint.created_at, Endpoint.id))
    return {ep_id: EndpointLabel(ep_id, agent, env, "primary" if primary else
                                 (description or urlsplit(url or "").netloc or ep_id), bool(primary))
            for ep_id, primary, description, url, agent, env in rows}


def endpoint_label(labels: dict[str, EndpointLabel], endpoint_id: str | None) -> str:
    """An endpoint's short label, or its id when it is gone (a removed endpoint's rows stay in the log)."""
    found = labels.get(endpoint_id or "")
    return found.short if found else (endpoint_id or "—")


def pretty_body(body: bytes) -> str | None:
    """The body as indented JSON for reading (never for verifying: the bytes sent differ), or None if not JSON."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return None
