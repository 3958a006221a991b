"""How a simulate job reads to any process: its status (an abandoned job reads as failed), the API's document,
its live counts, and the state the Escalations page polls."""
import logging
from datetime import datetime

from ..clock import utcnow
from ..engine.models import FAILED as DELIVERY_FAILED
from ..engine.models import PENDING as DELIVERY_PENDING
from ..engine.models import SUCCEEDED, Event
from ..extensions import db
from .models import CANCELLED, DELIVERING, FAILED, FINISHED, RUNNING, SimulationJob
from .simulate import Summary

log = logging.getLogger(__name__)

ABANDONED = "abandoned"


def get_job(job_id: str) -> SimulationJob | None:
    """The job with that id, or None."""
    return db.session.get(SimulationJob, job_id)


def latest_job(agent_id: str, environment: str) -> SimulationJob | None:
    """The pair's newest job (running or ended), for the Escalations page; or None."""
    return db.session.scalar(db.select(SimulationJob).filter_by(agent_id=agent_id, environment=environment)
                             .order_by(SimulationJob.started_at.desc()).limit(1))


def live_counts(job: SimulationJob) -> dict[str, int]:
    """The pair's events since the job started (until it ended), by delivery status: its progress before the summary.

    The job keeps no list of its escalations, so other events of the pair in that window count too; the
    summary, once the job finishes, counts exactly its flows.
    """
    query = db.select(Event.status, db.func.count()).where(
        Event.agent_id == job.agent_id, Event.environment == job.environment, Event.created_at >= job.started_at)
    if job.finished_at is not None:
        query = query.where(Event.created_at <= job.finished_at)
    counts = dict(db.session.execute(query.group_by(Event.status)).all())
    return {"events": sum(counts.values()), "delivered": counts.get(SUCCEEDED, 0),
            "failed": counts.get(DELIVERY_FAILED, 0), "pending": counts.get(DELIVERY_PENDING, 0)}


def status_of(job: SimulationJob, now: datetime | None = None) -> tuple[str, str | None]:
    """The job's status and error as readers see them: an abandoned job reads as failed, "abandoned"."""
    if job.abandoned(now or utcnow()):
        return FAILED, ABANDONED
    return job.status, job.error


def job_document(job) -> dict:
    """A simulate job as any process reads it (an abandoned one reads as failed)."""
    status, error = status_of(job)
    summary = job.summary and {"flows": job.summary["flows"], "events": job.summary["events"],
                               "delivered": job.summary["delivered"], "failed": job.summary["failed"],
                               "pending": job.summary["pending"], "p50Ms": job.summary["p50_ms"],
                               "p99Ms": job.summary["p99_ms"]}
    return {"id": job.id, "agentId": job.agent_id, "environment": job.environment, "status": status,
            "flows": job.flows, "flowsDone": job.flows_done, "rate": job.rate, "waitSeconds": job.wait_seconds,
            "createdBy": job.created_by, "startedAt": job.started_at, "finishedAt": job.finished_at,
            "error": error, "summary": summary, "scenario": job.scenario}


def simulation_state(job) -> dict:
    """A simulate job as the API shows it, plus its live counts and, once finished, the summary lines the CLI prints."""
    document = {name: value.isoformat() + "Z" if isinstance(value, datetime) else value
                for name, value in job_document(job).items()}  # the API's document, in JSON
    summary = Summary(**job.summary) if job.summary else None
    progress = ({"events": summary.events, "delivered": summary.delivered, "failed": summary.failed,
                 "pending": summary.pending} if summary else live_counts(job))
    return {**document, "progress": progress, "statusText": _status_text(document),
            "unfinished": document["status"] in (RUNNING, DELIVERING),
            "summaryLines": summary.lines() if summary else None}


def _status_text(document: dict) -> str:
    """One sentence on where the job stands, for the page's live region (changes only with the status)."""
    job_id, status = document["id"], document["status"]
    return {
        RUNNING: f"Simulate job {job_id} is running its flows.",
        DELIVERING: f"Simulate job {job_id} ran its flows; waiting up to {document['waitSeconds']} s for their "
                    "deliveries.",
        FINISHED: f"Simulate job {job_id} finished. Summary:",
        CANCELLED: f"Simulate job {job_id} stopped: {document['error'] or 'cancelled'}.",
    }.get(status, f"Simulate job {job_id} failed: {document['error']}.")
