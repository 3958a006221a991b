"""Files holding secrets are 0600 however they are made; /metrics in production is never public by accident."""
import stat

import pytest
from apps import MASTER_KEY, dispose

from qlar_console import create_app
from qlar_console.crypto import master_key_path, secret_box
from qlar_console.extensions import db
from qlar_console.settings.keys import rotate_master_key


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def bare_app(tmp_path, **config):
    """An app on a database file that does not exist yet (no tables, no users)."""
    return create_app({"TESTING": True, "SECRET_KEY": "x", "MASTER_KEY": MASTER_KEY, "INSTANCE_PATH": str(tmp_path),
                       "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'qlar.db'}", "WORKER": "external", **config})


def test_flask_db_upgrade_creates_the_database_0600(tmp_path):
    app = bare_app(tmp_path)
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert mode(tmp_path / "qlar.db") == 0o600 and (tmp_path / "qlar.db").stat().st_size > 0
    with app.app_context():
        db.engine.dispose()


def test_a_relative_database_path_lives_in_instance_and_is_0600(tmp_path):
    app = bare_app(tmp_path, SQLALCHEMY_DATABASE_URI="sqlite:///relative.db")
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    assert mode(tmp_path / "relative.db") == 0o600


def test_a_database_made_readable_before_is_made_private_at_start(tmp_path):
    for name in ("qlar.db", "qlar.db-wal"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    bare_app(tmp_path)
    assert mode(tmp_path / "qlar.db") == 0o600 and mode(tmp_path / "qlar.db-wal") == 0o600


def test_a_database_in_a_missing_directory_is_not_created_and_readyz_says_so(tmp_path):
    app = bare_app(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    assert app.test_client().get("/readyz").status_code == 503
    assert not (tmp_path / "missing").exists()


def test_development_keys_are_0600_also_after_rotation(tmp_path):
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path), "WORKER": "external",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'qlar.db'}"})
    with app.app_context():
        db.create_all()
        secret_box()
        path = master_key_path(app)
        assert mode(path) == 0o600 and mode(tmp_path / "secret_key") == 0o600
        path.with_suffix(".tmp").write_text("left over\n")
        path.with_suffix(".tmp").chmod(0o644)
        rotate_master_key("test")
        assert mode(path) == 0o600
        db.engine.dispose()


# --- /metrics -----------------------------------------------------------------------------------------------

def production_app(tmp_path, **config):
    """The console as production runs it: not testing, not development."""
    app = create_app({"SECRET_KEY": "x" * 32, "MASTER_KEY": MASTER_KEY, "INSTANCE_PATH": str(tmp_path),
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'qlar.db'}", "WORKER": "external",
                      "ENV": "production", **config})
    with app.app_context():
        db.create_all()
    return app


def test_production_metrics_without_a_token_are_refused_saying_what_to_set(tmp_path):
    app = production_app(tmp_path)
    response = app.test_client().get("/metrics")
    assert response.status_code == 403 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert "QLAR_METRICS_TOKEN" in text and "QLAR_METRICS_PUBLIC=1" in text and "qlar_" not in text
    dispose(app)


def test_production_metrics_with_their_token(tmp_path):
    app = production_app(tmp_path, METRICS_TOKEN="s3cret-scrape-token")
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-scrape-token"}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "QLAR_METRICS_TOKEN" in refused.get_data(as_text=True)
        assert "s3cret-scrape-token" not in refused.get_data(as_text=True)
    allowed = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert allowed.status_code == 200 and "qlar_queue_depth" in allowed.get_data(as_text=True)
    dispose(app)


def test_production_metrics_public_when_chosen_in_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("QLAR_METRICS_PUBLIC", "1")
    app = production_app(tmp_path)
    assert app.test_client().get("/metrics").status_code == 200
    dispose(app)


@pytest.mark.parametrize("config", [{"ENV": "development"}, {"TESTING": True}])
def test_development_metrics_stay_open(tmp_path, config):
    app = production_app(tmp_path, **config)
    assert app.test_client().get("/metrics").status_code == 200
    dispose(app)
