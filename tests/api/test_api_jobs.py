"""The API's simulate jobs: started with 202, polled from any process, one per pair, cancellable."""
import time
from datetime import timedelta

from helpers import api_token, assert_problem

from qlar_console.audit.models import AuditEntry
from qlar_console.clock import utcnow
from qlar_console.engine.models import Event
from qlar_console.escalations.models import Escalation, SimulationJob
from qlar_console.extensions import db

PAIR = "/api/v1/agents/agent-123/production"


def escalation_count(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(Escalation))


def wait_for_job(client, headers, location: str, timeout: float = 30.0) -> dict:
    """Poll the job until it is finished or failed (fails the test after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(location, headers=headers)
        assert response.status_code == 200, response.data
        if response.json["status"] in ("finished", "failed"):
            return response.json
        time.sleep(0.1)
    raise AssertionError(f"job {location} still {response.json['status']} after {timeout} s")


def test_simulate_job_runs_flows_to_the_receiver_and_summarises(delivery_app, receiver):
    delivery_app.extensions["qlar_dispatcher"].start()
    client, headers = delivery_app.test_client(), api_token(delivery_app, "editor")

    started = client.post(f"{PAIR}/simulate", json={"flows": 3, "rate": 50, "waitSeconds": 20}, headers=headers)

    assert started.status_code == 202, started.data
    assert started.json["status"] in ("running", "delivering", "finished")
    assert (started.json["flows"], started.json["createdBy"], started.json["summary"]) == (3, "editor", None)
    location = started.headers["Location"]
    assert location.endswith(f"/api/v1/jobs/{started.json['id']}")
    job = wait_for_job(client, api_token(delivery_app, "viewer", "read"), location)
    with delivery_app.app_context():
        events = db.session.scalars(db.select(Event)).all()
        audit = db.session.scalar(db.select(AuditEntry).filter_by(action="simulation.started"))
    assert job["status"] == "finished" and job["error"] is None, job
    assert job["flowsDone"] == 3 and job["finishedAt"] >= job["startedAt"]
    summary = job["summary"]
    assert summary["flows"] == 3
    assert summary["events"] == len(events) >= 9  # created, claimed, completed (+ release, reclaim)
    assert summary["delivered"] == len(events) == len(receiver.requests)
    assert (summary["failed"], summary["pending"]) == (0, 0)
    assert 0 <= summary["p50Ms"] <= summary["p99Ms"]
    per_escalation = {}
    for r in receiver.requests:
        per_escalation.setdefault(r.json["escalation"]["id"], []).append(r.json["sequence"])
    assert len(per_escalation) == 3 and all(s == sorted(s) for s in per_escalation.values())
    assert audit.actor == "editor" and audit.via == "API token 'test-editor'" and job["id"] in audit.details


def test_one_running_job_per_pair_a_second_is_409_naming_it(app, client):
    headers = api_token(app, "editor")
    first = client.post(f"{PAIR}/simulate", json={"flows": 3, "rate": 1.5, "waitSeconds": 0}, headers=headers)
    assert first.status_code == 202

    second = client.post(f"{PAIR}/simulate", json={"flows": 1}, headers=headers)
    staging = client.post("/api/v1/agents/agent-123/staging/simulate", json={"flows": 1}, headers=headers)

    detail = assert_problem(second, 409, "conflict")["detail"]
    assert f"Simulate job {first.json['id']} of agent-123 · production is still running" in detail
    assert "started by editor" in detail
    assert staging.status_code == 202  # other pairs are not held up
    wait_for_job(client, headers, staging.headers["Location"])
    done = wait_for_job(client, headers, first.headers["Location"])
    assert done["status"] == "finished" and done["summary"]["flows"] == 3
    assert done["summary"]["events"] >= 9 and done["summary"]["delivered"] == 0  # webhook off: skipped
    again = client.post(f"{PAIR}/simulate", json={"flows": 1, "waitSeconds": 0}, headers=headers)
    assert again.status_code == 202
    wait_for_job(client, headers, again.headers["Location"])


def test_a_job_whose_thread_died_reads_failed_abandoned_and_does_not_block(app, client):
    headers = api_token(app, "editor")
    silent_since = utcnow() - timedelta(seconds=61)
    with app.app_context():  # what a worker process killed mid-job leaves behind
        db.session.add(SimulationJob(id="job-dead00000000", agent_id="agent-123", environment="production",
                                     status="running", flows=100, rate=None, wait_seconds=60, flows_done=40,
                                     created_by="editor", started_at=silent_since, progress_at=silent_since))
        db.session.commit()

    dead = client.get("/api/v1/jobs/job-dead00000000", headers=headers)
    restarted = client.post(f"{PAIR}/simulate", json={"flows": 1, "waitSeconds": 0}, headers=headers)

    assert dead.status_code == 200
    assert (dead.json["status"], dead.json["error"], dead.json["flowsDone"]) == ("failed", "abandoned", 40)
    assert restarted.status_code == 202
    assert wait_for_job(client, headers, restarted.headers["Location"])["status"] == "finished"
    still = client.get("/api/v1/jobs/job-dead00000000", headers=headers).json
    assert (still["status"], still["error"]) == ("failed", "abandoned") and still["finishedAt"]


def test_a_running_job_can_be_cancelled_once_and_frees_its_pair(app, client):
    headers = api_token(app, "editor")
    slow = client.post(f"{PAIR}/simulate", json={"flows": 1000, "rate": 1, "waitSeconds": 0}, headers=headers)

    cancelled = client.post(f"{slow.headers['Location']}/cancel", headers=headers)

    assert cancelled.status_code == 200
    assert (cancelled.json["status"], cancelled.json["error"]) == ("cancelled", "cancelled by editor")
    assert cancelled.json["flowsDone"] < 1000 and cancelled.json["finishedAt"]
    again = assert_problem(client.post(f"{slow.headers['Location']}/cancel", headers=headers), 409, "conflict")
    assert "already ended (cancelled)" in again["detail"]
    assert_problem(client.post("/api/v1/jobs/job-none/cancel", headers=headers), 404, "not-found")
    next_one = client.post(f"{PAIR}/simulate", json={"flows": 1, "waitSeconds": 0}, headers=headers)
    assert next_one.status_code == 202
    assert wait_for_job(client, headers, next_one.headers["Location"])["status"] == "finished"
    time.sleep(1.2)  # the cancelled thread's next report notices, and it stops: no more flows
    before = escalation_count(app)
    time.sleep(2)  # at rate 1 a thread still running would have created about two more flows by now
    assert escalation_count(app) == before
    assert client.get(slow.headers["Location"], headers=headers).json["status"] == "cancelled"
    with app.app_context():
        assert db.session.scalar(db.select(AuditEntry.details).filter_by(action="simulation.cancelled"))
