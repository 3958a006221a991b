"""The Escalations page's Simulation form: the API's simulate job started from the page, its progress and summary."""
import html
import re
import time

import pytest
from helpers import login

from qlar_console.audit.models import AuditEntry
from qlar_console.escalations.models import Escalation, SimulationJob
from qlar_console.extensions import db

PAGE = "/escalations?agent=agent-123&env=production"
PAIR = {"agent": "agent-123", "env": "production"}


def _jobs(app) -> list[SimulationJob]:
    with app.app_context():
        return list(db.session.scalars(db.select(SimulationJob)))


def _wait_until_ended(client, job_id: str, timeout: float = 15.0) -> dict:
    """Poll the page's JSON endpoint until the job has ended; returns its last state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/escalations/simulations/{job_id}", headers={"Accept": "application/json"})
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
        if not response.json["unfinished"]:
            return response.json
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {response.json['status']} after {timeout} s")


@pytest.mark.parametrize(("flows", "rate", "field", "message"), [
    ("", "", "flows", "Flows must be a whole number from 1 to 10000."),
    ("ten", "", "flows", "Flows must be a whole number from 1 to 10000."),
    ("0", "", "flows", "Flows must be between 1 and 10000."),
    ("10001", "", "flows", "Flows must be between 1 and 10000."),
    ("5", "fast", "rate", "Rate must be a number of flows per second, at most 1000; leave it empty"),
    ("5", "0", "rate", "Rate must be more than 0 and at most 1000 flows per second"),
    ("5", "nan", "rate", "Rate must be more than 0 and at most 1000 flows per second"),
])
def test_bad_flows_or_rate_is_a_field_error_and_keeps_the_input(app, client, flows, rate, field, message):
    login(client, "editor")

    response = client.post("/escalations/simulate", data={**PAIR, "flows": flows, "rate": rate})

    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert re.search(rf'<p class="error" id="sim-{field}-error">{re.escape(message)}', page), page
    assert re.search(rf'aria-describedby="sim-{field}-hint sim-{field}-error"\s+aria-invalid="true"', page)
    assert f'name="flows" value="{flows}"' in page and f'name="rate" value="{rate}"' in page
    assert _jobs(app) == []


def test_simulate_starts_the_job_shows_progress_then_the_cli_summary(app, client):
    """No JS: the POST starts the API's job and redirects to the page; a reload shows its state, then the summary."""
    login(client, "editor")

    # 0.5 per second: the job runs 2 s or more, so it is still running when the second Simulate comes, however
    # loaded the machine (at 2 per second a slow page read let it end first)
    started = client.post("/escalations/simulate", data={**PAIR, "flows": "2", "rate": "0.5"})

    assert started.status_code == 302
    assert started.headers["Location"].endswith("/escalations?agent=agent-123&env=production#simulation")
    (job,) = _jobs(app)
    assert (job.flows, job.rate, job.wait_seconds, job.created_by) == (2, 0.5, 60, "editor")
    page = html.unescape(client.get(PAGE).get_data(as_text=True))
    assert f"Simulate job {job.id} started: 2 flows, 0.5 per second." in page
    assert f'<span data-sim="phase">Running</span> simulation: <code>{job.id}</code>' in page
    assert f'data-poll="/escalations/simulations/{job.id}"' in page and "to see its progress." in page

    again = client.post("/escalations/simulate", data={**PAIR, "flows": "3", "rate": ""})  # one job per pair

    assert again.status_code == 409
    refused = html.unescape(again.get_data(as_text=True))
    assert f"Simulate job {job.id} of agent-123 · production is still running (started by editor" in refused
    assert 'name="flows" value="3"' in refused
    state = _wait_until_ended(client, job.id)
    assert state["status"] == "finished" and state["flowsDone"] == 2 and state["id"] == job.id
    assert state["summary"]["flows"] == 2 and state["summary"]["events"] >= 6
    assert state["progress"]["events"] == state["summary"]["events"]  # webhook off: skipped, not delivered
    assert state["summaryLines"][:2] == ["flows: 2", f"events: {state['summary']['events']}"]
    assert state["summaryLines"][-1] == "time to delivery: no deliveries yet"
    page = html.unescape(client.get(PAGE).get_data(as_text=True))
    assert f'<span data-sim="phase">Last</span> simulation: <code>{job.id}</code>' in page
    assert "\n".join(state["summaryLines"]) in page
    with app.app_context():
        audit = db.session.scalars(db.select(AuditEntry).filter_by(action="simulation.started")).all()
        assert db.session.scalar(db.select(db.func.count()).select_from(Escalation)) == 2
    assert [(a.actor, a.via, a.agent_id, a.environment) for a in audit] == [
        ("editor", None, "agent-123", "production")]
    assert job.id in audit[0].details


def test_viewers_see_no_form_and_cannot_simulate(app, client):
    login(client, "viewer")

    page = client.get(PAGE).get_data(as_text=True)

    assert "Simulate" not in page and 'name="flows"' not in page
    assert client.post("/escalations/simulate", data={**PAIR, "flows": "1"}).status_code == 403
    assert client.get("/escalations/simulations/job-nope", headers={"Accept": "application/json"}).status_code == 404
    assert _jobs(app) == []
