"""`flask qlar endpoint …`: a pair's endpoints from the command line (DESIGN.md, round 3: add, list, show, set,
regenerate, remove). The rules are settings/endpoints.py's; the primary endpoint is the card's webhook."""
import click
from flask.cli import AppGroup

from ..audit.service import CLI_ACTOR
from ..crypto import MASKED
from ..errors import one_line_errors
from . import alerting, endpoints, keys, service
from .cli import _echo_health, _echo_recipients, _utc
from .schedule import describe_schedule

endpoint_group = AppGroup("endpoint", help="The endpoints of one agent x environment.")
EVENT_TYPE = click.option("--event-type", "event_types", multiple=True, metavar="T",
                          help="An event type it hears (repeat; none: all).")
HEADER = click.option("--header", "headers", multiple=True, metavar="'Name: value'",
                      help="A custom header (repeat).")


def _types(ep) -> str:
    return ", ".join(ep.event_types or []) or "all"


@endpoint_group.command("add")
@click.argument("agent_id")
@click.argument("env")
@click.option("--url", required=True)
@EVENT_TYPE
@HEADER
@click.option("--description", default=None)
@one_line_errors
def endpoint_add(agent_id, env, url, event_types, headers, description):
    """Add an endpoint to the pair, switched on, with a key of its own; prints its id."""
    settings = service.get_settings(agent_id, env)
    ep = endpoints.add_endpoint(settings, endpoints.EndpointChange(
        url=url, event_types=list(event_types), headers=list(headers), description=description), CLI_ACTOR,
        as_admin=True)
    click.echo(ep.id)


@endpoint_group.command("list")
@click.argument("agent_id")
@click.argument("env")
@one_line_errors
def endpoint_list(agent_id, env):
    """The pair's endpoints, the primary (the card's webhook) first."""
    settings = service.get_settings(agent_id, env)
    for ep in endpoints.endpoints_of_pair(settings):
        if ep.is_primary:
            state, url, what = settings.webhook_enabled, settings.webhook_url or "(none)", "primary"
        else:
            state, url, what = ep.enabled, ep.url, ep.description or ""
        click.echo(f"{ep.id}  {'enabled ' if state else 'disabled'}  {ep.health:8}  {url}  "
                   f"events: {'all' if ep.is_primary else _types(ep)}  {what}".rstrip())


@endpoint_group.command("show")
@click.argument("endpoint_id")
@click.option("--reveal", is_flag=True, help="Print the secret key (audited).")
@one_line_errors
def endpoint_show(endpoint_id, reveal):
    """One additional endpoint: its settings, health and alert recipients; the key is masked unless --reveal."""
    ep = endpoints.editable(endpoint_id)
    secret = endpoints.reveal_endpoint_secret(ep, CLI_ACTOR, via="CLI --reveal") if reveal else None
    click.echo(f"Endpoint:    {ep.id} ({ep.agent_id} \u00b7 {ep.environment})")
    click.echo(f"State:       {'Enabled' if ep.enabled else 'Disabled'}")
    click.echo(f"Endpoint URL: {ep.url}")
    click.echo(f"Event types: {_types(ep)}")
    click.echo(f"Headers:     {', '.join(ep.headers or {}) or '(none)'}")
    click.echo(f"Description: {ep.description or '(none)'}")
    click.echo(f"Secret Key:  {secret or MASKED}")
    click.echo(f"Retry schedule: {describe_schedule(ep.retry_schedule)}")
    view = alerting.health_view(service.get_settings(ep.agent_id, ep.environment), ep)
    _echo_health(view)
    _echo_recipients(view)
    click.echo(f"Version {ep.version}, saved by {ep.saved_by or '-'} at {_utc(ep.saved_at)}")


@endpoint_group.command("set")
@click.argument("endpoint_id")
@click.option("--url", default=None)
@click.option("--enable/--disable", "enabled", default=None)
@EVENT_TYPE
@HEADER
@click.option("--description", default=None)
@click.option("--retry-schedule", default=None, help="e.g. 1s,2s,5s, or default.")
@one_line_errors
def endpoint_set(endpoint_id, url, enabled, event_types, headers, description, retry_schedule):
    """Change an additional endpoint; what is not given stays (--header replaces all its custom headers)."""
    ep = endpoints.editable(endpoint_id)
    ep = endpoints.update_endpoint(ep, endpoints.EndpointChange(
        url=url, enabled=enabled, event_types=list(event_types) if event_types else None,
        headers=list(headers) if headers else None, description=description, retry_schedule=retry_schedule),
        CLI_ACTOR, as_admin=True)
    click.echo(f"Saved {ep.id} (version {ep.version}).")


@endpoint_group.command("regenerate")
@click.argument("endpoint_id")
@click.option("--grace", type=click.Choice(list(keys.GRACE_PERIODS)), default="none",
              help="How long the old key stays valid.")
@one_line_errors
def endpoint_regenerate(endpoint_id, grace):
    """Regenerate Key of one endpoint: the others' keys stay as they are."""
    endpoints.regenerate_endpoint_secret(endpoints.editable(endpoint_id), CLI_ACTOR, grace)
    click.echo("Secret key regenerated" + ("." if grace == "none" else f"; the previous key stays valid for {grace}."))


@endpoint_group.command("remove")
@click.argument("endpoint_id")
@one_line_errors
def endpoint_remove(endpoint_id):
    """Remove an additional endpoint; its pending events end cancelled."""
    cancelled = endpoints.remove_endpoint(endpoints.editable(endpoint_id), CLI_ACTOR)
    click.echo(f"Removed {endpoint_id}; {cancelled} pending events cancelled.")
