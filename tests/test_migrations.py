"""The schema comes from migrations: `flask db upgrade` builds what the models describe."""
import sqlalchemy as sa
from conftest import MASTER_KEY

from qlar_console import create_app
from qlar_console.extensions import db


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
