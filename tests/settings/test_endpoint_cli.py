"""`flask qlar endpoint …` (issue 23): add, list, show, set, regenerate, remove, with the rules of the page and
the API and one-line refusals."""
from qlar_console.audit.models import AuditEntry
from qlar_console.engine.models import Endpoint
from qlar_console.extensions import db
from qlar_console.settings import endpoints


def qlar(runner, *args):
    return runner.invoke(args=["qlar", "endpoint", *args])


def test_add_list_show_set_regenerate_remove(runner, app):
    added = qlar(runner, "add", "agent-123", "production", "--url", "https://example.com/crm",
                 "--event-type", "completed", "--header", "X-Team: crm", "--description", "CRM")
    assert added.exit_code == 0, added.output
    ep_id = added.output.strip()
    assert ep_id.startswith("ep_")
    listed = qlar(runner, "list", "agent-123", "production").output.splitlines()
    assert "primary" in listed[0] and ep_id in listed[1] and "events: completed" in listed[1]

    shown = qlar(runner, "show", ep_id).output
    assert "Endpoint URL: https://example.com/crm" in shown and "Headers:     X-Team" in shown
    assert "whsec_\u2022" in shown  # masked
    revealed = qlar(runner, "show", ep_id, "--reveal").output
    with app.app_context():
        key = endpoints.reveal_endpoint_secret(endpoints.get_endpoint(ep_id), "test")
    assert key in revealed

    assert qlar(runner, "set", ep_id, "--disable", "--event-type", "claimed").exit_code == 0
    assert qlar(runner, "regenerate", ep_id, "--grace", "1h").exit_code == 0
    with app.app_context():
        ep = db.session.get(Endpoint, ep_id)
        assert (ep.enabled, ep.event_types, ep.version) == (False, ["claimed"], 2)
        assert endpoints.reveal_endpoint_secret(ep, "test") != key and ep.previous_secret_ciphertext

    removed = qlar(runner, "remove", ep_id)
    assert removed.exit_code == 0 and "Removed" in removed.output
    with app.app_context():
        assert db.session.get(Endpoint, ep_id) is None
        actions = {e.action for e in db.session.scalars(db.select(AuditEntry))}
    assert {"endpoint.added", "endpoint.saved", "endpoint.removed", "webhook.secret_regenerated",
            "webhook.secret_revealed"} <= actions


def test_refusals_are_one_line_and_change_nothing(runner, app):
    for args, message in [
        (("add", "agent-123", "production", "--url", "http://example.com/x"), "https"),
        (("add", "agent-123", "production", "--url", "https://example.com/x", "--header", "X-Qlar-Test: 1"),
         "X-Qlar-Test"),
        (("add", "agent-123", "production", "--url", "https://example.com/x", "--event-type", "deleted"),
         "deleted"),
        (("show", "ep_nope"), "No endpoint"),
    ]:
        result = qlar(runner, *args)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
    primary = qlar(runner, "list", "agent-123", "production").output.split()[0]
    refused = qlar(runner, "remove", primary)
    assert refused.exit_code == 1 and "primary endpoint" in refused.output
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Endpoint).where(~Endpoint.is_primary)) == 0


def test_at_most_max_endpoints_a_pair(runner, app):
    app.config["MAX_ENDPOINTS"] = 3
    for n in range(2):
        assert qlar(runner, "add", "agent-123", "production", "--url", f"https://example.com/{n}").exit_code == 0
    refused = qlar(runner, "add", "agent-123", "production", "--url", "https://example.com/9")
    assert refused.exit_code == 1 and "QLAR_MAX_ENDPOINTS=3" in refused.output
