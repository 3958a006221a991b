"""`flask qlar ...`: the same rules as the UI, one function each; errors are one line and exit 1."""
import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from .audit.service import CLI_ACTOR
from .auth.cli import token_group, user_group
from .auth.models import ROLES
from .auth.service import create_user
from .deliveries.cli import deliveries_command, resend_command, resend_failed_command
from .demo import (
    CONSOLE_PORT,
    DEMO_AGENT,
    DEMO_ENVIRONMENTS,
    DEMO_WEBHOOK_URL,
    RECEIVER_PORT,
    seed_demo,
    start_reference_receiver,
)
from .errors import one_line_errors
from .escalations.cli import escalation_group, simulate_command
from .escalations.purge_cli import purge_command
from .mailcatcher import start_mail_catcher
from .receiver.cli import receiver_command
from .settings import keys, receiver_check, service
from .settings.cli import webhook_group
from .settings.endpoint_cli import endpoint_group
from .worker import become_lean_worker

qlar = AppGroup("qlar", help="qlar-console administration.")
qlar.add_command(receiver_command)
for command in (deliveries_command, resend_command, resend_failed_command, purge_command, simulate_command):
    qlar.add_command(command)
qlar.add_command(escalation_group)
qlar.add_command(token_group)
qlar.add_command(user_group)
qlar.add_command(webhook_group)
qlar.add_command(endpoint_group)


@qlar.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@one_line_errors
def create_user_command(name, role, password_stdin):
    """Create a console user (password from a prompt, or --password-stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user, _ = create_user(name, role, password, actor=CLI_ACTOR)
    click.echo(f"Created user {user.username} ({role}).")


@qlar.group("agent")
def agent_group():
    """Agents and their environments."""


@agent_group.command("add")
@click.argument("agent_id")
@click.option("--env", "environments", multiple=True, required=True, help="Repeat for each environment.")
@one_line_errors
def agent_add(agent_id, environments):
    """Add an agent with its environments (existing ones are kept)."""
    service.add_agent(agent_id, list(environments), CLI_ACTOR)
    click.echo(f"Agent {agent_id}: {', '.join(environments)}.")


@qlar.command("check-receiver")
@click.argument("agent_id")
@click.argument("env")
@click.option("--json", "as_json", is_flag=True, help="Print the scorecard as JSON.")
@one_line_errors
def check_receiver_command(agent_id, env, as_json):
    """Probe the saved endpoint for the integration guide's rules; exit 1 when a required rule fails."""
    check = receiver_check.check_receiver(service.get_settings(agent_id, env), CLI_ACTOR)
    if as_json:
        click.echo(json.dumps({"url": check.url, "ranAt": check.ran_at.isoformat() + "Z", "passed": check.passed,
                               "diagnosis": check.diagnosis, "rules": check.results}, indent=2))
    else:
        if check.diagnosis:
            click.echo(check.diagnosis)
        for r in check.results:
            verdict = "PASS" if r["passed"] else ("FAIL" if r["required"] else "ADVICE")
            fix = f" -> {r['fix']}" if r["fix"] else ""
            click.echo(f"{verdict:<6} {r['number']:>2}. {r['rule']}: {r['got']}{fix}")
        click.echo("Every required rule passed." if check.passed else "Some required rules failed.")
    if not check.passed:
        sys.exit(1)


@qlar.command("rotate-master-key")
@one_line_errors
def rotate_master_key():
    """Re-encrypt every stored secret under the new master key."""
    click.echo(keys.rotate_master_key(CLI_ACTOR))


@qlar.command("demo")
@click.option("--port", type=click.IntRange(1, 65535), default=CONSOLE_PORT, show_default=True,
              help="The console's port, for the login address printed.")
@click.option("--receiver-port", type=click.IntRange(1, 65535), default=RECEIVER_PORT, show_default=True,
              help="The reference receiver's port, where staging's webhook points.")
@one_line_errors
def demo(port, receiver_port):
    """Seed the demo (agent-123 with production and staging, an admin); prints the password once."""
    password = seed_demo(current_app.instance_path, receiver_port)
    click.echo(f"Demo ready: {DEMO_AGENT} with {', '.join(DEMO_ENVIRONMENTS)}; staging's webhook points at the "
               f"reference receiver {DEMO_WEBHOOK_URL.format(port=receiver_port)}.")
    if password:
        click.echo(f"Log in at http://127.0.0.1:{port}/login as admin with password: {password}")
        click.echo("(This password is shown only once.)")
    else:
        click.echo("The admin user already exists (its password was printed when it was created).")


@qlar.command("worker")
@click.option("--threads", type=click.IntRange(1, 64), default=None, help="Sender threads (default 4).")
def worker(threads):
    """Run the dispatcher standalone until interrupted (SIGINT or SIGTERM), as a lean process.

    This command becomes `python -m qlar_console.worker`, which loads only the delivery engine's needs.
    """
    become_lean_worker(threads, current_app.instance_path)


@qlar.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--receiver-port", type=int, default=None,
              help="Also run the reference receiver on https://127.0.0.1:PORT (make run uses 8443).")
@click.option("--mail-port", type=int, default=None,
              help="Also run a local SMTP catcher on 127.0.0.1:PORT that keeps alert emails in instance/mail/ "
                   "(make run uses 8025 and points QLAR_SMTP_URL at it).")
def serve(host, port, receiver_port, mail_port):
    """Serve the console with its embedded dispatcher (and the reference receiver); Ctrl-C stops all."""
    from werkzeug.serving import run_simple

    app = current_app._get_current_object()
    dispatcher = app.extensions["qlar_dispatcher"]
    receiver = start_reference_receiver(app, receiver_port) if receiver_port else None
    mail = start_mail_catcher(app.instance_path, mail_port) if mail_port else None
    if app.config["WORKER"] == "embedded":
        dispatcher.start()
    try:
        run_simple(host, port, app, threaded=True)
    finally:
        dispatcher.stop()
        if receiver:
            receiver.shutdown()
        if mail:
            mail.stop()
