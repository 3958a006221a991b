"""qlar-console: the Escalation -> Webhook Notifications console and its dispatcher."""
import os

from flask import Flask

from .api import init_api
from .audit.views import bp as audit_bp
from .auth.views import bp as auth_bp
from .cli import qlar
from .config import ROOT, load_config
from .crypto import install_log_redaction
from .deliveries.views import bp as deliveries_bp
from .dispatcher import Dispatcher
from .escalations.views import bp as escalations_bp
from .extensions import csrf, db, login_manager, migrate
from .observability import bp as observability_bp
from .security import init_security
from .settings.views import bp as settings_bp


def create_app(config: dict | None = None) -> Flask:
    """Build the console: config layers, extensions, blueprints, CLI."""
    instance = (config or {}).get("INSTANCE_PATH") or os.environ.get("QLAR_INSTANCE_PATH") or ROOT / "instance"
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(instance),
        instance_relative_config=True,
    )
    load_config(app, config)
    init_extensions(app)
    register_blueprints(app)
    Dispatcher().init_app(app)
    app.cli.add_command(qlar)
    return app


def init_extensions(app: Flask) -> None:
    """Bind the database, migrations, login, CSRF, security headers and log redaction."""
    install_log_redaction()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    csrf.init_app(app)
    init_security(app)


def register_blueprints(app: Flask) -> None:
    """One blueprint per feature."""
    for bp in (auth_bp, settings_bp, escalations_bp, deliveries_bp, audit_bp, observability_bp):
        app.register_blueprint(bp)
    init_api(app)
