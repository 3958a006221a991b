"""Purge synthetic data: only the chosen pair's synthetic escalations, events and attempts go (in batches), real data
and other pairs stay; the preview's counts are what goes; an escalation being delivered right now is kept, and the
engine records its try; an unfinished simulate job refuses it; admins only, CSRF, audited; `flask qlar purge
--synthetic AGENT ENV` (with --dry-run) never prompts; the pages in a real browser."""
import re
import time
from datetime import timedelta

import pytest
from apps import PASSWORD, dispose, make_app
from helpers import login

from qlar_console.audit.models import AuditEntry
from qlar_console.clock import utcnow
from qlar_console.engine.models import Attempt, Event
from qlar_console.escalations import service
from qlar_console.escalations.models import Escalation, SimulationJob
from qlar_console.escalations.purge import SimulationRunning, purge_synthetic, synthetic_counts
from qlar_console.extensions import db

PREVIEW = "/escalations/purge-synthetic"


def seed(app) -> dict[str, list[str]]:
    """production: 2 real escalations and 5 synthetic; staging: 2 synthetic; each event with one attempt."""
    ids = {"real": [], "synthetic": [], "staging": []}
    with app.app_context():
        for name, env, synthetic, count in (("real", "production", False, 2), ("synthetic", "production", True, 5),
                                            ("staging", "staging", True, 2)):
            for n in range(count):
                escalation_id = service.create_escalation("agent-123", env, synthetic=synthetic).id
                if n % 2:
                    service.claim(escalation_id, "sam")
                    service.complete(escalation_id, "Done")
                ids[name].append(escalation_id)
        for event in db.session.scalars(db.select(Event)):
            db.session.add(Attempt(event_id=event.id, number=1, trigger="scheduled", url="https://example.com/h",
                                   response_status=200))
        db.session.commit()
    return ids


def inventory(app) -> dict[tuple[str, bool], tuple[int, int, int]]:
    """(environment, synthetic) -> (escalations, events, attempts) left."""
    with app.app_context():
        found = {}
        for escalation in db.session.scalars(db.select(Escalation)):
            key = (escalation.environment, escalation.synthetic)
            events = list(db.session.scalars(db.select(Event).filter_by(escalation_id=escalation.id)))
            escalations, event_count, attempts = found.get(key, (0, 0, 0))
            found[key] = (escalations + 1, event_count + len(events), attempts + sum(len(e.attempts) for e in events))
        return found


def test_purge_removes_only_that_pairs_synthetic_data_in_batches_as_previewed(app):
    ids = seed(app)
    before = inventory(app)
    with app.app_context():
        preview = synthetic_counts("agent-123", "production")
        done = purge_synthetic("agent-123", "production", "admin", batch=2)  # three batches
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="data.synthetic_purged"))

    assert before[("production", True)] == (5, 9, 9)  # 3 created-only + 2 full flows
    assert (preview.escalations, preview.events, preview.attempts, preview.in_flight) == (5, 9, 9, 0)
    assert (done.escalations, done.events, done.attempts, done.in_flight) == (5, 9, 9, 0)
    after = inventory(app)
    assert ("production", True) not in after
    assert after[("production", False)] == before[("production", False)] == (2, 4, 4)
    assert after[("staging", True)] == before[("staging", True)] == (2, 4, 4)
    assert (entry.actor, entry.agent_id, entry.environment) == ("admin", "agent-123", "production")
    assert entry.details == "Removed 5 escalations, 9 events and 9 attempts."
    with app.app_context():
        assert db.session.get(Escalation, ids["synthetic"][0]) is None
        assert synthetic_counts("agent-123", "production").empty
        again = purge_synthetic("agent-123", "production", "admin")
        assert again.empty and db.session.scalar(db.select(db.func.count()).select_from(AuditEntry).filter_by(
            action="data.synthetic_purged")) == 1  # a purge that found nothing is not an entry


def test_an_event_under_a_live_lease_keeps_its_escalation_until_the_lease_ends(app):
    ids = seed(app)
    held = ids["synthetic"][1]
    with app.app_context():
        event = db.session.scalar(db.select(Event).filter_by(escalation_id=held, sequence=2))
        event.lease_owner, event.lease_until = "worker-1", utcnow() + timedelta(seconds=60)
        db.session.commit()
        assert synthetic_counts("agent-123", "production").in_flight == 1
        done = purge_synthetic("agent-123", "production", "admin", batch=2)
        assert (done.escalations, done.in_flight) == (4, 1)
        assert done.kept() == "1 escalation kept: being delivered right now; purge again shortly."
        assert len(list(db.session.scalars(db.select(Event).filter_by(escalation_id=held)))) == 3  # all its events
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="data.synthetic_purged"))
        assert entry.details.endswith("; 1 escalation kept: being delivered right now; purge again shortly.")
        db.session.get(Event, event.id).lease_until = utcnow() - timedelta(seconds=1)  # the lease ran out
        db.session.commit()
        later = purge_synthetic("agent-123", "production", "admin")
    assert (later.escalations, later.events, later.attempts, later.in_flight) == (1, 3, 3, 0)
    assert ("production", True) not in inventory(app)


def test_a_purge_during_a_real_delivery_keeps_it_and_the_engine_records_its_try(delivery_app, receiver):
    receiver.respond = lambda received: (200, {}, 1.0)  # the worker holds the lease for a second
    delivery_app.extensions["qlar_dispatcher"].start()
    with delivery_app.app_context():
        escalation_id = service.create_escalation("agent-123", "production", synthetic=True).id
    receiver.wait_for(1)
    with delivery_app.app_context():
        during = purge_synthetic("agent-123", "production", "admin")
    assert (during.escalations, during.in_flight) == (0, 1)
    deadline = time.monotonic() + 10
    while True:
        with delivery_app.app_context():
            event = db.session.scalar(db.select(Event).filter_by(escalation_id=escalation_id))
            if event.status == "succeeded":
                assert [a.response_status for a in event.attempts] == [200]
                break
        assert time.monotonic() < deadline, "the try was not recorded"
        time.sleep(0.05)
    with delivery_app.app_context():
        after = purge_synthetic("agent-123", "production", "admin")
    assert (after.escalations, after.events, after.attempts, after.in_flight) == (1, 1, 1, 0)


def test_an_unfinished_simulate_job_refuses_the_purge(app, client):
    seed(app)
    with app.app_context():
        db.session.add(SimulationJob(id="job-1", agent_id="agent-123", environment="production", flows=5,
                                     wait_seconds=0, created_by="editor"))
        db.session.commit()
        with pytest.raises(SimulationRunning, match="Simulate job job-1 of agent-123 · production has not finished"):
            purge_synthetic("agent-123", "production", "admin")
    login(client, "admin")
    page = client.get(PREVIEW, query_string={"agent": "agent-123", "env": "production"}).get_data(as_text=True)
    assert "has not finished: purge synthetic data once it has, or cancel it." in page
    assert ">Purge synthetic data</button>" not in page
    refused = client.post(PREVIEW, data={"agent": "agent-123", "env": "production"}, follow_redirects=True)
    assert "has not finished" in refused.get_data(as_text=True)
    assert inventory(app)[("production", True)] == (5, 9, 9)
    with app.app_context():
        assert db.session.get(SimulationJob, "job-1") is not None  # jobs are left alone


def test_admin_previews_then_purges_from_the_escalations_page(app, client):
    seed(app)
    login(client, "admin")
    escalations = client.get("/escalations?agent=agent-123&env=production").get_data(as_text=True)
    assert f'href="{PREVIEW}?agent=agent-123&amp;env=production">Purge synthetic data…</a>' in escalations

    preview = client.get(PREVIEW, query_string={"agent": "agent-123", "env": "production"}).get_data(as_text=True)
    counts = dict(re.findall(r"<dt>([^<]+)</dt><dd>([\d,]+)</dd>", preview))
    assert counts == {"Synthetic escalations": "5", "Their events": "9", "Their delivery attempts": "9"}
    assert ">Purge synthetic data</button>" in preview
    assert "flask qlar purge --synthetic agent-123 production" in preview

    done = client.post(PREVIEW, data={"agent": "agent-123", "env": "production"})
    assert done.status_code == 302 and done.location.endswith("/escalations?agent=agent-123&env=production")
    page = client.get(done.location).get_data(as_text=True)
    assert ("Removed 5 escalations, 9 events and 9 attempts of synthetic data of agent-123 · production."
            in page)
    assert ("production", True) not in inventory(app) and inventory(app)[("production", False)] == (2, 4, 4)
    nothing = client.get(PREVIEW, query_string={"agent": "agent-123", "env": "production"}).get_data(as_text=True)
    assert "No synthetic data for agent-123 · production: nothing to purge." in nothing
    assert "<button" not in nothing.split("<main>")[1]


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editors_and_viewers_get_403_and_no_link(app, client, role):
    seed(app)
    login(client, role)
    assert "Purge synthetic data" not in client.get("/escalations").get_data(as_text=True)
    assert client.get(PREVIEW, query_string={"agent": "agent-123", "env": "production"}).status_code == 403
    assert client.post(PREVIEW, data={"agent": "agent-123", "env": "production"}).status_code == 403
    assert inventory(app)[("production", True)] == (5, 9, 9)


@pytest.mark.parametrize("query", [{"agent": "agent-404", "env": "production"}, {"agent": "agent-123"}, {}])
def test_an_unknown_pair_is_404(client, query):
    login(client, "admin")
    assert client.get(PREVIEW, query_string=query).status_code == 404
    assert client.post(PREVIEW, data=query).status_code == 404


def test_the_purge_needs_the_csrf_token(tmp_path):
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    try:
        seed(app)
        client = app.test_client()
        login_page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', login_page).group(1)
        client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
        token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)
        pair = {"agent": "agent-123", "env": "production"}
        assert client.post(PREVIEW, data=pair).status_code == 400
        assert inventory(app)[("production", True)] == (5, 9, 9)
        assert client.post(PREVIEW, data={**pair, "csrf_token": token}).status_code == 302
        assert ("production", True) not in inventory(app)
    finally:
        dispose(app)


def test_cli_purge_synthetic_with_dry_run(app, runner):
    seed(app)
    dry = runner.invoke(args=["qlar", "purge", "--synthetic", "agent-123", "production", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.strip() == ("Would remove 5 escalations, 9 events and 9 attempts of synthetic data of "
                                  "agent-123/production.")
    assert inventory(app)[("production", True)] == (5, 9, 9)

    done = runner.invoke(args=["qlar", "purge", "--synthetic", "agent-123", "production"])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == ("Removed 5 escalations, 9 events and 9 attempts of synthetic data of "
                                   "agent-123/production.")
    assert ("production", True) not in inventory(app) and inventory(app)[("staging", True)] == (2, 4, 4)
    with app.app_context():
        assert db.session.scalar(db.select(AuditEntry.actor).filter_by(action="data.synthetic_purged")) == "cli"
    empty = runner.invoke(args=["qlar", "purge", "--synthetic", "agent-123", "production", "--dry-run"])
    assert empty.stdout.strip() == "No synthetic data of agent-123/production: nothing to purge."


def test_cli_purge_refusals_and_the_plain_trace_purge(runner):
    unknown = runner.invoke(args=["qlar", "purge", "--synthetic", "agent-404", "production"])
    assert unknown.exit_code == 1 and unknown.stdout == ""
    assert unknown.stderr == "Error: No agent 'agent-404' with environment 'production'.\n"
    assert runner.invoke(args=["qlar", "purge", "--synthetic", "agent-123"]).exit_code == 2  # ENV missing
    lone = runner.invoke(args=["qlar", "purge", "--dry-run"])
    assert lone.exit_code == 2 and "--dry-run goes with --synthetic AGENT ENV." in lone.stderr
    assert runner.invoke(args=["qlar", "purge"]).stdout.startswith("Purged 0 old attempts and events.")
    assert "--synthetic AGENT ENV" in runner.invoke(args=["qlar", "purge", "--help"]).stdout


