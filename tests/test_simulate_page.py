"""The Escalations page's Simulation form: the API's simulate job started from the page, its progress and summary."""
import html
import re
import time

import pytest
from helpers import axe_violations, login, sideways_overflow, sign_in, wider_than
from playwright.sync_api import expect

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

    started = client.post("/escalations/simulate", data={**PAIR, "flows": "2", "rate": "2"})

    assert started.status_code == 302
    assert started.headers["Location"].endswith("/escalations?agent=agent-123&env=production#simulation")
    (job,) = _jobs(app)
    assert (job.flows, job.rate, job.wait_seconds, job.created_by) == (2, 2.0, 60, "editor")
    page = html.unescape(client.get(PAGE).get_data(as_text=True))
    assert f"Simulate job {job.id} started: 2 flows, 2 per second." in page
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




def _logged_in(context, username: str = "editor"):
    """A page of `context` logged in through the form."""
    page = context.new_page()
    sign_in(page, username)
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return page


def test_a_simulation_runs_from_the_page_and_ends_with_the_summary(browser, delivering_server, receiver):
    """Flows and Rate, Simulate: the page polls the job in place and ends with the CLI's summary; axe, 390 px."""
    context = browser.new_context(base_url=delivering_server)
    try:
        page = _logged_in(context)
        page.goto(PAGE)
        page.get_by_label("Flows", exact=True).fill("3")
        page.get_by_label("Rate", exact=True).fill("4")
        page.get_by_role("button", name="Simulate", exact=True).click()

        expect(page.get_by_text("started: 3 flows, 4 per second.")).to_be_visible()
        assert page.locator(".sim-state").get_attribute("data-unfinished") == "yes"  # rendered while it ran
        live = page.locator(".sim-live")
        expect(live).to_have_attribute("role", "status")
        expect(live).to_contain_text("finished. Summary:", timeout=10_000)  # updated in place, no reload
        summary = live.locator("pre").inner_text()
        assert re.fullmatch(r"flows: 3\nevents: (\d+)\ndelivered: \1\nfailed: 0\nstill pending: 0\n"
                            r"time to delivery: p50 \d+ ms, p99 \d+ ms", summary), summary
        events = int(re.search(r"events: (\d+)", summary).group(1))
        assert events >= 9 and len(receiver.requests) == events
        expect(page.locator('[data-sim="delivered"]')).to_have_text(str(events))
        expect(page.get_by_text("to see its progress.")).to_be_hidden()
        expect(page.locator(".sim-title")).to_have_text(re.compile(r"^Last simulation: job-"))

        page.goto(PAGE)
        expect(page.locator(".sim-live pre")).to_have_text(summary)
        assert axe_violations(page) == [] and wider_than(page, 1280) == []
        page.set_viewport_size({"width": 390, "height": 844})
        assert sideways_overflow(page) == 0
    finally:
        context.close()
