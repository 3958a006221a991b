"""Housekeeping: worker heartbeats (the queue-health panel) and the purge of old traces."""
from datetime import timedelta

from sqlalchemy import delete, select

from ..clock import utcnow
from ..extensions import db
from .models import PENDING, Attempt, Event, WorkerHeartbeat


def heartbeat(worker: str, threads: int) -> None:
    """Record that this worker process is alive."""
    row = db.session.get(WorkerHeartbeat, worker) or WorkerHeartbeat(id=worker, threads=threads)
    row.threads, row.heartbeat_at = threads, utcnow()
    db.session.add(row)
    db.session.commit()


def forget_worker(worker: str) -> None:
    """A worker stopped cleanly: it is no longer alive."""
    db.session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == worker))
    db.session.commit()


def live_workers(within_seconds: float = 30) -> list[WorkerHeartbeat]:
    """Workers whose heartbeat is recent."""
    since = utcnow() - timedelta(seconds=within_seconds)
    return list(db.session.scalars(select(WorkerHeartbeat).where(WorkerHeartbeat.heartbeat_at >= since)))


def purge(retention_days: float, now=None) -> int:
    """Delete attempts and finished events older than the retention (QLAR_TRACE_RETENTION_DAYS); pending work stays."""
    cutoff = (now or utcnow()) - timedelta(days=float(retention_days))
    removed = db.session.execute(delete(Attempt).where(Attempt.started_at < cutoff)).rowcount
    old_events = select(Event.id).where(Event.created_at < cutoff, Event.status != PENDING)
    db.session.execute(delete(Attempt).where(Attempt.event_id.in_(old_events)))
    removed += db.session.execute(delete(Event).where(Event.id.in_(old_events))).rowcount
    db.session.commit()
    return removed
