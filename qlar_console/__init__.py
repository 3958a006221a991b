"""qlar-console: the Escalation -> Webhook Notifications console and its dispatcher.

The web console's modules are imported inside the factory's steps, so importing the package (as
`python -m qlar_console.worker` does) loads none of them.
"""
import os

from flask import Flask

from .config import ROOT, load_config
from .crypto import install_log_redaction
from .extensions import db
from .worker import init_dispatcher


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
    init_dispatcher(app)
    from .cli import qlar

    app.cli.add_command(qlar)
    return app


def init_extensions(app: Flask) -> None:
    """Bind the database, migrations, login, CSRF, security headers and log redaction."""
    from flask_migrate import Migrate

    from .auth.login import login_manager
    from .links import init_links
    from .security import init_security

    install_log_redaction()
    db.init_app(app)
    Migrate(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    init_security(app)
    init_links(app)


def register_blueprints(app: Flask) -> None:
    """One blueprint per feature."""
    from .api import init_api
    from .audit.views import bp as audit_bp
    from .auth.account import bp as account_bp
    from .auth.users import bp as users_bp
    from .auth.views import bp as auth_bp
    from .deliveries.views import bp as deliveries_bp
    from .escalations import purge_views  # noqa: F401  (Purge synthetic data: its routes join escalations_bp)
    from .escalations.event_types import bp as event_types_bp
    from .escalations.views import bp as escalations_bp
    from .observability import bp as observability_bp
    from .settings import endpoint_views  # noqa: F401  (the Additional endpoints routes, on the settings blueprint)
    from .settings.verify import bp as verify_bp
    from .settings.views import bp as settings_bp

    for bp in (auth_bp, account_bp, users_bp, settings_bp, verify_bp, escalations_bp, event_types_bp, deliveries_bp,
               audit_bp, observability_bp):
        app.register_blueprint(bp)
    init_api(app)
