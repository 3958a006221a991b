"""`flask qlar escalation …` and `flask qlar simulate`: the Escalations page's lifecycle and synthetic traffic
from the command line (the same service functions and limits)."""
import random
import time

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from ..engine.housekeeping import live_workers
from ..errors import one_line_errors
from ..settings.service import get_settings
from . import jobs, simulate
from . import scenario as scenarios
from . import service as lifecycle
from .service import TEMPLATES


@click.group("escalation", cls=AppGroup)
def escalation_group():
    """Drive the escalation lifecycle (each transition emits its event)."""


@escalation_group.command("create")
@click.argument("agent_id")
@click.argument("env")
@click.option("--template", type=click.Choice(list(TEMPLATES)), default="angry-customer", show_default=True)
@one_line_errors
def escalation_create(agent_id, env, template):
    """Create a Pending escalation; prints its id."""
    click.echo(lifecycle.create_escalation(agent_id, env, template).id)


@escalation_group.command("claim")
@click.argument("escalation_id")
@click.option("--by", required=True, help="Who claims it.")
@one_line_errors
def escalation_claim(escalation_id, by):
    """Claim a Pending escalation."""
    click.echo(f"{lifecycle.claim(escalation_id, by).id} claimed by {by}")


@escalation_group.command("complete")
@click.argument("escalation_id")
@click.option("--notes", required=True, help="Resolution notes.")
@one_line_errors
def escalation_complete(escalation_id, notes):
    """Complete a Claimed escalation with resolution notes."""
    click.echo(f"{lifecycle.complete(escalation_id, notes).id} completed")


@escalation_group.command("release")
@click.argument("escalation_id")
@one_line_errors
def escalation_release(escalation_id):
    """Release a Claimed escalation back to Pending."""
    click.echo(f"{lifecycle.release(escalation_id).id} released")


@click.command("simulate")
@click.argument("agent_id")
@click.argument("env")
@click.option("--flows", type=int, default=None,
              help="How many full flows, 1 to 10000 (required, but 1 with --scenario).")
@click.option("--rate", type=float, default=None, help="Flows per second, up to 1000 (default: flat out).")
@click.option("--wait", "wait_seconds", type=float, default=jobs.DEFAULT_WAIT_SECONDS, show_default=True,
              help="Seconds to wait for deliveries before the summary, 0 to 600.")
@click.option("--seed", type=int, default=None, help="Random seed, to repeat a run.")
@click.option("--scenario", "scenario_file", type=click.Path(dir_okay=False), default=None,
              help="A JSON file of steps each flow follows (docs/scenarios/ has examples) instead of random flows.")
@with_appcontext
@one_line_errors
def simulate_command(agent_id, env, flows, rate, wait_seconds, seed, scenario_file):
    """Send N synthetic escalation flows; Ctrl-C stops early. Ends with a delivery summary.

    The limits and their messages are those of the page and the API (one check, escalations.jobs).
    """
    if flows is None and scenario_file is None:
        raise click.UsageError("Missing option '--flows' (it may be left out only with --scenario).")
    flows = 1 if flows is None else flows
    jobs.check_parameters(flows, rate, wait_seconds)
    script = scenarios.load_scenario_file(scenario_file) if scenario_file else None  # refused before any flow
    get_settings(agent_id, env)  # unknown pair: one-line error before anything starts
    if script:
        click.echo(f"Each flow follows the {script.describe()} of {scenario_file}.")
    dispatcher = current_app.extensions["qlar_dispatcher"]
    own_dispatcher = not live_workers()
    if own_dispatcher:  # nobody else delivers: do it in this process for the run
        dispatcher.start()
    done, started = [], time.monotonic()
    try:
        with click.progressbar(length=flows, label="Flows") as bar:
            def beat(so_far):
                bar.update(len(so_far) - bar.pos)

            simulate.run_flows(agent_id, env, flows, rate, script, rng=random.Random(seed), done=done, beat=beat)
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted after {len(done)} flows.")
    try:
        summary = simulate.summarise(done, wait_seconds)
    except KeyboardInterrupt:
        summary = simulate.summarise(done, 0)
    finally:
        if own_dispatcher:
            dispatcher.stop()
    click.echo(f"Sent in {time.monotonic() - started:.1f}s.")
    for line in summary.lines():
        click.echo(line)
