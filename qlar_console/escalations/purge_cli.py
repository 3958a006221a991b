"""`flask qlar purge`: old delivery traces (no options), or one agent x environment's synthetic data
(`--synthetic AGENT ENV`, `--dry-run` for the counts only). Never prompts: scripts and checks run it without a TTY."""
import click
from flask import current_app
from flask.cli import with_appcontext

from ..audit.service import CLI_ACTOR
from ..engine.housekeeping import purge as purge_traces
from ..errors import one_line_errors
from .purge import SyntheticCounts, purge_synthetic, synthetic_counts


@click.command("purge")
@click.option("--synthetic", nargs=2, metavar="AGENT ENV", default=None,
              help="Purge this agent · environment's synthetic data (simulator, scenarios, Run test flow): its "
                   "escalations, events and attempts.")
@click.option("--dry-run", is_flag=True, help="With --synthetic: print the counts, remove nothing.")
@with_appcontext
@one_line_errors
def purge_command(synthetic, dry_run):
    """Delete delivery traces older than QLAR_TRACE_RETENTION_DAYS; with --synthetic AGENT ENV, a pair's synthetic
    data instead."""
    if not synthetic:
        if dry_run:
            raise click.UsageError("--dry-run goes with --synthetic AGENT ENV.")
        click.echo(f"Purged {purge_traces(current_app.config['TRACE_RETENTION_DAYS'])} old attempts and events.")
        return
    if dry_run:
        click.echo(dry_run_summary(synthetic_counts(*synthetic)))
    else:
        click.echo(purge_summary(purge_synthetic(*synthetic, CLI_ACTOR)))


def dry_run_summary(found: SyntheticCounts) -> str:
    """What `purge --synthetic --dry-run` would remove, in a line or two."""
    pair = f"{found.agent_id}/{found.environment}"
    if found.empty:
        return f"No synthetic data of {pair}: nothing to purge."
    kept = (f"\n{found.in_flight:,} of these escalations are being delivered right now and would be kept."
            if found.in_flight else "")
    return f"Would remove {found.described()} of synthetic data of {pair}.{kept}"


def purge_summary(done: SyntheticCounts) -> str:
    """What `purge --synthetic` removed (and kept), in a line or two."""
    pair = f"{done.agent_id}/{done.environment}"
    head = (f"No synthetic data of {pair}: nothing was removed." if done.empty and not done.in_flight
            else f"Removed {done.described()} of synthetic data of {pair}.")
    return head + (f"\n{done.kept()}" if done.in_flight else "")
