"""`flask qlar webhook …`: the Webhook Notifications card from the command line (show, set, regenerate, resume)."""
import click
from flask.cli import AppGroup

from ..audit.service import CLI_ACTOR
from ..clock import utcnow
from ..crypto import MASKED
from ..errors import one_line_errors
from . import alerting, keys, service
from .schedule import describe_schedule

webhook_group = AppGroup("webhook", help="The webhook of one agent x environment.")


def _utc(at) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC" if at else "-"


def _echo_recipients(view: alerting.HealthView) -> None:
    click.echo(f"Alert emails: {', '.join(view.alert_emails) or '(none)'}")
    click.echo(f"Alert webhook URL: {view.alert_url or '(none)'}")


def _echo_health(view: alerting.HealthView) -> None:
    """Health: paused since … UTC (reason), then the last error and, while paused, the probe and held events."""
    since = f" since {_utc(view.since)}" if view.since else ""
    reason = f" ({view.pause_reason})" if view.state == "paused" and view.pause_reason else ""
    click.echo(f"Health: {view.state}{since}{reason}")
    if view.state == "paused":
        click.echo(f"Next probe: {_utc(view.next_probe_at)}; held events: {view.pending}")
    error_at = f" (at {_utc(view.last_error_at)})" if view.last_error and view.last_error_at else ""
    click.echo(f"Last error: {view.last_error or '(none)'}{error_at}")


@webhook_group.command("show")
@click.argument("agent_id")
@click.argument("env")
@click.option("--reveal", is_flag=True, help="Print the secret key (audited).")
@one_line_errors
def webhook_show(agent_id, env, reveal):
    """Show the webhook settings, health and alert recipients; the key is masked unless --reveal."""
    settings = service.get_settings(agent_id, env)
    secret = keys.reveal_secret(settings, CLI_ACTOR, via="CLI --reveal") if reveal else None
    click.echo(f"Webhook:     {'Enabled' if settings.webhook_enabled else 'Disabled'}")
    click.echo(f"Webhook URL: {settings.webhook_url or '(none)'}")
    click.echo(f"Secret Key:  {secret or (MASKED if settings.secret_ciphertext else '(none yet)')}")
    if settings.previous_secret_active(utcnow()):
        click.echo(f"Previous key valid until {settings.previous_secret_expires_at:%Y-%m-%d %H:%M:%S} UTC")
    click.echo(f"Retry schedule: {describe_schedule(settings.retry_schedule)}")
    view = alerting.health_view(settings)
    _echo_health(view)
    _echo_recipients(view)
    click.echo(f"Version {settings.version}, saved by {settings.saved_by or '-'} at "
               f"{settings.saved_at.strftime('%Y-%m-%d %H:%M:%S UTC') if settings.saved_at else '-'}")


@webhook_group.command("set")
@click.argument("agent_id")
@click.argument("env")
@click.option("--url")
@click.option("--enable/--disable", default=None)
@click.option("--retry-schedule", help="Delays between tries for this pair, such as 1s,2s,5s; 'default' clears it.")
@click.option("--alert-email", "alert_emails", metavar="ADDRESSES",
              help="Who is emailed alerts, comma-separated (a@x.example,b@y.example); '' clears.")
@click.option("--alert-url", metavar="URL",
              help="An https URL each alert is POSTed to (a Slack or Teams incoming webhook works); '' clears.")
@one_line_errors
def webhook_set(agent_id, env, url, enable, retry_schedule, alert_emails, alert_url):
    """Change the URL, the switch, the retry schedule and/or the alert recipients, then save."""
    settings = service.get_settings(agent_id, env)
    change = service.SettingsChange.from_settings(settings, webhook_url=url, webhook_enabled=enable,
                                                  retry_schedule=retry_schedule, alert_emails=alert_emails,
                                                  alert_url=alert_url)
    checked = service.save_settings(settings, change, expected_version=settings.version, actor=CLI_ACTOR,
                                    as_admin=True)  # whoever runs the CLI operates the server
    if checked.warning:
        click.echo(f"Warning: {checked.warning}", err=True)
    click.echo("Escalation settings saved")
    if retry_schedule is not None:
        click.echo(f"Retry schedule: {describe_schedule(settings.retry_schedule)}")
    if alert_emails is not None or alert_url is not None:
        _echo_recipients(alerting.health_view(settings))


@webhook_group.command("regenerate")
@click.argument("agent_id")
@click.argument("env")
@click.option("--grace", type=click.Choice(list(keys.GRACE_PERIODS)), default="none",
              help="How long the previous key stays valid.")
@one_line_errors
def webhook_regenerate(agent_id, env, grace):
    """Regenerate Key: the old key stops validating now, or after the grace period."""
    settings = service.get_settings(agent_id, env)
    keys.regenerate_secret(settings, CLI_ACTOR, grace)
    click.echo("Secret key regenerated" + ("." if grace == "none" else f"; the previous key stays valid for {grace}."))


@webhook_group.command("resume")
@click.argument("agent_id")
@click.argument("env")
@one_line_errors
def webhook_resume(agent_id, env):
    """Resume now: end the webhook's pause at once; its held events go out in order (exit 1 when not paused)."""
    count = alerting.resume(service.get_settings(agent_id, env), CLI_ACTOR)
    click.echo(f"Resumed: {count} held events are being delivered.")
