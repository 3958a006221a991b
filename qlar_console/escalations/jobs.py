"""Simulate jobs: `flask qlar simulate`'s flows run in a thread of the web process, their progress in the database.

Any process can read a job (gunicorn runs several workers), and only one job per agent x environment is
unfinished at a time: a unique index says so, whichever process starts it. A job whose thread stopped
reporting (its process ended) reads as failed, "abandoned".
"""
import logging
import secrets
import threading
import time
from dataclasses import asdict

from flask import Flask, current_app
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from ..audit.service import record
from ..clock import utcnow
from ..errors import Conflict, DomainError
from ..extensions import db
from ..settings.service import SettingsError, get_settings
from . import scenario as scenarios
from . import simulate
from .job_status import ABANDONED
from .models import ABANDONED_AFTER, CANCELLED, DELIVERING, FAILED, FINISHED, RUNNING, SimulationJob
from .service import TransitionError

log = logging.getLogger(__name__)

FLOWS = (1, 10_000)
MAX_RATE = 1000  # flows per second
WAIT_SECONDS = (0, 600)
DEFAULT_WAIT_SECONDS = 60
PROGRESS_EVERY = 0.5  # seconds between two writes of flowsDone
BEAT_EVERY = 5.0  # seconds between signs of life while a slow rate or the deliveries keep the job waiting


class JobError(DomainError):
    """A simulate rule refused the request; `field` is the parameter it is about (flows, rate, waitSeconds)."""


class JobRunning(JobError, Conflict):
    """The agent x environment already has an unfinished job: `job` (None when it just finished)."""

    def __init__(self, job: SimulationJob | None, agent_id: str, environment: str):
        self.job = job
        if job is None:
            super().__init__(f"Another simulate job of {agent_id} · {environment} is running; try again shortly.")
        else:
            super().__init__(f"Simulate job {job.id} of {agent_id} · {environment} is still running (started by "
                             f"{job.created_by} at {job.started_at:%Y-%m-%d %H:%M:%S} UTC, {job.flows_done} of "
                             f"{job.flows} flows done): wait until it finishes, then start another.")


class JobEnded(JobError, Conflict):
    """The job already ended: there is nothing to cancel."""


class _Retired(Exception):
    """The job's row was closed under its thread (read as abandoned meanwhile): the thread stops."""


def check_parameters(flows: int, rate: float | None, wait_seconds: int) -> None:
    """Refuse (JobError) a job outside the limits: flows 1..10000, rate above 0 up to 1000 per second, wait 0..600 s."""
    if not FLOWS[0] <= flows <= FLOWS[1]:
        raise JobError(f"Flows must be between {FLOWS[0]} and {FLOWS[1]}.", "flows")
    if rate is not None and not 0 < rate <= MAX_RATE:  # also refuses NaN
        raise JobError(f"Rate must be more than 0 and at most {MAX_RATE} flows per second (or none: "
                       "as fast as possible).", "rate")
    if not WAIT_SECONDS[0] <= wait_seconds <= WAIT_SECONDS[1]:
        raise JobError(f"Wait must be between {WAIT_SECONDS[0]} and {WAIT_SECONDS[1]} seconds.", "waitSeconds")


def start_job(agent_id: str, environment: str, flows: int, rate: float | None = None,
              wait_seconds: int = DEFAULT_WAIT_SECONDS, *, actor: str, scenario: dict | None = None) -> SimulationJob:
    """Record a job (refused while the pair has one unfinished), audit it, and start its thread in this process.

    With a `scenario` document each flow follows its steps (refused whole, ScenarioError, before anything runs).
    """
    check_parameters(flows, rate, wait_seconds)
    script = scenarios.parse_scenario(scenario) if scenario is not None else None
    get_settings(agent_id, environment)
    retire_abandoned(agent_id, environment)
    running = unfinished_job(agent_id, environment)
    if running is not None:
        raise JobRunning(running, agent_id, environment)
    now = utcnow()
    job = SimulationJob(id=f"job-{secrets.token_hex(6)}", agent_id=agent_id, environment=environment, status=RUNNING,
                        flows=flows, rate=rate, wait_seconds=wait_seconds, flows_done=0, created_by=actor,
                        started_at=now, progress_at=now, scenario=script and script.document)
    db.session.add(job)
    try:
        db.session.flush()
    except IntegrityError:  # another process started one since the check
        db.session.rollback()
        raise JobRunning(unfinished_job(agent_id, environment), agent_id, environment) from None
    record(actor, "simulation.started",
           f"{job.id}: {flows} flows{f' of the {script.describe()}' if script else ''} at "
           f"{f'{rate:g} per second' if rate else 'full speed'}, waiting up to "
           f"{wait_seconds} s for deliveries", agent_id=agent_id, environment=environment)
    db.session.commit()
    app = current_app._get_current_object()
    threading.Thread(target=_run, args=(app, job.id), name=f"qlar-{job.id}", daemon=True).start()
    log.info("simulate job %s started by %s: %d flows for %s/%s", job.id, actor, flows, agent_id, environment)
    return job


def unfinished_job(agent_id: str, environment: str) -> SimulationJob | None:
    """The pair's job still running or waiting for its deliveries, if any."""
    return db.session.scalar(db.select(SimulationJob).filter_by(agent_id=agent_id, environment=environment,
                                                                 finished_at=None))


def cancel_job(job: SimulationJob, actor: str) -> SimulationJob:
    """Stop an unfinished job: its thread stops at its next report; flows already run stay as they are."""
    if job.finished_at is not None:
        raise JobEnded(f"Simulate job {job.id} already ended ({job.status}).")
    job.status, job.error, job.finished_at = CANCELLED, f"cancelled by {actor}", utcnow()
    record(actor, "simulation.cancelled", f"{job.id} after {job.flows_done} of {job.flows} flows",
           agent_id=job.agent_id, environment=job.environment)
    db.session.commit()
    return job


def retire_abandoned(agent_id: str, environment: str) -> None:
    """Close the pair's abandoned jobs as failed, so a new one may start."""
    now = utcnow()
    db.session.execute(
        update(SimulationJob)
        .where(SimulationJob.agent_id == agent_id, SimulationJob.environment == environment,
               SimulationJob.finished_at.is_(None), SimulationJob.progress_at < now - ABANDONED_AFTER)
        .values(status=FAILED, error=ABANDONED, finished_at=now)
    )
    db.session.commit()


def _run(app: Flask, job_id: str) -> None:
    """The job's thread: the flows, then the wait for their deliveries, then the summary."""
    with app.app_context():
        try:
            job = db.session.get(SimulationJob, job_id)
            pair, flows, rate, wait_seconds = (job.agent_id, job.environment), job.flows, job.rate, job.wait_seconds
            script = scenarios.parse_scenario(job.scenario) if job.scenario is not None else None
            db.session.commit()
            done = _run_flows(job_id, pair, flows, rate, script)
            _report(job_id, status=DELIVERING, flows_done=len(done))
            summary = _await_deliveries(job_id, done, wait_seconds)
            _report(job_id, status=FINISHED, summary=asdict(summary), finished_at=utcnow())
            log.info("simulate job %s finished: %s", job_id, "; ".join(summary.lines()))
        except _Retired:
            log.warning("simulate job %s was closed as abandoned while running; its thread stops", job_id)
        except Exception as exc:  # whatever stopped the job, its readers learn it stopped
            db.session.rollback()
            log.exception("simulate job %s failed", job_id)
            _fail(job_id, exc)
        finally:
            db.session.remove()


def _run_flows(job_id: str, pair: tuple[str, str], flows: int, rate: float | None,
               script: scenarios.Scenario | None = None) -> list[str]:
    """simulate.run_flows, writing flowsDone at most every PROGRESS_EVERY seconds (and a sign of life at least
    every BEAT_EVERY while a slow rate or a scenario's delay waits)."""
    reported = time.monotonic()

    def beat(done: list[str]) -> None:
        nonlocal reported
        if time.monotonic() - reported >= PROGRESS_EVERY:
            _report(job_id, flows_done=len(done))
            reported = time.monotonic()

    def alive_sleep(seconds: float) -> None:
        """A scenario step's delay, in slices that show the job is alive (and stop it once cancelled)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, BEAT_EVERY))
            if left > BEAT_EVERY:
                _report(job_id)

    return simulate.run_flows(*pair, flows, rate, script, beat=beat, sleep=alive_sleep, beat_every=BEAT_EVERY)


def _await_deliveries(job_id: str, escalation_ids: list[str], wait_seconds: float) -> simulate.Summary:
    """simulate.summarise in slices, alive between them, until nothing is pending or the wait is over."""
    deadline = time.monotonic() + wait_seconds
    while True:
        summary = simulate.summarise(escalation_ids, max(0.0, min(BEAT_EVERY, deadline - time.monotonic())))
        if not summary.pending or time.monotonic() >= deadline:
            return summary
        _report(job_id)


def _report(job_id: str, **values) -> None:
    """Write the job's progress (and its sign of life); _Retired when its row was closed meanwhile."""
    result = db.session.execute(
        update(SimulationJob).where(SimulationJob.id == job_id, SimulationJob.finished_at.is_(None))
        .values(progress_at=utcnow(), **values)
    )
    db.session.commit()
    if result.rowcount == 0:
        raise _Retired(job_id)


def _fail(job_id: str, exc: Exception) -> None:
    """Close the job as failed with a reason a user can read (a rule's message, else a pointer to the log)."""
    if isinstance(exc, TransitionError | SettingsError | scenarios.ScenarioError):
        reason = str(exc)
    else:
        reason = "The job stopped on an unexpected error; the server log has the details."
    try:
        _report(job_id, status=FAILED, error=reason, finished_at=utcnow())
    except Exception:  # the database itself is gone: readers will see the job as abandoned
        db.session.rollback()
        log.exception("could not record the failure of simulate job %s", job_id)
