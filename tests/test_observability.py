"""/healthz, /readyz and /metrics: what an operator's probes and Prometheus see."""
from apps import MASTER_KEY

from qlar_console import create_app
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db


def test_healthz_needs_no_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_wants_the_newest_migration(tmp_path):
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "MASTER_KEY": MASTER_KEY, "INSTANCE_PATH": str(tmp_path),
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'ready.db'}"})
    client = app.test_client()
    before = client.get("/readyz")
    assert before.status_code == 503 and "run flask db upgrade" in before.json["migrations"]
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    after = client.get("/readyz")
    assert after.status_code == 200 and after.json["migrations"] == "current"
    with app.app_context():
        db.engine.dispose()


def test_readyz_reports_an_unreachable_database(tmp_path):
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path),
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["database"].startswith("unreachable")


def test_metrics_in_prometheus_format(delivery_app, receiver):
    with delivery_app.app_context():
        create_escalation("agent-123", "production")
        create_escalation("agent-123", "production")
        delivery_app.extensions["qlar_dispatcher"].drain(limit=1)
    text = delivery_app.test_client().get("/metrics").get_data(as_text=True)
    assert 'qlar_deliveries{outcome="succeeded"} 1.0' in text
    assert 'qlar_deliveries{outcome="pending"} 1.0' in text
    assert "qlar_queue_depth 1.0" in text
    assert "qlar_oldest_pending_age_seconds" in text and "qlar_workers_alive 0.0" in text
    assert 'qlar_attempt_duration_seconds_bucket{le="+Inf"} 1.0' in text
    assert "qlar_attempt_duration_seconds_count 1.0" in text
    assert "whsec_" not in text


def test_metrics_token_restricts_access(app):
    app.config["METRICS_TOKEN"] = "s3cret-scrape-token"
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"}).status_code == 200
