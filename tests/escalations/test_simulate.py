"""`flask qlar simulate`: synthetic flows delivered to a real receiver, with a summary that adds up."""
import html
import re

import pytest
from helpers import login

from qlar_console.engine.models import Event
from qlar_console.escalations.models import SimulationJob
from qlar_console.extensions import db


def test_simulate_small_run_counts_add_up(delivery_app, receiver):
    result = delivery_app.test_cli_runner().invoke(
        args=["qlar", "simulate", "agent-123", "production", "--flows", "6", "--rate", "50", "--seed", "7"])
    assert result.exit_code == 0, result.output
    numbers = dict(re.findall(r"^(flows|events|delivered|failed|still pending): (\d+)$", result.output, re.M))
    with delivery_app.app_context():
        events = db.session.scalars(db.select(Event)).all()
    assert numbers["flows"] == "6"
    assert int(numbers["events"]) == len(events) >= 18  # created, claimed, completed (+ release, reclaim)
    assert int(numbers["delivered"]) == len(events) == len(receiver.requests)
    assert numbers["failed"] == "0" and numbers["still pending"] == "0"
    assert re.search(r"time to delivery: p50 \d+ ms, p99 \d+ ms", result.output)
    per_escalation = {}
    for r in receiver.requests:
        per_escalation.setdefault(r.json["escalation"]["id"], []).append(r.json["sequence"])
    assert len(per_escalation) == 6
    assert all(seqs == sorted(seqs) for seqs in per_escalation.values())  # order held per escalation


def test_simulate_unknown_pair_is_one_line_error(runner):
    result = runner.invoke(args=["qlar", "simulate", "agent-404", "production", "--flows", "1"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: No agent 'agent-404' with environment 'production'."


@pytest.mark.parametrize(("option", "value", "field", "page_data"), [
    ("--flows", "10001", "flows", {"flows": "10001"}),
    ("--flows", "0", "flows", {"flows": "0"}),
    ("--rate", "1000.5", "rate", {"flows": "1", "rate": "1000.5"}),
    ("--rate", "0", "rate", {"flows": "1", "rate": "0"}),
])
def test_cli_and_page_refuse_an_out_of_range_simulation_with_one_message(app, client, runner, option, value, field,
                                                                       page_data):
    """One set of limits for page, API and CLI: the CLI's line is the page's field error, and neither starts."""
    args = ["qlar", "simulate", "agent-123", "staging", "--flows", "1", option, value]
    result = runner.invoke(args=args)
    login(client, "editor")
    page = html.unescape(client.post("/escalations/simulate",
                                     data={"agent": "agent-123", "env": "staging", **page_data})
                         .get_data(as_text=True))

    assert result.exit_code == 1
    message = result.output.strip().removeprefix("Error: ")
    assert message.startswith(("Flows must be", "Rate must be"))
    assert f'<p class="error" id="sim-{field}-error">{message}' in page
    with app.app_context():
        assert db.session.scalars(db.select(Event)).all() == []
        assert db.session.scalars(db.select(SimulationJob)).all() == []
