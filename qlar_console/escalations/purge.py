"""Purge synthetic data: the escalations the simulator, a scenario or Run test flow made for one agent x environment,
with their events and attempts, in batches; real escalations and every other pair stay as they are.

The Escalations page (purge_views.py) and `flask qlar purge --synthetic AGENT ENV` (purge_cli.py) call these.
An escalation with an event a worker holds under a live lease is kept (the worker would otherwise record a try of
an event that no longer exists): purging again shortly removes it. Simulate jobs are left alone, and a pair whose
job has not finished is refused (its flows and summary read these rows). The Deliveries chart's day counters
(daily_outcomes) are totals of what happened and stay as they are.
"""
import logging
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update

from ..audit.service import record
from ..clock import utcnow
from ..engine.models import Attempt, Event
from ..errors import Conflict
from ..extensions import db
from ..settings.service import get_settings
from .jobs import retire_abandoned, unfinished_job
from .models import Escalation

log = logging.getLogger(__name__)
E, A, ESC = Event.__table__, Attempt.__table__, Escalation.__table__  # Core statements: no ORM bookkeeping

BATCH = 500  # escalations per transaction: a worker waits for one batch at most, never for the whole purge


class SimulationRunning(Conflict):
    """The pair has a simulate job still running or waiting for its deliveries."""


@dataclass(frozen=True)
class SyntheticCounts:
    """A pair's synthetic data: how much there is (a preview), or how much a purge removed and kept."""

    agent_id: str
    environment: str
    escalations: int
    events: int
    attempts: int
    in_flight: int  # escalations with an event being sent right now: a purge keeps them

    @property
    def empty(self) -> bool:
        """Nothing synthetic to remove (or nothing was removed)."""
        return not (self.escalations or self.events or self.attempts)

    def described(self) -> str:
        """"12 escalations, 36 events and 40 attempts" (singular where one)."""
        return (f"{_n(self.escalations, 'escalation')}, {_n(self.events, 'event')} and "
                f"{_n(self.attempts, 'attempt')}")

    def kept(self) -> str:
        """What a purge left in place, or "" when it kept nothing."""
        if not self.in_flight:
            return ""
        return f"{_n(self.in_flight, 'escalation')} kept: being delivered right now; purge again shortly."


def _n(count: int, noun: str) -> str:
    """"1 event", "1,200 events"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _synthetic_ids(agent_id: str, environment: str):
    """The pair's synthetic escalation ids (index ix_escalations_synthetic), as a subquery."""
    return select(Escalation.id).where(Escalation.agent_id == agent_id, Escalation.environment == environment,
                                       Escalation.synthetic.is_(True))


def synthetic_counts(agent_id: str, environment: str) -> SyntheticCounts:
    """How many synthetic escalations, events and attempts the pair has, and how many escalations are being
    delivered right now (an unknown pair: NotFound)."""
    settings = get_settings(agent_id, environment)
    agent_id, environment = settings.agent_id, settings.environment
    ids = _synthetic_ids(agent_id, environment)
    events = select(Event.id).where(Event.escalation_id.in_(ids))
    escalations, event_count, attempts, in_flight = db.session.execute(select(
        select(func.count()).select_from(ids.subquery()).scalar_subquery(),
        select(func.count()).select_from(events.subquery()).scalar_subquery(),
        select(func.count(Attempt.id)).where(Attempt.event_id.in_(events)).scalar_subquery(),
        select(func.count(Event.escalation_id.distinct()))
        .where(Event.escalation_id.in_(ids), Event.lease_until > utcnow()).scalar_subquery(),
    )).one()
    db.session.commit()  # end the read: a preview holds nothing open
    return SyntheticCounts(agent_id, environment, escalations, event_count, attempts, in_flight)


def check_no_simulation(agent_id: str, environment: str) -> None:
    """Refuse (SimulationRunning) while the pair has an unfinished simulate job: its flows read these rows."""
    retire_abandoned(agent_id, environment)
    job = unfinished_job(agent_id, environment)
    if job is not None:
        raise SimulationRunning(f"Simulate job {job.id} of {agent_id} · {environment} has not finished: purge "
                                "synthetic data once it has, or cancel it.")


def purge_synthetic(agent_id: str, environment: str, actor: str, batch: int = BATCH) -> SyntheticCounts:
    """Delete the pair's synthetic attempts, then events, then escalations, `batch` escalations per transaction;
    keep those being delivered right now (in_flight) and audit what was removed (data.synthetic_purged)."""
    settings = get_settings(agent_id, environment)
    agent_id, environment = settings.agent_id, settings.environment
    check_no_simulation(agent_id, environment)
    removed, kept = (0, 0, 0), set()
    while True:
        query = _synthetic_ids(agent_id, environment).limit(batch)
        if kept:  # the batch after keeps moving: those kept stay where they are
            query = query.where(Escalation.id.not_in(kept))
        ids = list(db.session.scalars(query))
        if not ids:
            break
        busy, counts = _purge_batch(ids)
        kept |= busy
        removed = tuple(total + n for total, n in zip(removed, counts, strict=True))
    done = SyntheticCounts(agent_id, environment, *removed, in_flight=len(kept))
    if not done.empty or kept:  # a purge that found nothing changed nothing: no entry
        record(actor, "data.synthetic_purged", f"Removed {done.described()}" + (f"; {done.kept()}" if kept else "."),
               agent_id=agent_id, environment=environment)
        db.session.commit()
    log.info("synthetic data of %s/%s purged by %s: %s removed, %d kept", agent_id, environment, actor,
             done.described(), len(kept))
    return done


def _purge_batch(ids: list[str]) -> tuple[set[str], tuple[int, int, int]]:
    """One transaction: hold the batch, keep escalations with an event under a live lease, delete the rest's
    attempts, events and escalations. Returns the kept ids and the (escalations, events, attempts) removed."""
    _hold(ids)
    busy = set(db.session.scalars(select(E.c.escalation_id).distinct()
                                  .where(E.c.escalation_id.in_(ids), E.c.lease_until > utcnow())))
    doomed = [escalation_id for escalation_id in ids if escalation_id not in busy]
    counts = (0, 0, 0)
    if doomed:
        events = select(E.c.id).where(E.c.escalation_id.in_(doomed))
        attempts = db.session.execute(delete(A).where(A.c.event_id.in_(events))).rowcount
        event_count = db.session.execute(delete(E).where(E.c.escalation_id.in_(doomed))).rowcount
        escalations = db.session.execute(delete(ESC).where(ESC.c.id.in_(doomed))).rowcount
        counts = (escalations, event_count, attempts)
    db.session.commit()
    return busy, counts


def _hold(ids: list[str]) -> None:
    """Make the batch's state stand still until the commit, so what is decided is what gets deleted.

    PostgreSQL: lock the escalations (an event written for one waits) and their events (a worker's claim skips
    them, and waits for none). SQLite: a first write takes the database's write lock, which the claim needs too.
    """
    if db.engine.dialect.name == "postgresql":
        db.session.execute(select(ESC.c.id).where(ESC.c.id.in_(ids)).with_for_update())
        db.session.execute(select(E.c.id).where(E.c.escalation_id.in_(ids)).with_for_update())
    else:
        db.session.execute(update(ESC).where(ESC.c.id.in_(ids)).values(synthetic=ESC.c.synthetic))
