"""The Deliveries page's query string: Search (an event or escalation id), agent · environment, From and To days,
Traffic (synthetic=only|none) and a cursor either way, on top of the status and event-type rules the API shares
(queries.parse_filters)."""
import logging
import re
from dataclasses import dataclass, replace

from ..clock import day_argument
from .queries import EVENT_ID, TRAFFIC_ARGS, Filters, InvalidFilter, parse_filters

log = logging.getLogger(__name__)

ENDPOINT_ID = re.compile(r"ep_[0-9a-f]{1,36}")
ESCALATION_ID = re.compile(r"esc-[0-9A-Za-z_-]{1,36}")  # esc- and 12 hex digits (escalations.service), or bench ids


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
