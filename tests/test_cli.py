"""`flask qlar ...` through app.test_cli_runner(): same rules as the UI, one-line errors."""
import os
import stat

import pytest
from apps import MASTER_KEY, make_app
from cryptography.fernet import Fernet
from helpers import login

from qlar_console import create_app
from qlar_console.audit.models import AuditEntry
from qlar_console.auth.service import authenticate
from qlar_console.clock import utcnow
from qlar_console.crypto import secret_box
from qlar_console.extensions import db
from qlar_console.settings.service import get_settings


def _enable(runner):
    return runner.invoke(args=["qlar", "webhook", "set", "agent-123", "production",
                               "--url", "https://example.com/hook", "--enable"])


def test_create_user_from_stdin_then_login_works(runner, app):
    result = runner.invoke(args=["qlar", "create-user", "qa", "--role", "editor", "--password-stdin"],
                           input="a long enough password\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert authenticate("qa", "a long enough password").role == "editor"


def test_create_user_prompts_for_password(runner, app):
    result = runner.invoke(args=["qlar", "create-user", "qa", "--role", "viewer"],
                           input="prompted password\nprompted password\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert authenticate("qa", "prompted password")


def test_duplicate_user_is_one_line_error(runner):
    result = runner.invoke(args=["qlar", "create-user", "editor", "--role", "editor", "--password-stdin"],
                           input="another password\n")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: User 'editor' already exists."


def test_agent_add_creates_environments(runner, app):
    result = runner.invoke(args=["qlar", "agent", "add", "agent-7", "--env", "production", "--env", "staging"])
    assert result.exit_code == 0
    with app.app_context():
        assert get_settings("agent-7", "staging").webhook_enabled is False


def test_webhook_set_applies_the_url_rule(runner, app):
    result = runner.invoke(args=["qlar", "webhook", "set", "agent-123", "production",
                                 "--url", "http://example.com/hook", "--enable"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: Webhook URL must start with https://"
    result = runner.invoke(args=["qlar", "webhook", "set", "agent-123", "production", "--enable"])
    assert "Webhook URL is required when the webhook is enabled." in result.output
    assert _enable(runner).exit_code == 0
    with app.app_context():
        settings = get_settings("agent-123", "production")
        assert settings.webhook_enabled and settings.webhook_url == "https://example.com/hook"
        assert settings.saved_by == "cli"


def test_webhook_show_masks_unless_reveal_which_is_audited(runner, app):
    _enable(runner)
    with app.app_context():
        secret = secret_box().decrypt(get_settings("agent-123", "production").secret_ciphertext)
    masked = runner.invoke(args=["qlar", "webhook", "show", "agent-123", "production"])
    assert "Enabled" in masked.output and "https://example.com/hook" in masked.output
    assert secret not in masked.output
    revealed = runner.invoke(args=["qlar", "webhook", "show", "agent-123", "production", "--reveal"])
    assert secret in revealed.output
    with app.app_context():
        assert db.session.scalar(db.select(AuditEntry).filter_by(action="webhook.secret_revealed"))


def test_webhook_regenerate_with_grace(runner, app):
    _enable(runner)
    result = runner.invoke(args=["qlar", "webhook", "regenerate", "agent-123", "production", "--grace", "1h"])
    assert result.exit_code == 0
    with app.app_context():
        assert get_settings("agent-123", "production").previous_secret_active(utcnow())
    bad = runner.invoke(args=["qlar", "webhook", "regenerate", "agent-123", "production", "--grace", "2y"])
    assert bad.exit_code == 2


def test_unknown_agent_is_one_line_error(runner):
    result = runner.invoke(args=["qlar", "webhook", "show", "agent-404", "production"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: No agent 'agent-404' with environment 'production'."


def test_rotate_master_key_from_environment_keeps_secrets_readable(tmp_path):
    app = make_app(tmp_path)
    runner = app.test_cli_runner()
    _enable(runner)
    with app.app_context():
        secret = secret_box().decrypt(get_settings("agent-123", "production").secret_ciphertext)
    new_key = Fernet.generate_key().decode()
    app.config["MASTER_KEY"] = f"{new_key},{MASTER_KEY}"
    app.extensions.pop("qlar_secret_box")
    result = runner.invoke(args=["qlar", "rotate-master-key"])
    assert result.exit_code == 0 and "Re-encrypted 1 secrets" in result.output
    app.config["MASTER_KEY"] = new_key  # the old key is gone; everything still decrypts
    app.extensions.pop("qlar_secret_box")
    with app.app_context():
        assert secret_box().decrypt(get_settings("agent-123", "production").secret_ciphertext) == secret


def test_rotate_master_key_file_in_development(tmp_path):
    app = make_app(tmp_path, MASTER_KEY=None)
    runner = app.test_cli_runner()
    _enable(runner)
    key_file = tmp_path / "master.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    before = key_file.read_text()
    with app.app_context():
        secret = secret_box().decrypt(get_settings("agent-123", "production").secret_ciphertext)
    result = runner.invoke(args=["qlar", "rotate-master-key"])
    assert result.exit_code == 0, result.output
    assert key_file.read_text() != before and len(key_file.read_text().split()) == 1
    fresh = create_app({"TESTING": True, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path / "elsewhere"),
                        "MASTER_KEY": key_file.read_text().strip(),
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'qlar.db'}"})
    with fresh.app_context():
        assert secret_box().decrypt(get_settings("agent-123", "production").secret_ciphertext) == secret


def test_wrong_master_key_is_one_clear_error(tmp_path):
    app = make_app(tmp_path)
    _enable(app.test_cli_runner())
    app.config["MASTER_KEY"] = Fernet.generate_key().decode()
    app.extensions.pop("qlar_secret_box")
    result = app.test_cli_runner().invoke(args=["qlar", "webhook", "show", "agent-123", "production", "--reveal"])
    assert result.exit_code == 1
    assert "cannot decrypt the stored webhook secret" in result.output
    assert "Traceback" not in result.output and "whsec_" not in result.output
    client = app.test_client()
    login(client, "editor")
    response = client.post("/agents/agent-123/production/webhook/secret", headers={"Accept": "application/json"})
    assert response.status_code == 500
    assert "cannot decrypt" in response.json["error"] and "secret" not in response.json


def test_missing_master_key_outside_development(tmp_path):
    app = make_app(tmp_path, MASTER_KEY=None)
    app.testing = False
    app.extensions.pop("qlar_secret_box", None)
    result = app.test_cli_runner().invoke(args=["qlar", "webhook", "regenerate", "agent-123", "production"])
    assert result.exit_code == 1
    assert "No master key: set QLAR_MASTER_KEY" in result.output


def test_malformed_master_key(tmp_path):
    app = make_app(tmp_path, MASTER_KEY="not-a-fernet-key")
    result = app.test_cli_runner().invoke(args=["qlar", "webhook", "regenerate", "agent-123", "production"])
    assert result.exit_code == 1
    assert "The master key from QLAR_MASTER_KEY is malformed" in result.output


def test_production_refuses_to_start_without_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("QLAR_SECRET_KEY", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        create_app({"ENV": "production", "INSTANCE_PATH": str(tmp_path)})


def test_a_missing_ca_bundle_refuses_to_start_naming_the_file(tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(RuntimeError, match=f"QLAR_CA_BUNDLE is {missing}, which is not a file"):
        make_app(tmp_path, CA_BUNDLE=str(missing))


def test_escalation_commands_drive_the_lifecycle(runner, app):
    created = runner.invoke(args=["qlar", "escalation", "create", "agent-123", "production"])
    assert created.exit_code == 0
    esc = created.output.strip()
    assert esc.startswith("esc-")
    assert runner.invoke(args=["qlar", "escalation", "claim", esc, "--by", "sup-1"]).exit_code == 0
    assert runner.invoke(args=["qlar", "escalation", "release", esc]).exit_code == 0
    assert runner.invoke(args=["qlar", "escalation", "claim", esc, "--by", "sup-2"]).exit_code == 0
    done = runner.invoke(args=["qlar", "escalation", "complete", esc, "--notes", "Refund issued"])
    assert done.exit_code == 0
    again = runner.invoke(args=["qlar", "escalation", "complete", esc, "--notes", "again"])
    assert again.exit_code == 1
    assert again.output.strip().startswith(f"Error: Cannot complete escalation {esc}: it is Completed")
    listing = runner.invoke(args=["qlar", "deliveries"]).output.splitlines()
    assert [line.split()[4] for line in listing] == ["completed", "claimed", "released", "claimed", "created"]
    assert all("skipped" in line for line in listing)  # the webhook was never enabled and saved


def test_resend_and_purge_commands(runner):
    esc = runner.invoke(args=["qlar", "escalation", "create", "agent-123", "production"]).output.strip()
    event_id = runner.invoke(args=["qlar", "deliveries"]).output.split()[0]
    assert runner.invoke(args=["qlar", "resend", event_id]).output.strip() == f"{event_id} queued for resend."
    assert runner.invoke(args=["qlar", "deliveries", "--status", "pending"]).output.count(event_id) == 1
    missing = runner.invoke(args=["qlar", "resend", "evt_nope"])
    assert missing.exit_code == 1 and missing.output.strip() == "Error: No event 'evt_nope'."
    assert runner.invoke(args=["qlar", "purge"]).output.startswith("Purged 0 ")
    assert esc.startswith("esc-")


def test_unknown_escalation_is_one_line_error(runner):
    result = runner.invoke(args=["qlar", "escalation", "claim", "esc-nope", "--by", "x"])
    assert result.exit_code == 1 and result.output.strip() == "Error: No escalation 'esc-nope'."
