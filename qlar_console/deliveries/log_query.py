"""The Deliveries log's filters and how a query string sets them: the status and event-type rules the API shares
(parse_filters), and on top for the page Search (an event or escalation id), agent · environment, From and To days,
Traffic (synthetic=only|none) and a cursor either way (parse_log_args)."""
import logging
import re
from dataclasses import dataclass, replace
from datetime import date

from ..clock import day_argument
from ..engine.models import EVENT_TYPES, STATUSES
from ..errors import DomainError

log = logging.getLogger(__name__)

EVENT_ID = re.compile(r"evt_[0-9a-f]{1,36}")
ENDPOINT_ID = re.compile(r"ep_[0-9a-f]{1,36}")
ESCALATION_ID = re.compile(r"esc-[0-9A-Za-z_-]{1,36}")  # esc- and 12 hex digits (escalations.service), or bench ids
TRAFFIC_ARGS = {True: "only", False: "none"}  # Filters.synthetic -> the page's synthetic= argument (Traffic)


class InvalidFilter(DomainError):
    """A filter in the query string is not one the log knows; `field` is its argument."""


@dataclass(frozen=True)
class Filters:
    """What the log is narrowed to; None means any (the page shows every agent x environment, the API one).

    event_id and escalation_id come from the page's Search; since and until are UTC days, both included;
    synthetic: True only the simulator's, scenarios' and test flows' events, False only real ones (Traffic).
    """

    status: str | None = None
    event_type: str | None = None
    agent_id: str | None = None
    environment: str | None = None
    event_id: str | None = None
    escalation_id: str | None = None
    since: date | None = None
    until: date | None = None
    synthetic: bool | None = None
    endpoint_id: str | None = None  # one endpoint's rows (ep_…)

    @property
    def search(self) -> str:
        """What the Search field holds: the event id or escalation id searched for, or ""."""
        return self.event_id or self.escalation_id or ""

    def as_args(self) -> dict[str, str]:
        """The page's filters as query-string arguments (unset ones left out), for links that keep them."""
        args = {"q": self.search, "agent": self.agent_id, "env": self.environment, "status": self.status,
                "event_type": self.event_type, "from": self.since and self.since.isoformat(),
                "to": self.until and self.until.isoformat(), "synthetic": TRAFFIC_ARGS.get(self.synthetic),
                "endpoint": self.endpoint_id}
        return {k: v for k, v in args.items() if v}


def parse_filters(args, agent_id: str | None = None, environment: str | None = None) -> tuple[Filters, str | None]:
    """Check the log's status and event-type filters and `before` cursor; raises InvalidFilter with a clear message.

    agent_id and environment narrow the log to one pair (the API's path); log_query.parse_log_args reads the page's.
    """
    status = args.get("status") or None
    event_type = args.get("event_type") or None
    before = args.get("before") or None
    if status is not None and status not in STATUSES:
        raise InvalidFilter(f"Unknown status {status!r}: choose one of {', '.join(STATUSES)}.", "status")
    if event_type is not None and event_type not in EVENT_TYPES:
        raise InvalidFilter(f"Unknown event type {event_type!r}: choose one of {', '.join(EVENT_TYPES)}.",
                            "event_type")
    if before is not None and not EVENT_ID.fullmatch(before):
        raise InvalidFilter(f"{before!r} is not an event id (evt_…): follow the Older link to page back.", "before")
    return Filters(status, event_type, agent_id, environment), before


@dataclass(frozen=True)
class Cursor:
    """Where a page of the log starts: events older than `before`, or newer than `after` (neither: the newest)."""

    before: str | None = None
    after: str | None = None


def parse_log_args(args, pairs: list[tuple[str, str]], endpoints=None) -> tuple[Filters, Cursor]:
    """The Deliveries page's query string: parse_filters' rules, Search (q), agent · environment, Endpoint, From
    and To days, and a cursor either way; raises InvalidFilter naming the field. pairs: every (agent, environment)
    there is; endpoints: every endpoint id there is (a mapping or set; None: not checked beyond its form)."""
    filters, before = parse_filters(args)
    after = args.get("after") or None
    if after is not None and not EVENT_ID.fullmatch(after):
        raise InvalidFilter(f"{after!r} is not an event id (evt_…): follow the Newer link to page forward.", "after")
    if before and after:
        raise InvalidFilter("A page starts before an event or after one, not both: use the page links.", "after")
    agent_id, environment = _pair(args, pairs)
    event_id, escalation_id = _search(args.get("q"))
    since = day_argument(args, "from", "From", InvalidFilter)
    until = day_argument(args, "to", "To", InvalidFilter)
    if since and until and since > until:
        raise InvalidFilter(f"From ({since}) is after To ({until}): swap them.", "from")
    endpoint_id = (args.get("endpoint") or "").strip() or None
    if endpoint_id is not None and not ENDPOINT_ID.fullmatch(endpoint_id):
        raise InvalidFilter(f"{endpoint_id[:40]!r} is not an endpoint id (ep_…): choose one in the list.", "endpoint")
    if endpoint_id is not None and endpoints is not None:
        if endpoint_id not in endpoints:
            raise InvalidFilter(f"Unknown endpoint {endpoint_id!r}: choose one from the Endpoint list.", "endpoint")
        label = endpoints[endpoint_id] if isinstance(endpoints, dict) else None
        if label is not None and agent_id and (agent_id, environment) != label.pair:
            raise InvalidFilter(f"Endpoint {endpoint_id} is not one of {agent_id} \u00b7 {environment}'s: choose one "
                                "of its endpoints, or Any.", "endpoint")
    return replace(filters, agent_id=agent_id, environment=environment, event_id=event_id,
                   escalation_id=escalation_id, since=since, until=until, endpoint_id=endpoint_id,
                   synthetic=_traffic(args.get("synthetic"))), Cursor(before, after)


def _traffic(value: str | None) -> bool | None:
    """Traffic: all (empty), real only (none) or synthetic only (only)."""
    value = (value or "").strip()
    if not value:
        return None
    for synthetic, name in TRAFFIC_ARGS.items():
        if value == name:
            return synthetic
    shown = value if len(value) <= 40 else value[:40] + "…"
    raise InvalidFilter(f"Unknown traffic {shown!r}: choose All, Real only or Synthetic only.", "synthetic")


def _pair(args, pairs: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """The agent · environment select (pair=AGENT/ENV) or the home page's links (agent=…&env=…)."""
    if "pair" in args:
        value = args["pair"].strip()
        agent_id, _, environment = value.partition("/")
    else:
        agent_id, environment = (args.get("agent") or "").strip(), (args.get("env") or "").strip()
        value = f"{agent_id}/{environment}" if agent_id or environment else ""
    if not value:
        return None, None
    if (agent_id, environment) not in pairs:
        raise InvalidFilter(f"Unknown agent · environment {value!r}: choose one from the Agent · environment list.",
                            "pair")
    return agent_id, environment


def _search(value: str | None) -> tuple[str | None, str | None]:
    """Search: an event id finds that event, an escalation id that escalation's events."""
    value = (value or "").strip()
    if not value:
        return None, None
    if EVENT_ID.fullmatch(value):
        return value, None
    if ESCALATION_ID.fullmatch(value):
        return None, value
    shown = value if len(value) <= 60 else value[:60] + "…"
    raise InvalidFilter(f"Search takes an event id (evt_…) or an escalation id (esc-…); {shown!r} is neither.", "q")
