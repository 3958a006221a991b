"""`flask qlar deliveries`, `resend` and `resend-failed`: the Deliveries page's actions from the command line."""
import click
from flask.cli import with_appcontext

from ..audit.service import CLI_ACTOR
from ..engine.models import STATUSES, Event
from ..errors import one_line_errors
from ..extensions import db
from . import service


@click.command("deliveries")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--synthetic/--real", default=None,
              help="Only synthetic events (simulator, scenarios, test flow), or only real ones (default: both).")
@with_appcontext
def deliveries_command(status, limit, synthetic):
    """List recent events and their delivery status; synthetic ones are marked [synthetic]."""
    query = db.select(Event).order_by(Event.id.desc()).limit(limit)
    if status:
        query = query.where(Event.status == status)
    if synthetic is not None:
        query = query.where(Event.synthetic == synthetic)
    for event in db.session.scalars(query):
        code = event.last_status_code or "-"
        click.echo(f"{event.id}  {event.created_at:%Y-%m-%d %H:%M:%S}  {event.agent_id}/{event.environment}  "
                   f"{event.event_type:<9}  {event.status:<9}  tries={event.attempt_count}  last={code}  "
                   f"{'[synthetic]  ' if event.synthetic else ''}{event.last_error or ''}".rstrip())


@click.command("resend")
@click.argument("event_id")
@with_appcontext
@one_line_errors
def resend_command(event_id):
    """Queue an event for delivery again."""
    service.resend(event_id, CLI_ACTOR)
    click.echo(f"{event_id} queued for resend.")


@click.command("resend-failed")
@click.argument("agent_id")
@click.argument("env")
@click.option("--since", "window", required=True, metavar="1h|24h|7d|YYYY-MM-DD",
              help="Events whose last try failed in the last hour, 24 hours, 7 days, or since a UTC day.")
@click.option("--dry-run", is_flag=True, help="Only say what would be queued.")
@with_appcontext
@one_line_errors
def resend_failed_command(agent_id, env, window, dry_run):
    """Resend failed (after an outage): queue again, in order and at the normal pace, what failed in the window."""
    if dry_run:
        found = service.failed_events(agent_id, env, window)
    else:
        found = service.resend_failed(agent_id, env, window, CLI_ACTOR)
    click.echo(resend_failed_summary(found, dry_run))


def resend_failed_summary(found: service.FailedEvents, dry_run: bool = False) -> str:
    """What resend-failed did (or would do, with --dry-run), in one or two lines."""
    events = f"{found.count} failed {'event' if found.count == 1 else 'events'}"
    where = f"of {found.agent_id}/{found.environment} (last try failed {found.described})"
    if not found.count:
        return (f"No events of {found.agent_id}/{found.environment} failed {found.described}: "
                f"nothing {'to queue' if dry_run else 'queued'}.")
    head = f"{'Would queue' if dry_run else 'Queued'} {events} {where} again"
    escalations = ", ".join(found.escalation_ids[:10]) + (", …" if len(found.escalation_ids) > 10 else "")
    more = "\nMore remain beyond these (the oldest): run it again for the rest." if found.more else ""
    return f"{head}, in {len(found.escalation_ids)} escalations: {escalations}{more}"
