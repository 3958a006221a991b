"""QA scenarios: flows written down in JSON, checked whole before anything is sent, then delivered exactly as written
(the CLI, the API's simulate body and the Escalations page's form)."""
import html
import json
import re
import time

import pytest
from helpers import (
    api_token,
    assert_problem,
    login,
)

from qlar_console.engine.models import Event
from qlar_console.escalations.models import Escalation, SimulationJob
from qlar_console.escalations.scenario import (
    EXAMPLES_DIR,
    ScenarioError,
    load_scenario_file,
    parse_scenario,
    run_scenario_flow,
)
from qlar_console.extensions import db

EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))
ISSUE_EXAMPLE = {"steps": [  # the issue's example, also docs/scenarios/release-and-reclaim.json
    {"event": "created", "escalation": {"topic": "billing", "urgencyLevel": "low"}},
    {"event": "claimed", "by": "qa"}, {"event": "released"}, {"event": "claimed", "by": "qa2", "delayMs": 200},
    {"event": "completed", "notes": "Refund issued"}]}
CREATED = {"event": "created"}
CLAIMED = {"event": "claimed", "by": "qa"}
COMPLETE_BEFORE_CLAIM = {"steps": [CREATED, {"event": "completed", "notes": "done"}]}
API_PAIR = "/api/v1/agents/agent-123/production"
PAGE_PAIR = {"agent": "agent-123", "env": "production"}


def _counts(app) -> tuple[int, int, int]:
    """How many escalations, events and simulate jobs the database holds."""
    with app.app_context():
        return tuple(db.session.scalar(db.select(db.func.count()).select_from(model))
                     for model in (Escalation, Event, SimulationJob))


def _flows(requests) -> dict[str, list]:
    """The receiver's requests grouped by escalation, in arrival order."""
    flows = {}
    for received in requests:
        flows.setdefault(received.json["escalation"]["id"], []).append(received)
    return flows


def _assert_as_written(flow, steps) -> None:
    """One flow's deliveries: the scenario's events in order, sequence 1..n, its values, marked synthetic."""
    created = steps[0].get("escalation", {})
    bodies = [r.json for r in flow]
    assert [b["eventType"] for b in bodies] == [s["event"] for s in steps]
    assert [b["sequence"] for b in bodies] == list(range(1, len(steps) + 1))
    for received, body, step in zip(flow, bodies, steps, strict=True):
        assert received.headers["X-Qlar-Synthetic"] == "true" and body["synthetic"] is True
        for name, value in created.items():
            assert body["escalation"][name] == value, (name, body)
        if step["event"] == "claimed":
            assert body["escalation"]["claimedBy"] == step["by"]
        if step["event"] == "released":
            assert "claimedBy" not in body["escalation"]
        if step["event"] == "completed":
            assert body["escalation"]["resolutionNotes"] == step["notes"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_shipped_example_is_a_valid_scenario(path):
    scenario = load_scenario_file(path)

    assert scenario.name and scenario.document["description"]
    assert scenario.steps[0].event == "created" and 3 <= len(scenario.steps) <= 50


def test_two_or_three_examples_ship_one_of_them_the_issues():
    assert 2 <= len(EXAMPLES) <= 3
    document = json.loads((EXAMPLES_DIR / "release-and-reclaim.json").read_text())
    assert document["steps"] == ISSUE_EXAMPLE["steps"]
    assert [s.delay_ms for s in parse_scenario(document).steps] == [0, 0, 0, 200, 0]


@pytest.mark.parametrize(("document", "message", "where"), [
    ([], 'A scenario is a JSON object with "steps": a list of 1 to 50 steps', "scenario"),
    ({"steps": []}, 'A scenario is a JSON object with "steps"', "scenario/steps"),
    ({"steps": [CREATED] + [CLAIMED, {"event": "released"}] * 25}, "A scenario has at most 50 steps; this one has 51.",
     "scenario/steps"),
    ({"steps": [CREATED], "owner": "qa"}, 'Unknown scenario member "owner"', "scenario/owner"),
    ({"steps": [CLAIMED]}, 'Step 1 (claimed): the first step creates the escalation: "event": "created".',
     "scenario/steps/0/event"),
    ({"steps": [CREATED, CLAIMED, CREATED]}, "Step 3 (created): only the first step creates the escalation.",
     "scenario/steps/2/event"),
    ({"steps": [CREATED, {"event": "escalated"}]}, 'Step 2: a step is a JSON object whose "event" is one of '
     "created, claimed, released, completed.", "scenario/steps/1/event"),
    (COMPLETE_BEFORE_CLAIM, "Step 2 (completed): cannot complete the escalation: it is Pending, and only a Claimed "
     "escalation can be completed.", "scenario/steps/1"),
    ({"steps": [CREATED, {"event": "released"}]}, "Step 2 (released): cannot release the escalation: it is Pending",
     "scenario/steps/1"),
    ({"steps": [CREATED, CLAIMED, CLAIMED]}, "Step 3 (claimed): cannot claim the escalation: it is Claimed, and "
     "only a Pending escalation can be claimed.", "scenario/steps/2"),
    ({"steps": [CREATED, CLAIMED, {"event": "completed", "notes": "x"}, {"event": "released"}]},
     "Step 4 (released): cannot release the escalation: it is Completed", "scenario/steps/3"),
    ({"steps": [CREATED, {"event": "claimed"}]}, 'Step 2 (claimed): say who claims the escalation ("by").',
     "scenario/steps/1/by"),
    ({"steps": [CREATED, {"event": "claimed", "by": "x" * 81}]},
     'Step 2 (claimed): claimed by cannot be longer than 80 characters ("by").', "scenario/steps/1/by"),
    ({"steps": [CREATED, CLAIMED, {"event": "completed", "notes": "  "}]},
     'Step 3 (completed): resolution notes are required to complete an escalation ("notes").',
     "scenario/steps/2/notes"),
    ({"steps": [CREATED, {"event": "released", "by": "qa"}]}, 'Step 2 (released): unknown member "by"; a released '
     'step takes "event", "delayMs", "label".', "scenario/steps/1/by"),
    ({"steps": [{"event": "created", "escalation": {"urgencyLevel": "extreme"}}]},
     'Step 1 (created): urgency level must be one of: low, medium, high, critical ("escalation.urgencyLevel").',
     "scenario/steps/0/escalation/urgencyLevel"),
    ({"steps": [{"event": "created", "escalation": {"topic": "t" * 121}}]},
     'Step 1 (created): topic cannot be longer than 120 characters ("escalation.topic").',
     "scenario/steps/0/escalation/topic"),
    ({"steps": [{"event": "created", "escalation": {"reason": "a\x00b"}}]},
     "Step 1 (created): reason contains a character that cannot be stored", "scenario/steps/0/escalation/reason"),
    ({"steps": [{"event": "created", "escalation": {"status": "Claimed"}}]},
     'Step 1 (created): unknown escalation field: status ("escalation.status").',
     "scenario/steps/0/escalation/status"),
    ({"steps": [{"event": "created", "escalation": {"topic": 7}}]}, 'Step 1 (created): "escalation.topic" must be '
     "text.", "scenario/steps/0/escalation/topic"),
    ({"steps": [{"event": "created", "escalation": "billing"}]}, 'Step 1 (created): "escalation" must be a JSON '
     "object", "scenario/steps/0/escalation"),
    ({"steps": [{"event": "created", "template": "calm-customer"}]},
     'Step 1 (created): "template" must be one of: angry-customer.', "scenario/steps/0/template"),
    ({"steps": [CREATED, {**CLAIMED, "delayMs": 60_001}]}, 'Step 2 (claimed): "delayMs" must be a whole number of '
     "milliseconds from 0 to 60000.", "scenario/steps/1/delayMs"),
    ({"steps": [CREATED, {**CLAIMED, "delayMs": True}]}, 'Step 2 (claimed): "delayMs" must be a whole number',
     "scenario/steps/1/delayMs"),
    ({"steps": [CREATED, {**CLAIMED, "delayMs": 1.5}]}, 'Step 2 (claimed): "delayMs" must be a whole number',
     "scenario/steps/1/delayMs"),
    ({"steps": [{**CREATED, "label": "l" * 121}]}, 'Step 1 (created): its "label" must be text of at most 120 '
     "characters.", "scenario/steps/0/label"),
])
def test_a_bad_scenario_is_refused_naming_the_step(document, message, where):
    with pytest.raises(ScenarioError) as refused:
        parse_scenario(document)

    assert str(refused.value).startswith(message), str(refused.value)
    assert refused.value.field == where


@pytest.mark.parametrize(("text", "message"), [
    ('{"steps": [\n  {"event": "created"},\n  {"event": "claimed" "by": "qa"}\n]}',
     "is not valid JSON: Expecting ',' delimiter at line 3, column 23."),
    ("", "is not valid JSON: Expecting value at line 1, column 1."),
    (b"\xff\xfe{}", "is not UTF-8 text."),
])
def test_a_file_that_is_not_json_names_line_and_column(tmp_path, text, message):
    path = tmp_path / "broken.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())

    with pytest.raises(ScenarioError) as refused:
        load_scenario_file(path)

    assert str(refused.value) == f"The scenario file {path} {message}"


def test_field_values_override_the_template_in_the_event_body(app):
    """Fields given replace the template's; the others keep it; every event is synthetic."""
    scenario = parse_scenario({"steps": [{"event": "created", "escalation": {
        "topic": "billing", "urgencyLevel": "low", "threadId": "thread-qa-1"}}, CLAIMED]})
    with app.app_context():
        escalation_id = run_scenario_flow("agent-123", "production", scenario, sleep=lambda seconds: None)
        events = db.session.scalars(db.select(Event).filter_by(escalation_id=escalation_id)
                                    .order_by(Event.sequence)).all()
        escalation = db.session.get(Escalation, escalation_id)
    bodies = [json.loads(e.body) for e in events]
    assert [b["eventType"] for b in bodies] == ["created", "claimed"] and escalation.synthetic
    assert {k: bodies[0]["escalation"][k] for k in ("topic", "urgencyLevel", "threadId", "area", "reason")} == {
        "topic": "billing", "urgencyLevel": "low", "threadId": "thread-qa-1", "area": "payment",
        "reason": "User is angry and demands immediate refund"}
    assert bodies[1]["escalation"]["claimedBy"] == "qa" and all(b["synthetic"] is True for b in bodies)


def test_cli_scenario_flows_arrive_exactly_as_written_at_an_https_receiver(delivery_app, receiver):
    path = EXAMPLES_DIR / "release-and-reclaim.json"

    result = delivery_app.test_cli_runner().invoke(
        args=["qlar", "simulate", "agent-123", "production", "--scenario", str(path), "--flows", "2"])

    assert result.exit_code == 0, result.output
    assert f'Each flow follows the scenario "Release and reclaim" (5 steps) of {path}.' in result.output
    numbers = dict(re.findall(r"^(flows|events|delivered|failed|still pending): (\d+)$", result.output, re.M))
    assert numbers == {"flows": "2", "events": "10", "delivered": "10", "failed": "0", "still pending": "0"}
    flows = _flows(receiver.wait_for(10))
    assert len(receiver.requests) == 10 and len(flows) == 2
    for flow in flows.values():
        _assert_as_written(flow, ISSUE_EXAMPLE["steps"])
    with delivery_app.app_context():  # the 200 ms before the reclaim were waited
        for escalation_id in flows:
            times = db.session.scalars(db.select(Event.created_at).filter_by(escalation_id=escalation_id)
                                       .order_by(Event.sequence)).all()
            assert (times[3] - times[2]).total_seconds() >= 0.2


@pytest.mark.parametrize(("content", "message"), [
    (json.dumps(COMPLETE_BEFORE_CLAIM), "Error: Step 2 (completed): cannot complete the escalation: it is Pending, "
     "and only a Claimed escalation can be completed."),
    ('{"steps": [{"event": "created"},]}', "is not valid JSON: Expecting value at line 1, column 33."),
    (json.dumps({"steps": [{"event": "created"}, {"event": "claimed", "by": "qa", "delayMs": -5}]}),
     'Error: Step 2 (claimed): "delayMs" must be a whole number of milliseconds from 0 to 60000.'),
])
def test_cli_refuses_a_bad_scenario_before_anything_is_sent(delivery_app, receiver, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)

    result = delivery_app.test_cli_runner().invoke(
        args=["qlar", "simulate", "agent-123", "production", "--scenario", str(path), "--flows", "3"])

    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and message in result.output, result.output
    time.sleep(0.3)
    assert _counts(delivery_app) == (0, 0, 0) and receiver.requests == []


def test_cli_flows_default_to_one_with_a_scenario_and_stay_required_without(runner, tmp_path):
    missing = runner.invoke(args=["qlar", "simulate", "agent-123", "production", "--scenario", str(tmp_path / "no")])
    without = runner.invoke(args=["qlar", "simulate", "agent-123", "production"])
    one = runner.invoke(args=["qlar", "simulate", "agent-123", "production", "--wait", "0",
                              "--scenario", str(EXAMPLES_DIR / "quick-resolution.json")])

    assert missing.exit_code == 1
    assert missing.output == f"Error: Cannot read the scenario file {tmp_path / 'no'}: No such file or directory.\n"
    assert without.exit_code == 2 and "Missing option '--flows' (it may be left out only with --scenario)." in \
        without.output
    assert one.exit_code == 0, one.output
    assert "flows: 1\nevents: 3\n" in one.output


def _wait_for_job(client, headers, location: str, timeout: float = 30.0) -> dict:
    """Poll the API's job until it is finished or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(location, headers=headers).json
        if job["status"] in ("finished", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {location} still {job['status']} after {timeout} s")


def test_api_simulate_with_a_scenario_delivers_it_and_shows_it(delivery_app, receiver):
    delivery_app.extensions["qlar_dispatcher"].start()
    client, headers = delivery_app.test_client(), api_token(delivery_app, "editor")
    document = json.loads((EXAMPLES_DIR / "quick-resolution.json").read_text())

    started = client.post(f"{API_PAIR}/simulate", json={"flows": 2, "waitSeconds": 20, "scenario": document},
                          headers=headers)

    assert started.status_code == 202, started.data
    assert started.json["scenario"] == document
    job = _wait_for_job(client, headers, started.headers["Location"])
    assert job["status"] == "finished" and job["error"] is None, job
    assert (job["summary"]["events"], job["summary"]["delivered"], job["scenario"]) == (6, 6, document)
    flows = _flows(receiver.wait_for(6))
    assert len(flows) == 2
    for flow in flows.values():
        _assert_as_written(flow, document["steps"])
    assert flows and all(f[0].json["escalation"]["urgencyLevel"] == "critical" for f in flows.values())


@pytest.mark.parametrize(("scenario", "detail", "pointer"), [
    (COMPLETE_BEFORE_CLAIM, "Step 2 (completed): cannot complete the escalation: it is Pending", "#/scenario/steps/1"),
    ({"steps": [CREATED, {"event": "claimed", "by": ""}]}, 'Step 2 (claimed): say who claims the escalation ("by").',
     "#/scenario/steps/1/by"),
    ({"stages": []}, 'Unknown scenario member "stages"', "#/scenario/stages"),
])
def test_api_refuses_a_bad_scenario_with_a_422_naming_the_step(app, client, scenario, detail, pointer):
    response = client.post(f"{API_PAIR}/simulate", json={"flows": 1, "scenario": scenario},
                           headers=api_token(app, "editor"))

    problem = assert_problem(response, 422, "validation-error")
    assert len(problem["errors"]) == 1 and problem["errors"][0]["pointer"] == pointer
    assert problem["errors"][0]["detail"].startswith(detail), problem
    assert _counts(app) == (0, 0, 0)


def test_the_openapi_document_describes_the_scenario(client):
    spec = client.get("/api/v1/openapi.json").json
    scenario = spec["components"]["schemas"]["Simulate"]["properties"]["scenario"]

    assert scenario["required"] == ["steps"] and scenario["properties"]["steps"]["maxItems"] == 50
    steps = scenario["properties"]["steps"]["items"]["oneOf"]
    assert [s["properties"]["event"]["enum"] for s in steps] == [["created"], ["claimed"], ["released"], ["completed"]]
    assert [s["required"] for s in steps] == [["event"], ["event", "by"], ["event"], ["event", "notes"]]
    assert "scenario" in spec["components"]["schemas"]["Job"]["properties"]


def _wait_for_page_job(client, job_id: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/escalations/simulations/{job_id}").json
        if not state["unfinished"]:
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def test_page_runs_a_shipped_example(app, client):
    login(client, "editor")
    page = client.get("/escalations?agent=agent-123&env=production").get_data(as_text=True)
    assert '<option value="">Random flows</option>' in page
    option = re.search(r'<option value="quick-resolution" data-json="([^"]+)">\s*Quick resolution \(3 steps\)', page)
    example = json.loads((EXAMPLES_DIR / "quick-resolution.json").read_text())
    assert json.loads(html.unescape(option.group(1))) == example

    started = client.post("/escalations/simulate", data={**PAGE_PAIR, "flows": "2", "rate": "",
                                                          "scenario": "quick-resolution", "scenario_json": ""})

    assert started.status_code == 302
    with app.app_context():
        job = db.session.scalar(db.select(SimulationJob))
        assert job.scenario == example
    state = _wait_for_page_job(client, job.id)
    assert state["status"] == "finished" and state["summary"]["events"] == 6
    page = html.unescape(client.get("/escalations?agent=agent-123&env=production").get_data(as_text=True))
    assert f'Simulate job {job.id} started: 2 flows of the scenario "Quick resolution" (3 steps), as fast as ' \
           "possible." in page
    assert re.search(r"2 flows of the scenario “Quick resolution” \(3 steps\),\s+as fast as possible;", page)


def test_page_runs_custom_json(app, client):
    login(client, "editor")
    custom = json.dumps({"steps": [{"event": "created", "escalation": {"topic": "custom topic"}}, CLAIMED]})

    started = client.post("/escalations/simulate", data={**PAGE_PAIR, "flows": "1", "rate": "5",
                                                          "scenario": "custom", "scenario_json": custom})

    assert started.status_code == 302
    with app.app_context():
        job_id = db.session.scalar(db.select(SimulationJob.id))
    assert _wait_for_page_job(client, job_id)["summary"]["events"] == 2
    with app.app_context():
        assert db.session.scalar(db.select(Escalation.topic)) == "custom topic"


@pytest.mark.parametrize(("choice", "text", "field", "message"), [
    ("custom", '{"steps": [\n{"event": "created"}\n{"event": "claimed", "by": "qa"}]}', "scenario-json",
     "The scenario JSON is not valid JSON: Expecting ',' delimiter at line 3, column 1."),
    ("custom", json.dumps(COMPLETE_BEFORE_CLAIM), "scenario-json",
     "Step 2 (completed): cannot complete the escalation: it is Pending, and only a Claimed escalation can be "
     "completed."),
    ("custom", "  ", "scenario-json", "Paste a scenario's JSON, or choose another scenario."),
    ("no-such-example", "", "scenario", "Choose a scenario from the list."),
])
def test_page_bad_scenario_is_a_field_error_and_keeps_the_input(app, client, choice, text, field, message):
    login(client, "editor")

    response = client.post("/escalations/simulate", data={**PAGE_PAIR, "flows": "3", "rate": "",
                                                           "scenario": choice, "scenario_json": text})

    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert f'<p class="error" id="sim-{field}-error">{message}</p>' in page, page
    assert re.search(rf'aria-describedby="sim-{field}-hint sim-{field}-error"\s*aria-invalid="true"', page)
    assert f">{text}</textarea>" in page and 'name="flows" value="3"' in page
    assert _counts(app) == (0, 0, 0)
