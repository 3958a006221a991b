"""The schema comes from migrations: `flask db upgrade` builds what the models describe."""
import sqlalchemy as sa
from apps import MASTER_KEY

from qlar_console import create_app
from qlar_console.extensions import db
from qlar_console.settings.service import get_settings


def test_upgrade_builds_the_models_schema_and_demo_seeds(tmp_path):
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "MASTER_KEY": MASTER_KEY, "INSTANCE_PATH": str(tmp_path),
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.db'}"})
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    check = runner.invoke(args=["db", "check"])
    assert check.exit_code == 0, check.output  # no model change is missing a migration
    with app.app_context():
        assert set(sa.inspect(db.engine).get_table_names()) >= {
            "agents", "escalation_settings", "users", "audit_entries", "alembic_version"}
    first = runner.invoke(args=["qlar", "demo"])
    assert "Log in at http://127.0.0.1:5000/login as admin with password: " in first.output
    again = runner.invoke(args=["qlar", "demo"])
    assert "password:" not in again.output  # the password is printed once
    moved = runner.invoke(args=["qlar", "demo", "--port", "5050", "--receiver-port", "9443"])  # make run PORT=…
    assert "reference receiver https://127.0.0.1:9443/webhook" in moved.output, moved.output
    with app.app_context():
        assert get_settings("agent-123", "staging").webhook_url == "https://127.0.0.1:9443/webhook"
    assert runner.invoke(args=["qlar", "demo", "--receiver-port", "0"]).exit_code == 2  # not a port


def test_several_endpoints_migration_keeps_todays_webhook_its_secret_and_its_events(tmp_path):
    """A database made at the previous head (d3a1f0c2e9b4) with a webhook, its key, events and an attempt:
    upgraded, the webhook is the pair's primary endpoint and nothing is lost."""
    from qlar_console.crypto import secret_box
    from qlar_console.engine.models import Attempt, Endpoint, Event
    from qlar_console.settings.keys import signing_secrets
    from qlar_console.settings.service import get_settings

    app = create_app({"TESTING": True, "SECRET_KEY": "x", "MASTER_KEY": MASTER_KEY, "INSTANCE_PATH": str(tmp_path),
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}"})
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade", "d3a1f0c2e9b4"]).exit_code == 0
    with app.app_context():
        ciphertext = secret_box().encrypt("whsec_" + "k" * 32)
        now = "2026-12-01 10:00:00"
        statements = [
            ("INSERT INTO agents (id, created_at) VALUES ('agent-1', :now)", {}),
            ("INSERT INTO escalation_settings (agent_id, environment, trigger_conditions, default_urgency, "
             "claim_timeout_minutes, webhook_enabled, webhook_url, secret_ciphertext, secret_created_at, version) "
             "VALUES ('agent-1', 'production', '[]', 'high', 30, 1, 'https://example.com/hook', :secret, :now, 3)",
             {"secret": ciphertext}),
            ("INSERT INTO escalations (id, agent_id, environment, thread_id, status, urgency_level, topic, area, "
             "reason, trigger_condition, last_sequence, created_at, updated_at) VALUES ('esc-1', 'agent-1', "
             "'production', 't', 'Pending', 'high', 'refund', 'payment', 'angry', 'Angry Customer Escalation', 2, "
             ":now, :now)", {}),
            ("INSERT INTO events (id, escalation_id, agent_id, environment, event_type, sequence, body, created_at, "
             "synthetic, status, tries, attempt_count, next_attempt_at) VALUES ('evt_1', 'esc-1', 'agent-1', "
             "'production', 'created', 1, :body, :now, 0, 'succeeded', 1, 1, NULL)", {"body": b'{"a":1}'}),
            ("INSERT INTO events (id, escalation_id, agent_id, environment, event_type, sequence, body, created_at, "
             "synthetic, status, tries, attempt_count, next_attempt_at) VALUES ('evt_2', 'esc-1', 'agent-1', "
             "'production', 'claimed', 2, :body, :now, 0, 'pending', 0, 0, :now)", {"body": b'{"a":2}'}),
            ("INSERT INTO attempts (event_id, number, \"trigger\", started_at, url, request_headers, response_status) "
             "VALUES ('evt_1', 1, 'scheduled', :now, 'https://example.com/hook', '{}', 200)", {}),
        ]
        for statement, params in statements:
            db.session.execute(sa.text(statement), {"now": now, **params})
        db.session.commit()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    check = runner.invoke(args=["db", "check"])
    assert check.exit_code == 0, check.output
    with app.app_context():
        settings = get_settings("agent-1", "production")
        assert (settings.webhook_enabled, settings.webhook_url, settings.version) == (True,
                                                                                     "https://example.com/hook", 3)
        assert signing_secrets(settings) == ["whsec_" + "k" * 32]
        [primary] = db.session.scalars(sa.select(Endpoint))
        assert primary.is_primary and (primary.agent_id, primary.environment) == ("agent-1", "production")
        rows = list(db.session.scalars(sa.select(Event).order_by(Event.id)))
        assert [(e.id, e.status, e.endpoint_id, e.webhook_id) for e in rows] == [
            ("evt_1", "succeeded", primary.id, "evt_1"), ("evt_2", "pending", primary.id, "evt_2")]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Attempt)) == 1
    assert runner.invoke(args=["db", "downgrade", "d3a1f0c2e9b4"]).exit_code == 0
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
