"""Claiming: leasing a batch of due events to a worker, with what their tries need.

Two statements a batch, both built once: a SELECT of due candidates (index ix_events_due, in
next_attempt_at order; the per-escalation order check uses ix_events_escalation_sequence), then a
conditional UPDATE … RETURNING that takes the lease. On PostgreSQL the SELECT locks its rows with
FOR UPDATE SKIP LOCKED so competing workers never wait on each other; on SQLite the UPDATE's
condition is the arbiter. The webhook settings are read once per endpoint of the batch, inside the
claim's transaction (each try uses the settings saved at that moment), and the transaction ends
before any network call.

Each event row is one event x endpoint (a pair fans out to its endpoints when the event is written):
order per escalation, concurrency limits and pauses are per endpoint. A paused endpoint (health.py) is
left out of the batch but for one probe at a time: when its next_probe_at is due, the endpoint's oldest
due event is leased as the probe.
"""
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, func, or_, select, update

from ..clock import utcnow
from ..extensions import db
from .models import PAUSED, PENDING, Endpoint, Event


@dataclass
class Target:
    """A webhook as one try needs it: switched on, its checked URL and its signing keys (current first).

    `problem` says why it cannot be sent to (a URL that fails the rule); the try is then recorded as
    failed with that message. `held` says why it cannot be sent now without the fault being the
    receiver's (a master key that cannot decrypt the key): no try is used, the endpoint pauses.
    """

    enabled: bool
    url: str = ""
    keys: list[str] = field(default_factory=list)
    problem: str | None = None
    held: str | None = None
    schedule: list[float] | None = None  # the endpoint's retry schedule; None: QLAR_RETRY_SCHEDULE
    headers: dict[str, str] = field(default_factory=dict)  # an additional endpoint's custom headers


Resolve = Callable[[set[str]], dict[str, Target]]  # endpoint ids -> what their tries need


@dataclass
class Work:
    """A leased event and what its try needs."""

    event_id: str
    escalation_id: str
    sequence: int
    pair: tuple[str, str]  # (agent, environment)
    endpoint_id: str  # ep_…: where this row goes (its health, order and concurrency)
    webhook_id: str  # the event's webhook-id, the same for every endpoint it goes to
    event_type: str
    body: bytes
    tries: int  # tries in this run so far
    attempt_count: int  # tries ever, numbering attempts
    trigger: str  # scheduled | manual
    target: Target
    synthetic: bool = False  # sent with X-Qlar-Synthetic: true
    probe: bool = False  # the one try a paused endpoint gets


E = Event.__table__  # Core statements: no ORM bookkeeping on the hot path
_earlier = E.alias("earlier")
_UNBLOCKED = ~exists().where(  # per-escalation order: no earlier event of the escalation is still pending
    _earlier.c.escalation_id == E.c.escalation_id, _earlier.c.sequence < E.c.sequence,
    _earlier.c.endpoint_id == E.c.endpoint_id, _earlier.c.status == PENDING)
_FREE = or_(E.c.lease_until.is_(None), E.c.lease_until < bindparam("now"))
_CANDIDATES = (
    select(E.c.id, E.c.endpoint_id)
    .where(E.c.status == PENDING, E.c.next_attempt_at <= bindparam("now"), _FREE, _UNBLOCKED)
    .order_by(E.c.next_attempt_at).limit(bindparam("limit"))
)
_CANDIDATES_EXCEPT = _CANDIDATES.where(E.c.endpoint_id.not_in(bindparam("busy", expanding=True)))
_LEASE = (
    update(E)
    # status || '': look the rows up by primary key; with a long IN list SQLite's planner would otherwise walk
    # ix_events_due over the whole backlog (status = 'pending' looks more selective to it than 64 ids)
    .where(E.c.id.in_(bindparam("ids", expanding=True)), E.c.status.concat("") == PENDING, _FREE)
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
    .returning(E.c.id, E.c.escalation_id, E.c.sequence, E.c.agent_id, E.c.environment, E.c.endpoint_id,
               E.c.message_id, E.c.event_type, E.c.body, E.c.tries, E.c.attempt_count, E.c.manual_by, E.c.synthetic)
)
_NEXT_DUE = select(func.min(E.c.next_attempt_at)).where(E.c.status == PENDING,
                                                          E.c.next_attempt_at > bindparam("since"))
EP = Endpoint.__table__
_PAUSED = select(EP.c.id, EP.c.next_probe_at).where(EP.c.health == PAUSED)
_DUE_PROBE = or_(EP.c.next_probe_at.is_(None), EP.c.next_probe_at <= bindparam("now"))
# The probe slot: whoever moves next_probe_at past now probes (record.py sets it again after the try).
_TAKE_PROBE = (update(EP).where(EP.c.id == bindparam("ep"), EP.c.health == PAUSED, _DUE_PROBE)
               .values(next_probe_at=bindparam("until")))
_PROBE = (select(E.c.id).where(E.c.endpoint_id == bindparam("ep"), E.c.status == PENDING, _FREE, _UNBLOCKED)
          .order_by(E.c.next_attempt_at, E.c.id).limit(1))
_NEXT_PROBE = select(func.min(EP.c.next_probe_at)).where(EP.c.health == PAUSED, EP.c.next_probe_at > bindparam("since"))


def claim(owner: str, lease: timedelta, resolve: Resolve, limit: int, *, per_endpoint: int | None = None,
          in_flight: Mapping[str, int] | None = None, wide: Mapping[str, int] | None = None) -> list[Work]:
    """Lease up to `limit` due events to `owner`, oldest due first; [] when nothing is due.

    With `per_endpoint`, no endpoint gets more than that many events in flight in this worker
    (counting `in_flight`, by endpoint id), or than its own limit in `wide`; endpoints already full are left out
    of the query, so they cannot crowd out the others. Paused endpoints are left out too, but for their probes.
    """
    now, conn, in_flight, wide = utcnow(), db.session.connection(), in_flight or {}, wide or {}

    def full(endpoint_id: str, count: int) -> bool:
        return per_endpoint is not None and count >= wide.get(endpoint_id, per_endpoint)

    busy = [ep for ep, count in in_flight.items() if full(ep, count)]
    paused, probes = _probes(conn, now, lease, busy)
    busy += paused
    query = _CANDIDATES_EXCEPT if busy else _CANDIDATES
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=E)
    ids, taken = list(probes), Counter()
    for event_id, endpoint_id in conn.execute(query, {"now": now, "limit": limit * 2, "busy": busy}):
        if len(ids) >= limit:
            break
        if full(endpoint_id, in_flight.get(endpoint_id, 0) + taken[endpoint_id]):
            continue
        taken[endpoint_id] += 1
        ids.append(event_id)
    if not ids:
        db.session.commit()
        return []
    rows = conn.execute(_LEASE, {"ids": ids, "now": now, "owner": owner, "until": now + lease}).all()
    targets = resolve({row.endpoint_id for row in rows}) if rows else {}
    db.session.commit()  # hold no transaction (and no SQLite lock) during the network calls
    order = {event_id: i for i, event_id in enumerate(ids)}
    rows.sort(key=lambda row: order[row.id])  # RETURNING order is not guaranteed: keep the due order
    return [Work(row.id, row.escalation_id, row.sequence, (row.agent_id, row.environment), row.endpoint_id,
                 row.message_id or row.id, row.event_type, row.body, row.tries, row.attempt_count,
                 "manual" if row.manual_by else "scheduled", targets[row.endpoint_id], row.synthetic, row.id in probes)
            for row in rows]


def _probes(conn, now: datetime, lease: timedelta, busy: list) -> tuple[list[str], set[str]]:
    """The paused endpoints, and the events taken as probes of those whose probe is due now.

    Taking the probe slot (next_probe_at moved a lease ahead) is the arbiter between workers.
    """
    paused, probes = [], set()
    for ep_id, next_probe_at in conn.execute(_PAUSED).all():
        paused.append(ep_id)
        if (next_probe_at is None or next_probe_at <= now) and ep_id not in busy and conn.execute(
                _TAKE_PROBE, {"ep": ep_id, "now": now, "until": now + lease}).rowcount == 1:
            probe = conn.scalar(_PROBE, {"ep": ep_id, "now": now})
            if probe:
                probes.add(probe)
    return paused, probes


def seconds_until_next_due(ceiling: float, since: datetime, now: datetime | None = None) -> float:
    """How long an idle worker may sleep: until the next try or probe due after `since` (when its last claim
    looked; what was due then and not claimed waits on something else), at most `ceiling`; at once when one
    came due meanwhile (a slow round must not sleep past it).

    One index seek (ix_events_due: status, next_attempt_at). Expired leases and successors freed by
    another process are found by the next poll; this process wakes itself for its own.
    """
    now = now or utcnow()
    times = [db.session.scalar(statement, {"since": since}) for statement in (_NEXT_DUE, _NEXT_PROBE)]
    db.session.commit()
    soonest = min((t for t in times if t is not None), default=None)
    if soonest is None:
        return ceiling
    return min(ceiling, max(0.01, (soonest - now).total_seconds()))


def unused(events: list[str], owner: str) -> None:
    """Give back leases this worker took but will not use (it is stopping)."""
    if events:
        db.session.execute(update(E).where(E.c.id.in_(events), E.c.lease_owner == owner)
                           .values(lease_owner=None, lease_until=None))
        db.session.commit()

